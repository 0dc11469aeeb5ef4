import * as z from 'zod';
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
  tag_definitions: z
    .array(
      z.strictObject({
        tag: str.optional(),
        definition_type: z.enum(['lshw_xpath']).optional(),
        definition: str.optional(),
      }),
    )
    .optional(),
  authorized_keys: strList.optional(),
  /** Top level is the repository class; `remove_unlisted` is the one fixed key. */
  repositories: z.looseObject({ remove_unlisted: z.boolean().optional() }).optional(),
});

export const RackData = z.strictObject({
  /** `{<switch name>: {mgmt_ip, sdn_api_url}}` as upstream's ingester reads it. */
  tor_switches: z.record(z.string(), z.looseObject({ mgmt_ip: str.optional(), sdn_api_url: str.optional() })).optional(),
  location: z.looseObject({ clli: str.optional(), grid: str.optional() }).optional(),
  local_networks: strList.optional(),
  labels: labels.optional(),
});

export const NetworkData = z.strictObject({
  /** Required here: every upstream network validator parses it. */
  cidr: str,
  ranges: z
    .array(
      z.strictObject({
        type: z.enum(['static', 'dhcp', 'reserved']).optional(),
        start: str.optional(),
        end: str.optional(),
      }),
    )
    .optional(),
  /** `servers` is a comma-separated list; `domain` defaults to `local` upstream. */
  dns: z.strictObject({ domain: str.optional(), servers: str.optional() }).optional(),
  dhcp_relay: z.strictObject({ self_ip: str.optional(), upstream_target: str.optional() }).optional(),
  mtu: z.number().optional(),
  /** A string upstream: quote it in YAML (`vlan: '102'`). */
  vlan: str.optional(),
  routedomain: str.optional(),
  routes: z
    .array(
      z.strictObject({
        subnet: str.optional(),
        gateway: str.optional(),
        metric: z.number().optional(),
        routedomain: str.optional(),
      }),
    )
    .optional(),
  labels: labels.optional(),
});

export const BONDING_MODES = ['disabled', '802.3ad', 'active-backup', 'balance-rr'] as const;
export const TRUNKING_MODES = ['disabled', '802.1q'] as const;

export const NetworkLinkData = z.strictObject({
  bonding: z
    .strictObject({
      mode: z.enum(BONDING_MODES).optional(),
      hash: str.optional(),
      peer_rate: str.optional(),
      mon_rate: z.number().optional(),
      up_delay: z.number().optional(),
      down_delay: z.number().optional(),
    })
    .optional(),
  mtu: z.number().optional(),
  linkspeed: str.optional(),
  trunking: z.strictObject({ mode: z.enum(TRUNKING_MODES).optional(), default_network: str.optional() }).optional(),
  allowed_networks: strList.optional(),
  labels: labels.optional(),
});

export const HardwareProfileData = z.strictObject({
  vendor: str.optional(),
  generation: str.optional(),
  hw_version: str.optional(),
  bios_version: str.optional(),
  boot_mode: z.enum(['bios', 'uefi']).optional(),
  bootstrap_protocol: z.enum(['pxe', 'usb', 'hdd']).optional(),
  pxe_interface: z.number().optional(),
  device_aliases: z.record(z.string(), z.looseObject({ address: str.optional(), dev_type: str.optional(), bus_type: str.optional() })).optional(),
  /** `{name: "2,4"}`: CPU lists referenced by `hardwareprofile:cpuset.<name>` kernel parameters. */
  cpu_sets: z.record(z.string(), str).optional(),
  hugepages: z.record(z.string(), z.looseObject({ size: str.optional(), count: z.number().optional() })).optional(),
});

const Filesystem = z.strictObject({
  mountpoint: str.optional(),
  fstype: str.optional(),
  mount_options: str.optional(),
  fs_uuid: str.optional(),
  fs_label: str.optional(),
});

const Partition = z.strictObject({
  name: str.optional(),
  /** A size string, see `parseSize`. */
  size: str.optional(),
  part_uuid: str.optional(),
  volume_group: str.optional(),
  labels: z.record(z.string(), str).optional(),
  bootable: z.boolean().optional(),
  filesystem: Filesystem.optional(),
});

