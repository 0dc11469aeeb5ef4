import type { Ports } from '../ports.ts';
import { log } from '../util/log.ts';
import { metric } from '../util/metrics.ts';
import { executionName, fireTime, type LeaseEventRef, PREPARE_LEAD_SECONDS, refOf } from './lifecycle.ts';
import { runsWholeEvent } from './whole.ts';
import type { Lease, LeaseEvent } from './model.ts';

/**
 * What follows a lease write, outside its transaction (the triggers and the sweeper are
 * described in `lifecycle.ts`): the lease's event triggers set, moved or removed, and lease
 * notifications published. A failure here is logged, never thrown: the write already stands.
 * Kept apart from `lifecycle.ts`, which declares the trigger ports: these functions need
 * `ports.ts`, and `ports.ts` needs those declarations.
 */

/** An event counts as due this close to its time (triggers have second, not millisecond, precision). */
const DUE_SLACK_MS = 1000;

/**
 * After a lease commit: every `UNDONE` event gets its trigger at its (possibly new) time, and
 * one already due starts at once, so a lease starting "now" starts within seconds, and never
 * before its reservations exist (they were in the transaction that just committed: upstream bug
 * #1704359). Events no longer pending lose their triggers. Failures are logged, not thrown:
 * the lease is stored, and the sweeper runs whatever a lost trigger would have.
 */
export async function armLease(deps: Ports, lease: Lease, previous?: Lease): Promise<void> {
  const now = deps.clock.now().getTime();
  const current = new Map(lease.events.map((e) => [e.id, e]));
  const tasks: Promise<void>[] = [];
  for (const e of lease.events) {
    const was = previous?.events.find((p) => p.id === e.id);
    if (e.status !== 'UNDONE') {
      if (was?.status === 'UNDONE') tasks.push(deps.scheduler.remove(refOf(e)));
      continue;
    }
    if (was && was.status === 'UNDONE' && was.time === e.time) continue; // unchanged: its trigger stands
    const ref = triggerOf(lease, e);
    // Due, or within its lead (Begin prepares it and waits for its time): started now.
    if (Date.parse(fireTime(ref)) <= now + DUE_SLACK_MS) {
      if (was) tasks.push(deps.scheduler.remove(refOf(was)));
      tasks.push(deps.runner.start(ref, executionName(ref, 'now')));
    } else tasks.push(deps.scheduler.put(ref));
  }
  for (const p of previous?.events ?? []) if (!current.has(p.id)) tasks.push(deps.scheduler.remove(refOf(p)));
  const results = await Promise.allSettled(tasks);
  for (const r of results) {
    if (r.status === 'rejected') log.error('lease event trigger not set; the sweeper will run the event', { lease_id: lease.id, error: (r.reason as Error)?.name });
  }
}

/**
 * The trigger of an event: at its time, or PREPARE_LEAD_SECONDS before it when the event runs
 * whole (engine.ts `prepareEvent`). Whether it does is decided again when it fires: a lease
 * changed since is only read earlier than it needed to be.
 */
function triggerOf(lease: Lease, e: LeaseEvent): LeaseEventRef {
  const ref = refOf(e);
  if (e.event_type !== 'start_lease' && e.event_type !== 'before_end_lease') return ref;
  if (!runsWholeEvent(lease, e.event_type)) return ref;
  return { ...ref, fire_at: new Date(Date.parse(e.time) - PREPARE_LEAD_SECONDS * 1000).toISOString() };
}

/** After a lease delete: its triggers go. */
export async function disarmLease(deps: Ports, lease: Lease): Promise<void> {
  const results = await Promise.allSettled(lease.events.filter((e) => e.status === 'UNDONE').map((e) => deps.scheduler.remove(refOf(e))));
  for (const r of results) {
    if (r.status === 'rejected') log.warn('lease event trigger not removed; it will find the lease gone', { lease_id: lease.id, error: (r.reason as Error)?.name });
  }
}

/** Publishes a notification; a notifier failure never fails the operation that caused it. */
export async function notify(deps: Ports, type: string, detail: Record<string, unknown>): Promise<void> {
  try {
    await deps.notifier.publish(type, detail);
  } catch (err) {
    log.error('notification not published', { type, error: (err as Error).name });
    metric('NotificationFailures', 1, 'Count');
  }
}
