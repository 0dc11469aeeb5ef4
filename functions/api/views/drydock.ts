import type { Node } from '#core/inventory/node.ts';

/**
 * Drydock's `GET /nodes` entry (upstream-apis.md §1.1): upstream shows its node provisioner's
 * live view; ours is the inventory with what the agent last reported. `status_name` is the
 * node's provisioning state, `power_address` its BMC's address, `boot_mac` its PXE port's MAC.
 */
export function drydockNode({ node: n, bootMac }: { node: Node; bootMac: string | null }) {
  const info = n.bmc?.driver_info ?? {};
  return {
    hostname: n.name,
    memory: n.facts.memory_mb ?? null,
    cpu_count: n.facts.vcpus ?? null,
    status_name: n.bmc?.provision_state ?? null,
    boot_mac: bootMac,
    power_state: n.bmc?.power_state ?? null,
    power_address: (info.ipmi_address ?? info.redfish_address ?? null) as string | null,
    boot_ip: n.addresses[0]?.address ?? null,
  };
}
