import { enqueueJob } from '../../agent/enqueue.ts';
import { fetchFromSite, SiteFetchError } from '../../agent/fetch.ts';
import { bucketUploads } from '../../agent/fetch-uploads.ts';
import { noAgentText, sitePresence } from '../../agent/presence.ts';
import { AgentTimeoutError, ConcurrentModificationError } from '../../errors.ts';
import { type Allocation, isGranted, type Node, type NodePatch } from '../../inventory/node.ts';
import { cleanPayload } from '../../ironic/clean.ts';
import { nodeDeployBase } from '../../ironic/deploy.ts';
import { inspectPayload } from '../../ironic/inspect.ts';
import { siteOf } from '../../ironic/nodes.ts';
import type { Ports } from '../../ports.ts';
import { log } from '../../util/log.ts';
import { causeText } from '../../util/step-error.ts';
import {
  actionTemplateContext,
  BootActionAssetError,
  buildNodeTarballs,
  cloudConfigPackages,
  hashNodeKey,
  mergePackageLists,
  monotonicUlid,
  newNodeKey,
  nodeKeyHex,
  nodeTemplateContext,
  type RenderedAsset,
  renderAssets,
} from '../bootactions/index.ts';
import { bootactionTargets } from '../design/filter.ts';
import { findDocument, type SiteDesign } from '../design/model.ts';
import { resolveNode } from '../design/resolve.ts';
import type { BootActionContext, BootActionRecord } from '../store.ts';
import { getTask, now, siteOfDesign, taskDesign, updateTask } from './common.ts';
import { DesignNodeError, registerDesignNode } from './design-nodes.ts';
import {
  addFailure,
  addSuccess,
  aggregate,
  isNodeAction,
  message,
  newTaskRecord,
  type NodeAction,
  subtaskId,
  type TaskMessage,
  type TaskRecord,
  type TaskResult,
} from './model.ts';

/**
 * The Drydock task workflow's steps (`infra/workflows/drydock-tasks.ts`, DESIGN.md §7):
 *
 *   Prepare (read the design behind design_ref, snapshot it, validate, pick the nodes, make one
 *   subtask per node) → Acquire (one of the site's task slots; else wait and retry) →
 *     site actions: SiteAction (verify_site / prepare_site)
 *     node actions: Nodes (Map, bounded): per node NodeStep ⇄ NodeJob (agent callback job)
 *                                                  ⇄ NodeReports (callback: boot-action reports)
 *   → Finalize (aggregate the subtasks into the task's result, complete, release the slot).
 *
 * NodeStep interprets the action's per-node plan below: it runs the local steps (register the
 * node's BMC, render boot actions, evaluate reports, release, relabel) and stops at the next
 * agent or report step, whose result brings the workflow back to NodeStep with the cursor after
 * it. Every step is safe to repeat (Lambda retries, a repeated delivery): writes are derived
 * ids or compare-and-set, and a finished subtask is not touched again.
 *
 * Prepare runs in a function of its own (prepare.ts: the YAML parser and the design's
 * validation stay out of this one's bundle, the template engine out of that one's); what the
 * two share is in common.ts.
 *
 * A node's failure is a Drydock result (the subtask fails with a message), never a stuck task:
 * expected failures are handled in the step, anything else (an agent job failed or timed out,
 * a bug) is caught by the workflow and recorded by NodeFailed.
 *
 * A project's task (`project_id`: deploy_nodes or destroy_nodes by a project's member, see
 * access.ts) differs in four ways:
 * - every NodeStep and every NodeJob first checks, reading the node then, that an active lease of
 *   the project holds it (`heldBy`); a node it does not hold fails with the reason and nothing
 *   touches it (no BMC job, no key, no erase, no state written), whatever step it was at;
 * - `register` writes nothing: the node is driven through the BMC the site registered, never one
 *   a project's design names (the design's `oob` and `boot_mac` are not used);
 * - its design is read and validated by the project rules (design-ref.ts, validate.ts), and its
 *   boot actions never fetch an asset `location`;
 * - it queues behind the project's own tasks (`projectQueue`), not the site's, so a tenant neither
 *   waits for nor holds up the site's or other tenants' tasks. A node in maintenance when a step
 *   starts is not touched, even one whose last erase failed (an administrator lifts that); the
 *   task's own attempts at a step are retried as for the site.
 */
export type StepName =
  | 'register'
  | 'interrogate'
  | 'inspect'
  | 'render'
  | 'deploy'
  | 'reports'
  | 'report_result'
  | 'revoke'
  | 'clean'
  | 'release'
  | 'relabel';

/**
 * Per action, the steps of one node. prepare_nodes identifies the node's hardware by
 * inspecting it (the ramdisk, as MaaS commissions); deploy_nodes writes the design's
 * `platform.image` through the ramdisk where the site's agent has that image (else the site's
 * deploy hook); destroy_nodes revokes the node's boot-action key, erases its disks through the
 * ramdisk, then releases it.
 */
export const NODE_PLANS: Record<NodeAction, readonly StepName[]> = {
  verify_nodes: ['register', 'interrogate'],
  prepare_nodes: ['register', 'inspect'],
  deploy_nodes: ['register', 'render', 'deploy', 'reports', 'report_result'],
  destroy_nodes: ['register', 'revoke', 'clean', 'release'],
  relabel_nodes: ['register', 'relabel'],
};

