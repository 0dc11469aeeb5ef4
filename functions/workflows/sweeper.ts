import { getDeps } from '#aws/roots/sweeper.ts';
import { sweepEvents } from '#core/leases/engine.ts';
import { reportSiteSilence } from '#core/agent/presence.ts';
import { reconcileCalendars } from '#core/leases/reconcile.ts';
import { healAfterFailedErases } from '#core/leases/heal-sweep.ts';
import { lambdaHandler, log } from '#core/util/log.ts';

/**
 * The lease-event sweeper, run every minute by an EventBridge rule: starts the workflow for any
 * due event still UNDONE (a Scheduler delivery that was late or lost), and puts back events whose
 * execution ended without finishing them. Every 15 minutes it also reconciles node calendars
 * (interrupted large bookings, released entries whose cleaning gap has passed).
 */
/** Just-due events are left to their own schedule for this long before the sweeper doubles them. */
export const SWEEP_GRACE_MS = 60_000;
/** An hour longer than the workflow's own timeout (7 days, LEASE_EVENTS_TIMEOUT): such an event's execution is certainly over. */
export const STALE_EVENT_MS = (7 * 24 + 1) * 3600_000;

export const handler = lambdaHandler(async (event: { time?: string } = {}): Promise<{ started: number; reset: number; healed_nodes: number; repaired?: number }> => {
  const deps = getDeps();
  const result = await sweepEvents(deps, { graceMs: SWEEP_GRACE_MS, staleMs: STALE_EVENT_MS });
  // Leases waiting for a node whose erase failed; a failure here must not stop the sweep's own work either.
  const heal = await healAfterFailedErases(deps).catch((err: unknown) => {
    log.error('leases of nodes whose erase failed not healed', { error: (err as Error)?.name ?? 'Error' });
    return { healed_nodes: 0 };
  });
  // The silent-site alarm's datapoints; a failure here must not stop the sweep's own work.
  await reportSiteSilence(deps).catch((err: unknown) => log.error('agent site silence not reported', { error: (err as Error)?.name ?? 'Error' }));
  const minute = new Date(event.time ?? deps.clock.now().toISOString()).getUTCMinutes();
  if (minute % 15 === 0) return { ...result, ...heal, ...(await reconcileCalendars(deps)) };
  return { ...result, ...heal };
});
