import * as z from 'zod';
import { NotFoundError, ValidationError } from '../errors.ts';
import { isAdmin, type Principal, requireAuth } from '../identity/identity.ts';
import { grantsOf, type Node } from '../inventory/node.ts';
import type { Ports } from '../ports.ts';

/**
 * Ironic's node list (`GET /v1/nodes`, `/v1/nodes/detail`): filters, `sort_key`/`sort_dir`, and
 * `limit`/`marker` pages of at most `[api]max_limit` nodes (`SLIPWAY_IRONIC_MAX_LIMIT`, 1000)
 * with a `next` link while a page comes back full — which python-ironicclient follows when
 * asked for everything (`limit=0`) or for more than one page holds.
 *
 * Like upstream, the page after a marker is found by the marker node's own sort values, so a
 * marker that a filter now excludes still continues the walk; `uuid` breaks ties so that equal
 * sort values never skip or repeat a node across pages. Upstream's default `sort_key=id` (its
 * internal row id) is enrolment order: here `created_at`, then `uuid`.
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
  'resource_class',
  'created_at',
  'updated_at',
  'provision_updated_at',
] as const;

/** The dict-valued fields, which upstream refuses as sort keys. */
const UNSORTABLE = new Set(['driver_info', 'properties', 'extra']);

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
      return n.name;
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
      return (b?.extra?.resource_class as string | undefined) ?? null;
    case 'target_provision_state':
      return b?.target_provision_state ?? null;
    case 'provision_updated_at':
      return b?.provision_updated_at ?? null;
    case 'console_enabled':
      return false;
    default:
      // instance_uuid: there is no Nova here.
      return null;
  }
}

/** oslo's bool_from_string (strict): what upstream accepts for `maintenance`, `associated`, `detail`. */
const TRUE = new Set(['1', 't', 'true', 'on', 'y', 'yes']);
const FALSE = new Set(['0', 'f', 'false', 'off', 'n', 'no']);
const bool = (name: string) =>
  z.string().transform((v, ctx) => {
    const s = v.trim().toLowerCase();
    if (TRUE.has(s)) return true;
    if (FALSE.has(s)) return false;
    ctx.addIssue({ code: 'custom', message: `Invalid value for ${name}: "${v}". Expected a boolean` });
    return z.NEVER;
  });

/** The route's query (both list routes): unknown parameters are ignored, as upstream's pecan does. */
export const NodeListQuery = z.object({
  limit: z
    .string()
    .regex(/^-?\d+$/, { message: 'Invalid limit: expected an integer' })
    .transform(Number)
    .refine((n) => n > 0, { message: 'Limit must be positive' })
    .optional(),
  marker: z.string().optional(),
  sort_key: z.string().optional(),
  sort_dir: z
    .string()
    .transform((d, ctx) => {
      if (d === 'asc' || d === 'desc') return d;
      ctx.addIssue({ code: 'custom', message: `Invalid sort direction: ${d}. Acceptable values are 'asc' or 'desc'` });
      return z.NEVER;
    })
    .optional(),
  fields: z.string().optional(),
  detail: bool('detail').optional(),
  maintenance: bool('maintenance').optional(),
  associated: bool('associated').optional(),
  provision_state: z.string().optional(),
  driver: z.string().optional(),
  resource_class: z.string().optional(),
  conductor_group: z.string().optional(),
  fault: z.string().optional(),
  instance_uuid: z.string().optional(),
});
export type NodeListQuery = z.infer<typeof NodeListQuery>;

/** The query parameters carried into the `next` link (all but limit and marker, as given). */
const CARRIED = ['sort_key', 'sort_dir', 'fields', 'detail', 'maintenance', 'associated', 'provision_state', 'driver', 'resource_class', 'conductor_group', 'fault', 'instance_uuid'] as const;

export interface NodeListPage {
  nodes: Node[];
  /** The requested fields (`fields=`), validated; undefined for the route's default shape. */
  fields?: string[];
  /** The query string of the next page (`…&limit=N&marker=<uuid>`) when this page is full. */
  next?: string;
}

