import type { Job } from '../agent/model.ts';
import { enqueueJob } from '../agent/enqueue.ts';
import type { CommissaireStep } from '../config.ts';
import type { Ports } from '../ports.ts';
import { log } from '../util/log.ts';
import { callManager, type ManagerJobTag, managerJobOutcome } from './container-manager.ts';
import type { CommissaireHost, HostStatus } from './model.ts';

/**
 * A host's way from registration to use (upstream-apis.md §2.4 step 5), driven by agent jobs:
 *
 *   investigating ──ssh_investigate ok──▶ bootstrapping ──ssh_run ok──▶ active (registered with
 *        │                                     │                         the cluster's manager)
 *        └──────────── any failure ────────────┴──▶ failed (reason)      or disassociated
 *
 * Each job carries `commissaire: {address, step}`; its result (`onHostJobFinished`, which
 * `agent/kinds.ts` runs when an `ssh_investigate`, `ssh_run` or `fetch` job becomes final) moves
 * the host on with a compare-and-set on its status, so a result that arrives twice or late changes
 * nothing. The SSH key travels sealed and is opened by the agent API for the claimed job only.
 * Registering with a container manager inside a site is a `fetch` job of that site's agent
 * (container-manager.ts): `register`, whose result makes the host active or failed.
 */
export interface HostJobTag {
  address: string;
  step: 'investigate' | CommissaireStep;
}

/** The SSH target of a host for an agent job (the key sealed; the agent API opens it at claim). */
export function sshTarget(host: CommissaireHost): Record<string, unknown> {
  return {
    address: host.address,
    port: host.ssh_port ?? 22,
    username: host.remote_user,
    private_key: { $sealed: host.ssh_priv_key_sealed },
    ...(host.host_key_sha256 ? { host_key_sha256: host.host_key_sha256 } : {}),
  };
}

/** The commands of `step` for the host's OS, or undefined when none are configured for it. */
export function commandsFor(deps: Ports, step: CommissaireStep, os: string, vars: Record<string, string> = {}): string[] | undefined {
  const byOs = deps.config.commissaireCommands[step];
  const cmds = byOs[os] ?? byOs.default;
  return cmds?.map((c) => c.replace(/\{(\w+)\}/g, (m, k: string) => vars[k] ?? m));
}

export async function startInvestigation(deps: Ports, host: CommissaireHost): Promise<void> {
  await enqueueJob(deps, {
    site: deps.config.commissaireSite,
    kind: 'ssh_investigate',
    node_id: host.node_id,
    payload: { ssh: sshTarget(host), commissaire: { address: host.address, step: 'investigate' } satisfies HostJobTag },
  });
}

const now = (deps: Ports) => deps.clock.now().toISOString();

async function fail(deps: Ports, address: string, from: HostStatus, reason: string): Promise<void> {
  await deps.commissaire.updateHost(address, { status: 'failed', status_reason: reason, last_check: now(deps) }, now(deps), from);
}

/** Moves a host on when one of its jobs is final (see the diagram above). */
export async function onHostJobFinished(deps: Ports, job: Job): Promise<void> {
  const tag = job.payload.commissaire as HostJobTag | ManagerJobTag | undefined;
  if (tag?.step === 'register' || tag?.step === 'unregister') return onManagerJob(deps, job, tag as ManagerJobTag);
  if (!tag || (tag.step !== 'investigate' && tag.step !== 'bootstrap')) return;
  try {
    if (tag.step === 'investigate') await afterInvestigation(deps, job, tag.address);
    else await afterBootstrap(deps, job, tag.address);
  } catch (err) {
    log.error('host step after a job failed', { address: tag.address, step: tag.step, error: (err as Error).message });
    await fail(deps, tag.address, tag.step === 'investigate' ? 'investigating' : 'bootstrapping', `internal error after ${tag.step}`).catch(() => undefined);
  }
}

async function afterInvestigation(deps: Ports, job: Job, address: string): Promise<void> {
  if (job.status === 'failed') return fail(deps, address, 'investigating', `investigation failed: ${job.error ?? 'unknown error'}`);
  const facts = (job.output ?? {}) as { os?: string; cpus?: number; memory?: number; space?: number; host_key_sha256?: string };
  const host = await deps.commissaire.updateHost(
    address,
    {
      status: 'bootstrapping',
      status_reason: '',
      os: String(facts.os ?? ''),
      cpus: Number(facts.cpus ?? 0),
      memory: Number(facts.memory ?? 0),
      space: Number(facts.space ?? 0),
      last_check: now(deps),
      ...(facts.host_key_sha256 ? { host_key_sha256: facts.host_key_sha256 } : {}),
    },
    now(deps),
    'investigating',
  );
  if (!host) return; // deleted meanwhile, or already moved on (a repeated result)
  const commands = commandsFor(deps, 'bootstrap', host.os);
  if (!commands) return fail(deps, address, 'bootstrapping', `no bootstrap commands are configured for os ${JSON.stringify(host.os)} (SLIPWAY_COMMISSAIRE_COMMANDS)`);
  if (commands.length === 0) return finishBootstrap(deps, host);
  await enqueueJob(deps, {
    site: deps.config.commissaireSite,
    kind: 'ssh_run',
    node_id: host.node_id,
    payload: { ssh: sshTarget(host), commands, commissaire: { address, step: 'bootstrap' } satisfies HostJobTag },
  });
}

