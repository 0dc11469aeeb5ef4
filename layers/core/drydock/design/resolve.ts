import { NotFoundError, ValidationError } from '../../errors.ts';
import { docRef, type DocumentReference } from './messages.ts';
import { type Addressing, type BaremetalNodeData, type DesignDocument, findDocument, type SiteDesign } from './model.ts';

/**
 * Host profile inheritance and the resolved view of a node.
 *
 * A BaremetalNode inherits from its `host_profile`, which inherits from its own
 * `host_profile`, and so on (§1.7: "each level may override or extend"). The reference is
 * silent on how fields merge, so:
 *
 * NOTE(design): merging is a deep merge where the child wins — JSON Merge Patch (RFC 7386)
 * semantics. Mappings merge key by key, recursively; a scalar or a list in the child replaces
 * the parent's whole value (lists are not concatenated: a child's `metadata.tags` or an
 * interface's `networks` is the full list); `null` in the child removes the key, which is how
 * upstream's topology guide removes an inherited interface (`interfaces: {pxe: null}`).
 * Upstream's code goes further (list union, `!`-prefixed keys and items to delete); the
 * reference does not document that, so we do not implement it.
 */

const isMap = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * RFC 7386 merge of `patch` over `target`. The result shares nothing with either input, and
 * keeps the target's key order (new keys follow), so interfaces stay in the order written.
 */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isMap(patch)) return structuredClone(patch);
  const base = isMap(target) ? target : {};
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(base)) {
    if (!Object.hasOwn(patch, k)) out[k] = structuredClone(v);
    else if (patch[k] !== null) out[k] = mergePatch(v, patch[k]);
  }
  for (const [k, v] of Object.entries(patch)) {
    if (!Object.hasOwn(base, k) && v !== null) out[k] = mergePatch(undefined, v);
  }
  return out;
}

export type ChainProblem = { kind: 'missing'; profile: string; referrer: DesignDocument } | { kind: 'cycle'; profile: string; referrer: DesignDocument };

/**
 * The host profiles `doc` inherits from, nearest first, and what stopped the walk early:
 * a profile that does not exist, or one already on the chain (a cycle).
 */
export function profileChain(design: SiteDesign, doc: DesignDocument<'HostProfile' | 'BaremetalNode'>): { chain: DesignDocument<'HostProfile'>[]; problem?: ChainProblem } {
  const chain: DesignDocument<'HostProfile'>[] = [];
  const seen = new Set<string>(doc.kind === 'HostProfile' ? [doc.name] : []);
  let referrer: DesignDocument = doc;
  let parent = doc.data.host_profile;
  while (parent !== undefined) {
    if (seen.has(parent)) return { chain, problem: { kind: 'cycle', profile: parent, referrer } };
    const profile = findDocument(design, 'HostProfile', parent);
    if (!profile) return { chain, problem: { kind: 'missing', profile: parent, referrer } };
    seen.add(parent);
    chain.push(profile);
    referrer = profile;
    parent = profile.data.host_profile;
  }
  return { chain };
}

/**
 * The effective data of a HostProfile or BaremetalNode: its own data merged over its
 * profile chain (farthest ancestor first). A broken chain merges what it could reach.
 */
export function effectiveData<K extends 'HostProfile' | 'BaremetalNode'>(
  design: SiteDesign,
  doc: DesignDocument<K>,
): { data: DesignDocument<K>['data']; chain: DesignDocument<'HostProfile'>[]; problem?: ChainProblem } {
  const { chain, problem } = profileChain(design, doc);
  let merged: unknown = {};
  for (const p of [...chain].reverse()) merged = mergePatch(merged, p.data);
  merged = mergePatch(merged, doc.data);
  return { data: merged as DesignDocument<K>['data'], chain, ...(problem ? { problem } : {}) };
}

export interface ResolvedOob {
  /** `ipmi` or `redfish` in a valid design. */
  type: string | null;
  network: string | null;
  /** The node's static address on the oob network (`addressing`), null when it has none. */
  address: string | null;
  /** Our extension: the BMC port when it is not the protocol's default. */
  port?: number;
  account: string | null;
  credential: string | null;
}

export interface ResolvedNode {
  name: string;
  document: DocumentReference;
  /** The host profiles applied, nearest first. */
  profiles: string[];
  /** The node's data merged over its profiles (kernel parameters as written). */
  data: BaremetalNodeData;
  hardware_profile: string | null;
  primary_network: string | null;
  oob: ResolvedOob;
  /** `addressing`: `{network, address}` with address an IP or `dhcp`. */
  addresses: Addressing[];
  /** `metadata.owner_data`: the node labels. */
  labels: Record<string, string>;
  tags: string[];
  rack: string | null;
  boot_mac: string | null;
  /** `platform.kernel_params` with hardware-profile references replaced by their values. */
  kernel_params: Record<string, string | number | boolean>;
}

