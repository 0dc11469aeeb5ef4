import { BootActionAssetError } from './errors.ts';
import { nodeKeyHex } from './keys.ts';

/**
 * The template context (upstream-apis.md §1.6.5), exactly the fields upstream's
 * `BootActionAsset._get_template_context` builds, nothing more:
 *
 * | variable | value |
 * |---|---|
 * | `node.hostname` | node name |
 * | `node.domain` | DNS domain of the primary network (`local` when it has none) |
 * | `node.tags` | list |
 * | `node.labels` | the node's `owner_data` map |
 * | `node.network.<net>.ip` / `.cidr` / `.dns_suffix` | per statically addressed network; `node.network.default` = the primary network's entry |
 * | `node.interfaces.<dev>.sriov` (+ `vf_count`, `trustedmode` when SR-IOV) | per interface |
 * | `action.action_id` | ULID |
 * | `action.action_key` | node key, hex |
 * | `action.report_url` | configured report URL |
 * | `action.design_ref` | design ref of the deploy task |
 */

export interface NetworkContext {
  ip: string;
  cidr: string;
  dns_suffix: string;
}

export interface InterfaceContext {
  sriov: boolean;
  vf_count?: number;
  trustedmode?: boolean;
}

export interface NodeTemplateContext {
  hostname: string;
  domain: string;
  tags: string[];
  labels: Record<string, string>;
  network: Record<string, NetworkContext>;
  interfaces: Record<string, InterfaceContext>;
}

export interface ActionTemplateContext {
  action_id: string;
  action_key: string;
  report_url: string;
  design_ref: string;
}

export interface TemplateContext {
  node: NodeTemplateContext;
  action: ActionTemplateContext;
}

/**
 * What the node context is made from: the node's effective design (after host-profile
 * inheritance). Structurally the `ResolvedNode` of `../design/resolve.ts`, so a resolved node
 * can be passed as it is.
 */
export interface NodeContextSource {
  name: string;
  tags: readonly string[];
  /** `metadata.owner_data`. */
  labels: Readonly<Record<string, string>>;
  primary_network: string | null;
  /** `addressing`: an IP, or `dhcp` for a dynamically addressed network (left out). */
  addresses: readonly { network: string; address: string }[];
  /** Interfaces by device name; `null` is one removed from an inherited profile. */
  data: { interfaces?: Readonly<Record<string, { sriov?: { vf_count?: number; trustedmode?: boolean } } | null>> };
}

/** The site's Network documents' data, by name (`dns.domain` defaults to `local`). */
export type NetworkLookup = (name: string) => { cidr: string; dns?: { domain?: string } } | undefined;

/**
 * The `node` part of the context. Mirrors upstream: only networks with a static address appear,
 * `default` is the primary network's entry, a network without a DNS domain has `local` (the
 * Network document's default) for `domain` and `dns_suffix` alike, and an interface with an
 * `sriov` block has `sriov: true` plus `vf_count` (default 0) and `trustedmode` (default false).
 */
export function nodeTemplateContext(node: NodeContextSource, networks: NetworkLookup): NodeTemplateContext {
  const network: Record<string, NetworkContext> = {};
  for (const a of node.addresses) {
    if (a.address === 'dhcp') continue;
    const net = networks(a.network);
    if (!net) throw new BootActionAssetError(`Node ${node.name} is addressed on unknown network ${a.network}`);
    network[a.network] = { ip: a.address, cidr: net.cidr, dns_suffix: net.dns?.domain || 'local' };
    if (a.network === node.primary_network) network.default = network[a.network] as NetworkContext;
  }
  const interfaces: Record<string, InterfaceContext> = {};
  for (const [device, iface] of Object.entries(node.data.interfaces ?? {})) {
    if (iface === null) continue;
    const sriov = iface.sriov;
    interfaces[device] = sriov ? { sriov: true, vf_count: sriov.vf_count ?? 0, trustedmode: sriov.trustedmode ?? false } : { sriov: false };
  }
  const primary = node.primary_network ? networks(node.primary_network) : undefined;
  return {
    hostname: node.name,
    domain: primary?.dns?.domain || 'local',
    tags: [...node.tags],
    labels: { ...node.labels },
    network,
    interfaces,
  };
}

/** The `action` part of the context, from the raw node key (rendered as lower-case hex). */
export function actionTemplateContext(action: {
  actionId: string;
  nodeKey: Uint8Array;
  reportUrl: string;
  designRef: string;
}): ActionTemplateContext {
  return {
    action_id: action.actionId,
    action_key: nodeKeyHex(action.nodeKey),
    report_url: action.reportUrl,
    design_ref: action.designRef,
  };
}
