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

/** The container manager's view of the node comes with registration (later); `{}` until then. */
export function commissaireHostStatus(h: CommissaireHost) {
  return {
    type: 'host_only',
    host: { last_check: stamp(h.last_check), status: h.status, ...(h.status_reason ? { status_reason: h.status_reason } : {}) },
    container_manager: {},
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
