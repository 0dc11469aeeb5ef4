import * as z from '../util/zod.ts';
import { ConcurrentModificationError, ConflictError, NotFoundError, ValidationError } from '../errors.ts';
import { type Principal, requireAdmin, requireAuth } from '../identity/identity.ts';
import type { Ports } from '../ports.ts';
import { boundedId } from '../util/bounds.ts';
import {
  type Cluster,
  type ClusterHealth,
  clusterHealth,
  type ClusterOperation,
  type CommissaireHost,
  DEFAULT_NETWORK,
  HostNotReadyError,
  type OperationKind,
  parseAddress,
  parseName,
  READY_STATUSES,
  sameSet,
} from './model.ts';
import { joinedCluster, leftCluster } from './investigate.ts';
import { startClusterOperation } from './operations.ts';

/**
 * Commissaire clusters (upstream-apis.md §2.2–2.5): definitions, membership and operations.
 * Reads are open to every reader; changes are for admins. Every membership change is a
 * compare-and-set on the cluster's hostset version, written together with the hosts that join
 * or leave, so a host is in at most one hostset and a hostset only names hosts that exist.
 */

/** `type` is the field `container_manager` replaced in 0.1.0; commctl still sends it. Ignored. */
export const ClusterPut = z.strictObject({
  // commctl sends `container_manager: ""` for none.
  network: z.nullish(z.string().check(z.maxLength(255))),
  container_manager: z.nullish(z.string().check(z.maxLength(255))),
  type: z.nullish(z.string().check(z.maxLength(255))),
});
export type ClusterPut = z.infer<typeof ClusterPut>;

/** A hostset is one item: at most MAX_HOSTSET addresses (an address is at most 255 bytes). */
const MAX_HOSTSET = 1000;
const Addresses = z.array(boundedId()).check(z.maxLength(MAX_HOSTSET));
export const ClusterHostsPut = z.strictObject({ old: Addresses, new: Addresses });
export type ClusterHostsPut = z.infer<typeof ClusterHostsPut>;

export const DeployPut = z.strictObject({ version: z.string().check(z.trim(), z.minLength(1, 'version must be a non empty string'), z.maxLength(255)) });
/** Upgrade and restart take no parameters; commctl sends `{}`. */
export const OperationPut = z.strictObject({});

/** Hosts joining or leaving in one request (one transaction of at most 100 items). */
const MAX_CHANGES = 99;
/** Members released per step when deleting a large cluster. */
const DELETE_CHUNK = 90;
const RETRIES = 5;

export interface ClusterView {
  cluster: Cluster;
  health: ClusterHealth;
}

async function readCluster(deps: Ports, name: string): Promise<Cluster> {
  const c = await deps.commissaire.getCluster(name);
  if (!c) throw new NotFoundError(`Cluster ${name} not found`);
  return c;
}

async function withHealth(deps: Ports, cluster: Cluster): Promise<ClusterView> {
  const hosts = new Map((await deps.commissaire.getHosts(cluster.hostset)).map((h) => [h.address, h.status]));
  return { cluster, health: clusterHealth(cluster.hostset, (a) => hosts.get(a)) };
}

const now = (deps: Ports) => deps.clock.now().toISOString();

export async function listClusterNames(deps: Ports, auth: Principal | undefined): Promise<string[]> {
  requireAuth(auth);
  return (await deps.commissaire.listClusters()).map((c) => c.name).sort();
}

export async function getCluster(deps: Ports, auth: Principal | undefined, rawName: string): Promise<ClusterView> {
  requireAuth(auth);
  return withHealth(deps, await readCluster(deps, parseName(rawName)));
}

/**
 * Creates the cluster or replaces its definition (201 either way). An unknown network silently
 * becomes `default`, as upstream does; the container manager is taken as named (registration
 * reports one that does not exist). Members and a running operation are kept.
 */
export async function putCluster(deps: Ports, auth: Principal | undefined, rawName: string, input: ClusterPut): Promise<ClusterView> {
  requireAdmin(auth);
  const name = parseName(rawName, true);
  let network = input.network || DEFAULT_NETWORK.name;
  if (network !== DEFAULT_NETWORK.name && !(await deps.commissaire.getNetwork(network))) network = DEFAULT_NETWORK.name;
  const cluster = await deps.commissaire.putCluster({ name, network, container_manager: input.container_manager ?? '' }, now(deps));
  return withHealth(deps, cluster);
}

