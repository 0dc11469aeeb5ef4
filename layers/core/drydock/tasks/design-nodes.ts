import { randomUUID } from 'node:crypto';
import { ConcurrentModificationError, ConflictError, DomainError } from '../../errors.ts';
import { ensurePort } from '../../ironic/bm-ports.ts';
import { type BmcInfo, newNode, type Node } from '../../inventory/node.ts';
import type { Ports } from '../../ports.ts';
import { isSealed, sealSecrets } from '../../secrets.ts';
import type { ResolvedNode } from '../design/index.ts';

/**
 * Design nodes in the inventory (issue 5, part 1): every node a task works on is registered
 * with the BMC its design gives (`oob`), so the agent can drive it and the other surfaces
 * (Ironic, Blazar) see the same machine.
 *
 * | oob key | ipmi | redfish |
 * |---|---|---|
 * | `type` | driver `ipmi` | driver `redfish` |
 * | address on the `network` (from `addressing`) | `ipmi_address` | host of `redfish_address` |
 * | `port` (ours) | `ipmi_port` | port of `redfish_address` |
 * | `account`, `credential` | `ipmi_username`, `ipmi_password` (sealed) | `redfish_username`, `redfish_password` (sealed) |
 * | `credential_ref` (ours) | the agent resolves the credential on-prem | same |
 * | `scheme` (ours, `https` by default), `system_id`, `verify_ca` (ours) | — | `redfish_address` scheme, `redfish_system_id`, `redfish_verify_ca` |
 *
 * The node's `conductor_group` is the site (the design's Region), so its jobs go to that
 * site's agent. A registration that differs from the stored one replaces it; an identical one
 * writes nothing. Addresses given in the design replace the node's addresses.
 */
export class DesignNodeError extends Error {
  override name = 'DesignNodeError';
}

/** The BMC registration a design node asks for (secrets still plain). */
export function designBmc(node: ResolvedNode, site: string): Pick<BmcInfo, 'driver' | 'driver_info' | 'conductor_group'> {
  const oob = node.oob;
  const extra = (node.data.oob ?? {}) as Record<string, unknown>;
  if (oob.type !== 'ipmi' && oob.type !== 'redfish') {
    throw new DesignNodeError(`Node ${node.name}: OOB type ${oob.type ?? '(none)'} has no enabled driver (ipmi and redfish are)`);
  }
  if (!oob.address) throw new DesignNodeError(`Node ${node.name}: no static address on its OOB network ${oob.network ?? '(none)'}`);
  const credentialRef = typeof extra.credential_ref === 'string' ? extra.credential_ref : undefined;
  if (oob.type === 'ipmi') {
    return {
      driver: 'ipmi',
      conductor_group: site,
      driver_info: clean({
        ipmi_address: oob.address,
        ipmi_port: oob.port,
        ipmi_username: oob.account ?? undefined,
        ipmi_password: oob.credential ?? undefined,
        credential_ref: credentialRef,
      }),
    };
  }
  const scheme = extra.scheme === 'http' ? 'http' : 'https';
  const host = oob.address.includes(':') ? `[${oob.address}]` : oob.address;
  return {
    driver: 'redfish',
    conductor_group: site,
    driver_info: clean({
      redfish_address: `${scheme}://${host}${oob.port ? `:${oob.port}` : ''}`,
      redfish_system_id: typeof extra.system_id === 'string' ? extra.system_id : undefined,
      redfish_username: oob.account ?? undefined,
      redfish_password: oob.credential ?? undefined,
      redfish_verify_ca: typeof extra.verify_ca === 'boolean' ? extra.verify_ca : undefined,
      credential_ref: credentialRef,
    }),
  };
}

const clean = (o: Record<string, unknown>) => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));

/**
 * Whether the stored BMC already is what the design asks for. Sealed values differ on every
 * seal, so stored secrets are opened and compared (no digest of a password is ever stored).
 */
async function sameRegistration(deps: Ports, bmc: BmcInfo, want: Pick<BmcInfo, 'driver' | 'driver_info' | 'conductor_group'>): Promise<boolean> {
  if (bmc.driver !== want.driver || bmc.conductor_group !== want.conductor_group) return false;
  const keys = new Set([...Object.keys(bmc.driver_info), ...Object.keys(want.driver_info)]);
  for (const k of keys) {
    const stored = bmc.driver_info[k];
    const plain = isSealed(stored) ? await deps.secrets.open('bmc-password', stored.$sealed).catch(() => undefined) : stored;
    if (plain !== want.driver_info[k]) return false;
  }
  return true;
}

/**
 * Registers (or updates) the node and its BMC from the design, and its `boot_mac` as a PXE port
 * (what upstream gives MaaS to recognise the machine; here `baremetal port list` shows it);
 * returns the inventory node.
 */
export async function registerDesignNode(deps: Ports, node: ResolvedNode, site: string): Promise<Node> {
  const registered = await registerBmc(deps, node, site);
  if (node.boot_mac) {
    try {
      await ensurePort(deps, registered.id, node.boot_mac, { source: 'drydock' });
    } catch (err) {
      if (err instanceof DomainError) throw new DesignNodeError(`Node ${node.name}: boot_mac: ${err.message}`);
      throw err;
    }
  }
  return registered;
}

async function registerBmc(deps: Ports, node: ResolvedNode, site: string): Promise<Node> {
  const want = designBmc(node, site);
  const addresses = node.addresses.filter((a) => a.address !== 'dhcp').map((a) => ({ network: a.network, address: a.address }));
  for (let attempt = 0; attempt < 5; attempt++) {
    const existing = await deps.nodes.getByName(node.name);
    if (existing?.bmc && (await sameRegistration(deps, existing.bmc, want))) return existing;
    const bmc: BmcInfo = {
      power_state: null,
      target_power_state: null,
      provision_state: 'manageable',
      last_error: null,
      maintenance: false,
      maintenance_reason: null,
      properties: {},
      ...(existing?.bmc ?? {}),
      driver: want.driver,
      conductor_group: want.conductor_group,
      driver_info: await sealSecrets(deps.secrets, want.driver_info),
      extra: existing?.bmc?.extra ?? {},
    };
    try {
      if (existing) return await deps.nodes.update(existing.id, existing.version, { bmc, addresses });
      return await deps.nodes.create(newNode({ id: randomUUID(), name: node.name, addresses, bmc, created_at: deps.clock.now().toISOString() }));
    } catch (err) {
      if (err instanceof ConcurrentModificationError || (err instanceof ConflictError && err.errorName === 'DUPLICATE_NAME')) continue;
      throw err;
    }
  }
  throw new ConcurrentModificationError(`Node ${node.name} was modified concurrently while registering it`);
}
