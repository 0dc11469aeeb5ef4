import { isGranted } from '../inventory/node.ts';
import { queueSystemPower } from '../ironic/nodes.ts';
import type { Ports } from '../ports.ts';
import { log } from '../util/log.ts';
import type { Lease, Reservation } from './model.ts';
import type { AgentJobSpec, JobResult, LifecycleStep } from './plugin.ts';

/**
 * What `physical:host` does at each lease event (upstream §4.8, "pool membership" read as
 * "which project may see and operate the node"):
 *  - start: grant: the allocation is marked granted, so the lease's project sees the node and
 *    may power it and call its passthru (`grantsOf`).
 *  - before_end: the reservation's `before_end` action.
 *  - end: revoke the grant at once, power the node off through the agent (one callback job per
 *    node), then release the allocation, kept (still padded) until the cleaning gap has passed.
 * Each step reads the node and writes its own calendar entry only, so running it twice is harmless.
 */

/** Runs `fn` over items, at most `width` at a time. */
async function eachLimited<T>(items: readonly T[], width: number, fn: (x: T) => Promise<void>): Promise<void> {
  const queue = [...items];
  await Promise.all(
    Array.from({ length: Math.min(width, queue.length) }, async () => {
      for (let x = queue.shift(); x !== undefined; x = queue.shift()) await fn(x);
    }),
  );
}

export async function hostStartBlocker(deps: Ports, _lease: Lease, res: Reservation): Promise<string | undefined> {
  for (const id of res.node_ids) {
    const node = await deps.nodes.get(id);
    const other = node && Object.values(node.allocations).find((a) => a.reservation_id !== res.id && isGranted(a));
    if (other) return `node ${node!.name} is still held by lease ${other.lease_id}, whose end has not completed`;
  }
  return undefined;
}

export async function hostStart(deps: Ports, lease: Lease, res: Reservation): Promise<LifecycleStep> {
  const blocked = await hostStartBlocker(deps, lease, res);
  // Past the retry window Begin lets a blocked start run so that it fails visibly.
  if (blocked) throw new Error(`The lease cannot start: ${blocked}`);
  const stamp = deps.clock.now().toISOString();
  const missing: string[] = [];
  await eachLimited(res.node_ids, 10, async (id) => {
    if (!(await deps.nodes.markAllocation(id, res.id, { granted_at: stamp }))) missing.push(id);
  });
  if (missing.length > 0) throw new Error(`The lease cannot start: node(s) ${missing.join(', ')} no longer hold its allocation`);
  return { jobs: [], notes: [] };
}

export async function hostBeforeEnd(deps: Ports, _lease: Lease, res: Reservation): Promise<LifecycleStep> {
  const asked = String(res.params.before_end ?? 'default');
  const action = asked === 'default' ? deps.config.beforeEndAction : asked;
  if (action === 'snapshot') {
    return {
      jobs: [],
      notes: [
        `before_end action 'snapshot' of reservation ${res.id} was not run: snapshots image the servers on a host, and no physical:host driver can image a bare-metal node`,
      ],
    };
  }
  return { jobs: [], notes: [] };
}

export async function hostEnd(deps: Ports, _lease: Lease, res: Reservation): Promise<LifecycleStep> {
  const jobs: AgentJobSpec[] = [];
  const notes: string[] = [];
  await eachLimited(res.node_ids, 10, async (id) => {
    const node = await deps.nodes.get(id);
    if (!node) return;
    // Revoke first: the project loses the node at its end time, before the power-off finishes.
    if (node.allocations[res.id]?.granted_at) await deps.nodes.markAllocation(id, res.id, { granted_at: null });
    if (!node.bmc) notes.push(`node ${node.name} has no BMC registered and was not powered off`);
    else if (node.bmc.maintenance) notes.push(`node ${node.name} is in maintenance and was not powered off`);
    else jobs.push({ reservation_id: res.id, node_id: id, action: 'power_off' });
  });
  jobs.sort((x, y) => x.node_id.localeCompare(y.node_id));
  return { jobs, notes };
}

export async function hostQueueJob(deps: Ports, job: AgentJobSpec, taskToken: string): Promise<{ job_id: string }> {
  if (job.action !== 'power_off') throw new Error(`Unknown physical:host agent action ${job.action}`);
  const queued = await queueSystemPower(deps, job.node_id, 'power off', taskToken);
  if (!queued) throw new Error(`Node ${job.node_id} has no BMC to power off`);
  return { job_id: queued.id };
}

/**
 * Releases the nodes whatever the power-off results (a failure is the event's ERROR and the
 * node's `last_error`; the grant is already revoked). With a cleaning gap the entry stays,
 * marked released, until `end + gap` (purged by `reconcileCalendars`).
 */
export async function hostAfterEnd(deps: Ports, _lease: Lease, res: Reservation, _results: JobResult[]): Promise<void> {
  const stamp = deps.clock.now().toISOString();
  const gap = deps.config.cleaningMinutes;
  await eachLimited(res.node_ids, 10, async (id) => {
    if (gap > 0) await deps.nodes.markAllocation(id, res.id, { granted_at: null, released_at: stamp });
    else await deps.nodes.rewriteAllocations(id, [], [res.id]);
  });
}

/** A running lease deleted: its nodes are powered off (the grant went with the allocation). */
export async function hostAfterDeleteActive(deps: Ports, _lease: Lease, res: Reservation): Promise<void> {
  await eachLimited(res.node_ids, 10, async (id) => {
    try {
      await queueSystemPower(deps, id, 'power off');
    } catch (err) {
      log.error('power-off after deleting a running lease was not queued', { node_id: id, error: (err as Error).name });
    }
  });
}
