import { createHash, randomUUID } from 'node:crypto';
import * as z from '../util/zod.ts';
import { ConcurrentModificationError, ConflictError, NotFoundError, ValidationError } from '../errors.ts';
import { type Principal, requireAdmin, requireAuth, sameDigest } from '../identity/identity.ts';
import type { Ports } from '../ports.ts';
import { boundedId } from '../util/bounds.ts';
import { type ListPage, pageOf, parseListWindow } from '../util/list-window.ts';
import { log } from '../util/log.ts';
import { newNode } from '../inventory/node.ts';
import { nodeStatus } from './container-manager.ts';
import { leftCluster, startInvestigation } from './investigate.ts';
import { canonicalAddress, type CommissaireHost, parseAddress } from './model.ts';

/**
 * Commissaire hosts (upstream-apis.md §2.2–2.4): registration with SSH credentials, reads,
 * credentials (admins only) and status. A host is linked to the inventory node that has its
 * address, so the same machine is one record for every surface.
 */
export const HostPut = z.strictObject({
  /** Base64 of the private key, as commctl sends it; kept exactly as given, sealed. */
  ssh_priv_key: z.string().check(z.minLength(1), z.maxLength(16_384)),
  remote_user: z.nullish(z.string().check(z.regex(/^[A-Za-z0-9._][A-Za-z0-9._-]{0,254}$/, 'remote_user must be a user name'))),
  cluster: z.nullish(boundedId()),
  /** Ours: the SSH port when it is not 22. */
  ssh_port: z.optional(z.number().check(z.int(), z.gte(1), z.lte(65535))),
  /** The address for `PUT /api/v0/host`; on `PUT /api/v0/host/{IP}` it must be that address. */
  address: z.optional(boundedId()),
});
export type HostPut = z.infer<typeof HostPut>;

/** The network label of the inventory address a Commissaire host is reached at. */
const NODE_NETWORK = 'commissaire';
const RETRIES = 5;

const sha256 = (s: string) => createHash('sha256').update(s, 'utf8').digest('hex');

async function readHost(deps: Ports, rawAddress: string): Promise<CommissaireHost> {
  const address = parseAddress(rawAddress);
  const host = await deps.commissaire.getHost(address);
  if (!host) throw new NotFoundError(`Host ${address} not found`);
  return host;
}

/**
 * The inventory node for an address: the one that lists it, else a new node `host-<address>`.
 * Two registrations of one address racing meet on the node name.
 */
async function ensureNode(deps: Ports, address: string): Promise<string> {
  const known = await deps.nodes.getByAddress(address);
  if (known) return known.id;
  const name = `host-${address.replace(/[:.]/g, '-')}`;
  const entry = { network: NODE_NETWORK, address };
  try {
    const node = await deps.nodes.create(newNode({ id: randomUUID(), name, addresses: [entry], created_at: deps.clock.now().toISOString() }));
    return node.id;
  } catch (err) {
    if (!(err instanceof ConflictError)) throw err;
    const named = await deps.nodes.getByName(name);
    if (!named) throw err;
    if (!named.addresses.some((a) => a.address === address)) await deps.nodes.update(named.id, named.version, { addresses: [...named.addresses, entry] });
    return named.id;
  }
}

/** The address of a registration: the path's, else the body's, else the caller's source IP (§2.4). */
function addressOf(pathAddress: string | undefined, input: HostPut, sourceIp: string | undefined): string {
  if (pathAddress !== undefined) {
    const address = parseAddress(pathAddress);
    if (input.address !== undefined && canonicalAddress(input.address) !== address) {
      throw new ValidationError(`"address" in the body (${input.address}) is not the address in the url (${address})`);
    }
    return address;
  }
  if (input.address) return parseAddress(input.address);
  if (sourceIp) return parseAddress(sourceIp);
  throw new ValidationError('"address" must be given in the url or in the PUT body');
}

/**
 * `PUT /host/{IP}` and `PUT /host` (§2.4). Unknown cluster 409; an existing host with another
 * key, or outside the given cluster, 409; a compatible re-registration returns the stored host.
 * A new host is `investigating`, joins the cluster in the same transaction, and its
 * investigation is queued.
 */