/** Agent steps: the job kind they queue (see `agent/executor.ts`) and what a success says. */
export const JOB_STEPS: Partial<Record<StepName, { kind: string; done: string }>> = {
  interrogate: { kind: 'power_state', done: 'BMC interrogated' },
  inspect: { kind: 'inspect', done: 'hardware inspected' },
  deploy: { kind: 'deploy_node', done: 'deployed' },
  clean: { kind: 'clean', done: 'disks erased' },
};

/**
 * Agent steps tried again when their job fails or times out, with the attempts in all: deploy
 * and destroy, as upstream's orchestrator retries a node's deploy and release (3 attempts).
 */
export const STEP_ATTEMPTS: Partial<Record<StepName, number>> = { deploy: 3, clean: 3 };

/** A node's failure the step itself recognises: the subtask fails with this message. */
export class NodeStepError extends Error {
  override name = 'NodeStepError';
}

export { TaskGoneError } from './common.ts';
export type { PrepareOutput } from './prepare.ts';

// ---------------------------------------------------------------------------------------------
// Leases: what a project's task may touch

/** A node a project's task may not touch: the subtask fails with this message, and nothing else is written. */
export class NodeNotHeldError extends NodeStepError {
  override name = 'NodeNotHeldError';
}

export const notHeldText = (node: string, project: string) => `Node ${node}: not held by an active lease of project ${project}; not touched`;

/**
 * The allocation by which an active lease of `project` holds the node now: granted at its start,
 * not released at its end, and inside its window (a lease past its end whose end has not run
 * yet no longer counts). Read from the node itself, consistently, at the time of the call.
 * Undefined when none does, or when there is no such node (a project cannot tell the two apart).
 */
export async function heldBy(deps: Ports, name: string, project: string): Promise<Allocation | undefined> {
  const node = await deps.nodes.getByName(name);
  if (!node?.bmc) return undefined;
  const at = now(deps).getTime();
  return Object.values(node.allocations).find((a) => a.project_id === project && isGranted(a) && Date.parse(a.start) <= at && at < Date.parse(a.end));
}

/** For a project's task: the node's holding allocation, or NodeNotHeldError. Undefined for a site task. */
async function checkHeld(deps: Ports, task: TaskRecord, name: string): Promise<Allocation | undefined> {
  if (!task.project_id) return undefined;
  const held = await heldBy(deps, name, task.project_id);
  if (!held) throw new NodeNotHeldError(notHeldText(name, task.project_id));
  return held;
}

// ---------------------------------------------------------------------------------------------
// Acquire: one of the site's task slots, in creation order (upstream: the single orchestrator
// runs one task at a time, oldest first)

export const ACQUIRE_WAIT_SECONDS = 3;
export const ACQUIRE_MAX_WAIT_SECONDS = 300;

/**
 * How long a task waits before asking for a slot again, after waiting `waitedSeconds` so far: 3 s
 * at first, then a twentieth of the time waited, at most 5 minutes. Each try writes 9 events to
 * the execution's history (Acquire, Acquired, SiteBusy): at a fixed 3 s a task queued behind a
 * long one (a 2,000-node deploy takes hours) would reach Step Functions' 25,000 in about two
 * hours; backing off, the two days a task may live take about 6,000 events (limits.test.ts), and
 * a freed slot is taken at most 5 % of the wait so far later.
 */
export function acquireWaitSeconds(waitedSeconds: number): number {
  const waited = Number.isFinite(waitedSeconds) ? waitedSeconds : 0;
  return Math.min(ACQUIRE_MAX_WAIT_SECONDS, Math.max(ACQUIRE_WAIT_SECONDS, Math.ceil(waited / 20)));
}

export async function acquireSite(deps: Ports, input: { task_id: string; site: string }): Promise<{ acquired: boolean; wait_seconds: number }> {
  const max = deps.config.drydock.siteConcurrency;
  const task = await getTask(deps, input.task_id);
  // First come, first served: older tasks of the site go first. The slot write below is what
  // enforces the limit; the queue only orders the waiters.
  const ahead = await deps.drydock.tasksAhead(input.site, task, max);
  const ok = ahead.length < max && (await deps.drydock.acquireSite(input.site, input.task_id, max));
  if (!ok) {
    await evictStale(deps, input.site, ahead);
    return { acquired: false, wait_seconds: acquireWaitSeconds((now(deps).getTime() - Date.parse(task.created)) / 1000) };
  }
  await updateTask(deps, input.task_id, (t) => (t.status === 'queued' ? { status: 'running' } : undefined));
  return { acquired: true, wait_seconds: 0 };
}

/**
 * A task no execution can still be running: older than the workflow's own timeout (its
 * execution timed out without Finalize), or finished but still holding a slot (a Finalize that
 * ran out of retries). It is finished as failed and its slot freed, so a site never stays blocked.
 */
export const TASK_MAX_SECONDS = 2 * 86_400;

async function evictStale(deps: Ports, site: string, ahead: readonly { task_id: string; created: string }[]): Promise<void> {
  const cutoff = now(deps).getTime() - (TASK_MAX_SECONDS + 600) * 1000;
  const holders = await deps.drydock.siteHolders(site);
  const candidates = [...new Set([...ahead.map((a) => a.task_id), ...holders])];
  for (const t of await deps.drydock.getTasks(candidates)) {
    const finished = t.status === 'complete' || t.status === 'terminated';
    if (finished) {
      await deps.drydock.releaseSite(site, t.task_id);
      continue;
    }
    if (Date.parse(t.created) >= cutoff) continue;
    log.warn('drydock task outlived its workflow; finishing it as failed', { task_id: t.task_id, site });
    await deps.drydock.addMessages(t.task_id, [message('The task workflow ended without finishing the task (timed out)', { error: true, context_type: 'task', context: t.task_id, at: now(deps) })]);
    await updateTask(deps, t.task_id, (x) => (x.status === 'complete' ? undefined : { status: 'complete', result: addFailure(x.result) }));
    await deps.drydock.releaseSite(site, t.task_id);
  }
  // A holder whose record was purged or never written.
  const known = new Set((await deps.drydock.getTasks(holders)).map((t) => t.task_id));
  for (const h of holders) if (!known.has(h)) await deps.drydock.releaseSite(site, h);
}

