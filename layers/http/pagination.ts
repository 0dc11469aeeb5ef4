import { NotFoundError, ValidationError } from '#core/errors.ts';

/**
 * Sahara v1.1 list conventions (upstream-apis.md §5.3): `limit`, `marker`, `sort_by` (with `-`
 * for descending) and equality filters on listed fields. Lists are small enough (nodes, leases
 * of a site) to be sorted in memory, which also gives a stable `id` tie-breaker that upstream
 * lacks (without it, equal sort keys can skip or repeat rows across pages).
 */
export interface ListQuery {
  limit?: string;
  marker?: string;
  sort_by?: string;
  [filter: string]: string | undefined;
}

export interface ListOptions<T> {
  /** Fields accepted by `sort_by`. */
  sortable: readonly string[];
  /** Fields accepted as equality filters (`?status=ACTIVE`). */
  filterable: readonly string[];
  /** Reads a field for sorting and filtering (defaults to a property read). */
  field?: (item: T, name: string) => unknown;
}

export interface Page<T> {
  items: T[];
  /** Present iff prev or next is non-null or the request carried a marker (upstream rule). */
  markers?: { prev: string | null; next: string | null };
}

const RESERVED = new Set(['limit', 'marker', 'sort_by']);

export const mapPage = <A, B>(p: Page<A>, f: (a: A) => B): Page<B> => ({ items: p.items.map(f), ...(p.markers ? { markers: p.markers } : {}) });

function compare(a: unknown, b: unknown): number {
  if (a === b) return 0;
  if (a === undefined || a === null) return -1;
  if (b === undefined || b === null) return 1;
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  if (typeof a === 'boolean' && typeof b === 'boolean') return Number(a) - Number(b);
  return String(a) < String(b) ? -1 : 1;
}

export function paginate<T extends { id: string }>(all: readonly T[], query: ListQuery, opts: ListOptions<T>): Page<T> {
  const field = opts.field ?? ((item: T, name: string) => (item as Record<string, unknown>)[name]);

  const unknown = Object.keys(query).filter((k) => !RESERVED.has(k) && !opts.filterable.includes(k));
  if (unknown.length > 0) {
    throw new ValidationError(`Unsupported query parameter(s): ${unknown.sort().join(', ')}`, 'INVALID_PARAMS_ON_REQUEST');
  }

  let limit: number | undefined;
  if (query.limit !== undefined) {
    if (!/^\d+$/.test(query.limit) || Number(query.limit) <= 0) {
      throw new ValidationError("'limit' must be positive integer", 400);
    }
    limit = Number(query.limit);
  }

  let sortField = 'id';
  let descending = false;
  if (query.sort_by !== undefined && query.sort_by !== '') {
    descending = query.sort_by.startsWith('-');
    sortField = descending ? query.sort_by.slice(1) : query.sort_by;
    if (!opts.sortable.includes(sortField)) throw new ValidationError(`Unknown field for sorting ${sortField}`, 400);
  }

  const filters = Object.entries(query).filter(([k, v]) => !RESERVED.has(k) && v !== undefined) as [string, string][];
  const items = all
    .filter((item) => filters.every(([k, v]) => String(field(item, k) ?? '') === v))
    .sort((a, b) => {
      const c = compare(field(a, sortField), field(b, sortField));
      const primary = descending ? -c : c;
      return primary !== 0 ? primary : compare(a.id, b.id); // the tie-breaker
    });

  let from = 0;
  if (query.marker !== undefined) {
    const p = items.findIndex((i) => i.id === query.marker);
    if (p < 0) throw new NotFoundError(`Object with {'id': '${query.marker}'} not found`);
    from = p + 1;
  }
  if (limit === undefined) {
    const page = items.slice(from);
    return query.marker !== undefined ? { items: page, markers: { prev: null, next: null } } : { items: page };
  }

  const page = items.slice(from, from + limit);
  const n = items.length;
  let next: string | null;
  let prev: string | null = null;
  if (query.marker === undefined) {
    next = n > limit ? (items[limit - 1]?.id ?? null) : null;
  } else {
    // Upstream quirk kept on purpose: with a marker, a full page that ends exactly at the last
    // item still names it as `next` (the following page is then empty).
    const p = from - 1;
    next = p + limit < n ? (items[p + limit]?.id ?? null) : null;
    prev = p - limit >= 0 ? (items[p - limit]?.id ?? null) : null;
  }
  if (prev === null && next === null && query.marker === undefined) return { items: page };
  return { items: page, markers: { prev, next } };
}

/**
 * True when a list query can be served as a keyset window straight from an index ordered by
 * id: a `limit`, the default sort (or `sort_by=id`) and no filters. Everything else goes
 * through `paginate` over the whole (visible) collection.
 */
export function isKeysetQuery(query: ListQuery): boolean {
  return (
    query.limit !== undefined &&
    (query.sort_by === undefined || query.sort_by === '' || query.sort_by === 'id') &&
    Object.keys(query).every((k) => RESERVED.has(k))
  );
}

export interface KeysetSource<T> {
  /** The `limit` items after / just before an id, in ascending id order. */
  window(range: { limit: number; after?: string; before?: string }): Promise<T[]>;
  /** Whether the marker names an object the caller may see. */
  exists(id: string): Promise<boolean>;
}

/**
 * The same Sahara rules as `paginate`, computed with at most two index windows instead of the
 * whole collection: the page plus one look-ahead item, and with a marker the `limit` items
 * before it for `prev`.
 */
export async function keysetPage<T extends { id: string }>(query: ListQuery, src: KeysetSource<T>): Promise<Page<T>> {
  if (!/^\d+$/.test(query.limit ?? '') || Number(query.limit) <= 0) {
    throw new ValidationError("'limit' must be positive integer", 400);
  }
  const limit = Number(query.limit);
  const marker = query.marker;
  if (marker === undefined) {
    const items = await src.window({ limit: limit + 1 });
    const page = items.slice(0, limit);
    return items.length > limit ? { items: page, markers: { prev: null, next: page[limit - 1]!.id } } : { items: page };
  }
  if (!(await src.exists(marker))) throw new NotFoundError(`Object with {'id': '${marker}'} not found`);
  const [page, before] = await Promise.all([src.window({ limit, after: marker }), src.window({ limit, before: marker })]);
  return {
    items: page,
    markers: {
      // Upstream: next is the item `limit` places after the marker whenever it exists.
      prev: before.length === limit ? before[0]!.id : null,
      next: page.length === limit ? page[limit - 1]!.id : null,
    },
  };
}
