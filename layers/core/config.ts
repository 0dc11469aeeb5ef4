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
  };
}
