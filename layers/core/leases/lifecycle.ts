import type { EventType, LeaseEvent } from './model.ts';

/**
 * Lease timing (DESIGN.md §7, performance-and-reliability.md §3): one one-time trigger per
 * lease event (EventBridge Scheduler on AWS, a timer in `npm start`), created after the lease
 * commits, moved when the lease's dates move and removed with the lease; plus a sweeper that
 * starts any due event still `UNDONE`, because a trigger may be late, lost or repeated.
 * Whatever fires, the workflow's first step is a conditional `UNDONE → IN_PROGRESS`, so a
 * repeated delivery does nothing. This module declares the triggers and their names; the
 * adapters implement them, and `triggers.ts` sets them after each lease write.
 */
export interface LeaseEventRef {
  lease_id: string;
  event_id: string;
  event_type: EventType;
  /** ISO-8601 UTC: when the event is due. */
  time: string;
  /**
   * When its trigger fires, if not at `time`: PREPARE_LEAD_SECONDS earlier for an event Begin
   * can prepare (engine.ts `prepareEvent`), set by `armLease`.
   */
  fire_at?: string;
}

/**
 * How long before its time the trigger of an event that runs whole fires (a start without an
 * image, a before_end): Begin reads and checks the lease and its nodes then, and the workflow
 * waits for the event's time to write it in one transaction (engine.ts `prepareEvent`). The
 * start is then one write at its time, not three reads and a write behind a Scheduler delivery
 * and a cold function (issue 16: 500 leases due at once). Long enough for a burst of prepares to
 * finish first and for Scheduler's delivery delay; an execution waiting costs nothing.
 */
export const PREPARE_LEAD_SECONDS = 30;

/** When the trigger of `ref` fires. */
export const fireTime = (ref: LeaseEventRef): string => ref.fire_at ?? ref.time;

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