/**
 * Deletes the cluster with its operation records; its members stay as hosts, in no cluster.
 * A cluster with more members than one transaction holds is released in steps first.
 */
export async function deleteCluster(deps: Ports, auth: Principal | undefined, rawName: string): Promise<void> {
  requireAdmin(auth);
  const name = parseName(rawName);
  for (let lost = 0; lost < RETRIES; ) {
    const cluster = await readCluster(deps, name);
    const members = (await deps.commissaire.getHosts(cluster.hostset)).filter((h) => h.cluster === name).map((h) => h.address);
    try {
      if (members.length > DELETE_CHUNK) {
        const chunk = new Set(members.slice(0, DELETE_CHUNK));
        const change = { hostset: cluster.hostset.filter((a) => !chunk.has(a)), add: [], remove: [...chunk] };
        await deps.commissaire.setHostset(name, cluster.hostset_version, change, now(deps));
        await leftCluster(deps, name, [...chunk], cluster.container_manager);
        continue;
      }
      await deps.commissaire.deleteCluster(cluster, members);
      // Upstream: deleting a cluster also removes its nodes from the container manager.
      await leftCluster(deps, name, members, cluster.container_manager);
      return;
    } catch (err) {
      if (!(err instanceof ConcurrentModificationError)) throw err;
      lost++;
    }
  }
  throw new ConcurrentModificationError();
}

export async function listClusterHosts(deps: Ports, auth: Principal | undefined, rawName: string): Promise<string[]> {
  requireAuth(auth);
  return (await readCluster(deps, parseName(rawName))).hostset;
}

export async function checkClusterHost(deps: Ports, auth: Principal | undefined, rawName: string, rawAddress: string): Promise<string> {
  requireAuth(auth);
  const address = parseAddress(rawAddress);
  const cluster = await readCluster(deps, parseName(rawName));
  if (!cluster.hostset.includes(address)) throw new NotFoundError(`Host ${address} is not a member of cluster ${cluster.name}`);
  return address;
}

/** 404 unknown host, 405 not bootstrapped yet, 409 member of another cluster. */
function checkJoinable(addresses: readonly string[], hosts: ReadonlyMap<string, CommissaireHost>, cluster: string): void {
  for (const a of addresses) {
    const h = hosts.get(a);
    if (!h) throw new NotFoundError(`Host ${a} not found`);
    if (!(READY_STATUSES as readonly string[]).includes(h.status)) throw new HostNotReadyError(`Host ${a} is ${h.status || 'not investigated'}, not active or disassociated`);
    if (h.cluster && h.cluster !== cluster) throw new ConflictError(`Host ${a} is a member of cluster ${h.cluster}`, 'HOST_IN_OTHER_CLUSTER');
  }
}

const byAddress = (hosts: CommissaireHost[]) => new Map(hosts.map((h) => [h.address, h]));

/** Idempotent add (200 `[address]`); members already in are not re-checked. */
export async function addClusterHost(deps: Ports, auth: Principal | undefined, rawName: string, rawAddress: string): Promise<string> {
  requireAdmin(auth);
  const name = parseName(rawName);
  const address = parseAddress(rawAddress);
  for (let attempt = 0; attempt < RETRIES; attempt++) {
    const cluster = await readCluster(deps, name);
    if (cluster.hostset.includes(address)) return address;
    const host = await deps.commissaire.getHost(address);
    checkJoinable([address], byAddress(host ? [host] : []), name);
    try {
      await deps.commissaire.setHostset(name, cluster.hostset_version, { hostset: [...cluster.hostset, address], add: [address], remove: [] }, now(deps));
      await joinedCluster(deps, name, [address]);
      return address;
    } catch (err) {
      if (!(err instanceof ConcurrentModificationError)) throw err; // re-read: the checks above say why
    }
  }
  throw new ConcurrentModificationError();
}

