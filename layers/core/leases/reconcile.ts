import type { Lease } from './model.ts';
import type { Allocation } from '../inventory/node.ts';
import type { Ports } from '../ports.ts';
import { log } from '../util/log.ts';

/**
 * Repairs node calendars after an interrupted multi-step booking (DESIGN.md §6 invariant 6:
 * a multi-item change is one transaction or is reconciled). For every (node, reservation) pair
 * the wanted state is what the lease says: the lease window if the reservation lists the node,
 * else nothing. Entries of a booking still in progress (recent `held_at`) are left alone.
 * Repairs only ever shrink to a window the node already holds, so they cannot double-book.
 * Entries an ended lease released are dropped once the cleaning gap after them has passed.
 */
export async function reconcileCalendars(deps: Ports, graceMs = 5 * 60_000): Promise<{ repaired: number }> {
  const now = deps.clock.now().getTime();
  const leases = new Map<string, Lease | undefined>();
  const leaseOf = async (id: string) => {
    if (!leases.has(id)) leases.set(id, await deps.leases.get(id));
    return leases.get(id);
  };
  let repaired = 0;
  for (const node of await deps.nodes.list({ consistent: true })) {
    const groups = new Map<string, [string, Allocation][]>();
    for (const [key, a] of Object.entries(node.allocations)) {
      const g = groups.get(a.reservation_id) ?? [];
      g.push([key, a]);
      groups.set(a.reservation_id, g);
    }
    for (const [rid, entries] of groups) {
      // An ended lease's entry is kept through the cleaning gap after its end, then dropped.
      const released = entries.filter(([, a]) => a.released_at && Date.parse(a.end) + deps.config.cleaningMinutes * 60_000 <= now);
      if (released.length > 0 && released.length === entries.length) {
        await deps.nodes.rewriteAllocations(node.id, [], released.map(([k]) => k));
        repaired++;
        continue;
      }
      if (entries.some(([, a]) => a.held_at && now - Date.parse(a.held_at) < graceMs)) continue;
      const lease = await leaseOf(entries[0]![1].lease_id);
      const res = lease?.reservations.find((r) => r.id === rid);
      const wanted = lease && res?.node_ids.includes(node.id) ? { start: lease.start_date, end: lease.end_date } : undefined;
      const clean = entries.length === 1 && entries[0]![0] === rid && !entries[0]![1].held_at;
      if (wanted && clean && entries[0]![1].start === wanted.start && entries[0]![1].end === wanted.end) continue;
      const match = wanted && entries.find(([, a]) => a.start === wanted.start && a.end === wanted.end);
      if (wanted && !match) {
        log.warn('calendar entry differs from its lease and no held window matches; left as is', { node_id: node.id, reservation_id: rid });
        continue;
      }
      const set = match ? [{ ...match[1], held_at: undefined }] : [];
      const remove = entries.map(([k]) => k).filter((k) => !(match && k === rid));
      await deps.nodes.rewriteAllocations(node.id, set, remove);
      repaired++;
    }
  }
  if (repaired > 0) log.info('calendars reconciled', { repaired });
  return { repaired };
}
