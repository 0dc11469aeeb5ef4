import { ValidationError } from '../errors.ts';
import {
  hostAfterEnd,
  hostBeforeEnd,
  hostEnd,
  hostQueueJob,
  hostRunsWhole,
  hostSettledFailure,
  hostStart,
  hostStartBlocker,
  hostWholeStep,
} from './host-lifecycle.ts';
import type { EventType, Lease } from './model.ts';
import type { ResourceLifecycle } from './plugin.ts';

/** The physical hosts' lease lifecycle (host-lifecycle.ts), for the lease-event workflow. */
const hostLifecycle: ResourceLifecycle = {
  startBlocker: hostStartBlocker,
  onStart: hostStart,
  onBeforeEnd: hostBeforeEnd,
  onEnd: hostEnd,
  queueJob: hostQueueJob,
  afterEnd: hostAfterEnd,
  settledFailure: hostSettledFailure,
  runsWhole: hostRunsWhole,
  wholeStep: hostWholeStep,
};

const LIFECYCLES: ReadonlyMap<string, ResourceLifecycle> = new Map([['physical:host', hostLifecycle]]);

/** The lifecycle of a reservation's resource type (the same types as `pluginFor`). */
export function lifecycleFor(resourceType: string): ResourceLifecycle {
  const l = LIFECYCLES.get(resourceType);
  if (!l) throw new ValidationError(`The ${resourceType} resource type is not supported`, 'UNSUPPORTED_RESOURCE_TYPE');
  return l;
}

/**
 * The most nodes an event run whole may grant: one transaction holds them with the lease's rows
 * (DynamoDB allows 100 items), and a larger start goes through Act, which grants ten at a time.
 */
export const WHOLE_EVENT_MAX_NODES = 25;

/**
 * Whether the event runs whole in Begin, one transaction with the lease (engine.ts runWhole):
 * every reservation's action for it is writes only (`runsWhole`: a start without an image,
 * every before_end) and it grants at most WHOLE_EVENT_MAX_NODES nodes.
 */
export function runsWholeEvent(lease: Pick<Lease, 'reservations'>, eventType: EventType): boolean {
  if (!lease.reservations.every((r) => lifecycleFor(r.resource_type).runsWhole?.(eventType, r) === true)) return false;
  return lease.reservations.reduce((n, r) => n + r.node_ids.length, 0) <= WHOLE_EVENT_MAX_NODES;
}