// ---------------------------------------------------------------------------------------------
// Site actions

export async function siteAction(deps: Ports, input: { task_id: string; site: string }): Promise<{ status: string }> {
  const task = await getTask(deps, input.task_id);
  const at = now(deps);
  if (task.action === 'verify_site') {
    const { connected, lastSeen } = await sitePresence(deps, input.site, at);
    const ok = connected > 0;
    const text = ok ? `Site ${input.site}: ${connected} agent(s) connected` : noAgentText(input.site, lastSeen);
    await deps.drydock.addMessages(task.task_id, [message(text, { error: !ok, context_type: 'site', context: input.site, at })]);
    await updateTask(deps, task.task_id, (t) => ({ result: ok ? addSuccess(t.result, input.site) : addFailure(t.result, input.site) }));
    return { status: ok ? 'success' : 'failure' };
  }
  if (task.action === 'prepare_site') {
    const design = await taskDesign(deps, task.task_id);
    const region = findDocument(design, 'Region', input.site);
    const config = {
      site: input.site,
      task_id: task.task_id,
      design_ref: task.design_ref,
      recorded_at: at.toISOString(),
      region: region?.data ?? {},
      networks: Object.fromEntries(design.Network.map((n) => [n.name, n.data])),
      network_links: Object.fromEntries(design.NetworkLink.map((n) => [n.name, n.data])),
      racks: Object.fromEntries(design.Rack.map((r) => [r.name, r.data])),
    };
    await deps.drydock.putSiteConfig(config);
    const text = `Site ${input.site}: configuration recorded (${design.Network.length} networks, ${design.NetworkLink.length} links, ${design.Rack.length} racks)`;
    await deps.drydock.addMessages(task.task_id, [message(text, { context_type: 'site', context: input.site, at })]);
    await updateTask(deps, task.task_id, (t) => ({ result: addSuccess(t.result, input.site) }));
    return { status: 'success' };
  }
  throw new Error(`Action ${task.action} is not a site action`);
}

// ---------------------------------------------------------------------------------------------
// Per node

/** What every step of a node's child execution is given. */
export interface NodeStepInput {
  task_id: string;
  /** The node's position in the task's `subtask_id_list` (its item of the distributed Map). */
  index: number;
  /** The plan index to run from. */
  cursor: number;
  /** The output of the agent job that ran just before (`{}` when none). */
  last?: unknown;
}

export interface NodeStepOutput {
  next: 'job' | 'reports' | 'done';
  /** The step to run (job or reports). */
  cursor: number;
  /** Where NodeStep continues after it. */
  after: number;
  /** Which attempt of the job step at `cursor` this is (1 first; see STEP_ATTEMPTS). */
  attempt: number;
}

const done = (): NodeStepOutput => ({ next: 'done', cursor: -1, after: -1, attempt: 1 });

/**
 * The node at `index` of the task: its subtask (Prepare wrote the list once, in this order) and
 * its name, read here because the workflow carries positions only.
 */
async function nodeAt(deps: Ports, task: TaskRecord, index: number): Promise<{ sub: TaskRecord; node: string }> {
  const id = task.subtask_id_list[index];
  if (id === undefined) throw new Error(`Task ${task.task_id} has no node at position ${index}`);
  const sub = await getTask(deps, id);
  if (!sub.node_name) throw new Error(`Subtask ${id} names no node`);
  return { sub, node: sub.node_name };
}

function planOf(task: TaskRecord): readonly StepName[] {
  if (!isNodeAction(task.action)) throw new Error(`Action ${task.action} has no node steps`);
  return NODE_PLANS[task.action];
}

async function nodeMessage(deps: Ports, sub: TaskRecord, text: string, error = false): Promise<void> {
  await deps.drydock.addMessages(sub.task_id, [message(text, { error, context_type: 'node', context: sub.node_name ?? null, at: now(deps) })]);
}

/** Ends a node's subtask: its result, a message on it and, for a failure, on the parent too. */
async function finishNode(deps: Ports, parentId: string, sub: TaskRecord, ok: boolean, text: string): Promise<void> {
  const node = sub.node_name ?? '';
  const at = now(deps);
  await deps.drydock.addMessages(sub.task_id, [message(text, { error: !ok, context_type: 'node', context: node, at })]);
  if (!ok) await deps.drydock.addMessages(parentId, [message(text, { error: true, context_type: 'node', context: node, at })]);
  await updateTask(deps, sub.task_id, (t) =>
    t.status === 'complete' ? undefined : { status: 'complete', result: ok ? addSuccess(t.result, node) : addFailure(t.result, node) },
  );
}

