import { randomUUID } from 'node:crypto';
import * as z from '../util/zod.ts';
import { ConcurrentModificationError, ConflictError, NotFoundError, ValidationError } from '../errors.ts';
import { isAdmin, type Principal, requireAdmin, requireAuth } from '../identity/identity.ts';
import type { Node } from '../inventory/node.ts';
import { listNodes, nodeVisible } from '../inventory/nodes.ts';
import type { Ports } from '../ports.ts';
import { sealedShapeAt } from '../secrets.ts';
import { boundedId, freeFormObject, idProblem } from '../util/bounds.ts';
import { JsonPatch, patchSteps } from './json-patch.ts';
import { type BaremetalPort, newPort } from './model.ts';
import { boolParam, type CollectionPage, collectionPage, collectionQuery, requestedFields, type Scalar } from './collection.ts';
import { MAX_LIST_READ } from './node-list.ts';

/**
 * Ironic ports (`/v1/ports`, `/v1/nodes/{node}/ports`): a node's NICs by MAC address, which
 * the enrolment guides create right after the node (`baremetal port create <mac> --node <uuid>`).
 * A MAC belongs to one port: its uniqueness item is written in the same transaction as the port
 * (and moved with it on an address change), so parallel creates of one MAC give one port. A
 * port needs its node: the create checks the node in the same transaction, and deleting a node
 * deletes its ports, as upstream does.
 */

/** The fields of a port's detail view (`fields=` may name any of them). */
export const IRONIC_PORT_FIELDS = [
  'uuid',
  'address',
  'node_uuid',
  'portgroup_uuid',
  'extra',
  'local_link_connection',
  'pxe_enabled',
  'physical_network',
  'internal_info',
  'is_smartnic',
  'created_at',
  'updated_at',
] as const;
const SORTABLE = ['uuid', 'address', 'node_uuid', 'portgroup_uuid', 'pxe_enabled', 'physical_network', 'is_smartnic', 'created_at', 'updated_at'];

const MAC = /^[0-9a-f]{2}([:-])[0-9a-f]{2}(\1[0-9a-f]{2}){4}$/i;
/** Upstream's validate_and_normalize_mac: colon-separated lower case, else 400 InvalidMAC. */
export function normalizeMac(raw: unknown): string {
  // An over-long value is not echoed back in the message.
  if (typeof raw === 'string' && idProblem(raw)) throw new ValidationError(`Expected a MAC address but received a value that ${idProblem(raw)}.`, 'InvalidMAC');
  if (typeof raw !== 'string' || !MAC.test(raw.trim())) throw new ValidationError(`Expected a MAC address but received ${String(raw)}.`, 'InvalidMAC');
  return raw.trim().toLowerCase().replaceAll('-', ':');
}

const uuidish = z.string().check(z.regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i, { message: 'Expected a UUID' }));
/**
 * A port's free-form field (`extra`, `local_link_connection`): a JSON object of at most 64 KiB,
 * nested at most 32 levels, without reserved keys or sealed values (only the API seals).
 */
const dict = freeFormObject().check(z.superRefine((v, ctx) => {
  const at = sealedShapeAt(v);
  if (at) ctx.addIssue({ code: 'custom', message: `${at}: sealed values ("$sealed") are made by the API, not accepted from clients` });
}));

/** The problem with a port's free-form field after a patch, or undefined. */
function dictProblem(v: unknown): string | undefined {
  const r = dict.safeParse(v);
  return r.success ? undefined : r.error.issues.map((i) => i.message).join('; ');
}

export const PortCreate = z.strictObject({
  address: boundedId(),
  // A uuid, as upstream takes; a node name is accepted too.
  node_uuid: boundedId(),
  uuid: z.optional(uuidish),
  extra: z._default(dict, {}),
  local_link_connection: z._default(dict, {}),
  pxe_enabled: z._default(z.boolean(), true),
  physical_network: z._default(z.nullable(z.string().check(z.maxLength(64), z.superRefine((v, ctx) => {
    const p = idProblem(v);
    if (p) ctx.addIssue({ code: 'custom', message: p });
  }))), null),
  is_smartnic: z._default(z.boolean(), false),
  // Port groups are not implemented: only "none" is accepted.
  portgroup_uuid: z.optional(z.null()),
});

