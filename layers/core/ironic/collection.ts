import * as z from '../util/zod.ts';
import { NotFoundError, ValidationError } from '../errors.ts';

/**
 * Ironic's collection conventions, shared by node and port lists: `limit` (capped at
 * `[api]max_limit`), `marker` (a uuid), `sort_key`/`sort_dir`, `fields`, and a `next` link
 * while a page comes back full — which python-ironicclient follows when asked for everything.
 *
 * As upstream's database pagination does, the page after a marker starts after the marker
 * item's own sort values, so a marker that a filter now excludes still continues the walk;
 * `uuid` breaks ties so equal sort values never skip or repeat an item across pages. Upstream's
 * default `sort_key=id` (its row id) is creation order: here `created_at`, then `uuid`.
 */
export type Scalar = string | boolean | null;

/** oslo's bool_from_string (strict): what upstream accepts for boolean query parameters. */
const TRUE = new Set(['1', 't', 'true', 'on', 'y', 'yes']);
const FALSE = new Set(['0', 'f', 'false', 'off', 'n', 'no']);
export const boolParam = (name: string) =>
  z.pipe(z.string(), z.transform((v, ctx) => {
    const s = v.trim().toLowerCase();
    if (TRUE.has(s)) return true;
    if (FALSE.has(s)) return false;
    z.transformIssue(ctx, `Invalid value for ${name}: "${v}". Expected a boolean`);
    return z.NEVER;
  }));

/** The paging and shaping parameters every list route takes (its filters come on top). */
export const collectionQuery = {
  limit: z.optional(
    z
      .pipe(z.string().check(z.regex(/^-?\d+$/, { message: 'Invalid limit: expected an integer' })), z.transform(Number))
      .check(z.refine((n) => n > 0, { message: 'Limit must be positive' })),
  ),
  marker: z.optional(z.string()),
  sort_key: z.optional(z.string()),
  sort_dir: z.optional(
    z.pipe(
      z.string(),
      z.transform((d, ctx) => {
        if (d === 'asc' || d === 'desc') return d;
        z.transformIssue(ctx, `Invalid sort direction: ${d}. Acceptable values are 'asc' or 'desc'`);
        return z.NEVER;
      }),
    ),
  ),
  fields: z.optional(z.string()),
  detail: z.optional(boolParam('detail')),
};
const collectionSchema = z.object(collectionQuery);
export type CollectionQuery = z.infer<typeof collectionSchema>;

/** `fields=a,b` as a checked list (undefined when not asked for). */
export function requestedFields(raw: string | undefined, allowed: readonly string[]): string[] | undefined {
  if (raw === undefined) return undefined;
  const fields = raw
    .split(',')
    .map((f) => f.trim())
    .filter(Boolean);
  const bad = fields.filter((f) => !allowed.includes(f));
  if (bad.length) throw new ValidationError(`Field(s) "${bad.join(', ')}" are not valid`, 'INVALID_PARAMETER_VALUE');
  return fields;
}

export interface CollectionSpec<T> {
  /** 'Node', 'Port': names the unknown marker (`Node X could not be found.`). */
  kind: string;
  id(item: T): string;
  /** An item's value for a sort key (`id` means creation order). */
  value(item: T, key: string): Scalar;
  /** Keys `sort_key` accepts besides `id` (upstream refuses dict-valued fields). */
  sortable: readonly string[];
  /** Every field `fields=` may name. */
  fields: readonly string[];
  maxLimit: number;
  /** The query parameters carried into the `next` link, in this order, as the client gave them. */
  carried: readonly string[];
}

export interface CollectionPage<T> {
  items: T[];
  /** The requested fields, validated; undefined for the route's default shape. */
  fields?: string[];
  /** The query string of the next page (`…&limit=N&marker=<uuid>`) when this page is full. */
  next?: string;
}

/**
 * One page of `visible` (every item the caller may see) after `filter`, by the query. `detail`
 * says whether the route already shows details (then `fields` is refused, as upstream does).
 */
export function collectionPage<T>(
  visible: readonly T[],
  filter: (item: T) => boolean,
  q: CollectionQuery,
  raw: Record<string, string | undefined>,
  spec: CollectionSpec<T>,
  detail: boolean,
  /**
   * A page read from an index with a bounded amount of work (issue 16) may stop before it is
   * full: the id of the last item it read, for the `next` link (the walk continues after it).
   */
  continueAfter?: string,
): CollectionPage<T> {
  if (q.fields !== undefined && (detail || q.detail)) throw new ValidationError("Can't fetch a subset of fields with 'detail' set", 'INVALID_PARAMETER_VALUE');
  const fields = requestedFields(q.fields, spec.fields);
  const sortKey = q.sort_key ?? 'id';
  if (sortKey !== 'id' && !spec.sortable.includes(sortKey)) {
    throw new ValidationError(`The sort_key value "${sortKey}" is an invalid field for sorting`, 'INVALID_PARAMETER_VALUE');
  }
  const limit = Math.min(q.limit ?? spec.maxLimit, spec.maxLimit);
  let marker: T | undefined;
  if (q.marker !== undefined) {
    marker = visible.find((i) => spec.id(i) === q.marker);
    if (!marker) throw new NotFoundError(`${spec.kind} ${q.marker} could not be found.`);
  }
  const desc = q.sort_dir === 'desc';
  const order = (a: T, b: T) => {
    const c = compare(spec.value(a, sortKey), spec.value(b, sortKey)) || spec.id(a).localeCompare(spec.id(b));
    return desc ? -c : c;
  };
  const wanted = visible.filter(filter).sort(order);
  const items = (marker ? wanted.filter((i) => order(i, marker) > 0) : wanted).slice(0, limit);

  let next: string | undefined;
  const last = items.length > 0 && items.length === limit ? spec.id(items.at(-1)!) : continueAfter;
  if (last !== undefined) {
    const args = spec.carried.filter((k) => raw[k] !== undefined).map((k) => `${k}=${encodeURIComponent(raw[k]!)}&`);
    next = `${args.join('')}limit=${limit}&marker=${last}`;
  }
  return { items, ...(fields ? { fields } : {}), ...(next ? { next } : {}) };
}

/** Nulls first ascending, as upstream's database orders them. */
function compare(a: Scalar, b: Scalar): number {
  if (a === b) return 0;
  if (a === null) return -1;
  if (b === null) return 1;
  if (typeof a === 'boolean' || typeof b === 'boolean') return Number(a) - Number(b);
  return a < b ? -1 : 1;
}
