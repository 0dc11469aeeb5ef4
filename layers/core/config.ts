/**
 * Deployment settings that change behaviour (not wiring). Read once per process from the
 * environment by the composition root; defaults follow upstream Blazar.
 */
export interface Config {
  /** Blazar `minutes_before_end_lease`: default before_end event offset; 0 disables it. */
  minutesBeforeEndLease: number;
  /** Blazar `cleaning_time`: minutes kept free around every allocation of a node. */
  cleaningMinutes: number;
  /** Attempts for an allocation transaction that lost a race before answering 409. */
  allocationAttempts: number;
  /**
   * Blazar `[physical:host] before_end`: what a reservation's `before_end: default` does.
   * '' does nothing; 'snapshot' is accepted and recorded as unsupported (no bare-metal driver can image a node).
   */
  beforeEndAction: '' | 'snapshot';
  /**
   * Minutes after its time during which a due event that cannot run yet (its lease busy, its
   * nodes still held by the lease before) is retried; then the sweeper only, and a blocked
   * start fails (upstream `event_max_retries`).
   */
  eventRetryMinutes: number;
  /** The site whose agent reaches Commissaire hosts over SSH (`SLIPWAY_COMMISSAIRE_SITE`). */
  commissaireSite: string;
}

function intFromEnv(env: Record<string, string | undefined>, name: string, dflt: number, min = 0): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return dflt;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) throw new Error(`${name} must be an integer >= ${min}, got ${JSON.stringify(raw)}`);
  return n;
}

export function configFromEnv(env: Record<string, string | undefined> = process.env): Config {
  return {
    minutesBeforeEndLease: intFromEnv(env, 'SLIPWAY_MINUTES_BEFORE_END_LEASE', 60),
    cleaningMinutes: intFromEnv(env, 'SLIPWAY_CLEANING_MINUTES', 0),
    allocationAttempts: intFromEnv(env, 'SLIPWAY_ALLOCATION_ATTEMPTS', 8, 1),
    beforeEndAction: beforeEndFromEnv(env.SLIPWAY_BEFORE_END_ACTION),
    eventRetryMinutes: intFromEnv(env, 'SLIPWAY_EVENT_RETRY_MINUTES', 10, 1),
    commissaireSite: (env.SLIPWAY_COMMISSAIRE_SITE ?? '').trim() || 'default',
  };
}

function beforeEndFromEnv(raw: string | undefined): Config['beforeEndAction'] {
  const v = (raw ?? '').trim();
  if (v === '' || v === 'snapshot') return v;
  throw new Error(`SLIPWAY_BEFORE_END_ACTION must be '' or 'snapshot', got ${JSON.stringify(raw)}`);
}
