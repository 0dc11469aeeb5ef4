import { enqueueJob } from '../agent/enqueue.ts';
import { ConcurrentModificationError } from '../errors.ts';
import { type BmcInfo, isGranted, type Node } from '../inventory/node.ts';
import { cleanPayload, cleansOnProvide } from '../ironic/clean.ts';
import { deployPayload, imageRefOf } from '../ironic/deploy.ts';
import { queueSystemPower, siteOf } from '../ironic/nodes.ts';
import type { Ports } from '../ports.ts';
import { isSealed } from '../secrets.ts';
import { log } from '../util/log.ts';
import type { EventType, Lease, Reservation } from './model.ts';
import type { AgentJobSpec, JobResult, LifecycleStep, WholeStep } from './plugin.ts';

/**
 * What `physical:host` does at each lease event (upstream §4.8, "pool membership" read as
 * "which project may see and operate the node"):
 *  - start: grant: the allocation is marked granted, so the lease's project sees the node and
 *    may power it and call its passthru (`grantsOf`).
 *  - before_end: the reservation's `before_end` action.
 *  - end: revoke the grant at once, then erase the node's disks through the agent (one callback
 *    `clean` job per node: the ramdisk erases every disk, the node ends powered off and
 *    `available`), or, where the node cannot be erased (automated cleaning off for it, no known
 *    MAC), power it off; then release the allocation, kept (still padded) until the cleaning gap
 *    has passed. An erase that fails leaves the node `clean failed` in maintenance (never
 *    allocated again until an administrator clears it): the lease still terminates, with a note.
 *  - deleted while running: the same erase (or power off), without a workflow.
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
    // The previous tenant's disks are being erased: the next tenant never gets a node mid-erase.
    if (node?.bmc?.provision_state === 'cleaning') return `node ${node.name} is still being erased after the previous lease`;
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
  // A reservation naming an image: its nodes are deployed with it now (one callback job each);
  // the lease is ACTIVE once they are `active`, a node that failed is named on the event.
  if (!res.params['slipway:image']) return { jobs: [], notes: [] };
  const jobs: AgentJobSpec[] = [];
  const notes: string[] = [];
  await eachLimited(res.node_ids, 10, async (id) => {
    const node = await deps.nodes.get(id);
    const state = node?.bmc?.provision_state;
    if (!node?.bmc) notes.push(`node ${node?.name ?? id} has no BMC registered and was not deployed`);
    else if (node.bmc.maintenance) notes.push(`node ${node.name} is in maintenance and was not deployed`);
    else if (state !== 'available' && state !== 'active' && state !== 'deploy failed') notes.push(`node ${node.name} is ${state}, not available, and was not deployed`);
    else jobs.push({ reservation_id: res.id, node_id: id, action: 'deploy' });
  });
  jobs.sort((x, y) => x.node_id.localeCompare(y.node_id));
  return { jobs, notes };
}

/**
 * The whole start (or before_end) of a reservation: the grants of its nodes, as read (the
 * transaction's condition is that they are still so, and still hold the allocation). The
 * checks are hostStart's: a start still blocked past its retry window fails visibly.
 */