/** The oob block of effective node data, its address looked up in `addressing`. */
export function oobOf(data: BaremetalNodeData): ResolvedOob {
  const oob = data.oob ?? {};
  const network = oob.network ?? null;
  const address = network === null ? undefined : data.addressing.find((a) => a.network === network && a.address !== 'dhcp')?.address;
  return {
    type: oob.type ?? null,
    network,
    address: address ?? null,
    ...(oob.port !== undefined ? { port: oob.port } : {}),
    account: oob.account ?? null,
    credential: oob.credential ?? null,
  };
}

/**
 * The resolved view of node `name`: effective data after inheritance, its BMC coordinates,
 * addresses, labels and tags.
 *
 * @throws NotFoundError when the design has no such node.
 * @throws ValidationError when its profile chain is broken (missing profile or a cycle);
 *   `validateDesign` reports the same thing as an SW1002/SW1003 error.
 * @example
 * const n = resolveNode(design, 'rack1-n01');
 * n.oob // { type: 'ipmi', network: 'oob', address: '127.0.0.11', port: 9001, account: 'admin', credential: '…' }
 */
export function resolveNode(design: SiteDesign, name: string): ResolvedNode {
  const doc = findDocument(design, 'BaremetalNode', name);
  if (!doc) throw new NotFoundError(`Node ${name} is not in the design`);
  const { data, chain, problem } = effectiveData(design, doc);
  if (problem) throw new ValidationError(describeChainProblem(problem), 'INVALID_DESIGN');
  return resolvedView(design, doc, data, chain);
}

/** Like `resolveNode` for a node known to be in the design, tolerating a broken chain. */
export function resolveLenient(design: SiteDesign, doc: DesignDocument<'BaremetalNode'>): ResolvedNode {
  const { data, chain } = effectiveData(design, doc);
  return resolvedView(design, doc, data, chain);
}

function resolvedView(design: SiteDesign, doc: DesignDocument<'BaremetalNode'>, data: BaremetalNodeData, chain: DesignDocument<'HostProfile'>[]): ResolvedNode {
  const hardware = data.hardware_profile === undefined ? undefined : findDocument(design, 'HardwareProfile', data.hardware_profile);
  const kernel_params: Record<string, string | number | boolean> = {};
  for (const [k, v] of Object.entries(data.platform?.kernel_params ?? {})) {
    kernel_params[k] = typeof v === 'string' ? (resolveHardwareReference(v, hardware?.data).value ?? v) : v;
  }
  return {
    name: doc.name,
    document: docRef(doc),
    profiles: chain.map((p) => p.name),
    data,
    hardware_profile: data.hardware_profile ?? null,
    primary_network: data.primary_network ?? null,
    oob: oobOf(data),
    addresses: data.addressing,
    labels: { ...(data.metadata?.owner_data ?? {}) },
    tags: [...(data.metadata?.tags ?? [])],
    rack: data.metadata?.rack ?? null,
    boot_mac: data.metadata?.boot_mac ?? null,
    kernel_params,
  };
}

export function describeChainProblem(p: ChainProblem): string {
  return p.kind === 'missing'
    ? `${p.referrer.kind} ${p.referrer.name} references HostProfile ${p.profile}, which is not in the design.`
    : `${p.referrer.kind} ${p.referrer.name} closes a host_profile cycle through HostProfile ${p.profile}.`;
}

/**
 * Kernel parameter values that reference the hardware profile (§1.7; upstream
 * `get_kernel_param_value`): `hardwareprofile:cpuset.<name>` → `cpu_sets.<name>`,
 * `hardwareprofile:hugepages.<name>.size|count` → `hugepages.<name>.size|count`. The reference
 * writes the hugepages form with a dot after `hardwareprofile` and upstream's code with a
 * colon; both are accepted. Any other value is not a reference (`isReference` false).
 */
export function resolveHardwareReference(
  value: string,
  hardware: { cpu_sets?: Record<string, string>; hugepages?: Record<string, { size?: string; count?: number }> } | undefined,
): { isReference: boolean; value?: string | number } {
  const cpuset = /^hardwareprofile:cpuset\.(.+)$/.exec(value);
  if (cpuset) return { isReference: true, value: hardware?.cpu_sets?.[cpuset[1] as string] };
  const huge = /^hardwareprofile[:.]hugepages\.(.+)\.(size|count)$/.exec(value);
  if (huge) {
    const conf = hardware?.hugepages?.[huge[1] as string];
    return { isReference: true, value: huge[2] === 'size' ? conf?.size : conf?.count };
  }
  return { isReference: false };
}
