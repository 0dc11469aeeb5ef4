import { enqueueJob } from '../agent/enqueue.ts';
import { queueSystemPower } from '../ironic/nodes.ts';
import type { Ports } from '../ports.ts';
import { log } from '../util/log.ts';
import { commandsFor, sshTarget } from './investigate.ts';
import type { ClusterOperation, OperationKind } from './model.ts';

/**
 * Cluster operations (upstream-apis.md §2.5) as the `cluster-operations` workflow runs them
 * (`infra/workflows/cluster-operations.ts`): one host of the hostset at a time, each step a
 * callback job for the Commissaire site's agent, stopping at the first failure (that host stays
 * in `in_process`, the status is `failed`). The record is written with a compare-and-set on its
 * status and start time, so a stale or repeated step changes nothing; finishing releases the
 * cluster's operation lock, so the next operation may start.
 *
 * Restart power-cycles an inventory node through its BMC when it has one (the host's OS need not
 * be reachable), else reboots over SSH; deploy and upgrade run the configured commands over SSH.
 */

/** Declared with the other ports; also here for `infra/local/lifecycle.ts`, which imports it from this module. */

export interface OperationInput {
  cluster: string;
  kind: OperationKind;
}

const compact = (iso: string) => iso.replace(/[-:.]/g, '').slice(0, 18);

/** After `PUT …/deploy|upgrade|restart` stored the initial record and took the lock. */
export async function startClusterOperation(deps: Ports, clusterName: string, kind: OperationKind): Promise<void> {
  const op = await deps.commissaire.getOperation(clusterName, kind);
  if (!op) return;
  try {
    await deps.operations.start({ cluster: clusterName, kind }, `${clusterName}-${kind}-${compact(op.started_at)}`.slice(0, 80));
  } catch (err) {
    // Nothing will run it: finish it as failed, which also releases the cluster's lock.
    log.error('cluster operation not started', { cluster: clusterName, kind, error: (err as Error).message });
    await deps.commissaire.finishOperation({ ...op, status: 'failed', finished_at: deps.clock.now().toISOString() });
    throw err;
  }
}

async function current(deps: Ports, input: OperationInput): Promise<ClusterOperation> {
  const op = await deps.commissaire.getOperation(input.cluster, input.kind);
  if (!op || op.status !== 'in_process') throw new OperationGoneError(`No ${input.kind} of cluster ${input.cluster} is in process`);
  return op;
}

/** The operation's record is gone or already final (a cluster deleted meanwhile, a repeated step). */
export class OperationGoneError extends Error {
  override name = 'OperationGoneError';
}

/** NextHost: the first member not done yet, now `in_process`; or done. */
export async function nextHost(deps: Ports, input: OperationInput): Promise<{ done: boolean; host: string }> {
  const op = await current(deps, input);
  if (op.in_process.length > 0) return { done: false, host: op.in_process[0]! }; // a repeated step
  const cluster = await deps.commissaire.getCluster(input.cluster);
  const host = (cluster?.hostset ?? []).find((a) => !op.done.includes(a));
  if (!host) return { done: true, host: '' };
  if (!(await deps.commissaire.updateOperation({ ...op, in_process: [host] }))) throw new OperationGoneError('The operation was finished meanwhile');
  return { done: false, host };
}

/** HostAction: queues the host's job with the workflow's task token (its result answers it). */
export async function hostAction(deps: Ports, input: OperationInput & { host: string; task_token: string }): Promise<{ job_id: string }> {
  const op = await current(deps, input);
  const host = await deps.commissaire.getHost(input.host);
  if (!host) throw new Error(`Host ${input.host} is no longer registered`);
  if (input.kind === 'restart') {
    const node = host.node_id ? await deps.nodes.get(host.node_id) : undefined;
    if (node?.bmc && !node.bmc.maintenance) {
      const job = await queueSystemPower(deps, node.id, 'rebooting', input.task_token);
      if (job) return { job_id: job.id };
    }
  }
  const commands = commandsFor(deps, input.kind, host.os, { version: op.version ?? '' });
  if (!commands || commands.length === 0) {
    throw new Error(`No ${input.kind} commands are configured for os ${JSON.stringify(host.os)} of host ${host.address} (SLIPWAY_COMMISSAIRE_COMMANDS)`);
  }
  const job = await enqueueJob(deps, {
    site: deps.config.commissaireSite,
    kind: 'ssh_run',
    node_id: host.node_id,
    payload: { ssh: sshTarget(host), commands },
    task_token: input.task_token,
    // A command that reboots or updates must not run twice because an agent restarted.
    max_attempts: 1,
  });
  return { job_id: job.id };
}

/** HostDone: the host moves from `in_process` to the done list. */
export async function hostDone(deps: Ports, input: OperationInput & { host: string }): Promise<void> {
  const op = await current(deps, input);
  if (op.done.includes(input.host)) return;
  if (!(await deps.commissaire.updateOperation({ ...op, in_process: op.in_process.filter((a) => a !== input.host), done: [...op.done, input.host] }))) {
    throw new OperationGoneError('The operation was finished meanwhile');
  }
}

/** FinishOperation: `finished`, or `failed` when a step failed (its host stays in `in_process`). */
export async function finishOperation(deps: Ports, input: OperationInput & { error: { Error?: string; Cause?: string } | null }): Promise<{ status: string }> {
  const op = await deps.commissaire.getOperation(input.cluster, input.kind);
  if (!op || op.status !== 'in_process') return { status: op?.status ?? 'gone' };
  const failed = input.error?.Error !== undefined;
  const status = failed ? 'failed' : 'finished';
  await deps.commissaire.finishOperation({ ...op, status, finished_at: deps.clock.now().toISOString() });
  if (failed) log.warn('cluster operation failed', { cluster: op.cluster, kind: op.kind, host: op.in_process[0], error: input.error?.Error });
  return { status };
}