export const PortListQuery = z.object({
  ...collectionQuery,
  node: z.optional(z.string()),
  node_uuid: z.optional(z.string()),
  address: z.optional(z.string()),
  portgroup: z.optional(z.string()),
  pxe_enabled: z.optional(boolParam('pxe_enabled')),
});
export type PortListQuery = z.infer<typeof PortListQuery>;
const CARRIED = ['sort_key', 'sort_dir', 'fields', 'detail', 'node', 'node_uuid', 'address', 'portgroup', 'pxe_enabled'];

export const PortShowQuery = z.object({ fields: z.optional(z.string()) });

function valueOf(p: BaremetalPort, key: string): Scalar {
  if (key === 'id') return p.created_at;
  if (key === 'portgroup_uuid') return null;
  const v = (p as unknown as Record<string, unknown>)[key];
  return typeof v === 'string' || typeof v === 'boolean' ? v : null;
}

const notFound = (uuid: string) => new NotFoundError(`Port ${uuid} could not be found.`);

/** Admins see every port; a project the ports of the nodes its active leases granted. */
async function visibleNodeIds(deps: Ports, auth: Principal | undefined): Promise<Set<string> | 'all'> {
  const who = requireAuth(auth);
  if (isAdmin(who)) return 'all';
  return new Set((await listNodes(deps, auth)).map((n) => n.id));
}

export async function getPort(deps: Ports, auth: Principal | undefined, uuid: string): Promise<BaremetalPort> {
  const who = requireAuth(auth);
  const port = await deps.bmPorts.get(uuid);
  // One node read for a project's view of one port, not the whole inventory.
  const node = port && !isAdmin(who) ? await deps.nodes.get(port.node_uuid) : undefined;
  if (!port || (!isAdmin(who) && !(node && nodeVisible(who, node)))) throw notFound(uuid);
  return port;
}

export const portFields = (raw: string | undefined) => requestedFields(raw, IRONIC_PORT_FIELDS);

/** The node a port names: by uuid or name (upstream answers 400 for an unknown one on a port). */
async function portNode(deps: Ports, ident: string): Promise<Node> {
  const node = (uuidish.safeParse(ident).success ? await deps.nodes.get(ident) : undefined) ?? (await deps.nodes.getByName(ident));
  if (!node) throw new ValidationError(`Node ${ident} could not be found.`, 'NodeNotFound');
  return node;
}

export async function createPort(deps: Ports, auth: Principal | undefined, input: z.infer<typeof PortCreate>): Promise<BaremetalPort> {
  requireAdmin(auth);
  const address = normalizeMac(input.address);
  const node = await portNode(deps, input.node_uuid);
  const port: BaremetalPort = {
    uuid: input.uuid ?? randomUUID(),
    address,
    node_uuid: node.id,
    extra: input.extra,
    local_link_connection: input.local_link_connection,
    pxe_enabled: input.pxe_enabled,
    physical_network: input.physical_network,
    is_smartnic: input.is_smartnic,
    version: 1,
    created_at: deps.clock.now().toISOString(),
    updated_at: null,
  };
  try {
    await deps.bmPorts.create(port);
  } catch (err) {
    // The node went between the check and the write.
    if (err instanceof NotFoundError) throw new ValidationError(`Node ${input.node_uuid} could not be found.`, 'NodeNotFound');
    throw err;
  }
  return port;
}

/**
 * An admin's page of every port in creation order (issue 16): the marker's port, and the ports
 * after it read from the creation index until the page is full (filters no index answers,
 * `pxe_enabled` and `node_uuid`, are applied to what is read: at most MAX_LIST_READ a request).
 */
