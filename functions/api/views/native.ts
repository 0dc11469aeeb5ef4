import type { Node } from '#core/inventory/node.ts';
import { pluginFor } from '#core/leases/host-plugin.ts';
import type { Lease } from '#core/leases/model.ts';

/**
 * Native (`/v1.1`) shapes: ISO-8601 UTC timestamps, flat objects with an `id` for
 * Sahara-style paging. Nodes carry their facts at the top level so they sort and filter.
 */
export function nativeNode(n: Node) {
  return {
    id: n.id,
    name: n.name,
    host_id: n.host_id ?? null,
    reservable: n.reservable,
    vcpus: n.facts.vcpus ?? null,
    memory_mb: n.facts.memory_mb ?? null,
    local_gb: n.facts.local_gb ?? null,
    cpu_info: n.facts.cpu_info ?? null,
    hypervisor_type: n.facts.hypervisor_type ?? null,
    availability_zone: n.facts.availability_zone ?? null,
    extra_capabilities: n.extra,
    addresses: n.addresses,
    allocations: Object.values(n.allocations)
      .sort((a, b) => a.start.localeCompare(b.start))
      .map((a) => ({
        lease_id: a.lease_id,
        reservation_id: a.reservation_id,
        project_id: a.project_id,
        start: a.start,
        end: a.end,
        // Set while the lease runs (its project holds the node), and once it ended (cleaning gap).
        granted_at: a.granted_at && !a.released_at ? a.granted_at : null,
        released_at: a.released_at ?? null,
      })),
    created_at: n.created_at,
    updated_at: n.updated_at,
  };
}

export function nativeLease(l: Lease) {
  return {
    id: l.id,
    name: l.name,
    project_id: l.project_id,
    user_id: l.user_id,
    status: l.status,
    degraded: l.degraded,
    start_date: l.start_date,
    end_date: l.end_date,
    created_at: l.created_at,
    updated_at: l.updated_at,
    reservations: l.reservations.map((r) => ({
      id: r.id,
      resource_type: r.resource_type,
      status: r.status,
      ...pluginFor(r.resource_type).view(r),
      nodes: r.node_ids,
    })),
    events: l.events.map((e) => ({ id: e.id, event_type: e.event_type, time: e.time, status: e.status, status_reason: e.status_reason ?? null })),
  };
}

export const NODE_SORT = ['id', 'name', 'host_id', 'vcpus', 'memory_mb', 'local_gb', 'created_at', 'updated_at'] as const;
export const NODE_FILTERS = ['name', 'host_id', 'reservable', 'hypervisor_type', 'availability_zone'] as const;
export const LEASE_SORT = ['id', 'name', 'status', 'start_date', 'end_date', 'created_at', 'updated_at', 'project_id'] as const;
export const LEASE_FILTERS = ['name', 'status', 'project_id', 'user_id'] as const;
