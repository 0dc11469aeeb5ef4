import { ValidationError } from '../errors.ts';

/**
 * Blazar dates: in as `YYYY-MM-DD HH:MM` (naive UTC; non-padded month/day/hour accepted, as
 * strptime does), out as `%Y-%m-%dT%H:%M:%S.%f`; `created_at` out as `%Y-%m-%d %H:%M:%S`.
 */
const BLAZAR_IN = /^(\d{4})-(\d{1,2})-(\d{1,2}) (\d{1,2}):(\d{1,2})$/;

export function parseBlazarDate(value: unknown, field: string, now: Date): Date {
  if (value === 'now') return truncateToMinute(now);
  const m = typeof value === 'string' ? BLAZAR_IN.exec(value.trim()) : null;
  if (m) {
    const [y, mo, d, h, mi] = m.slice(1).map(Number) as [number, number, number, number, number];
    const t = new Date(Date.UTC(y, mo - 1, d, h, mi));
    if (t.getUTCFullYear() === y && t.getUTCMonth() === mo - 1 && t.getUTCDate() === d && h < 24 && mi < 60) return t;
  }
  throw new ValidationError(
    `${JSON.stringify(value)} is an invalid date for ${field}. Required format: %Y-%m-%d %H:%M`,
    'INVALID_DATE',
  );
}

export function truncateToMinute(d: Date): Date {
  return new Date(Math.floor(d.getTime() / 60_000) * 60_000);
}

const pad = (n: number, w = 2) => String(n).padStart(w, '0');

/** `2030-01-06T09:00:00.000000` */
export function blazarDate(iso: string | Date): string {
  const d = typeof iso === 'string' ? new Date(iso) : iso;
  return (
    `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}T` +
    `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}.${pad(d.getUTCMilliseconds(), 3)}000`
  );
}

/** `2030-01-06 09:00:00` (Blazar `created_at` / `updated_at`) */
export function blazarTimestamp(iso: string | null | undefined): string | null {
  if (!iso) return null;
  const d = new Date(iso);
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
}
