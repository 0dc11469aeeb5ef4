/**
 * The console's only way to the API: same origin (the API serves the console at /console), so
 * no CORS and no base URL. The token lives in sessionStorage: it is gone when the tab closes, is
 * never written to disk by the page, and other tabs do not share it.
 */
export interface Session {
  token: string;
  user: string;
  project: string;
  /** The project's id, as `/v1.1/{project_id}/…` wants it. */
  projectId: string;
  roles: string[];
  expiresAt: string;
}

const KEY = 'slipway.console.session';

export function loadSession(): Session | undefined {
  try {
    const raw = sessionStorage.getItem(KEY);
    return raw ? (JSON.parse(raw) as Session) : undefined;
  } catch {
    return undefined;
  }
}

export function saveSession(s: Session | undefined): void {
  if (s) sessionStorage.setItem(KEY, JSON.stringify(s));
  else sessionStorage.removeItem(KEY);
}

/** An API answer that was not 2xx, with the message the surface put in its own error format. */
export class ApiError extends Error {
  override name = 'ApiError';
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/**
 * The message of any surface's error body: Blazar/Sahara `error_message`, Ironic's
 * double-encoded `faultstring`, Drydock's `message`, Keystone's `error.message`.
 */
export function errorMessage(body: unknown, fallback: string): string {
  if (body && typeof body === 'object') {
    const b = body as Record<string, unknown>;
    if (typeof b.error_message === 'string') {
      try {
        const inner = JSON.parse(b.error_message) as { faultstring?: unknown };
        if (typeof inner.faultstring === 'string') return inner.faultstring;
      } catch {
        // Not Ironic's double encoding: the message itself.
      }
      return b.error_message;
    }
    if (b.error && typeof b.error === 'object' && typeof (b.error as { message?: unknown }).message === 'string') return (b.error as { message: string }).message;
    if (typeof b.message === 'string') return b.message;
    if (typeof b.description === 'string') return b.description;
  }
  return typeof body === 'string' && body.trim() !== '' && body.length < 300 ? body : fallback;
}

/** Called when the API says the token is no longer good (expired, revoked): back to sign-in. */
let onUnauthorized: (why: string) => void = () => undefined;
export const setUnauthorizedHandler = (f: (why: string) => void) => (onUnauthorized = f);

export async function api<T>(method: string, path: string, body?: unknown, session = loadSession()): Promise<T> {
  const headers: Record<string, string> = { Accept: 'application/json', 'X-OpenStack-Ironic-API-Version': 'latest' };
  if (session) headers['X-Auth-Token'] = session.token;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res: Response;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: 'no-store' });
  } catch (e) {
    throw new ApiError(0, `Cannot reach the API (${e instanceof Error ? e.message : String(e)})`);
  }
  const text = await res.text();
  let parsed: unknown = undefined;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = text;
  }
  if (!res.ok) {
    const msg = errorMessage(parsed, `${res.status} ${res.statusText}`);
    if (res.status === 401 && session) onUnauthorized(msg);
    throw new ApiError(res.status, `${method} ${path.split('?')[0]}: ${res.status} — ${msg}`);
  }
  return parsed as T;
}

/** Keystone v3 password sign-in (POST /v3/auth/tokens): the token comes in X-Subject-Token. */
export async function signIn(user: string, password: string, project: string): Promise<Session> {
  const res = await fetch('/v3/auth/tokens', {
    method: 'POST',
    headers: { Accept: 'application/json', 'Content-Type': 'application/json' },
    cache: 'no-store',
    body: JSON.stringify({
      auth: {
        identity: { methods: ['password'], password: { user: { name: user, domain: { id: 'default' }, password } } },
        scope: { project: { name: project, domain: { id: 'default' } } },
      },
    }),
  });
  const text = await res.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = text;
  }
  const token = res.headers.get('X-Subject-Token');
  if (!res.ok || !token) throw new ApiError(res.status, res.status === 401 ? 'Wrong user name, password or project.' : errorMessage(body, `Sign-in failed: ${res.status}`));
  const t = (body as { token: { expires_at: string; user: { name: string }; project: { id: string; name: string }; roles: { name: string }[] } }).token;
  return { token, user: t.user.name, project: t.project.name, projectId: t.project.id, roles: t.roles.map((r) => r.name), expiresAt: t.expires_at };
}

/** Revokes the token (Keystone DELETE /v3/auth/tokens); signing out locally happens regardless. */
export async function signOut(s: Session): Promise<void> {
  await fetch('/v3/auth/tokens', { method: 'DELETE', headers: { 'X-Auth-Token': s.token, 'X-Subject-Token': s.token }, cache: 'no-store' }).catch(() => undefined);
}

/** Blazar dates are UTC without a zone: `2026-12-07T10:00:00.000000` (or `2026-12-07 10:00`). */
export function parseDate(s: string | null | undefined): number {
  if (!s) return NaN;
  const t = s.replace(' ', 'T');
  return /[zZ]|[+-]\d\d:?\d\d$/.test(t) ? Date.parse(t) : Date.parse(`${t.slice(0, 19)}Z`);
}

const pad = (n: number) => String(n).padStart(2, '0');
/** Blazar's request format, `%Y-%m-%d %H:%M`, in UTC. */
export function blazarDate(ms: number): string {
  const d = new Date(ms);
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}`;
}
/** Shown to people: `2026-12-07 10:00 UTC`. */
export const showDate = (ms: number) => (Number.isFinite(ms) ? `${blazarDate(ms)} UTC` : '—');
/** For `<input type="datetime-local">`, read as UTC. */
export const inputDate = (ms: number) => blazarDate(ms).replace(' ', 'T');
export const fromInput = (v: string) => Date.parse(`${v}:00Z`.replace(/(T\d\d:\d\d:\d\d):00Z$/, '$1Z'));