export async function nodeStep(deps: Ports, input: NodeStepInput): Promise<NodeStepOutput> {
  const task = await getTask(deps, input.task_id);
  const at = await nodeAt(deps, task, input.index);
  const node = at.node;
  let sub = at.sub;
  if (sub.status === 'complete') return done();
  const plan = planOf(task);
  if (sub.status === 'queued') sub = await updateTask(deps, sub.task_id, (t) => (t.status === 'queued' ? { status: 'running' } : undefined));
  try {
    // A project's task: the lease must hold the node now, before anything at all is done to it.
    const held = await checkHeld(deps, task, node);
    const prev = plan[input.cursor - 1];
    const job = prev ? JOB_STEPS[prev] : undefined;
    if (job) await recordJob(deps, task, sub, prev!, input.last);
    for (let i = input.cursor; ; i++) {
      const step = plan[i];
      if (step === undefined) {
        if (task.action === 'deploy_nodes') await setProvisionState(deps, node, 'active');
        await finishNode(deps, task.task_id, sub, true, `Node ${node}: ${task.action} succeeded`);
        return done();
      }
      if (JOB_STEPS[step]) {
        const skipped = await alreadyDone(deps, step, node);
        if (skipped) {
          await nodeMessage(deps, sub, skipped);
          continue;
        }
        await checkNotInMaintenance(deps, step, node, task);
        return { next: 'job', cursor: i, after: i + 1, attempt: 1 };
      }
      if (step === 'reports') return { next: 'reports', cursor: i, after: i + 1, attempt: 1 };
      if (step === 'register' && held) {
        // The site's registration drives the node; a project's design never sets a BMC.
        await nodeMessage(deps, sub, `Node ${node}: held by lease ${held.lease_id} of project ${held.project_id}`);
        continue;
      }
      await runLocalStep(deps, task, sub, step);
    }
  } catch (err) {
    if (!(err instanceof NodeStepError || err instanceof DesignNodeError)) throw err;
    if (task.action === 'deploy_nodes' && !(err instanceof NodeNotHeldError)) await markDeployFailed(deps, node, err.message);
    await finishNode(deps, task.task_id, sub, false, err.message);
    return done();
  }
}

/**
 * Why an agent step need not run (the message saying so), or undefined. A repeated
 * prepare_nodes does not network-boot a node again: not one that is deployed (its tenant's OS
 * would be rebooted into the ramdisk), nor one already inspected.
 */
async function alreadyDone(deps: Ports, step: StepName, name: string): Promise<string | undefined> {
  if (step !== 'inspect') return undefined;
  const node = await inventoryNode(deps, name);
  if (node.bmc.provision_state === 'active') return `Node ${name}: deployed; not inspected again (no network boot of a deployed node)`;
  if (node.bmc.inspection_finished_at) return `Node ${name}: inspected at ${node.bmc.inspection_finished_at}; not inspected again`;
  return undefined;
}

/**
 * A node in maintenance is not booted by inspect, deploy or clean: the subtask fails, naming the
 * reason. The exception, for the site's tasks only, is a destroy of a node whose last erase
 * failed: erasing again is what an operator running destroy_nodes asks for.
 */
async function checkNotInMaintenance(deps: Ports, step: StepName, name: string, task: TaskRecord): Promise<void> {
  if (step !== 'inspect' && step !== 'deploy' && step !== 'clean') return;
  const node = await inventoryNode(deps, name);
  if (!node.bmc.maintenance) return;
  if (step === 'clean' && !task.project_id && (node.bmc.maintenance_reason ?? '').includes('failed step deploy.erase_devices')) {
    await clearEraseFailure(deps, name);
    return;
  }
  throw new NodeStepError(`Node ${name}: in maintenance (${node.bmc.maintenance_reason ?? 'no reason given'}); not touched`);
}

async function recordJob(deps: Ports, task: TaskRecord, sub: TaskRecord, step: StepName, output: unknown): Promise<void> {
  const spec = JOB_STEPS[step]!;
  const name = sub.node_name!;
  // The job's own handler (agent/kinds.ts) has already applied an inspection or a cleaning to
  // the node: a report it could not use left the node failed, with the reason.
  if (step === 'inspect' || step === 'clean') {
    const node = await inventoryNode(deps, name);
    const failedState = step === 'inspect' ? 'inspect failed' : 'clean failed';
    if (node.bmc.provision_state === failedState) throw new NodeStepError(`Node ${name}: ${node.bmc.last_error ?? failedState}`);
  }
  await nodeMessage(deps, sub, `Node ${name}: ${step === 'deploy' ? deployedText(output) : spec.done}`);
  const generator = step === 'interrogate' ? 'interrogate_oob' : step === 'inspect' ? 'inspect_hardware' : undefined;
  if (generator) {
    await deps.drydock.addBuildData({
      node_name: name,
      task_id: task.task_id,
      collected_date: now(deps).toISOString(),
      generator,
      data_format: 'application/json',
      data_element: JSON.stringify(output ?? {}),
    });
  }
}

/** What a deploy job did, from its output (the agent's `deploy_node`, agent/executor.ts). */
function deployedText(output: unknown): string {
  const o = (output ?? {}) as Record<string, unknown>;
  if (o.method === 'image') {
    const mb = typeof o.written_bytes === 'number' ? (o.written_bytes / 1e6).toFixed(1) : '?';
    const rate = typeof o.written_bytes === 'number' && typeof o.write_seconds === 'number' && o.write_seconds > 0 ? `, ${(o.written_bytes / 1e6 / o.write_seconds).toFixed(1)} MB/s` : '';
    return `image ${String(o.image)} written to ${String(o.root_device)} (${mb} MB${rate}, sha256 verified); booting from disk`;
  }
  if (o.method === 'hook') return 'handed to the site\'s deploy hook; set to PXE boot and power cycled';
  return 'set to PXE boot and power cycled for deployment';
}

