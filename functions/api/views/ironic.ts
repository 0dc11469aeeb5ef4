import type { Node } from '#core/inventory/node.ts';
import { maskSecrets } from '#core/secrets.ts';

/** Ironic's node shapes: the list summary and the detail, with secrets as `******`. */
export function ironicLinks(base: string, kind: string, id: string) {
  return [
    { href: `${base}/v1/${kind}/${id}`, rel: 'self' },
    { href: `${base}/${kind}/${id}`, rel: 'bookmark' },
  ];
}

export function ironicNodeSummary(n: Node, base: string) {
  return {
    uuid: n.id,
    name: n.name,
    instance_uuid: null,
    power_state: n.bmc?.power_state ?? null,
    provision_state: n.bmc?.provision_state ?? 'enroll',
    maintenance: n.bmc?.maintenance ?? false,
    links: ironicLinks(base, 'nodes', n.id),
  };
}

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
    extra: b?.extra ?? {},
    resource_class: (b?.extra?.resource_class as string | undefined) ?? null,
    created_at: n.created_at,
    updated_at: n.updated_at,
    provision_updated_at: b?.provision_updated_at ?? null,
  };
}

/** `fields=`: just the fields asked for (checked against IRONIC_NODE_FIELDS), and the links. */
export function ironicNodeFields(n: Node, base: string, fields: readonly string[]) {
  const full: Record<string, unknown> = ironicNode(n, base);
  return Object.fromEntries([...fields, 'links'].map((k) => [k, full[k]]));
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