/** `GET /v1/nodes/{node}` takes `fields` too. */
export const NodeShowQuery = z.object({ fields: z.string().optional() });

/** `fields=a,b` as a checked list (undefined when not asked for). */
export function requestedFields(raw: string | undefined): string[] | undefined {
  if (raw === undefined) return undefined;
  const fields = raw.split(',').map((f) => f.trim()).filter(Boolean);
  const bad = fields.filter((f) => !(IRONIC_NODE_FIELDS as readonly string[]).includes(f));
  if (bad.length) throw new ValidationError(`Field(s) "${bad.join(', ')}" are not valid`, 'INVALID_PARAMETER_VALUE');
  return fields;
}

export async function listIronicNodes(deps: Ports, auth: Principal | undefined, q: NodeListQuery, raw: Record<string, string | undefined> = {}, detailRoute = false): Promise<NodeListPage> {
  const who = requireAuth(auth);
  if (q.fields !== undefined && (detailRoute || q.detail)) throw new ValidationError("Can't fetch a subset of fields with 'detail' set", 'INVALID_PARAMETER_VALUE');
  const fields = requestedFields(q.fields);
  const sortKey = q.sort_key ?? 'id';
  if (sortKey !== 'id' && (UNSORTABLE.has(sortKey) || !(IRONIC_NODE_FIELDS as readonly string[]).includes(sortKey))) {
    throw new ValidationError(`The sort_key value "${sortKey}" is an invalid field for sorting`, 'INVALID_PARAMETER_VALUE');
  }
  const desc = q.sort_dir === 'desc';
  const limit = Math.min(q.limit ?? deps.config.ironicMaxLimit, deps.config.ironicMaxLimit);

  const visible = (n: Node) => isAdmin(who) || grantsOf(n).includes(who.project_id);
  const all = (await deps.nodes.list()).filter(visible);
  let marker: Node | undefined;
  if (q.marker !== undefined) {
    marker = all.find((n) => n.id === q.marker);
    if (!marker) throw new NotFoundError(`Node ${q.marker} could not be found.`);
  }

  const order = (a: Node, b: Node) => {
    const c = compare(valueOf(a, sortKey), valueOf(b, sortKey)) || a.id.localeCompare(b.id);
    return desc ? -c : c;
  };
  const wanted = all.filter((n) => matches(n, q)).sort(order);
  const from = marker ? wanted.filter((n) => order(n, marker) > 0) : wanted;
  const nodes = from.slice(0, limit);

  let next: string | undefined;
  if (nodes.length > 0 && nodes.length === limit) {
    const args = CARRIED.filter((k) => raw[k] !== undefined).map((k) => `${k}=${encodeURIComponent(raw[k]!)}&`);
    next = `${args.join('')}limit=${limit}&marker=${nodes.at(-1)!.id}`;
  }
  return { nodes, ...(fields ? { fields } : {}), ...(next ? { next } : {}) };
}

function matches(n: Node, q: NodeListQuery): boolean {
  if (q.maintenance !== undefined && valueOf(n, 'maintenance') !== q.maintenance) return false;
  // No node here has an instance (there is no Nova): associated=true matches none.
  if (q.associated === true || q.instance_uuid !== undefined) return false;
  // Nor a fault (upstream sets one when it puts a node in maintenance itself).
  if (q.fault !== undefined) return false;
  for (const key of ['provision_state', 'driver', 'resource_class'] as const) {
    if (q[key] !== undefined && valueOf(n, key) !== q[key]) return false;
  }
  // Upstream stores conductor groups lower-cased and compares them so.
  if (q.conductor_group !== undefined && String(valueOf(n, 'conductor_group')).toLowerCase() !== q.conductor_group.toLowerCase()) return false;
  return true;
}

/** Nulls first ascending, as upstream's database orders them. */
function compare(a: string | boolean | null, b: string | boolean | null): number {
  if (a === b) return 0;
  if (a === null) return -1;
  if (b === null) return 1;
  if (typeof a === 'boolean' || typeof b === 'boolean') return Number(a) - Number(b);
  return a < b ? -1 : 1;
}
