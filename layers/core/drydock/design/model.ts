import * as z from '../../util/zod.ts';
import { NodeFilterSet } from './filter-schema.ts';

/**
 * The Drydock site design model (upstream-apis.md §1.7): the `data` of each document kind as
 * upstream's JSON schemas (`python/drydock_provisioner/schemas/*.yaml`) define it, with the
 * field names unchanged. Objects that upstream closes with `additionalProperties: false` are
 * strict here too, so a misspelt key is a DD001 schema error as it is upstream; the others
 * keep unknown keys.
 *
 * Defaults that upstream applies while ingesting (NetworkLink `mtu` 1500, bonding `mon_rate`
 * 100, Network `dns.domain` `local`, …) are not filled in: the model is the design as written
 * (upstream's `designed` source); consumers apply defaults where they use a value.
 */

export const KINDS = ['Region', 'Rack', 'Network', 'NetworkLink', 'HardwareProfile', 'HostProfile', 'BaremetalNode', 'BootAction'] as const;
export type Kind = (typeof KINDS)[number];

const str = z.string();
const strList = z.array(z.string());
/** Free-form labels (`labels: {}` on Rack, Network, NetworkLink: upstream allows any value). */
const labels = z.record(z.string(), z.unknown());

export const RegionData = z.strictObject({
  tag_definitions: z.optional(
    z.array(
      z.strictObject({
        tag: z.optional(str),
        definition_type: z.optional(z.enum(['lshw_xpath'])),
        definition: z.optional(str),
      }),
    ),
  ),
  authorized_keys: z.optional(strList),
  /** Top level is the repository class; `remove_unlisted` is the one fixed key. */
  repositories: z.optional(z.looseObject({ remove_unlisted: z.optional(z.boolean()) })),
});

export const RackData = z.strictObject({
  /** `{<switch name>: {mgmt_ip, sdn_api_url}}` as upstream's ingester reads it. */
  tor_switches: z.optional(z.record(z.string(), z.looseObject({ mgmt_ip: z.optional(str), sdn_api_url: z.optional(str) }))),
  location: z.optional(z.looseObject({ clli: z.optional(str), grid: z.optional(str) })),
  local_networks: z.optional(strList),
  labels: z.optional(labels),
});

export const NetworkData = z.strictObject({
  /** Required here: every upstream network validator parses it. */
  cidr: str,
  ranges: z.optional(
    z.array(
      z.strictObject({
        type: z.optional(z.enum(['static', 'dhcp', 'reserved'])),
        start: z.optional(str),
        end: z.optional(str),
      }),
    ),
  ),
  /** `servers` is a comma-separated list; `domain` defaults to `local` upstream. */
  dns: z.optional(z.strictObject({ domain: z.optional(str), servers: z.optional(str) })),
  dhcp_relay: z.optional(z.strictObject({ self_ip: z.optional(str), upstream_target: z.optional(str) })),
  mtu: z.optional(z.number()),
  /** A string upstream: quote it in YAML (`vlan: '102'`). */
  vlan: z.optional(str),
  routedomain: z.optional(str),
  routes: z.optional(
    z.array(
      z.strictObject({
        subnet: z.optional(str),
        gateway: z.optional(str),
        metric: z.optional(z.number()),
        routedomain: z.optional(str),
      }),
    ),
  ),
  labels: z.optional(labels),
});

export const BONDING_MODES = ['disabled', '802.3ad', 'active-backup', 'balance-rr'] as const;
export const TRUNKING_MODES = ['disabled', '802.1q'] as const;

export const NetworkLinkData = z.strictObject({
  bonding: z.optional(
    z.strictObject({
      mode: z.optional(z.enum(BONDING_MODES)),
      hash: z.optional(str),
      peer_rate: z.optional(str),
      mon_rate: z.optional(z.number()),
      up_delay: z.optional(z.number()),
      down_delay: z.optional(z.number()),
    }),
  ),
  mtu: z.optional(z.number()),
  linkspeed: z.optional(str),
  trunking: z.optional(z.strictObject({ mode: z.optional(z.enum(TRUNKING_MODES)), default_network: z.optional(str) })),
  allowed_networks: z.optional(strList),
  labels: z.optional(labels),
});