export async function hostWholeStep(deps: Ports, lease: Lease, res: Reservation, eventType: EventType): Promise<WholeStep> {
  if (eventType === 'before_end_lease') return { grants: [], notes: (await hostBeforeEnd(deps, lease, res)).notes };
  if (eventType !== 'start_lease' || res.params['slipway:image']) throw new Error(`A ${eventType} of reservation ${res.id} cannot run whole`);
  const blocked = await hostStartBlocker(deps, lease, res);
  if (blocked) throw new Error(`The lease cannot start: ${blocked}`);
  const grants: WholeStep['grants'] = [];
  const missing: string[] = [];
  for (const id of res.node_ids) {
    // Already read by the start checks (Begin reads each node once).
    const node = await deps.nodes.get(id);
    if (node?.allocations[res.id]) grants.push(deps.leaseEvents.prepareGrant(node, res.id));
    else missing.push(id);
  }
  if (missing.length > 0) throw new Error(`The lease cannot start: node(s) ${missing.join(', ')} no longer hold its allocation`);
  return { grants, notes: [] };
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

/**
 * How a node is given back at the end of a lease: erased (`clean`), or, where it cannot be —
 * automated cleaning off for it, or no known MAC (no Ironic port: the ramdisk is never sent to a
 * machine it cannot recognise) — powered off, with the reason as a note.
 */
async function endAction(deps: Ports, node: Node & { bmc: BmcInfo }): Promise<{ action: 'clean' | 'power_off'; note?: string }> {
  if (!cleansOnProvide(deps, node.bmc)) return { action: 'power_off', note: `node ${node.name} was powered off, not erased (automated cleaning is off for it)` };
  if ((await deps.bmPorts.listByNode(node.id)).length === 0) return { action: 'power_off', note: `node ${node.name} was powered off, not erased: it has no known MAC address (no Ironic ports; inspect it)` };
  return { action: 'clean' };
}

export async function hostEnd(deps: Ports, _lease: Lease, res: Reservation): Promise<LifecycleStep> {
  const jobs: AgentJobSpec[] = [];
  const notes: string[] = [];
  await eachLimited(res.node_ids, 10, async (id) => {
    const node = await deps.nodes.get(id);
    if (!node) return;
    // Revoke first: the project loses the node at its end time, before the erase finishes.
    if (node.allocations[res.id]?.granted_at) await deps.nodes.markAllocation(id, res.id, { granted_at: null });
    if (!node.bmc) notes.push(`node ${node.name} has no BMC registered and was not powered off`);
    else if (node.bmc.maintenance) notes.push(`node ${node.name} is in maintenance and was not powered off`);
    else {
      const { action, note } = await endAction(deps, node as Node & { bmc: BmcInfo });
      if (note) notes.push(note);
      jobs.push({ reservation_id: res.id, node_id: id, action });
    }
  });
  jobs.sort((x, y) => x.node_id.localeCompare(y.node_id));
  return { jobs, notes };
}

/**
 * Queues one end job: a power-off, or an erase — the node enters `cleaning` (target
 * `available`) whatever it ran (a deployed OS is overwritten by the ramdisk's boot), and the
 * clean job's handler (ironic/clean.ts) makes it `available`, or `clean failed` in maintenance.
 */
async function queueEndJob(deps: Ports, nodeId: string, action: string, taskToken?: string): Promise<{ job_id: string }> {
  if (action === 'power_off') {
    const queued = await queueSystemPower(deps, nodeId, 'power off', taskToken);
    if (!queued) throw new Error(`Node ${nodeId} has no BMC to power off`);
    return { job_id: queued.id };
  }
  if (action !== 'clean') throw new Error(`Unknown physical:host agent action ${action}`);
  for (let attempt = 0; attempt < 5; attempt++) {
    const node = await deps.nodes.get(nodeId);
    if (!node?.bmc) throw new Error(`Node ${nodeId} has no BMC to erase through`);
    const bmc: BmcInfo = { ...node.bmc, provision_state: 'cleaning', target_provision_state: 'available', provision_updated_at: deps.clock.now().toISOString(), last_error: null };
    try {
      await deps.nodes.update(node.id, node.version, { bmc });
    } catch (err) {
      if (err instanceof ConcurrentModificationError) continue;
      throw err;
    }
    const job = await enqueueJob(deps, { site: siteOf(bmc), kind: 'clean', node_id: node.id, payload: { ...(await cleanPayload(deps, { ...node, bmc })) }, ...(taskToken ? { task_token: taskToken } : {}) });
    return { job_id: job.id };
  }
  throw new ConcurrentModificationError(`Node ${nodeId} was modified concurrently`);
}

export async function hostQueueJob(deps: Ports, job: AgentJobSpec, taskToken: string, res: Reservation): Promise<{ job_id: string }> {
  if (job.action === 'deploy') return queueStartDeploy(deps, job, taskToken, res);
  return queueEndJob(deps, job.node_id, job.action, taskToken);
}

/**
 * A lease-start deploy: the reservation's image becomes the node's instance_info (what the
 * lessee then sees and may rebuild with), the node enters `deploying`, and the agent's
 * `deploy_node` job carries the workflow's task token; its handler (ironic/deploy.ts) makes the
 * node `active` or `deploy failed`.
 */
async function queueStartDeploy(deps: Ports, job: AgentJobSpec, taskToken: string, res: Reservation): Promise<{ job_id: string }> {
  const image = res.params['slipway:image'];
  if (typeof image !== 'string') throw new Error(`Reservation ${job.reservation_id} names no image`);
  const checksum = res.params['slipway:image_checksum'];
  for (let attempt = 0; attempt < 5; attempt++) {
    const node = await deps.nodes.get(job.node_id);
    if (!node?.bmc) throw new Error(`Node ${job.node_id} has no BMC to deploy through`);
    const instance_info = { image_source: image, ...(typeof checksum === 'string' ? { image_checksum: checksum } : {}) };
    const bmc: BmcInfo = { ...node.bmc, instance_info, provision_state: 'deploying', target_provision_state: 'active', provision_updated_at: deps.clock.now().toISOString(), last_error: null };
    try {
      await deps.nodes.update(node.id, node.version, { bmc });
    } catch (err) {
      if (err instanceof ConcurrentModificationError) continue;
      throw err;
    }
    const drive = res.params['slipway:config_drive'];
    const payload = await deployPayload(deps, { ...node, bmc }, imageRefOf(instance_info, node.id), isSealed(drive) ? drive : undefined);
    const queued = await enqueueJob(deps, { site: siteOf(bmc), kind: 'deploy_node', node_id: node.id, payload, task_token: taskToken });
    return { job_id: queued.id };
  }
  throw new ConcurrentModificationError(`Node ${job.node_id} was modified concurrently`);
}

/** An erase that failed and left the node in maintenance (never leased): a note, not the end's failure. */
export async function hostSettledFailure(deps: Ports, result: JobResult): Promise<string | undefined> {
  const node = await deps.nodes.get(result.node_id);
  const b = node?.bmc;
  if (!node || !b) return undefined;
  // A start deploy that failed: the lease runs with the node `deploy failed` (its lessee may rebuild it).
  if (b.provision_state === 'deploy failed') return `node ${node.name} failed to deploy: ${b.last_error ?? result.error ?? 'no reason given'}`;
  if (b.provision_state !== 'clean failed' || !b.maintenance) return undefined;
  return `node ${node.name} could not be erased and is in maintenance: ${b.maintenance_reason ?? result.error ?? 'no reason given'}`;
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

/** A running lease deleted: its nodes are erased, or powered off (the grant went with the allocation). */
export async function hostAfterDeleteActive(deps: Ports, _lease: Lease, res: Reservation): Promise<void> {
  await eachLimited(res.node_ids, 10, async (id) => {
    try {
      const node = await deps.nodes.get(id);
      if (!node?.bmc || node.bmc.maintenance) return;
      const { action, note } = await endAction(deps, node as Node & { bmc: BmcInfo });
      if (note) log.warn('node of a deleted lease not erased', { node_id: id, note });
      await queueEndJob(deps, id, action);
    } catch (err) {
      log.error('end of a deleted running lease was not queued for a node', { node_id: id, error: (err as Error).name });
    }
  });
}
