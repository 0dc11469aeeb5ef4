import { randomUUID } from 'node:crypto';
import {
  ConcurrentModificationError,
  ConflictError,
  NotFoundError,
  ValidationError,
} from '../errors.ts';
import { isAdmin, type Principal, requireAdmin, requireAuth } from '../identity/identity.ts';
import { pluginFor } from '../leases/host-plugin.ts';
import type { Ports, PropertyRecord } from '../ports.ts';
import { byteLength, checkJson, idProblem, MAX_FREE_FORM_BYTES, nameProblem, RESERVED_KEYS } from '../util/bounds.ts';
import { type Allocation, INT_FACTS, newNode, type Node, type NodeFacts, type NodePatch, STRING_FACTS } from './node.ts';

/**
 * Blazar os-hosts over the node inventory (upstream-apis.md §4.10). There is no Nova here:
 * enrolling a host enrols the inventory node of that name, creating it from the facts in the
 * body when unknown. Host columns become facts; every other key an extra capability (string).
 */
const HOST_RESOURCE = 'physical:host';
/** Keys of the host object that are not settable (the name is `name` on create only). */
const READ_ONLY = new Set(['id', 'hypervisor_hostname', 'created_at', 'updated_at', 'status', 'trust_id']);
const MAX_KEY = 64;
/**
 * Most bytes of a host's facts and extra capabilities together, as stored (JSON): capabilities
 * are short strings upstream; this keeps a host item far below DynamoDB's 400 KB.
 */
export const MAX_HOST_FIELDS_BYTES = MAX_FREE_FORM_BYTES;
/** Host ids come from a counter: all digits, and no more of them than a counter ever reaches. */
const HOST_ID = /^\d{1,20}$/;

/** Everything in a host body is checked before anything is written (or a host id is taken). */
function checkBody(body: Record<string, unknown>): void {
  // Depth and prototype keys, whatever route the body came by.
  checkJson(body, 'The request body');
}

function checkSize(facts: Partial<NodeFacts>, extra: Record<string, string | null>): void {
  const bytes = byteLength(JSON.stringify({ facts, extra }));
  if (bytes > MAX_HOST_FIELDS_BYTES) {
    throw new ValidationError(`The host's facts and extra capabilities take ${bytes} bytes, more than ${MAX_HOST_FIELDS_BYTES}`);
  }
}

function coerceFacts(body: Record<string, unknown>): { facts: Partial<NodeFacts>; extra: Record<string, string>; reservable?: boolean } {
  const facts: Record<string, unknown> = {};
  const extra: Record<string, string> = {};
  let reservable: boolean | undefined;
  for (const [k, v] of Object.entries(body)) {
    if (READ_ONLY.has(k)) throw new ValidationError(`${k} is read-only and cannot be set`);
    if ((INT_FACTS as readonly string[]).includes(k)) {
      const n = typeof v === 'number' ? v : typeof v === 'string' && /^\s*\d+\s*$/.test(v) ? Number(v) : NaN;
      if (!Number.isInteger(n) || n < 0) throw new ValidationError(`Malformed parameter ${k}: a non-negative integer is required`);
      facts[k] = n;
    } else if ((STRING_FACTS as readonly string[]).includes(k)) {
      if (v !== null && typeof v === 'object') throw new ValidationError(`Malformed parameter ${k}: a string is required`);
      facts[k] = String(v);
    } else if (k === 'reservable') {
      if (typeof v === 'boolean') reservable = v;
      else if (v === 'true' || v === 'True') reservable = true;
      else if (v === 'false' || v === 'False') reservable = false;
      else throw new ValidationError('Malformed parameter reservable: true or false is required');
    } else {
      if (k.length > MAX_KEY) throw new ValidationError(`Extra capability key too long: ${k.slice(0, 20)}... (at most ${MAX_KEY} characters)`);
      if (k === '' || /[\s$]/.test(k) || idProblem(k)) throw new ValidationError(`Malformed extra capability key ${JSON.stringify(k)}`);
      // A capability is looked up by name (filters, views): no name of the object machinery.
      if (RESERVED_KEYS.has(k)) throw new ValidationError(`Extra capability key ${JSON.stringify(k)} is reserved`);
      extra[k] = typeof v === 'string' ? v : JSON.stringify(v);
    }
  }
  return { facts: facts as Partial<NodeFacts>, extra, ...(reservable !== undefined ? { reservable } : {}) };
}

function asObject(body: unknown, what: string): Record<string, unknown> {
  if (body === undefined || body === null) return {};
  if (typeof body !== 'object' || Array.isArray(body)) throw new ValidationError(`${what} must be a JSON object`);
  return body as Record<string, unknown>;
}

/**
 * `POST /v1/os-hosts`. The whole body is checked before a host id is taken, so a refused
 * enrolment takes none (one that loses a race for its name leaves a gap in the ids).
 */
