import { grantsOf, type Node, resourceClassOf } from '#core/inventory/node.ts';
import type { BaremetalPort } from '#core/ironic/model.ts';
import { maskSecrets } from '#core/secrets.ts';

/**
 * Ironic's node shapes: the list summary and the detail, with secrets as `******`. Render a node
 * as its viewer may see it (`nodeFor` in `#core/ironic/redact.ts`: no BMC identifiers for
 * non-admins).
 */
export function ironicLinks(base: string, kind: string, id: string) {
  return [
    { href: `${base}/v1/${kind}/${id}`, rel: 'self' },
    { href: `${base}/${kind}/${id}`, rel: 'bookmark' },
  ];
}

export function ironicNodeSummary(n: Node, base: string) {
  return {
    uuid: n.id,
    name: ironicName(n),
    instance_uuid: null,
    power_state: n.bmc?.power_state ?? null,
    provision_state: n.bmc?.provision_state ?? 'enroll',
    maintenance: n.bmc?.maintenance ?? false,
    links: ironicLinks(base, 'nodes', n.id),
  };
}

/** A node whose name was cleared (`PATCH /name` null) keeps its uuid as the inventory's name: no name for Ironic. */
export const ironicName = (n: Pick<Node, 'id' | 'name'>): string | null => (n.name === n.id ? null : n.name);

export function ironicNode(n: Node, base: string) {
  const b = n.bmc;
  return {
    ...ironicNodeSummary(n, base),
    driver: b?.driver ?? null,
    driver_info: maskSecrets(b?.driver_info ?? {}),
    conductor_group: b?.conductor_group ?? '',
    target_power_state: b?.target_power_state ?? null,
    target_provision_state: b?.target_provision_state ?? null,
    last_error: b?.last_error ?? null,
    maintenance_reason: b?.maintenance_reason ?? null,
    reservation: b?.reservation ?? null,
    console_enabled: false,
    properties: { ...(b?.properties ?? {}), ...factsAsProperties(n) },
    extra: extraOf(b?.extra),
    resource_class: resourceClassOf(n),
    automated_clean: b?.automated_clean ?? null,
    instance_info: b?.instance_info ?? {},
    // Upstream's owner is the project that owns the hardware (none here: the operator's); the
    // lessee is the project an active lease granted the node to.
    owner: null,
    lessee: grantsOf(n)[0] ?? null,
    created_at: n.created_at,
    updated_at: n.updated_at,
    provision_updated_at: b?.provision_updated_at ?? null,
    inspection_finished_at: b?.inspection_finished_at ?? null,
  };
}

/** `fields=`: just the fields asked for (already checked against the entity's list), and the links. */
const pick = (full: Record<string, unknown>, fields: readonly string[]) => Object.fromEntries([...fields, 'links'].map((k) => [k, full[k]]));

export const ironicNodeFields = (n: Node, base: string, fields: readonly string[]) => pick(ironicNode(n, base), fields);

/** Nodes registered before resource_class had its own field kept it in extra: not shown there. */
function extraOf(extra: Record<string, unknown> | undefined): Record<string, unknown> {
  const { resource_class: _rc, ...rest } = extra ?? {};
  return rest;
}

/** Inventory facts in Ironic's property names (cpus, memory_mb, local_gb). */
function factsAsProperties(n: Node): Record<string, unknown> {
  const p: Record<string, unknown> = {};
  if (n.facts.vcpus !== undefined) p.cpus = n.facts.vcpus;
  if (n.facts.memory_mb !== undefined) p.memory_mb = n.facts.memory_mb;
  if (n.facts.local_gb !== undefined) p.local_gb = n.facts.local_gb;
  return p;
}

export function ironicStates(n: Node) {
  const b = n.bmc;
  return {
    power_state: b?.power_state ?? null,
    target_power_state: b?.target_power_state ?? null,
    provision_state: b?.provision_state ?? 'enroll',
    target_provision_state: b?.target_provision_state ?? null,
    last_error: b?.last_error ?? null,
    console_enabled: false,
    provision_updated_at: b?.provision_updated_at ?? null,
    raid_config: {},
    target_raid_config: {},
  };
}

/** A port's list summary (upstream: uuid, address, links). */
export function ironicPortSummary(p: BaremetalPort, base: string) {
  return { uuid: p.uuid, address: p.address, links: ironicLinks(base, 'ports', p.uuid) };
}

export function ironicPort(p: BaremetalPort, base: string) {
  return {
    uuid: p.uuid,
    address: p.address,
    node_uuid: p.node_uuid,
    portgroup_uuid: null,
    extra: p.extra,
    local_link_connection: p.local_link_connection,
    pxe_enabled: p.pxe_enabled,
    physical_network: p.physical_network,
    internal_info: {},
    is_smartnic: p.is_smartnic,
    created_at: p.created_at,
    updated_at: p.updated_at,
    links: ironicLinks(base, 'ports', p.uuid),
  };
}

export const ironicPortFields = (p: BaremetalPort, base: string, fields: readonly string[]) => pick(ironicPort(p, base), fields);