export const HardwareProfileData = z.strictObject({
  vendor: z.optional(str),
  generation: z.optional(str),
  hw_version: z.optional(str),
  bios_version: z.optional(str),
  boot_mode: z.optional(z.enum(['bios', 'uefi'])),
  bootstrap_protocol: z.optional(z.enum(['pxe', 'usb', 'hdd'])),
  pxe_interface: z.optional(z.number()),
  device_aliases: z.optional(z.record(z.string(), z.looseObject({ address: z.optional(str), dev_type: z.optional(str), bus_type: z.optional(str) }))),
  /** `{name: "2,4"}`: CPU lists referenced by `hardwareprofile:cpuset.<name>` kernel parameters. */
  cpu_sets: z.optional(z.record(z.string(), str)),
  hugepages: z.optional(z.record(z.string(), z.looseObject({ size: z.optional(str), count: z.optional(z.number()) }))),
});

const Filesystem = z.strictObject({
  mountpoint: z.optional(str),
  fstype: z.optional(str),
  mount_options: z.optional(str),
  fs_uuid: z.optional(str),
  fs_label: z.optional(str),
});

const Partition = z.strictObject({
  name: z.optional(str),
  /** A size string, see `parseSize`. */
  size: z.optional(str),
  part_uuid: z.optional(str),
  volume_group: z.optional(str),
  labels: z.optional(z.record(z.string(), str)),
  bootable: z.optional(z.boolean()),
  filesystem: z.optional(Filesystem),
});

const LogicalVolume = z.looseObject({
  name: z.optional(str),
  lv_uuid: z.optional(str),
  /** A size string, see `parseSize`. */
  size: z.optional(str),
  filesystem: z.optional(z.looseObject(Filesystem.shape)),
});

export const Storage = z.looseObject({
  physical_devices: z.optional(
    z.record(
      z.string(),
      z.looseObject({
        labels: z.optional(z.record(z.string(), str)),
        volume_group: z.optional(str),
        partitions: z.optional(z.array(Partition)),
      }),
    ),
  ),
  volume_groups: z.optional(z.record(z.string(), z.looseObject({ vg_uuid: z.optional(str), logical_volumes: z.optional(z.array(LogicalVolume)) }))),
});

/**
 * `oob`: upstream keeps every key but `type` as a driver parameter. `port` is ours (not
 * upstream): the BMC's UDP/TCP port when it is not the protocol default, so tests can point
 * nodes at emulators on loopback.
 */
export const Oob = z.looseObject({
  type: z.optional(str),
  network: z.optional(str),
  account: z.optional(str),
  credential: z.optional(str),
  port: z.optional(z.number().check(z.int(), z.gte(1), z.lte(65535))),
});

export const Interface = z.looseObject({
  device_link: z.optional(str),
  slaves: z.optional(strList),
  networks: z.optional(strList),
  sriov: z.optional(z.looseObject({ vf_count: z.optional(z.number()), trustedmode: z.optional(z.boolean()) })),
});

/** Fields shared by HostProfile and BaremetalNode (upstream `process_host_common_fields`). */
const hostFields = {
  /** The parent HostProfile. */
  host_profile: z.optional(str),
  hardware_profile: z.optional(str),
  primary_network: z.optional(str),
  oob: z.optional(Oob),
  storage: z.optional(Storage),
  platform: z.optional(
    z.strictObject({
      image: z.optional(str),
      kernel: z.optional(str),
      /** `true` ⇒ bare flag, string ⇒ `key=value`; values may reference the hardware profile. */
      kernel_params: z.optional(z.record(z.string(), z.union([z.string(), z.boolean(), z.number()]))),
    }),
  ),
  metadata: z.optional(
    z.strictObject({
      tags: z.optional(strList),
      /** The node labels: what `node_labels` filters match (§7 trap 5). */
      owner_data: z.optional(z.record(z.string(), str)),
      rack: z.optional(str),
      boot_mac: z.optional(str),
    }),
  ),
  /** `null` removes an interface inherited from a profile (upstream topology.rst). */
  interfaces: z.optional(z.record(z.string(), z.nullable(Interface))),
};

export const HostProfileData = z.strictObject(hostFields);

export const Addressing = z.looseObject({
  network: str,
  /** An IP address or `dhcp`. */
  address: str,
});

export const BaremetalNodeData = z.strictObject({
  ...hostFields,
  // Upstream's ingester refuses a node without addresses ("BaremetalNode needs at least 1 assigned address").
  addressing: z.array(Addressing).check(z.minLength(1, 'BaremetalNode needs at least 1 assigned address')),
});

export const ASSET_TYPES = ['unit', 'file', 'pkg_list'] as const;
export const DATA_PIPELINE_SEGMENTS = ['base64_decode', 'base64_encode', 'utf8_decode', 'utf8_encode', 'template'] as const;
export const LOCATION_PIPELINE_SEGMENTS = ['template'] as const;