/** A deploy that failed leaves the node `deploy failed` with the reason, as upstream's deploy does. */
async function markDeployFailed(deps: Ports, name: string, reason: string): Promise<void> {
  try {
    await patchNode(deps, name, (node) =>
      node.bmc.provision_state === 'deploying' || node.bmc.provision_state === 'wait call-back'
        ? { bmc: { ...node.bmc, provision_state: 'deploy failed', target_provision_state: null, last_error: reason.slice(0, 4000), provision_updated_at: now(deps).toISOString() } }
        : undefined,
    );
  } catch (err) {
    // Not registered (the failure may be exactly that): nothing to mark.
    if (!(err instanceof NodeStepError)) throw err;
  }
}

async function inventoryNode(deps: Ports, name: string): Promise<Node & { bmc: NonNullable<Node['bmc']> }> {
  const node = await deps.nodes.getByName(name);
  if (!node?.bmc) throw new NodeStepError(`Node ${name}: not registered with a BMC`);
  return node as Node & { bmc: NonNullable<Node['bmc']> };
}

async function runLocalStep(deps: Ports, task: TaskRecord, sub: TaskRecord, step: StepName): Promise<void> {
  const name = sub.node_name!;
  const design = await taskDesign(deps, task.task_id);
  switch (step) {
    case 'register': {
      let resolved;
      try {
        resolved = resolveNode(design, name);
      } catch (err) {
        throw new NodeStepError(`Node ${name}: ${(err as Error).message}`);
      }
      await registerDesignNode(deps, resolved, task.site ?? siteOfDesign(design));
      return;
    }
    case 'render':
      await renderBootActions(deps, task, sub, design);
      return;
    case 'report_result':
      await reportResult(deps, task, sub);
      return;
    case 'revoke': {
      // First of all: the tenant's key and bootdata stop working before anything else happens.
      await deps.drydock.deleteBootActionContext(name);
      await nodeMessage(deps, sub, `Node ${name}: boot-action key revoked`);
      return;
    }
    case 'release': {
      await setProvisionState(deps, name, 'available');
      await nodeMessage(deps, sub, `Node ${name}: released`);
      return;
    }
    case 'relabel': {
      const resolved = resolveNode(design, name);
      const labels = Object.fromEntries(Object.entries(resolved.labels).map(([k, v]) => [k, String(v)]));
      await patchNode(deps, name, () => ({ extra: labels }));
      await nodeMessage(deps, sub, `Node ${name}: labels set (${Object.keys(labels).length})`);
      return;
    }
    default:
      throw new Error(`Step ${step} is not a local step`);
  }
}

/**
 * Patches the node at the version read, re-reading after a lost race (a lease grant or an agent
 * result may write the node at the same moment); `patch` returns undefined when nothing is to do.
 */
async function patchNode(deps: Ports, name: string, patch: (node: Node & { bmc: NonNullable<Node['bmc']> }) => NodePatch | undefined): Promise<void> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const node = await inventoryNode(deps, name);
    const change = patch(node);
    if (!change) return;
    try {
      await deps.nodes.update(node.id, node.version, change);
      return;
    } catch (err) {
      if (!(err instanceof ConcurrentModificationError)) throw err;
    }
  }
  throw new ConcurrentModificationError(`Node ${name} was modified concurrently`);
}

/** The node's provisioning state as Ironic and `GET /nodes` show it: `active` once deployed, `available` once destroyed. */
const setProvisionState = (deps: Ports, name: string, state: string) =>
  patchNode(deps, name, (node) => (node.bmc.provision_state === state ? undefined : { bmc: { ...node.bmc, provision_state: state } }));

/** The report URL as the node's templates see it: always ending in `/`. */
const reportUrl = (deps: Ports) => deps.config.drydock.reportUrl.replace(/\/?$/, '/');

/**
 * All of one node's asset fetches together take at most this long (the render step runs in the
 * task function, 120 s), each at most `ASSET_FETCH_MS`: a fetch never outlives its function.
 */
export const RENDER_FETCH_BUDGET_MS = 80_000;
const ASSET_FETCH_MS = 30_000;
/** The largest asset fetched (a boot action's files end up in the node's tarball). */
export const MAX_ASSET_BYTES = 16 * 1024 * 1024;

/**
 * The `location` fetcher of one node's render: a URL inside a site is fetched by that site's
 * agent, a public one here, an internal one no site is named for not at all
 * (`SLIPWAY_SITE_ADDRESSES`, agent/fetch.ts); all within `RENDER_FETCH_BUDGET_MS`.
 */
function locationFetcher(deps: Ports): (url: string) => Promise<Uint8Array> {
  const end = Date.now() + RENDER_FETCH_BUDGET_MS;
  return async (url) => {
    const budgetMs = Math.min(ASSET_FETCH_MS, end - Date.now());
    if (budgetMs < 1000) throw new BootActionAssetError(`Asset location ${url}: no time left to fetch it (a node's assets are fetched within ${RENDER_FETCH_BUDGET_MS / 1000} s)`);
    let res;
    try {
      res = await fetchFromSite(deps, { url: url.replace(/^[a-z][a-z0-9.-]*\+/i, ''), maxBytes: MAX_ASSET_BYTES, budgetMs, what: 'Asset location', uploads: bucketUploads(deps) });
    } catch (err) {
      if (err instanceof SiteFetchError || err instanceof AgentTimeoutError) throw new BootActionAssetError(err.message);
      throw err;
    }
    if (res.status < 200 || res.status > 299) throw new BootActionAssetError(`Asset location ${url} answered HTTP ${res.status}`);
    return new Uint8Array(res.body);
  };
}

