import { ValidationError } from '../errors.ts';
import {
  hostAfterEnd,
  hostBeforeEnd,
  hostEnd,
  hostQueueJob,
  hostSettledFailure,
  hostStart,
  hostStartBlocker,
  hostWholeStep,
} from './host-lifecycle.ts';
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
  wholeStep: hostWholeStep,
};

const LIFECYCLES: ReadonlyMap<string, ResourceLifecycle> = new Map([['physical:host', hostLifecycle]]);

/** The lifecycle of a reservation's resource type (the same types as `pluginFor`). */
export function lifecycleFor(resourceType: string): ResourceLifecycle {
  const l = LIFECYCLES.get(resourceType);
  if (!l) throw new ValidationError(`The ${resourceType} resource type is not supported`, 'UNSUPPORTED_RESOURCE_TYPE');
  return l;
}

