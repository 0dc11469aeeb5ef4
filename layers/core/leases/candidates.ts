import { randomUUID } from 'node:crypto';
import { NotEnoughHostsError } from '../errors.ts';
import type { Node } from '../inventory/node.ts';
import type { HostScanPage, Ports } from '../ports.ts';
import type { AllocationRequest, ResourcePlugin } from './plugin.ts';

/**
 * The nodes a lease write plans with (issue 16: every request reads what its answer needs, not
 * the fleet). For each reservation it reads candidates from the host pool, or from the
 * capability index when its filter requires `$key == value`, starting at a random host id and
 * wrapping, until it has as many free candidates as the reservation could take (`room`, i.e.
 * `max`) or the pool is read to its end; plus the nodes the reservations hold already.
 *
 * The plan is still checked by the booking transaction (each node's version), so a stale or
 * partial read can only lose a race, never double-book. The random start spreads concurrent
 * creates over the free hosts, so that they seldom race for the same ones.
 *
 * A view that did not read the whole pool is `complete: false`: when `allocate` finds too few
 * hosts in it, the caller plans again with the whole inventory (`deps.nodes.list`). That full
 * read happens only on the failure path, and it is what counts the hosts in the 409's message
 * (in maintenance, inside the cleaning gap).
 */
export interface AllocationView {
  nodes: Node[];
  complete: boolean;
}

export interface ViewRequest {
  plugin: ResourcePlugin;
  req: Omit<AllocationRequest, 'nodes'>;
}

/** First page size: the room plus a margin for hosts found busy; later pages double. */
const firstPage = (room: number) => Math.min(100, room + 8);
const MAX_PAGE = 400;

export async function allocationView(deps: Ports, wants: readonly ViewRequest[], consistent: boolean): Promise<AllocationView> {
  const byId = new Map<string, Node>();
  const held = wants.flatMap((w) => [...w.req.current, ...(w.req.replace ?? [])]);
  if (held.length > 0) for (const n of await deps.nodes.getMany(held, consistent)) byId.set(n.id, n);
  let complete = true;
  // Reservations of one lease take disjoint hosts: a later one needs room beyond the earlier ones'.
  let before = 0;
  for (const { plugin, req } of wants) {
    const want = plugin.wants(req);
    const room = want.room + before;
    before = room;
    if (want.room === 0) continue;
    let found = [...byId.values()].filter(want.fits).length;
    const q = { ...(want.capability ? { capability: want.capability } : {}), from: randomUUID(), consistent };
    let cursor: unknown;
    let limit = firstPage(room);
    let exhausted = false;
    // Nodes too large to index hold their capabilities outside the index (normally none): read
    // alongside the first page.
    const [first, unindexed] = await Promise.all([
      found < room ? deps.nodes.scanHosts(q, cursor, limit) : undefined,
      want.capability ? deps.nodes.unindexed() : [],
    ]);
    for (const n of unindexed) {
      if (!byId.has(n.id) && want.fits(n)) found++;
      byId.set(n.id, byId.get(n.id) ?? n);
    }
    let page: HostScanPage | undefined = first;
    while (page) {
      for (const n of page.nodes) {
        if (byId.has(n.id)) continue;
        byId.set(n.id, n);
        if (want.fits(n)) found++;
      }
      cursor = page.cursor;
      if (cursor === undefined) {
        exhausted = true;
        break;
      }
      limit = Math.min(MAX_PAGE, limit * 2);
      page = found < room ? await deps.nodes.scanHosts(q, cursor, limit) : undefined;
    }
    if (!exhausted) complete = false;
  }
  return { nodes: [...byId.values()], complete };
}

/**
 * Plans with the view, and when the view was partial and too small, once more with the whole
 * inventory (the failure path: exact counts for the refusal, and hosts an index may have missed).
 */
export async function withAllocationView<T>(deps: Ports, wants: readonly ViewRequest[], consistent: boolean, plan: (nodes: Node[]) => T): Promise<T> {
  const view = await allocationView(deps, wants, consistent);
  try {
    return plan(view.nodes);
  } catch (err) {
    if (!(err instanceof NotEnoughHostsError) || view.complete) throw err;
  }
  return plan(await deps.nodes.list({ consistent }));
}
