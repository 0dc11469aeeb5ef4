import type { ClusterView } from '#core/commissaire/clusters.ts';
import type { ClusterOperation, CommissaireHost, ContainerManager, Network } from '#core/commissaire/model.ts';
import { blazarDate } from '#core/util/time.ts';

/**
 * Commissaire's JSON shapes (upstream-apis.md §2.3): timestamps `%Y-%m-%dT%H:%M:%S.%f` without a
 * zone, `''` when unset. Credentials never appear here (see `getHostCreds`).
 */
const stamp = (iso: string | undefined) => (iso ? blazarDate(iso) : '');

/** GET and PUT of a cluster; `PUT …/hosts` also shows the hostset. */
export function commissaireCluster({ cluster, health }: ClusterView, withHostset = false) {
  return {
    name: cluster.name,
    status: health.status,
    network: cluster.network,
    container_manager: cluster.container_manager,
    hosts: health.hosts,
    ...(withHostset ? { hostset: cluster.hostset } : {}),
  };
}

export function commissaireHost(h: CommissaireHost) {
  return { address: h.address, status: h.status, os: h.os, cpus: h.cpus, memory: h.memory, space: h.space, last_check: stamp(h.last_check), source: h.source };
}

/** The host's status and what its container manager reports for its node (`{}` if unmanaged or unreachable). */
export function commissaireHostStatus({ host: h, containerManager }: { host: CommissaireHost; containerManager: Record<string, unknown> }) {
  return {
    type: 'host_only',
    host: { last_check: stamp(h.last_check), status: h.status, ...(h.status_reason ? { status_reason: h.status_reason } : {}) },
    container_manager: containerManager,
  };
}

const DONE_KEY = { deploy: 'deployed', upgrade: 'upgraded', restart: 'restarted' } as const;

export function commissaireOperation(op: ClusterOperation) {
  return {
    name: op.cluster,
    status: op.status,
    ...(op.kind === 'deploy' ? { version: op.version ?? '' } : {}),
    [DONE_KEY[op.kind]]: op.done,
    in_process: op.in_process,
    started_at: stamp(op.started_at),
    finished_at: stamp(op.finished_at),
  };
}

export function commissaireDefinition(d: Network | ContainerManager) {
  return { name: d.name, type: d.type, options: d.options };
}