/** A project's design never makes Slipway fetch a URL (its validation refuses locations first; this is the last guard). */
async function refuseLocation(): Promise<Uint8Array> {
  throw new BootActionAssetError("a project's design may not make Slipway fetch URLs; give the asset inline data");
}

export const bootdataObject = (taskId: string, node: string, kind: 'units' | 'files') => `bootdata/${taskId}/${node}/${kind}.tar.gz`;

/**
 * The deploy's boot-action context for the node: a fresh key and action ids (a redeploy
 * invalidates the previous ones), every targeting action's assets rendered, both tarballs in
 * the bootdata bucket. A node no boot action targets gets no context, as upstream.
 */
async function renderBootActions(deps: Ports, task: TaskRecord, sub: TaskRecord, design: SiteDesign): Promise<void> {
  const name = sub.node_name!;
  const targets = bootactionTargets(design).get(name) ?? [];
  if (targets.length === 0) {
    // Nothing to hand over; a previous deployment's key and tarballs stop working all the same.
    await deps.drydock.deleteBootActionContext(name);
    await nodeMessage(deps, sub, `Node ${name}: no boot actions target it`);
    return;
  }
  const resolved = resolveNode(design, name);
  const networks = (n: string) => findDocument(design, 'Network', n)?.data;
  const nodeCtx = nodeTemplateContext(resolved, networks);
  const key = newNodeKey();
  const nextId = monotonicUlid();
  const at = now(deps).toISOString();
  const rendered: RenderedAsset[] = [];
  const records: BootActionRecord[] = [];
  const fetchLocation = locationFetcher(deps);
  for (const actionName of targets) {
    const doc = findDocument(design, 'BootAction', actionName)!;
    const actionId = nextId();
    const context = { node: nodeCtx, action: actionTemplateContext({ actionId, nodeKey: key, reportUrl: reportUrl(deps), designRef: task.design_ref }) };
    try {
      rendered.push(...(await renderAssets(doc.data.assets ?? [], context, { fetchLocation: task.project_id ? refuseLocation : fetchLocation })));
    } catch (err) {
      if (err instanceof BootActionAssetError) throw new NodeStepError(`Node ${name}: boot action ${actionName} could not be rendered: ${err.message}`);
      throw err;
    }
    const signaling = doc.data.signaling !== false;
    records.push({ action_id: actionId, action_name: actionName, node_name: name, task_id: task.task_id, action_status: signaling ? 'incomplete' : 'unreported', signaling, created: at, updated: null });
  }
  const tarballs = buildNodeTarballs(rendered);
  const units = bootdataObject(task.task_id, name, 'units');
  const files = bootdataObject(task.task_id, name, 'files');
  await Promise.all([deps.blobs.put(units, tarballs.units, 'application/gzip'), deps.blobs.put(files, tarballs.files, 'application/gzip')]);
  const ctx: BootActionContext = {
    node_name: name,
    task_id: task.task_id,
    subtask_id: sub.task_id,
    design_ref: task.design_ref,
    key_hash: hashNodeKey(key),
    key_sealed: await deps.secrets.seal('node-key', nodeKeyHex(key)),
    action_ids: records.map((r) => r.action_id),
    units_object: units,
    files_object: files,
    packages: cloudConfigPackages(mergePackageLists(rendered)),
    created: at,
  };
  await deps.drydock.putBootActionContext(ctx, records);
  await nodeMessage(deps, sub, `Node ${name}: ${records.length} boot action(s) rendered (${tarballs.units.length + tarballs.files.length} bytes of bootdata)`);
}

/** After the wait: any failed or still incomplete action fails the node; unreported ones are neutral. */
async function reportResult(deps: Ports, task: TaskRecord, sub: TaskRecord): Promise<void> {
  const name = sub.node_name!;
  const ctx = await deps.drydock.getBootActionContext(name);
  if (!ctx || ctx.task_id !== task.task_id) return; // no boot actions: nothing to wait for
  await deps.drydock.setReportToken(name, task.task_id, undefined);
  const actions = await deps.drydock.getBootActions(ctx.action_ids);
  const failed = actions.filter((a) => a.action_status === 'failure');
  const open = actions.filter((a) => a.action_status === 'incomplete');
  if (failed.length > 0) throw new NodeStepError(`Node ${name}: ${failed.map((a) => `Boot action ${a.action_name} failed.`).join(' ')}`);
  if (open.length > 0) throw new NodeStepError(`Node ${name}: ${open.map((a) => `Boot action ${a.action_name} timed out.`).join(' ')}`);
}

