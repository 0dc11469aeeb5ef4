import { ValidationError } from '../errors.ts';

/**
 * Paging for the upstream lists that have none (Drydock `GET /tasks` and `GET /designs`,
 * Commissaire `GET /hosts`; issue 16). Upstream answers the whole collection as a bare JSON
 * array; so do we while it fits one window, and clients that send nothing see no difference.
 * Beyond that, the body stays a bare array (the clients parse nothing else) and the way on is an
 * RFC 8288 `Link` header, as array-shaped APIs do it: `rel="next"` with `?limit=L&marker=<id>`.
 * `limit` above the list's maximum is lowered to it (as Ironic's `max_limit`), never refused.
 */
export interface ListWindow {
  /** Items in this answer (the list's maximum when the client named none). */
  limit: number;
  /** Exclusive start: the id (or address) of the last item of the previous page. */
  marker?: string;
  /** True when the client sent `limit` or `marker`, i.e. it pages. */
  paging: boolean;
}

export interface ListPage<T> {
  items: T[];
  /** Marker of the following page, when there are items after this one. */
  next?: string;
  /** True when the default window left older items out (they are reached by paging from the start). */
  truncated?: boolean;
  limit: number;
}

/** `limit` and `marker` of a list request; other parameters are ignored, as upstream ignores them. */
export function parseListWindow(query: Record<string, string | undefined>, max: number): ListWindow {
  let limit = max;
  if (query.limit !== undefined) {
    if (!/^\d+$/.test(query.limit) || Number(query.limit) <= 0) throw new ValidationError("'limit' must be a positive integer", 'INVALID_REQUEST');
    limit = Math.min(max, Number(query.limit));
  }
  const marker = query.marker === undefined || query.marker === '' ? undefined : query.marker;
  return { limit, ...(marker !== undefined ? { marker } : {}), paging: query.limit !== undefined || marker !== undefined };
}

/**
 * A page from a window read one item long (`limit + 1`): the extra item only says that more
 * follow. `newest` windows were read from the end, so their extra item is the first one.
 */
export function pageOf<T>(read: T[], limit: number, idOf: (t: T) => string, newest = false): ListPage<T> {
  if (read.length <= limit) return { items: read, limit };
  if (newest) return { items: read.slice(read.length - limit), truncated: true, limit };
  const items = read.slice(0, limit);
  return { items, next: idOf(items[limit - 1]!), limit };
}

/** The `Link` header of a page: the following page, or where the whole list starts. */
export function pageLinks(path: string, page: Pick<ListPage<unknown>, 'next' | 'truncated' | 'limit'>): Record<string, string> | undefined {
  if (page.next !== undefined) return { Link: `<${path}?limit=${page.limit}&marker=${encodeURIComponent(page.next)}>; rel="next"` };
  if (page.truncated) return { Link: `<${path}?limit=${page.limit}>; rel="first"` };
  return undefined;
}
