import type { EventType, Lease, Reservation } from './model.ts';

/**
 * Which lease events run whole in Begin, one transaction with the lease (engine.ts runWhole), and
 * are prepared before their time (engine.ts prepareEvent; their triggers fire early: triggers.ts).
 * Kept apart from the lifecycles (lifecycles.ts, host-lifecycle.ts), which reach the agent jobs and
 * Ironic's deploy and clean: the API functions that arm triggers need this answer, not those.
 */

/**
 * The most nodes an event run whole may grant: one transaction holds them with the lease's rows
 * (DynamoDB allows 100 items), and a larger start goes through Act, which grants ten at a time.
 */
export const WHOLE_EVENT_MAX_NODES = 25;

/**
 * A physical host's start without an image is a grant and nothing else, and every before_end is
 * at most a note: those run whole (`ResourceLifecycle.wholeStep` of the hosts runs them).
 */
export function hostRunsWhole(eventType: EventType, res: Reservation): boolean {
  return eventType === 'before_end_lease' || (eventType === 'start_lease' && !res.params['slipway:image']);
}

/** Per resource type, whether its reservation's action for an event runs whole (none: it does not). */
const RUNS_WHOLE: ReadonlyMap<string, (eventType: EventType, res: Reservation) => boolean> = new Map([['physical:host', hostRunsWhole]]);

/**
 * Whether the event runs whole: every reservation's action for it is writes only and it grants
 * at most WHOLE_EVENT_MAX_NODES nodes.
 */
export function runsWholeEvent(lease: Pick<Lease, 'reservations'>, eventType: EventType): boolean {
  if (!lease.reservations.every((r) => RUNS_WHOLE.get(r.resource_type)?.(eventType, r) === true)) return false;
  return lease.reservations.reduce((n, r) => n + r.node_ids.length, 0) <= WHOLE_EVENT_MAX_NODES;
}
