import * as z from '../util/zod.ts';
import { NotFoundError } from '../errors.ts';
import { isAdmin, type Principal, requireAuth } from '../identity/identity.ts';
import { grantsOf, type Node, resourceClassOf } from '../inventory/node.ts';
import { listNodes, nodeVisible } from '../inventory/nodes.ts';
import type { NodeIndexQuery, Ports } from '../ports.ts';
import { boolParam, type CollectionPage, collectionPage, collectionQuery, requestedFields } from './collection.ts';

/**
 * Ironic's node list (`GET /v1/nodes`, `/v1/nodes/detail`): upstream's filters on top of the
 * collection conventions in `collection.ts` (pages of at most `SLIPWAY_IRONIC_MAX_LIMIT`).
 */

/** The fields of the detail view (`fields=` may name any of them). */
export const IRONIC_NODE_FIELDS = [
  'uuid',
  'name',
  'instance_uuid',
  'power_state',
  'provision_state',
  'maintenance',
  'driver',
  'driver_info',
  'conductor_group',
  'target_power_state',
  'target_provision_state',
  'last_error',
  'maintenance_reason',
  'reservation',
  'console_enabled',
  'properties',
  'extra',
  'instance_info',
  'resource_class',
  'automated_clean',
  'owner',
  'lessee',
  'created_at',
  'updated_at',
  'provision_updated_at',
  'inspection_finished_at',
] as const;

/** The dict-valued fields, which upstream refuses as sort keys. */
const UNSORTABLE = new Set(['driver_info', 'properties', 'extra', 'instance_info']);

/** A node's value for a sort key or filter, as the views show it. */
function valueOf(n: Node, key: string): string | boolean | null {
  const b = n.bmc;
  switch (key) {
    case 'id':
    case 'created_at':
      return n.created_at;
    case 'uuid':
      return n.id;
    case 'name':
      // A cleared name is kept as the uuid (see patchNode): no name.
      return n.name === n.id ? null : n.name;
    case 'updated_at':
      return n.updated_at;
    case 'power_state':
      return b?.power_state ?? null;
    case 'target_power_state':
      return b?.target_power_state ?? null;
    case 'provision_state':
      return b?.provision_state ?? 'enroll';
    case 'maintenance':
      return b?.maintenance ?? false;
    case 'maintenance_reason':
      return b?.maintenance_reason ?? null;
    case 'driver':
      return b?.driver ?? null;
    case 'conductor_group':
      return b?.conductor_group ?? '';
    case 'last_error':
      return b?.last_error ?? null;
    case 'reservation':
      return b?.reservation ?? null;
    case 'resource_class':
      return resourceClassOf(n);
    case 'automated_clean':
      return b?.automated_clean ?? null;
    case 'target_provision_state':
      return b?.target_provision_state ?? null;
    case 'provision_updated_at':
      return b?.provision_updated_at ?? null;
    case 'inspection_finished_at':
      return b?.inspection_finished_at ?? null;
    case 'lessee':
      return grantsOf(n)[0] ?? null;
    case 'console_enabled':
      return false;
    default:
      // instance_uuid (there is no Nova here), owner (the operator's hardware).
      return null;
  }
}

/** The route's query (both list routes): unknown parameters are ignored, as upstream's pecan does. */
export const NodeListQuery = z.object({
  ...collectionQuery,
  maintenance: z.optional(boolParam('maintenance')),
  associated: z.optional(boolParam('associated')),
  provision_state: z.optional(z.string()),
  driver: z.optional(z.string()),
  resource_class: z.optional(z.string()),
  conductor_group: z.optional(z.string()),
  fault: z.optional(z.string()),
  instance_uuid: z.optional(z.string()),
  owner: z.optional(z.string()),
  lessee: z.optional(z.string()),
});
export type NodeListQuery = z.infer<typeof NodeListQuery>;

/** The query parameters carried into the `next` link (all but limit and marker, as given). */
const CARRIED = ['sort_key', 'sort_dir', 'fields', 'detail', 'maintenance', 'associated', 'provision_state', 'driver', 'resource_class', 'conductor_group', 'fault', 'instance_uuid', 'owner', 'lessee'] as const;

/** `GET /v1/nodes/{node}` takes `fields` too. */
export const NodeShowQuery = z.object({ fields: z.optional(z.string()) });

export const nodeFields = (raw: string | undefined) => requestedFields(raw, IRONIC_NODE_FIELDS);

export async function listIronicNodes(
  deps: Ports,
  auth: Principal | undefined,
  q: NodeListQuery,
  raw: Record<string, string | undefined> = {},
  detailRoute = false,
): Promise<CollectionPage<Node>> {
  const spec = {
    kind: 'Node',
    id: (n: Node) => n.id,
    value: valueOf,
    sortable: IRONIC_NODE_FIELDS.filter((f) => !UNSORTABLE.has(f)),
    fields: IRONIC_NODE_FIELDS,
    maxLimit: deps.config.ironicMaxLimit,
    carried: CARRIED,
  };
  const sortKey = q.sort_key ?? 'id';
  if (sortKey === 'id' || sortKey === 'created_at') {
    const { visible, continueAfter } = await indexedWindow(deps, auth, q, Math.min(q.limit ?? spec.maxLimit, spec.maxLimit));
    return collectionPage(visible, (n) => matches(n, q), q, raw, spec, detailRoute, continueAfter);
  }
  // Another sort order (name, states, dates): no index holds it, so the visible nodes are read
  // whole and sorted, as before issue 16 (see docs/fleet-scale.md, what is not indexed).
  return collectionPage(await listNodes(deps, auth), (n) => matches(n, q), q, raw, spec, detailRoute);
}