/** Idempotent remove (200 `[]`); 404 only for an unknown cluster. */
export async function removeClusterHost(deps: Ports, auth: Principal | undefined, rawName: string, rawAddress: string): Promise<void> {
  requireAdmin(auth);
  const name = parseName(rawName);
  const address = parseAddress(rawAddress);
  for (let attempt = 0; attempt < RETRIES; attempt++) {
    const cluster = await readCluster(deps, name);
    if (!cluster.hostset.includes(address)) return;
    const host = await deps.commissaire.getHost(address);
    const remove = host?.cluster === name ? [address] : [];
    try {
      await deps.commissaire.setHostset(name, cluster.hostset_version, { hostset: cluster.hostset.filter((a) => a !== address), add: [], remove }, now(deps));
      await leftCluster(deps, name, [address], cluster.container_manager);
      return;
    } catch (err) {
      if (!(err instanceof ConcurrentModificationError)) throw err;
    }
  }
  throw new ConcurrentModificationError();
}

/**
 * `PUT /cluster/{name}/hosts {old, new}`: replaces the hostset if `old` is what it is now
 * (compared as sets), as one compare-and-set: of concurrent requests with the same `old`, one
 * wins and the others get 409. New members must be joinable (404/405/409 as for one host).
 */
export async function replaceClusterHosts(deps: Ports, auth: Principal | undefined, rawName: string, input: ClusterHostsPut): Promise<ClusterView> {
  requireAdmin(auth);
  const name = parseName(rawName);
  const old = input.old.map(parseAddress);
  const next = [...new Set(input.new.map(parseAddress))];
  const cluster = await readCluster(deps, name);
  if (!sameSet(old, cluster.hostset)) throw new ConflictError(`Conflict setting hosts for cluster ${name}: "old" is not the current host list`);
  const current = new Set(cluster.hostset);
  const wanted = new Set(next);
  const add = next.filter((a) => !current.has(a));
  const leaving = cluster.hostset.filter((a) => !wanted.has(a));
  if (add.length + leaving.length > MAX_CHANGES) throw new ValidationError(`At most ${MAX_CHANGES} hosts may join or leave in one request`);
  const hosts = byAddress(await deps.commissaire.getHosts([...add, ...leaving]));
  checkJoinable(add, hosts, name);
  const remove = leaving.filter((a) => hosts.get(a)?.cluster === name);
  try {
    await deps.commissaire.setHostset(name, cluster.hostset_version, { hostset: next, add, remove }, now(deps));
    await leftCluster(deps, name, leaving, cluster.container_manager);
    await joinedCluster(deps, name, add);
    return await withHealth(deps, await readCluster(deps, name));
  } catch (err) {
    if (!(err instanceof ConcurrentModificationError)) throw err;
    // Either the hostset moved (409: `old` is stale now) or a joining host changed meanwhile.
    const fresh = await readCluster(deps, name);
    if (fresh.hostset_version === cluster.hostset_version) checkJoinable(add, byAddress(await deps.commissaire.getHosts(add)), name);
    throw new ConflictError(`Conflict setting hosts for cluster ${name}: it changed meanwhile`);
  }
}

/**
 * Accepts a deploy, upgrade or restart: stores the initial record and takes the cluster's
 * operation lock in one write (404 unknown cluster, 409 while any operation is in process),
 * then hands it to the workflow.
 */
export async function startOperation(
  deps: Ports,
  auth: Principal | undefined,
  rawName: string,
  kind: OperationKind,
  input: { version?: string },
): Promise<ClusterOperation> {
  requireAdmin(auth);
  const name = parseName(rawName);
  const op: ClusterOperation = {
    cluster: name,
    kind,
    status: 'in_process',
    ...(kind === 'deploy' ? { version: input.version ?? '' } : {}),
    done: [],
    in_process: [],
    started_at: now(deps),
    finished_at: '',
  };
  await deps.commissaire.startOperation(op);
  await startClusterOperation(deps, name, kind);
  return op;
}

/** The last operation of that kind (404 if none ever ran, or the cluster is unknown). */
export async function getOperation(deps: Ports, auth: Principal | undefined, rawName: string, kind: OperationKind): Promise<ClusterOperation> {
  requireAuth(auth);
  const name = parseName(rawName);
  const op = await deps.commissaire.getOperation(name, kind);
  if (!op) throw new NotFoundError(`No ${kind} of cluster ${name} found`);
  return op;
}