async function afterBootstrap(deps: Ports, job: Job, address: string): Promise<void> {
  if (job.status === 'failed') return fail(deps, address, 'bootstrapping', `bootstrap failed: ${job.error ?? 'unknown error'}`);
  const host = await deps.commissaire.getHost(address);
  if (host?.status === 'bootstrapping') await finishBootstrap(deps, host);
}

/** Bootstrapped: registered with its cluster's container manager (→ active), or disassociated. */
export async function finishBootstrap(deps: Ports, host: CommissaireHost): Promise<void> {
  const cluster = host.cluster ? await deps.commissaire.getCluster(host.cluster) : undefined;
  const cm = cluster?.container_manager ? await deps.commissaire.getContainerManager(cluster.container_manager) : undefined;
  if (!cm) {
    await deps.commissaire.updateHost(host.address, { status: 'disassociated', status_reason: '', last_check: now(deps) }, now(deps), 'bootstrapping');
    return;
  }
  let outcome: 'done' | 'queued';
  try {
    outcome = await callManager(deps, cm, { address: host.address, step: 'register', from: 'bootstrapping', manager: cm.name });
  } catch (err) {
    return fail(deps, host.address, 'bootstrapping', `registration failed: ${(err as Error).message}`);
  }
  // Through a site's agent: the job's result makes the host active (onManagerJob).
  if (outcome === 'done') await deps.commissaire.updateHost(host.address, { status: 'active', status_reason: '', last_check: now(deps) }, now(deps), 'bootstrapping');
}

/** A registration or removal through a site's agent is final: the host moves on as if made here. */
async function onManagerJob(deps: Ports, job: Job, tag: ManagerJobTag): Promise<void> {
  const outcome = managerJobOutcome(tag, job);
  if (tag.step === 'unregister') {
    // The host was disassociated when the removal started; a manager that kept the node is the operator's to see.
    if (!outcome.ok) log.warn('host not removed from the container manager', { address: tag.address, manager: tag.manager, error: outcome.reason });
    return;
  }
  if (outcome.ok) {
    await deps.commissaire.updateHost(tag.address, { status: 'active', status_reason: '', last_check: now(deps) }, now(deps), tag.from ?? 'bootstrapping');
  } else if (tag.from === 'bootstrapping') {
    await fail(deps, tag.address, 'bootstrapping', `registration failed: ${outcome.reason}`);
  } else {
    log.warn('joined host not registered with the container manager', { address: tag.address, manager: tag.manager, error: outcome.reason });
  }
}

/**
 * Hosts that joined a cluster (§2.4: "after adding, each new host is registered with the
 * container manager (→ active) or left disassociated"). Failures leave the host as it was,
 * logged: membership is already stored, and the host's status tells what the manager knows.
 */
export async function joinedCluster(deps: Ports, clusterName: string, addresses: readonly string[]): Promise<void> {
  if (addresses.length === 0) return;
  const cluster = await deps.commissaire.getCluster(clusterName);
  const cm = cluster?.container_manager ? await deps.commissaire.getContainerManager(cluster.container_manager) : undefined;
  if (!cm) return;
  for (const address of addresses) {
    try {
      const outcome = await callManager(deps, cm, { address, step: 'register', from: 'disassociated', manager: cm.name });
      if (outcome === 'done') await deps.commissaire.updateHost(address, { status: 'active', status_reason: '' }, now(deps), 'disassociated');
    } catch (err) {
      log.warn('joined host not registered with the container manager', { address, cluster: clusterName, error: (err as Error).message });
    }
  }
}

/** Hosts that left a cluster (or were deleted): removed from its container manager, disassociated. */
export async function leftCluster(deps: Ports, clusterName: string, addresses: readonly string[], containerManager?: string): Promise<void> {
  if (addresses.length === 0) return;
  const cmName = containerManager ?? (await deps.commissaire.getCluster(clusterName))?.container_manager;
  const cm = cmName ? await deps.commissaire.getContainerManager(cmName) : undefined;
  if (!cm) return;
  for (const address of addresses) {
    try {
      await callManager(deps, cm, { address, step: 'unregister', manager: cm.name });
    } catch (err) {
      log.warn('host not removed from the container manager', { address, cluster: clusterName, error: (err as Error).message });
    }
    await deps.commissaire.updateHost(address, { status: 'disassociated' }, now(deps), 'active');
  }
}