const LogicalVolume = z.looseObject({
  name: str.optional(),
  lv_uuid: str.optional(),
  /** A size string, see `parseSize`. */
  size: str.optional(),
  filesystem: z.looseObject(Filesystem.shape).optional(),
});

export const Storage = z.looseObject({
  physical_devices: z
    .record(
      z.string(),
      z.looseObject({
        labels: z.record(z.string(), str).optional(),
        volume_group: str.optional(),
        partitions: z.array(Partition).optional(),
      }),
    )
    .optional(),
  volume_groups: z.record(z.string(), z.looseObject({ vg_uuid: str.optional(), logical_volumes: z.array(LogicalVolume).optional() })).optional(),
});

/**
 * `oob`: upstream keeps every key but `type` as a driver parameter. `port` is ours (not
 * upstream): the BMC's UDP/TCP port when it is not the protocol default, so tests can point
 * nodes at emulators on loopback.
 */
export const Oob = z.looseObject({
  type: str.optional(),
  network: str.optional(),
  account: str.optional(),
  credential: str.optional(),
  port: z.number().int().min(1).max(65535).optional(),
});

export const Interface = z.looseObject({
  device_link: str.optional(),
  slaves: strList.optional(),
  networks: strList.optional(),
  sriov: z.looseObject({ vf_count: z.number().optional(), trustedmode: z.boolean().optional() }).optional(),
});

/** Fields shared by HostProfile and BaremetalNode (upstream `process_host_common_fields`). */
const hostFields = {
  /** The parent HostProfile. */
  host_profile: str.optional(),
  hardware_profile: str.optional(),
  primary_network: str.optional(),
  oob: Oob.optional(),
  storage: Storage.optional(),
  platform: z
    .strictObject({
      image: str.optional(),
      kernel: str.optional(),
      /** `true` ⇒ bare flag, string ⇒ `key=value`; values may reference the hardware profile. */
      kernel_params: z.record(z.string(), z.union([z.string(), z.boolean(), z.number()])).optional(),
    })
    .optional(),
  metadata: z
    .strictObject({
      tags: strList.optional(),
      /** The node labels: what `node_labels` filters match (§7 trap 5). */
      owner_data: z.record(z.string(), str).optional(),
      rack: str.optional(),
      boot_mac: str.optional(),
    })
    .optional(),
  /** `null` removes an interface inherited from a profile (upstream topology.rst). */
  interfaces: z.record(z.string(), Interface.nullable()).optional(),
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
  addressing: z.array(Addressing).min(1, 'BaremetalNode needs at least 1 assigned address'),
});

export const ASSET_TYPES = ['unit', 'file', 'pkg_list'] as const;
export const DATA_PIPELINE_SEGMENTS = ['base64_decode', 'base64_encode', 'utf8_decode', 'utf8_encode', 'template'] as const;
export const LOCATION_PIPELINE_SEGMENTS = ['template'] as const;

export const BootActionAsset = z.strictObject({
  type: z.enum(ASSET_TYPES),
  /** Required for `unit` and `file` (checked by `validateDesign`); the tarball member name. */
  path: str.regex(/^\/./, 'must be an absolute path (start with "/")').optional(),
  location: str.optional(),
  /** A string, or for `pkg_list` a map `package: version | null`. */
  data: z.union([z.string(), z.record(z.string(), z.string().nullable())]).optional(),
  location_pipeline: z.array(z.enum(LOCATION_PIPELINE_SEGMENTS)).optional(),
  data_pipeline: z.array(z.enum(DATA_PIPELINE_SEGMENTS)).optional(),
  // Upstream's pattern is an unanchored `\d{3}` (it lets "999" and "12345" through, then the
  // tarball writer fails to parse them as octal); we require three octal digits, optionally
  // after a leading 0 ("0644"), the same rule as the boot-action renderer (bootactions/render.ts).
  permissions: str.regex(/^0?[0-7]{3}$/, 'must be three octal digits, e.g. "444"').optional(),
});

export const BootActionData = z.strictObject({
  /** Default true: the node reports the action's result (§1.6.1). */
  signaling: z.boolean().optional(),
  assets: z.array(BootActionAsset),
  /** Absent ⇒ every node. */
  node_filter: NodeFilterSet.optional(),
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
} as const satisfies Record<Kind, z.ZodType>;

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
