import { ForbiddenError, ValidationError } from '../errors.ts';
import type { Config } from '../config.ts';
import type { UsageEntry } from '../ports.ts';
import type { Lease } from './model.ts';

export type { ProjectUsage, UsageEntry, UsageGuard } from '../ports.ts';

/**
 * Usage enforcement (Blazar `blazar/enforcement`): operator limits checked on lease create and
 * update, before anything is written.
 *
 * - `MaxLeaseDurationFilter`, as upstream: a lease may last at most `max_lease_duration`
 *   seconds unless its project is exempt; upstream's message. Create answers 403 (upstream
 *   re-raises enforcement failures as `NotAuthorized`), update 400 (the exception's own code).
 * - A per-project host cap (ours, `SLIPWAY_MAX_HOSTS_PER_PROJECT`): at no instant may the leases
 *   of one project hold more hosts than the cap. Same codes as the duration filter.
 *
 * The cap is exact under concurrency. Every lease write also keeps a usage entry of its lease
 * (window and host count) in the project's usage partition, and a write that may raise the
 * project's usage carries a compare-and-set on the partition's version (`UsageGuard`) in the same
 * transaction as the booking: of two concurrent bookings that both fit alone, the second one's
 * version check fails and it is retried with fresh usage (the lost-race retry of the booking).
 * Writes that can only lower usage (deletes, renames) need no version check: a stale read can
 * only have over-counted.
 */

/** The entry a lease contributes to its project's usage. */
export function usageEntry(lease: Pick<Lease, 'id' | 'start_date' | 'end_date' | 'reservations'>): UsageEntry {
  return {
    lease_id: lease.id,
    start: lease.start_date,
    end: lease.end_date,
    hosts: lease.reservations.reduce((n, r) => n + r.node_ids.length, 0),
  };
}

/**
 * The most hosts the other leases of the project hold at once during [start, end), counting
 * from `now` (the past is spent). Windows are half-open: back-to-back leases never overlap.
 */
export function peakHosts(entries: readonly UsageEntry[], start: Date, end: Date, now: Date, exclude?: string): number {
  const from = Math.max(start.getTime(), now.getTime());
  const to = end.getTime();
  if (from >= to) return 0;
  const edges: [number, number][] = [];
  for (const e of entries) {
    if (e.lease_id === exclude || e.hosts <= 0) continue;
    const s = Math.max(Date.parse(e.start), from);
    const t = Math.min(Date.parse(e.end), to);
    if (s >= t) continue;
    edges.push([s, e.hosts], [t, -e.hosts]);
  }
  // At equal times the releases come first (half-open windows).
  edges.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let held = 0;
  let peak = 0;
  for (const [, delta] of edges) {
    held += delta;
    peak = Math.max(peak, held);
  }
  return peak;
}

type Phase = 'create' | 'update';
const denial = (phase: Phase, message: string, name: string) =>
  phase === 'create' ? new ForbiddenError(message, name) : new ValidationError(message, name);

/**
 * `MaxLeaseDurationFilter.check_for_duration_violation` with upstream's message. On update, a
 * change that does not lengthen the lease is let through (upstream refuses any update of a lease
 * over the limit, even one that shortens it).
 */
export function checkLeaseDuration(config: Config, projectId: string, start: Date, end: Date, phase: Phase, previous?: { start: Date; end: Date }): void {
  const { maxLeaseDurationSeconds: max, maxLeaseDurationExemptProjects: exempt } = config.enforcement;
  if (max === -1 || exempt.includes(projectId)) return;
  const seconds = (end.getTime() - start.getTime()) / 1000;
  if (seconds <= max) return;
  if (previous && seconds <= (previous.end.getTime() - previous.start.getTime()) / 1000) return;
  throw denial(
    phase,
    `Lease duration of ${Math.trunc(seconds)} seconds must be less than or equal to the maximum lease duration of ${max} seconds.`,
    'MAX_LEASE_DURATION_EXCEEDED',
  );
}

/** The host cap for a project: undefined when there is none (disabled, or the project is exempt). */
export function hostCap(config: Config, projectId: string): number | undefined {
  const { maxHostsPerProject: max, maxHostsExemptProjects: exempt } = config.enforcement;
  return max === -1 || exempt.includes(projectId) ? undefined : max;
}

/** Refuses a lease that would take its project over the host cap. */
export function checkHostCap(cap: number, projectId: string, hosts: number, othersPeak: number, phase: Phase): void {
  if (othersPeak + hosts <= cap) return;
  throw denial(
    phase,
    `Project ${projectId} would hold ${othersPeak + hosts} hosts at once (${hosts} in this lease), more than the maximum of ${cap} hosts per project.`,
    'MAX_HOSTS_PER_PROJECT_EXCEEDED',
  );
}

/** Entries of leases that ended before `now`: dropped by the next guarded write (a few at a time). */
export function endedEntries(entries: readonly UsageEntry[], now: Date, limit = 5): string[] {
  return entries.filter((e) => Date.parse(e.end) <= now.getTime()).slice(0, limit).map((e) => e.lease_id);
}