/** Most index items one page request reads before it answers with what it found and a `next` link. */
export const MAX_LIST_READ = 1000;

/**
 * The page in creation order read from the narrowest index the query allows (issue 16): the
 * lessee's grants, a provision state, a driver, a resource class, else every node. Filters no
 * index answers (maintenance, conductor_group) are applied to what is read, at most
 * MAX_LIST_READ items per request; a page cut short there carries a `next` link anyway.
 * Returns the marker node (the collection finds it) and the nodes after it, in order.
 */
async function indexedWindow(deps: Ports, auth: Principal | undefined, q: NodeListQuery, limit: number): Promise<{ visible: Node[]; continueAfter?: string }> {
  const who = requireAuth(auth);
  const visible: Node[] = [];
  let after: string | undefined;
  if (q.marker !== undefined) {
    const marker = await deps.nodes.get(q.marker);
    if (!marker || !nodeVisible(who, marker)) throw new NotFoundError(`Node ${q.marker} could not be found.`);
    visible.push(marker);
    after = `${marker.created_at}#${marker.id}`;
  }
  // Filters that match no node here (no Nova, no faults, no owners): nothing to read.
  if (q.associated === true || q.instance_uuid !== undefined || q.fault !== undefined || q.owner !== undefined) return { visible };
  const lessee = isAdmin(who) ? q.lessee : who.project_id;
  if (!isAdmin(who) && q.lessee !== undefined && q.lessee !== who.project_id) return { visible };
  const by: Pick<NodeIndexQuery, 'by' | 'value'> =
    lessee !== undefined
      ? { by: 'lessee', value: lessee }
      : q.provision_state !== undefined
        ? { by: 'provision_state', value: q.provision_state }
        : q.driver !== undefined
          ? { by: 'driver', value: q.driver }
          : q.resource_class !== undefined
            ? { by: 'resource_class', value: q.resource_class }
            : { by: 'all' };
  const desc = q.sort_dir === 'desc';
  const ok = (n: Node) => nodeVisible(who, n) && matches(n, q);
  if (by.by === 'lessee') {
    // A node granted to two projects at once is indexed for one: the others find it here (normally none).
    const key = (n: Node) => `${n.created_at}#${n.id}`;
    visible.push(...(await deps.nodes.unindexed()).filter((n) => nodeVisible(who, n) && (after === undefined || (desc ? key(n) < after : key(n) > after))));
  }
  let found = visible.filter((n) => n.id !== q.marker && ok(n)).length;
  const seen = new Set(visible.map((n) => n.id));
  let read = 0;
  let cursor: unknown;
  let last: Node | undefined;
  do {
    const page = await deps.nodes.listByCreation({ ...by, after, desc, limit: Math.min(limit + 1, MAX_LIST_READ - read) }, cursor);
    for (const n of page.nodes) {
      last = n;
      if (seen.has(n.id)) continue;
      seen.add(n.id);
      visible.push(n);
      if (ok(n)) found++;
    }
    read += page.nodes.length;
    cursor = page.cursor;
  } while (cursor !== undefined && found < limit && read < MAX_LIST_READ);
  if (cursor === undefined || found >= limit || last === undefined) return { visible };
  // Cut short: this page ends at the last node read (nothing past it, so nothing repeats).
  const end = `${last.created_at}#${last.id}`;
  const within = (n: Node) => (desc ? `${n.created_at}#${n.id}` >= end : `${n.created_at}#${n.id}` <= end);
  return { visible: visible.filter((n) => n.id === q.marker || within(n)), continueAfter: last.id };
}

function matches(n: Node, q: NodeListQuery): boolean {
  if (q.maintenance !== undefined && valueOf(n, 'maintenance') !== q.maintenance) return false;
  // No node here has an instance (there is no Nova): associated=true matches none.
  if (q.associated === true || q.instance_uuid !== undefined) return false;
  // Nor a fault (upstream sets one when it puts a node in maintenance itself).
  if (q.fault !== undefined) return false;
  if (q.owner !== undefined) return false;
  if (q.lessee !== undefined && !grantsOf(n).includes(q.lessee)) return false;
  for (const key of ['provision_state', 'driver', 'resource_class'] as const) {
    if (q[key] !== undefined && valueOf(n, key) !== q[key]) return false;
  }
  // Upstream stores conductor groups lower-cased and compares them so.
  if (q.conductor_group !== undefined && String(valueOf(n, 'conductor_group')).toLowerCase() !== q.conductor_group.toLowerCase()) return false;
  return true;
}