export async function enrolHost(deps: Ports, auth: Principal | undefined, rawBody: unknown): Promise<Node> {
  requireAdmin(auth);
  const body = asObject(rawBody, 'The request body');
  checkBody(body);
  const { name, ...rest } = body;
  if (name === undefined || name === null || (typeof name === 'string' && name.trim() === '')) throw new ValidationError('Missing parameter name', 'INVALID_HOST');
  if (typeof name !== 'string') throw new ValidationError('Malformed parameter name: a string is required', 'INVALID_HOST');
  const bad = nameProblem(name);
  if (bad) throw new ValidationError(`Malformed parameter name: the host name ${bad}`, 'INVALID_HOST');
  const { facts, extra, reservable } = coerceFacts(rest);
  checkSize(facts, extra);

  for (let attempt = 0; attempt < 3; attempt++) {
    const existing = await deps.nodes.getByName(name);
    if (existing?.host_id) throw new ConflictError(`Host ${name} is already enrolled as host ${existing.host_id}`, 'HOST_EXISTS');
    if (existing) checkSize({ ...existing.facts, ...facts }, { ...existing.extra, ...extra });
    const hostId = await deps.nodes.nextHostId();
    if (existing) {
      const patch: NodePatch = { facts, extra, ...(reservable !== undefined ? { reservable } : {}) };
      try {
        return await deps.nodes.enrol(existing.id, existing.version, hostId, patch);
      } catch (err) {
        if (err instanceof ConcurrentModificationError) continue;
        throw err;
      }
    }
    try {
      return await deps.nodes.create(newNode({ id: randomUUID(), name, host_id: hostId, reservable: reservable ?? true, facts, extra, created_at: deps.clock.now().toISOString() }));
    } catch (err) {
      // Another request created the node meanwhile: enrol it (or report it enrolled).
      if (err instanceof ConflictError && err.errorName === 'DUPLICATE_NAME') continue;
      throw err;
    }
  }
  throw new ConflictError(`Host ${name} was modified concurrently; please retry`, 'CONCURRENT_MODIFICATION');
}

export async function getHost(deps: Ports, auth: Principal | undefined, hostId: string): Promise<Node> {
  requireAdmin(auth);
  // Not all digits, or longer than any id the counter gives: no such host (no read).
  const node = HOST_ID.test(hostId) ? await deps.nodes.getByHostId(hostId) : undefined;
  if (!node) throw new NotFoundError(`Object with {'host_id': '${hostId.length > 64 ? `${hostId.slice(0, 64)}…` : hostId}'} not found`);
  return node;
}

/**
 * A window of the hosts in node-id order (ours: `GET /v1/os-hosts?limit=&marker=<host id>`;
 * upstream has no paging, and without `limit` the list stays whole): one page of the host pool.
 */
export async function pageHosts(deps: Ports, auth: Principal | undefined, limit: number, marker?: string): Promise<Node[]> {
  requireAdmin(auth);
  let from = '!';
  if (marker !== undefined) from = (await getHost(deps, auth, marker)).id;
  const page = await deps.nodes.scanHosts({ from, consistent: false }, undefined, limit);
  return page.nodes;
}

export async function listHosts(deps: Ports, auth: Principal | undefined): Promise<Node[]> {
  requireAdmin(auth);
  // The host pool index (enrolled nodes only), not the whole inventory; Blazar's host list has
  // no paging, so it is read to its end, in id order.
  const out: Node[] = [];
  let cursor: unknown;
  do {
    // '!' sorts before every id (a key value may not be empty): one pass, no wrap.
    const page = await deps.nodes.scanHosts({ from: '!', consistent: false }, cursor, 1000);
    out.push(...page.nodes);
    cursor = page.cursor;
  } while (cursor !== undefined);
  return out;
}

/** Property keys that current and future reservations on this node depend on. */
async function pinnedProperties(deps: Ports, node: Node, now: Date): Promise<Map<string, string>> {
  const pinned = new Map<string, string>();
  const live = Object.values(node.allocations).filter((a) => Date.parse(a.end) > now.getTime());
  const leases = await Promise.all([...new Set(live.map((a) => a.lease_id))].map((id) => deps.leases.get(id)));
  for (const lease of leases) {
    for (const r of lease?.reservations ?? []) {
      if (!node.allocations[r.id]) continue;
      for (const key of pluginFor(r.resource_type).referencedProperties(r.params)) pinned.set(key, r.id);
    }
  }
  return pinned;
}

