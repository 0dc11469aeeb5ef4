import type { HostAllocations, PropertyView } from '#core/inventory/hosts.ts';
import type { Node } from '#core/inventory/node.ts';
import { pluginFor } from '#core/leases/host-plugin.ts';
import type { Lease } from '#core/leases/model.ts';
import type { PropertyRecord } from '#core/ports.ts';
import { blazarDate, blazarTimestamp } from '#core/util/time.ts';

/** Blazar's JSON shapes (upstream-apis.md §4.3): dates `%Y-%m-%dT%H:%M:%S.%f`, stamps `%Y-%m-%d %H:%M:%S`. */
export function blazarLease(l: Lease) {
  return {
    id: l.id,
    name: l.name,
    user_id: l.user_id,
    project_id: l.project_id,
    trust_id: l.trust_id,
    status: l.status,
    degraded: l.degraded || l.reservations.some((r) => r.missing_resources || r.resources_changed),
    start_date: blazarDate(l.start_date),
    end_date: blazarDate(l.end_date),
    created_at: blazarTimestamp(l.created_at),
    updated_at: blazarTimestamp(l.updated_at),
    reservations: l.reservations.map((r) => ({
      id: r.id,
      lease_id: r.lease_id,
      resource_type: r.resource_type,
      resource_id: r.resource_id,
      status: r.status,
      missing_resources: r.missing_resources,
      resources_changed: r.resources_changed,
      ...pluginFor(r.resource_type).view(r),
      created_at: blazarTimestamp(r.created_at),
      updated_at: blazarTimestamp(r.updated_at),
    })),
    events: l.events.map((e) => ({
      id: e.id,
      lease_id: e.lease_id,
      event_type: e.event_type,
      time: blazarDate(e.time),
      status: e.status,
      created_at: blazarTimestamp(e.created_at),
      updated_at: blazarTimestamp(e.updated_at),
      // Ours: why the event ended as it did (upstream keeps that in its logs only).
      status_reason: e.status_reason ?? null,
    })),
  };
}

export function blazarHost(n: Node) {
  return {
    // Extra capabilities first so that no capability can shadow a host column.
    ...n.extra,
    id: n.host_id,
    hypervisor_hostname: n.name,
    service_name: n.facts.service_name ?? n.name,
    hypervisor_type: n.facts.hypervisor_type ?? 'baremetal',
    hypervisor_version: n.facts.hypervisor_version ?? null,
    vcpus: n.facts.vcpus ?? null,
    cpu_info: n.facts.cpu_info ?? null,
    memory_mb: n.facts.memory_mb ?? null,
    local_gb: n.facts.local_gb ?? null,
    availability_zone: n.facts.availability_zone ?? null,
    reservable: n.reservable,
    status: null,
    trust_id: null,
    created_at: blazarTimestamp(n.created_at),
    updated_at: blazarTimestamp(n.updated_at),
  };
}

export function blazarAllocation(h: HostAllocations) {
  return {
    resource_id: h.host.host_id,
    reservations: h.allocations.map((a) => ({
      id: a.reservation_id,
      lease_id: a.lease_id,
      start_date: blazarDate(a.start),
      end_date: blazarDate(a.end),
    })),
  };
}

export function blazarProperty(p: PropertyView, detail: boolean) {
  return detail ? { property: p.property, private: p.private, values: p.values } : { property: p.property };
}

export function blazarPropertyRecord(r: PropertyRecord) {
  return {
    id: r.id,
    resource_type: r.resource_type,
    property_name: r.property_name,
    private: r.private,
    created_at: blazarTimestamp(r.created_at),
    updated_at: blazarTimestamp(r.updated_at),
  };
}
