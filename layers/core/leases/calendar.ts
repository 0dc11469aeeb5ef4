import { ConcurrentModificationError } from '../errors.ts';
import type { Allocation, Node } from '../inventory/node.ts';
import type { AllocationChange } from '../ports.ts';

/** Applies reservation plans to an in-memory copy of the calendars and computes the writes. */
export class CalendarPlan {
  private readonly nodes = new Map<string, Node>();
  private readonly touched = new Map<string, AllocationChange>();

  constructor(nodes: Node[]) {
    for (const n of nodes) this.nodes.set(n.id, { ...n, allocations: { ...n.allocations } });
  }

  view(): Node[] {
    return [...this.nodes.values()];
  }

  private change(nodeId: string): AllocationChange {
    let c = this.touched.get(nodeId);
    if (!c) {
      const n = this.nodes.get(nodeId);
      if (!n) throw new ConcurrentModificationError(`Node ${nodeId} disappeared`);
      c = { nodeId, expectedVersion: n.version, set: [], remove: [] };
      this.touched.set(nodeId, c);
    }
    return c;
  }

  /** Sets the reservation's allocations to exactly `nodeIds` for the window. */
  /**
   * `grantedAt`: set on nodes newly added to a running reservation (they join it at once,
   * upstream); nodes it already held keep their grant.
   */
  assign(reservationId: string, previous: readonly string[], nodeIds: readonly string[], alloc: Omit<Allocation, 'reservation_id'>, grantedAt?: string): void {
    const next = new Set(nodeIds);
    for (const id of previous) {
      if (next.has(id)) continue;
      this.change(id).remove.push(reservationId);
      delete this.nodes.get(id)!.allocations[reservationId];
    }
    for (const id of nodeIds) {
      const current = this.nodes.get(id)?.allocations[reservationId];
      const granted = current ? current.granted_at : grantedAt;
      const a: Allocation = { ...alloc, reservation_id: reservationId, ...(granted ? { granted_at: granted } : {}) };
      if (current && current.start === a.start && current.end === a.end && current.lease_id === a.lease_id) continue;
      this.change(id).set.push(a);
      this.nodes.get(id)!.allocations[reservationId] = a;
    }
  }

  changes(): AllocationChange[] {
    return [...this.touched.values()];
  }
}