export const BootActionAsset = z.strictObject({
  type: z.enum(ASSET_TYPES),
  /** Required for `unit` and `file` (checked by `validateDesign`); the tarball member name. */
  path: z.optional(str.check(z.regex(/^\/./, 'must be an absolute path (start with "/")'))),
  location: z.optional(str),
  /** A string, or for `pkg_list` a map `package: version | null`. */
  data: z.optional(z.union([z.string(), z.record(z.string(), z.nullable(z.string()))])),
  location_pipeline: z.optional(z.array(z.enum(LOCATION_PIPELINE_SEGMENTS))),
  data_pipeline: z.optional(z.array(z.enum(DATA_PIPELINE_SEGMENTS))),
  // Upstream's pattern is an unanchored `\d{3}` (it lets "999" and "12345" through, then the
  // tarball writer fails to parse them as octal); we require three octal digits, optionally
  // after a leading 0 ("0644"), the same rule as the boot-action renderer (bootactions/render.ts).
  permissions: z.optional(str.check(z.regex(/^0?[0-7]{3}$/, 'must be three octal digits, e.g. "444"'))),
});

export const BootActionData = z.strictObject({
  /** Default true: the node reports the action's result (§1.6.1). */
  signaling: z.optional(z.boolean()),
  assets: z.array(BootActionAsset),
  /** Absent ⇒ every node. */
  node_filter: z.optional(NodeFilterSet),
});

export const DATA_SCHEMAS = {
  Region: RegionData,
  Rack: RackData,
  Network: NetworkData,
  NetworkLink: NetworkLinkData,
  HardwareProfile: HardwareProfileData,
  HostProfile: HostProfileData,
  BaremetalNode: BaremetalNodeData,
  BootAction: BootActionData,
} as const satisfies Record<Kind, z.ZodMiniType>;

export type DataOf<K extends Kind> = z.infer<(typeof DATA_SCHEMAS)[K]>;
export type RegionData = DataOf<'Region'>;
export type RackData = DataOf<'Rack'>;
export type NetworkData = DataOf<'Network'>;
export type NetworkLinkData = DataOf<'NetworkLink'>;
export type HardwareProfileData = DataOf<'HardwareProfile'>;
export type HostProfileData = DataOf<'HostProfile'>;
export type BaremetalNodeData = DataOf<'BaremetalNode'>;
export type BootActionData = DataOf<'BootAction'>;
export type BootActionAsset = z.infer<typeof BootActionAsset>;
export type Addressing = z.infer<typeof Addressing>;
export type Oob = z.infer<typeof Oob>;

/** Where a document came from: indices are zero-based, `line` is 1-based (as editors show it). */
export interface DocumentSource {
  /** Index of the text in `loadDesign(texts)`. */
  text: number;
  /** Index of the document in that text's YAML stream. */
  document: number;
  /** Line where the document starts (its `---` marker when it has one). */
  line: number;
}

/** One Deckhand document of a known kind, its `data` parsed. */
export interface DesignDocument<K extends Kind = Kind> {
  kind: K;
  /** `drydock/<Kind>/v1` */
  schema: string;
  /** `metadata.name` */
  name: string;
  /** The whole `metadata` block (`schema`, `name`, `labels`, `layeringDefinition`, …) as written. */
  metadata: Record<string, unknown>;
  data: DataOf<K>;
  source: DocumentSource;
}

/**
 * A site design: every valid document, by kind, in the order read. Duplicate names are kept
 * (so `validateDesign` can report them); lookups use the first document of a name. Plain data,
 * so it can be stored as JSON.
 */
export type SiteDesign = { [K in Kind]: DesignDocument<K>[] };

export function emptyDesign(): SiteDesign {
  return { Region: [], Rack: [], Network: [], NetworkLink: [], HardwareProfile: [], HostProfile: [], BaremetalNode: [], BootAction: [] };
}

/** The first document of `kind` named `name`. */
export function findDocument<K extends Kind>(design: SiteDesign, kind: K, name: string): DesignDocument<K> | undefined {
  return (design[kind] as DesignDocument<K>[]).find((d) => d.name === name);
}

/** The documents of `kind`, the first of each name only (later duplicates are errors, not used). */
export function uniqueDocuments<K extends Kind>(design: SiteDesign, kind: K): DesignDocument<K>[] {
  const seen = new Set<string>();
  return (design[kind] as DesignDocument<K>[]).filter((d) => !seen.has(d.name) && (seen.add(d.name), true));
}

/** Node names in design order, each once. */
export function nodeNames(design: SiteDesign): string[] {
  return [...new Set(design.BaremetalNode.map((n) => n.name))];
}
