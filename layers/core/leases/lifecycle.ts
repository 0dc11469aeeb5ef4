import type { Ports } from '../ports.ts';
import { log } from '../util/log.ts';
import type { EventType, Lease, LeaseEvent } from './model.ts';

/**
 * Lease timing (DESIGN.md §7, performance-and-reliability.md §3): one one-time trigger per
 * lease event (EventBridge Scheduler on AWS, a timer in `npm start`), created after the lease
 * commits, moved when the lease's dates move and removed with the lease; plus a sweeper that
 * starts any due event still `UNDONE`, because a trigger may be late, lost or repeated.
 * Whatever fires, the workflow's first step is a conditional `UNDONE → IN_PROGRESS`, so a
 * repeated delivery does nothing.
 */
export interface LeaseEventRef {
  lease_id: string;
  event_id: string;
  event_type: EventType;
  /** ISO-8601 UTC: when the event is due. */
  time: string;
}

/** The one-time triggers: EventBridge Scheduler on AWS, timers locally. */
export interface EventScheduler {
  /** Creates or moves the trigger of an event (idempotent). */
  put(ref: LeaseEventRef): Promise<void>;
  /** Deletes the trigger of an event; a missing one is not an error. */
  remove(ref: LeaseEventRef): Promise<void>;
}

/** Starts executions of the lease-event workflow (Step Functions on AWS, the local runner locally). */
export interface EventRunner {
  /**
   * Starts an execution for the event under `name`. A name already used is not an error: it is
   * what makes a repeated delivery harmless.
   */
  start(ref: LeaseEventRef, name: string): Promise<void>;
}

/** Lease notifications (Blazar's `lease.create`, `lease.event.start_lease`...). */
export interface Notifier {
  publish(type: string, detail: Record<string, unknown>): Promise<void>;
}

export const refOf = (e: LeaseEvent): LeaseEventRef => ({ lease_id: e.lease_id, event_id: e.id, event_type: e.event_type, time: e.time });

/** `2026-11-25T16:30:00.000Z` → `20261125T1630` (execution names allow [A-Za-z0-9-_]). */
const compact = (iso: string) => iso.slice(0, 16).replace(/[-:]/g, '');

/**
 * Execution names (at most 80 characters): the trigger's name depends only on the event and its
 * time, so the Scheduler delivering twice starts one execution; a moved event gets a new name.
 * The sweeper's include the minute it ran, so it can try again a minute later.
 */
export function executionName(ref: LeaseEventRef, via: 'schedule' | 'now' | 'sweep', at?: Date): string {
  const base = `${ref.event_id}-${compact(ref.time)}`;
  if (via === 'schedule') return base;
  if (via === 'now') return `${base}-now`;
  return `${base}-sweep${compact((at ?? new Date()).toISOString())}`;
}

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
    const ref = refOf(e);
    if (Date.parse(e.time) <= now + DUE_SLACK_MS) {
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
  }
}