async function portWindow(deps: Ports, q: PortListQuery): Promise<{ ports: BaremetalPort[]; continueAfter?: string }> {
  const out: BaremetalPort[] = [];
  let after: string | undefined;
  if (q.marker !== undefined) {
    const marker = await deps.bmPorts.get(q.marker);
    if (!marker) return { ports: [] }; // the collection answers 404 for it
    out.push(marker);
    after = `${marker.created_at}#${marker.uuid}`;
  }
  const limit = Math.min(q.limit ?? deps.config.ironicMaxLimit, deps.config.ironicMaxLimit);
  const wanted = (p: BaremetalPort) => q.portgroup === undefined && (q.pxe_enabled === undefined || p.pxe_enabled === q.pxe_enabled) && (q.node_uuid === undefined || p.node_uuid === q.node_uuid);
  let found = 0;
  let cursor: unknown;
  do {
    const page = await deps.bmPorts.listByCreation({ after, desc: q.sort_dir === 'desc', limit: Math.min(limit + 1, MAX_LIST_READ - out.length) }, cursor);
    out.push(...page.ports);
    found += page.ports.filter(wanted).length;
    cursor = page.cursor;
  } while (cursor !== undefined && found < limit && out.length < MAX_LIST_READ);
  // Cut short by the bound: the walk continues after the last port read.
  return { ports: out, ...(cursor !== undefined && found < limit ? { continueAfter: out.at(-1)!.uuid } : {}) };
}

export async function listPorts(
  deps: Ports,
  auth: Principal | undefined,
  q: PortListQuery,
  raw: Record<string, string | undefined>,
  detailRoute: boolean,
  nodeIdent?: string,
): Promise<CollectionPage<BaremetalPort>> {
  const seen = await visibleNodeIds(deps, auth);
  // The node in the path, or `?node=` (uuid or name): its ports only; unknown is 404 / 400.
  let onlyNode: string | undefined;
  const ident = nodeIdent ?? q.node;
  if (ident !== undefined) {
    const node = (await deps.nodes.get(ident)) ?? (await deps.nodes.getByName(ident));
    if (!node || (seen !== 'all' && !seen.has(node.id))) {
      if (nodeIdent !== undefined) throw new NotFoundError(`Node ${ident} could not be found.`);
      throw new ValidationError(`Node ${ident} could not be found.`, 'NodeNotFound');
    }
    onlyNode = node.id;
  }
  const address = q.address === undefined ? undefined : q.address.trim().toLowerCase().replaceAll('-', ':');
  let all: BaremetalPort[];
  let continueAfter: string | undefined;
  if (onlyNode) all = await deps.bmPorts.listByNode(onlyNode);
  else if (address !== undefined) {
    // By address: the MAC's own item, not a scan (`baremetal port show --address`).
    const port = await deps.bmPorts.getByAddress(address);
    all = port ? [port] : [];
  } else if (seen !== 'all') {
    // A project sees the ports of the nodes granted to it: those nodes' ports, not every port.
    all = (await Promise.all([...seen].map((id) => deps.bmPorts.listByNode(id)))).flat();
  } else if ((q.sort_key ?? 'id') === 'id' || q.sort_key === 'created_at') {
    ({ ports: all, continueAfter } = await portWindow(deps, q));
  } else all = await deps.bmPorts.list(); // another sort order: no index holds it (docs/fleet-scale.md)
  const visible = seen === 'all' ? all : all.filter((p) => seen.has(p.node_uuid));
  const filter = (p: BaremetalPort) =>
    (q.node_uuid === undefined || p.node_uuid === q.node_uuid) &&
    (address === undefined || p.address === address) &&
    // No port belongs to a port group here.
    q.portgroup === undefined &&
    (q.pxe_enabled === undefined || p.pxe_enabled === q.pxe_enabled);
  return collectionPage(visible, filter, q, raw, {
    kind: 'Port',
    id: (p) => p.uuid,
    value: valueOf,
    sortable: SORTABLE,
    fields: IRONIC_PORT_FIELDS,
    maxLimit: deps.config.ironicMaxLimit,
    carried: CARRIED,
  }, detailRoute, continueAfter);
}

/** `PATCH /v1/ports/{port}`: a JSON patch. */
export const PortPatchOps = JsonPatch;