/** NodeJob: the agent job of the step at `cursor`, carrying the workflow's task token. */
export async function nodeJob(deps: Ports, input: NodeStepInput & { task_token: string }): Promise<{ job_id: string }> {
  const task = await getTask(deps, input.task_id);
  const step = planOf(task)[input.cursor];
  const spec = step ? JOB_STEPS[step] : undefined;
  if (!spec) throw new Error(`Step ${input.cursor} of ${task.action} is not an agent step`);
  const { sub, node: name } = await nodeAt(deps, task, input.index);
  try {
    // Right before the job is queued (a retried attempt comes here straight from NodeFailed).
    await checkHeld(deps, task, name);
  } catch (err) {
    if (!(err instanceof NodeNotHeldError)) throw err;
    await finishNode(deps, task.task_id, sub, false, err.message);
    // The failure ends the state; NodeFailed then finds the subtask complete and ends the node.
    throw err;
  }
  const node = await inventoryNode(deps, name);
  let payload: Record<string, unknown>;
  switch (step) {
    case 'inspect':
      // As Ironic's inspect: the job's handler (ironic/inspect.ts) applies the facts and ports.
      await startProvisioning(deps, name, 'inspecting', 'manageable');
      payload = { ...(await inspectPayload(deps, node)) };
      break;
    case 'clean':
      // As Ironic's cleaning on the way to available: the handler (ironic/clean.ts) moves the
      // node on, or leaves it `clean failed` in maintenance.
      await startProvisioning(deps, name, 'cleaning', 'available');
      payload = { ...(await cleanPayload(deps, node)) };
      break;
    case 'deploy':
      await startProvisioning(deps, name, 'deploying', 'active');
      payload = await deployPayload(deps, task, node);
      break;
    default:
      payload = { driver: node.bmc.driver, driver_info: node.bmc.driver_info };
  }
  const job = await enqueueJob(deps, { site: siteOf(node.bmc), kind: spec.kind, node_id: node.id, payload, task_token: input.task_token });
  return { job_id: job.id };
}

/** Seconds the agent may take over a deploy: within the step's deadline, less a margin to report. */
const deployTimeout = (deps: Ports) => Math.max(60, deps.config.drydock.agentStepSeconds - 60);

/**
 * The `deploy_node` job: the node's BMC and MACs, the design's `platform.image` (the agent
 * writes it through the ramdisk when its site has that image, else hands the node to its deploy
 * hook, else fails the node), and what the node's first boot needs: its name, where its bootdata
 * is, and the boot-action info (key sealed, opened for the claiming agent only).
 */
async function deployPayload(deps: Ports, task: TaskRecord, node: Node & { bmc: NonNullable<Node['bmc']> }): Promise<Record<string, unknown>> {
  const design = await taskDesign(deps, task.task_id);
  const resolved = resolveNode(design, node.name);
  const payload: Record<string, unknown> = {
    ...(await nodeDeployBase(deps, node, deployTimeout(deps))),
    bootdata_url: `${reportUrl(deps)}nodes/${encodeURIComponent(node.name)}`,
    ...(resolved.data.platform?.image ? { image: resolved.data.platform.image } : {}),
  };
  const ctx = await deps.drydock.getBootActionContext(node.name);
  if (ctx && ctx.task_id === task.task_id) payload.bootaction = await bootActionJobInfo(deps, ctx);
  return payload;
}

/** The node enters a provisioning state (and where it is headed) before its job is queued. */
const startProvisioning = (deps: Ports, name: string, state: string, target: string) =>
  patchNode(deps, name, (node) => ({
    bmc: { ...node.bmc, provision_state: state, target_provision_state: target, provision_updated_at: now(deps).toISOString(), last_error: null },
  }));

/** What the site's install pipeline needs for a node (the key sealed: opened for the claiming agent only). */
export async function bootActionJobInfo(deps: Ports, ctx: BootActionContext) {
  const actions = await deps.drydock.getBootActions(ctx.action_ids);
  const byId = new Map(actions.map((a) => [a.action_id, a]));
  return {
    node_name: ctx.node_name,
    task_id: ctx.task_id,
    action_key: { $sealed: ctx.key_sealed },
    report_url: reportUrl(deps),
    packages: ctx.packages,
    actions: ctx.action_ids.flatMap((id) => {
      const a = byId.get(id);
      return a ? [{ action_id: a.action_id, action_name: a.action_name, action_status: a.action_status }] : [];
    }),
  };
}

/**
 * NodeReports: waits (as a callback, not polling) for the node's final boot-action reports.
 * The token is stored on the node's context; the report that makes the last signalling action
 * final answers it. If they are all final already (or none signals), it is answered now.
 */
export async function nodeReports(deps: Ports, input: NodeStepInput & { task_token: string }): Promise<void> {
  const { node } = await nodeAt(deps, await getTask(deps, input.task_id), input.index);
  const ctx = await deps.drydock.getBootActionContext(node);
  const answer = () => deps.callbacks.succeed(input.task_token, { node_name: node, reports: 'final' });
  if (!ctx || ctx.task_id !== input.task_id) return answer();
  if (!(await deps.drydock.setReportToken(node, input.task_id, input.task_token))) return answer();
  // Reports that arrived before the token was stored found nobody to tell: look again now.
  const actions = await deps.drydock.getBootActions(ctx.action_ids);
  if (!actions.some((a) => a.action_status === 'incomplete')) await answer();
}

/** The errors of an agent step's job itself (failed, timed out, lost): the ones worth another attempt. */
const JOB_ERRORS = new Set(['States.Timeout', 'States.HeartbeatTimeout', 'AgentJobFailed', 'QueueFailed']);

/**
 * NodeFailed: what the workflow caught for a node (a failed or timed-out agent job, an
 * unexpected error). A deploy or clean job that failed is tried again while attempts remain
 * (STEP_ATTEMPTS): the answer sends the workflow back to NodeJob for the same step. Otherwise
 * the node's subtask fails with the reason (and a deploy leaves the node `deploy failed`).
 */