export async function updateHost(deps: Ports, auth: Principal | undefined, hostId: string, rawBody: unknown): Promise<Node> {
  requireAdmin(auth);
  let body = asObject(rawBody, 'The request body');
  // Upstream reads top-level keys; the seed's API doc wraps them in {"values": {...}}.
  if (Object.keys(body).length === 1 && body.values && typeof body.values === 'object' && !Array.isArray(body.values)) {
    body = body.values as Record<string, unknown>;
  }
  if (Object.keys(body).length === 0) throw new ValidationError('No data to update', 'INVALID_UPDATE');
  checkBody(body);
  const nulls = Object.entries(body).filter(([, v]) => v === null).map(([k]) => k);
  for (const k of nulls) {
    if (RESERVED_KEYS.has(k)) throw new ValidationError(`Extra capability key ${JSON.stringify(k)} is reserved`);
  }
  const { facts, extra, reservable } = coerceFacts(Object.fromEntries(Object.entries(body).filter(([, v]) => v !== null)));

  for (let attempt = 0; attempt < 5; attempt++) {
    const node = await getHost(deps, auth, hostId);
    const pinned = await pinnedProperties(deps, node, deps.clock.now());
    for (const key of [...Object.keys(facts), ...Object.keys(extra), ...nulls, ...(reservable !== undefined ? ['reservable'] : [])]) {
      const current = Object.hasOwn(node.extra, key) ? node.extra[key] : (node.facts as Record<string, unknown>)[key];
      const incoming = Object.hasOwn(extra, key) ? extra[key] : (facts as Record<string, unknown>)[key];
      if (pinned.has(key) && String(current) !== String(incoming)) {
        throw new ConflictError(`Cannot update capability ${key} of host ${hostId}: reservation ${pinned.get(key)} depends on it`, 'CANT_UPDATE_PARAMETER');
      }
    }
    const removeExtra = Object.fromEntries(nulls.filter((k) => Object.hasOwn(node.extra, k)).map((k) => [k, null]));
    const merged = { ...node.extra, ...extra };
    for (const k of Object.keys(removeExtra)) delete merged[k];
    checkSize({ ...node.facts, ...facts }, merged);
    const patch: NodePatch = { facts, extra: { ...extra, ...removeExtra }, ...(reservable !== undefined ? { reservable } : {}) };
    try {
      // The version check makes the pin check above hold at the moment of the write.
      return await deps.nodes.update(node.id, node.version, patch);
    } catch (err) {
      if (!(err instanceof ConcurrentModificationError)) throw err;
    }
  }
  throw new ConflictError(`Host ${hostId} was modified concurrently; please retry`, 'CONCURRENT_MODIFICATION');
}

export async function deleteHost(deps: Ports, auth: Principal | undefined, hostId: string): Promise<void> {
  const node = await getHost(deps, auth, hostId);
  await deps.nodes.unenrol(node.id);
}

export interface HostAllocations {
  host: Node;
  allocations: Allocation[];
}

/** Allocations that end in the future, per enrolled host, optionally filtered. */
export async function listAllocations(
  deps: Ports,
  auth: Principal | undefined,
  filter: { lease_id?: string; reservation_id?: string; host_id?: string },
): Promise<HostAllocations[]> {
  requireAdmin(auth);
  const now = deps.clock.now().getTime();
  const hosts = filter.host_id ? [await getHost(deps, auth, filter.host_id)] : await listHosts(deps, auth);
  return hosts.map((host) => ({
    host,
    allocations: Object.values(host.allocations)
      .filter((a) => Date.parse(a.end) > now)
      .filter((a) => !filter.lease_id || a.lease_id === filter.lease_id)
      .filter((a) => !filter.reservation_id || a.reservation_id === filter.reservation_id)
      .sort((a, b) => a.start.localeCompare(b.start)),
  }));
}

export interface PropertyView {
  property: string;
  private: boolean;
  values: string[];
  record?: PropertyRecord;
}

/** Extra-capability names across enrolled hosts, with their distinct values and privacy. */
export async function listProperties(deps: Ports, auth: Principal | undefined, opts: { all?: boolean }): Promise<PropertyView[]> {
  const who = requireAuth(auth);
  const [nodes, records] = await Promise.all([deps.nodes.list(), deps.properties.list(HOST_RESOURCE)]);
  const values = new Map<string, Set<string>>();
  for (const n of nodes) {
    if (!n.host_id) continue;
    for (const [k, v] of Object.entries(n.extra)) (values.get(k) ?? values.set(k, new Set()).get(k)!).add(v);
  }
  const byName = new Map(records.map((r) => [r.property_name, r]));
  return [...values.entries()]
    .map(([property, vals]) => ({ property, private: byName.get(property)?.private ?? false, values: [...vals].sort(), record: byName.get(property) }))
    .filter((p) => !p.private || (opts.all === true && isAdmin(who)))
    .sort((a, b) => a.property.localeCompare(b.property));
}

export async function updateProperty(deps: Ports, auth: Principal | undefined, name: string, rawBody: unknown): Promise<PropertyRecord> {
  requireAdmin(auth);
  const body = asObject(rawBody, 'The request body');
  const unknown = Object.keys(body).filter((k) => k !== 'private');
  if (unknown.length) throw new ValidationError(`Unknown field(s): ${unknown.join(', ')}; only "private" can be changed`);
  if (typeof body.private !== 'boolean') throw new ValidationError('Missing parameter private (true or false)');
  const all = await listProperties(deps, auth, { all: true });
  const found = all.find((p) => p.property === name);
  if (!found) throw new NotFoundError(`Object with {'property_name': '${name}'} not found`);
  const now = deps.clock.now().toISOString();
  const rec: PropertyRecord = found.record
    ? { ...found.record, private: body.private, updated_at: now }
    : { id: randomUUID(), resource_type: HOST_RESOURCE, property_name: name, private: body.private, created_at: now, updated_at: null };
  await deps.properties.put(rec);
  return rec;
}