export async function registerHost(
  deps: Ports,
  auth: Principal | undefined,
  pathAddress: string | undefined,
  input: HostPut,
  sourceIp?: string,
): Promise<CommissaireHost> {
  requireAdmin(auth);
  const address = addressOf(pathAddress, input, sourceIp);
  const clusterName = input.cluster || undefined;
  const keyDigest = sha256(input.ssh_priv_key);
  let sealed: string | undefined;
  let nodeId: string | undefined;
  for (let attempt = 0; attempt < RETRIES; attempt++) {
    const cluster = clusterName ? await deps.commissaire.getCluster(clusterName) : undefined;
    if (clusterName && !cluster) throw new ConflictError(`Cluster ${clusterName} does not exist`);
    const existing = await deps.commissaire.getHost(address);
    if (existing) {
      if (!sameDigest(existing.ssh_priv_key_sha256, keyDigest)) throw new ConflictError(`Host ${address} already exists with another key`, 'HOST_EXISTS');
      if (cluster && !cluster.hostset.includes(address)) throw new ConflictError(`Host ${address} is not in cluster ${cluster.name}`);
      return existing;
    }
    sealed ??= await deps.secrets.seal('ssh-key', input.ssh_priv_key);
    nodeId ??= await ensureNode(deps, address);
    const created = deps.clock.now().toISOString();
    const host: CommissaireHost = {
      address,
      status: 'investigating',
      os: '',
      cpus: 0,
      memory: 0,
      space: 0,
      last_check: '',
      source: '',
      status_reason: '',
      remote_user: input.remote_user ?? 'root',
      ...(input.ssh_port ? { ssh_port: input.ssh_port } : {}),
      ssh_priv_key_sealed: sealed,
      ssh_priv_key_sha256: keyDigest,
      node_id: nodeId,
      ...(cluster ? { cluster: cluster.name } : {}),
      created_at: created,
      updated_at: null,
    };
    try {
      await deps.commissaire.createHost(
        host,
        cluster && { name: cluster.name, expectedVersion: cluster.hostset_version, hostset: [...cluster.hostset.filter((a) => a !== address), address] },
      );
    } catch (err) {
      if (!(err instanceof ConcurrentModificationError)) throw err;
      continue; // the host appeared or the cluster moved: decide again on fresh reads
    }
    try {
      await startInvestigation(deps, host);
    } catch (err) {
      // The host stays, visibly failed, so a retry of the registration does not hide it.
      log.error('could not start the investigation of a host', { address, error: (err as Error).name });
      await deps.commissaire.updateHost(address, { status: 'failed', status_reason: 'the investigation could not be queued' }, deps.clock.now().toISOString(), 'investigating');
      throw err;
    }
    return host;
  }
  throw new ConcurrentModificationError();
}

/** Most hosts one `GET /hosts` answers (a host view is a few hundred bytes; Lambda answers at most 6 MB). */
export const HOST_LIST_MAX = 1000;

/**
 * `GET /hosts`: the hosts by address (upstream: every host, a JSON array). One window of the
 * address-sorted host index: the first HOST_LIST_MAX (every host, on a site with fewer), or
 * `limit` hosts after the address `marker`; the route names the next page in a `Link` header.
 * The order is the index's (code units: the same as before for IPv4; IPv6's `:` sorts after digits).
 */
export async function listHosts(deps: Ports, auth: Principal | undefined, query: Record<string, string> = {}): Promise<ListPage<CommissaireHost>> {
  requireAuth(auth);
  const w = parseListWindow(query, HOST_LIST_MAX);
  const after = w.marker === undefined ? undefined : parseAddress(w.marker);
  // One host more than the page: it only says that another page follows.
  const read = await deps.commissaire.hostWindow({ limit: w.limit + 1, ...(after !== undefined ? { after } : {}) });
  return pageOf(read, w.limit, (h) => h.address);
}

export async function getHost(deps: Ports, auth: Principal | undefined, rawAddress: string): Promise<CommissaireHost> {
  requireAuth(auth);
  return readHost(deps, rawAddress);
}

/** `GET /host/{IP}/status`: the host, and what its cluster's container manager says of its node (`{}` if nothing). */
export async function getHostStatus(
  deps: Ports,
  auth: Principal | undefined,
  rawAddress: string,
): Promise<{ host: CommissaireHost; containerManager: Record<string, unknown> }> {
  const host = await getHost(deps, auth, rawAddress);
  const cluster = host.cluster ? await deps.commissaire.getCluster(host.cluster) : undefined;
  const cm = cluster?.container_manager ? await deps.commissaire.getContainerManager(cluster.container_manager) : undefined;
  return { host, containerManager: await nodeStatus(deps, cm, host.address) };
}

/** The SSH credentials as registered: admins only (they open a root shell on the host). */
export async function getHostCreds(
  deps: Ports,
  auth: Principal | undefined,
  rawAddress: string,
): Promise<{ address: string; ssh_priv_key: string; remote_user: string }> {
  requireAdmin(auth);
  const host = await readHost(deps, rawAddress);
  return { address: host.address, ssh_priv_key: await deps.secrets.open('ssh-key', host.ssh_priv_key_sealed), remote_user: host.remote_user };
}

/** Deletes the host with its credentials and its membership; the inventory node stays. */
export async function deleteHost(deps: Ports, auth: Principal | undefined, rawAddress: string): Promise<void> {
  requireAdmin(auth);
  for (let attempt = 0; attempt < RETRIES; attempt++) {
    const host = await readHost(deps, rawAddress);
    const cluster = host.cluster ? await deps.commissaire.getCluster(host.cluster) : undefined;
    try {
      await deps.commissaire.deleteHost(host, cluster);
      if (cluster) await leftCluster(deps, cluster.name, [host.address], cluster.container_manager);
      return;
    } catch (err) {
      if (!(err instanceof ConcurrentModificationError)) throw err;
    }
  }
  throw new ConcurrentModificationError();
}