export async function nodeFailed(deps: Ports, input: NodeStepInput & { attempt?: number; error: { Error?: string; Cause?: string } }): Promise<NodeStepOutput> {
  // NodeFailed must end the node whatever happened: a task or subtask gone ends it quietly.
  const task = await deps.drydock.getTask(input.task_id);
  const subId = task?.subtask_id_list[input.index];
  const sub = subId === undefined ? undefined : await deps.drydock.getTask(subId);
  if (!task || !sub?.node_name || sub.status === 'complete') return done();
  const node = sub.node_name;
  const step = planOf(task)[input.cursor];
  const what = step ? ` during ${step}` : '';
  let text: string;
  switch (input.error.Error) {
    case 'States.Timeout':
      text = `Node ${node}: the agent did not finish${what} in time`;
      break;
    case 'States.HeartbeatTimeout':
      text = `Node ${node}: the agent stopped reporting${what}`;
      break;
    case 'AgentJobFailed':
    case 'QueueFailed':
      text = `Node ${node}: ${causeText(input.error, 'the agent job failed')}${what}`;
      break;
    default:
      // Internals stay in the log; the task says what failed and where.
      log.error('drydock node step failed', { task_id: input.task_id, node: node, step, error: input.error.Error, cause: input.error.Cause?.slice(0, 500) });
      text = `Node ${node}: internal error${what} (${input.error.Error ?? 'unknown'})`;
  }
  // A project's node it no longer holds is neither tried again nor written to (its lease's end
  // takes care of it): the node fails, saying why.
  if (task.project_id && !(await heldBy(deps, node, task.project_id))) {
    await nodeMessage(deps, sub, text, true);
    await finishNode(deps, task.task_id, sub, false, notHeldText(node, task.project_id));
    return done();
  }
  const attempt = input.attempt ?? 1;
  const attempts = step ? (STEP_ATTEMPTS[step] ?? 1) : 1;
  // Messages are cut at 127 characters (the rest goes to `extra.detail`): the attempt comes first.
  const reason = text.slice(`Node ${node}: `.length);
  if (step && attempt < attempts && JOB_ERRORS.has(input.error.Error ?? '') && !task.terminate) {
    await nodeMessage(deps, sub, `Node ${node}: attempt ${attempt} of ${attempts} failed, trying again: ${reason}`, true);
    if (step === 'clean') await clearEraseFailure(deps, node);
    return { next: 'job', cursor: input.cursor, after: input.cursor + 1, attempt: attempt + 1 };
  }
  const final = attempts > 1 ? `Node ${node}: ${step} failed ${attempt} times: ${reason}` : text;
  if (task.action === 'deploy_nodes') await markDeployFailed(deps, node, final);
  await finishNode(deps, task.task_id, sub, false, final);
  return done();
}

/**
 * Before another attempt at erasing: the maintenance the failed attempt set (ironic/clean.ts,
 * "failed step deploy.erase_devices") is lifted so that a success can return the node to the
 * pool. Maintenance for any other reason stays (and that attempt then fails the node again).
 */
async function clearEraseFailure(deps: Ports, name: string): Promise<void> {
  await patchNode(deps, name, (node) =>
    node.bmc.provision_state === 'clean failed' && node.bmc.maintenance && (node.bmc.maintenance_reason ?? '').includes('failed step deploy.erase_devices')
      ? { bmc: { ...node.bmc, maintenance: false, maintenance_reason: null } }
      : undefined,
  );
}

// ---------------------------------------------------------------------------------------------
// Finalize

export async function finalizeTask(deps: Ports, input: { task_id: string; site: string; error: { Error?: string; Cause?: string } }): Promise<{ status: string }> {
  const task = await deps.drydock.getTask(input.task_id);
  if (!task) return { status: 'gone' };
  try {
    if (task.status === 'complete' || task.status === 'terminated') return { status: task.result.status };
    const at = now(deps);
    const failed = input.error?.Error !== undefined;
    if (failed) {
      log.error('drydock task failed', { task_id: task.task_id, error: input.error.Error, cause: input.error.Cause?.slice(0, 500) });
      await deps.drydock.addMessages(task.task_id, [message(`Task failed: ${input.error.Error}`, { error: true, context_type: 'task', context: task.task_id, at })]);
    }
    let subs: TaskRecord[] = [];
    if (isNodeAction(task.action) && task.subtask_id_list.length > 0) {
      subs = await deps.drydock.getTasks(task.subtask_id_list);
      // A node the workflow never finished (it failed or was stopped) is a failed node, not a silent one.
      for (const sub of subs.filter((s) => s.status !== 'complete')) {
        await finishNode(deps, task.task_id, sub, false, `Node ${sub.node_name}: not finished (the task ended first)`);
      }
      subs = await deps.drydock.getTasks(task.subtask_id_list);
      const ok = subs.filter((s) => s.result.status === 'success').length;
      const failures = subs.filter((s) => s.result.status !== 'success').map((s) => s.node_name ?? s.task_id);
      const text = `${ok} of ${subs.length} nodes succeeded${failures.length ? `; failed: ${failures.join(', ')}` : ''}`;
      await deps.drydock.addMessages(task.task_id, [message(text, { error: failures.length > 0, context_type: 'task', context: task.task_id, at })]);
    }
    const next = await updateTask(deps, task.task_id, (t) => {
      let result: TaskResult = subs.length > 0 ? aggregate(t.result, subs.map((s) => s.result)) : t.result;
      if (failed) result = addFailure(result);
      else if (result.status === 'incomplete') result = addSuccess(result);
      return { status: 'complete', result };
    });
    return { status: next.result.status };
  } finally {
    const site = input.site || task.site;
    if (site) await deps.drydock.releaseSite(site, task.task_id);
  }
}