export async function patchPort(deps: Ports, auth: Principal | undefined, uuid: string, ops: z.infer<typeof PortPatchOps>): Promise<BaremetalPort> {
  requireAdmin(auth);
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await getPort(deps, auth, uuid);
    const next: BaremetalPort = structuredClone(port);
    for (const { op, path, head, key, value } of patchSteps(ops)) {
      const bad = (why = '') => new ValidationError(`Cannot ${op} ${path}${why}`, 'INVALID_PARAMETER_VALUE');
      const sealedAt = op === 'remove' ? undefined : sealedShapeAt(value, path);
      if (sealedAt) throw bad(`: ${sealedAt}: sealed values ("$sealed") are made by the API, not accepted from clients`);
      const text = (max?: number) => {
        const p = typeof value !== 'string' ? 'must be a string' : idProblem(value, max);
        if (p) throw bad(`: ${p}`);
        return value as string;
      };
      if ((head === 'extra' || head === 'local_link_connection') && key) {
        if (op === 'remove') delete next[head][key];
        else next[head][key] = value;
      } else if (key) throw bad();
      else if (head === 'address' && op !== 'remove') next.address = normalizeMac(value);
      else if (head === 'node_uuid' && op !== 'remove') next.node_uuid = (await portNode(deps, text())).id;
      else if (head === 'pxe_enabled') next.pxe_enabled = op === 'remove' ? true : value === true || value === 'true';
      else if (head === 'is_smartnic') next.is_smartnic = op === 'remove' ? false : value === true || value === 'true';
      else if (head === 'physical_network') next.physical_network = op === 'remove' || value === null ? null : text(64);
      else if ((head === 'extra' || head === 'local_link_connection') && op !== 'remove' && value && typeof value === 'object' && !Array.isArray(value)) next[head] = value as Record<string, unknown>;
      else throw bad();
    }
    // The fields as they would be stored, checked before anything is written.
    for (const field of ['extra', 'local_link_connection'] as const) {
      const p = dictProblem(next[field]);
      if (p) throw new ValidationError(`Invalid ${field}: ${p}`, 'INVALID_PARAMETER_VALUE');
    }
    next.version = port.version + 1;
    next.updated_at = deps.clock.now().toISOString();
    try {
      await deps.bmPorts.update(port, next);
      return next;
    } catch (err) {
      if (!(err instanceof ConcurrentModificationError)) throw err;
    }
  }
  throw new ConflictError(`Port ${uuid} was modified concurrently; please retry`, 'CONCURRENT_MODIFICATION');
}

export async function deletePort(deps: Ports, auth: Principal | undefined, uuid: string): Promise<void> {
  requireAdmin(auth);
  await deps.bmPorts.delete(await getPort(deps, auth, uuid));
}

/**
 * The node's port for a MAC, created (PXE-enabled, with `extra`) unless it exists; a MAC that is
 * another node's port is a 409. For registrations that know a node's MACs (Drydock's boot_mac).
 */
export async function ensurePort(deps: Ports, nodeId: string, rawMac: string, extra: Record<string, unknown>): Promise<BaremetalPort> {
  const address = normalizeMac(rawMac);
  for (let attempt = 0; attempt < 3; attempt++) {
    const existing = await deps.bmPorts.getByAddress(address);
    if (existing) {
      if (existing.node_uuid === nodeId) return existing;
      throw new ConflictError(`A port with MAC address ${address} already exists on node ${existing.node_uuid}.`, 'MACAlreadyExists');
    }
    const port = newPort({ address, node_uuid: nodeId, extra, created_at: deps.clock.now().toISOString() });
    try {
      await deps.bmPorts.create(port);
      return port;
    } catch (err) {
      // Another registration of the same MAC won: look again.
      if (!(err instanceof ConflictError && err.errorName === 'MACAlreadyExists')) throw err;
    }
  }
  throw new ConflictError(`Port ${address} was modified concurrently; please retry`, 'CONCURRENT_MODIFICATION');
}

/** With a node that is gone: its ports go too (upstream deletes them with the node). */
export async function deleteNodePorts(deps: Ports, nodeId: string): Promise<void> {
  for (const port of await deps.bmPorts.listByNode(nodeId)) await deps.bmPorts.delete(port);
}
