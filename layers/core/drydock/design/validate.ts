import { bootactionTargets } from './filter.ts';
import { cidrContains, hasHostBits, networkOf, parseCidr, parseIp } from './ip.ts';
import { docRef, RULES, RuleReport, type ValidationMessage } from './messages.ts';
import { type DesignDocument, findDocument, type HostProfileData, type Kind, KINDS, nodeNames, type SiteDesign, uniqueDocuments } from './model.ts';
import { effectiveData, oobOf, profileChain, resolveHardwareReference } from './resolve.ts';
import { parseSize } from './size.ts';

/**
 * The cross-document rules of design validation (the `validate_design` action, §1.4; the
 * checks §1.7 and §1.6.5 describe). Shape rules — types, enums, the asset `path` and
 * `permissions` patterns, pipeline segment names, the node filter schema — are checked when
 * the documents are read (`loadDesign`, DD001), as upstream does with its JSON schemas.
 *
 * Like upstream, every rule that finds no error adds an Info "Validation successful."
 * message, and the design passes when no message has `error: true`.
 *
 * Not implemented yet (upstream has them): MTU, trunking, bonding and boot-storage
 * rationality, partition/mountpoint consistency, allowed networks per link (DD1007),
 * hugepages kernel parameters (DD1008), platform image/kernel selection (needs a provisioner)
 * and FQDN label checks beyond `__`.
 */
export function validateDesign(design: SiteDesign, opts: ValidateOptions = {}): ValidationMessage[] {
  return [
    uniqueNames(design),
    references(design),
    inheritance(design),
    cidrValidity(design),
    ipLocality(design),
    duplicateIps(design),
    hostnames(design),
    oobValidity(design, opts),
    storageSizing(design),
    kernelParams(design),
    bootactionAssets(design, opts),
    pkgLists(design),
    bootactionFilters(design),
    bootactionDefined(design),
  ].flatMap((r) => r.finish());
}

export interface ValidateOptions {
  /**
   * A project's design (docs/security.md): its oob is not checked (not used), and its
   * boot-action assets may not have a `location`.
   */
  project?: boolean;
}

const hostDocs = (design: SiteDesign): DesignDocument<'HostProfile' | 'BaremetalNode'>[] => [...uniqueDocuments(design, 'HostProfile'), ...uniqueDocuments(design, 'BaremetalNode')];

function uniqueNames(design: SiteDesign): RuleReport {
  const r = new RuleReport(RULES.uniqueNames);
  for (const kind of KINDS) {
    const byName = new Map<string, DesignDocument[]>();
    for (const d of design[kind] as DesignDocument[]) byName.set(d.name, [...(byName.get(d.name) ?? []), d]);
    for (const [name, docs] of byName) {
      if (docs.length > 1) {
        r.error(`${kind} ${name} is defined ${docs.length} times.`, docs.map(docRef), 'Give each document of a kind a unique metadata.name.');
      }
    }
  }
  const regions = uniqueDocuments(design, 'Region');
  if (regions.length > 1) {
    r.error(`The design has ${regions.length} Regions (${regions.map((d) => d.name).join(', ')}).`, regions.map(docRef), 'A site design describes exactly one Region.');
  } else if (regions.length === 0) {
    r.warn('The design has no Region.', [], 'A site design normally describes its Region (the site).');
  }
  return r;
}

function references(design: SiteDesign): RuleReport {
  const r = new RuleReport(RULES.references);
  const check = (doc: DesignDocument, field: string, kind: Kind, name: string | undefined) => {
    if (name !== undefined && !findDocument(design, kind, name)) {
      r.error(`${doc.kind} ${doc.name} ${field} references ${kind} ${name}, which is not in the design.`, [docRef(doc)], `Define ${kind} ${name} or correct the reference.`);
    }
  };
  for (const doc of hostDocs(design)) {
    const d: HostProfileData = doc.data;
    check(doc, 'host_profile', 'HostProfile', d.host_profile);
    check(doc, 'hardware_profile', 'HardwareProfile', d.hardware_profile);
    check(doc, 'primary_network', 'Network', d.primary_network);
    check(doc, 'oob.network', 'Network', d.oob?.network);
    check(doc, 'metadata.rack', 'Rack', d.metadata?.rack);
    for (const [iface, v] of Object.entries(d.interfaces ?? {})) {
      if (!v) continue;
      check(doc, `interfaces.${iface}.device_link`, 'NetworkLink', v.device_link);
      for (const n of v.networks ?? []) check(doc, `interfaces.${iface}.networks`, 'Network', n);
    }
    if (doc.kind === 'BaremetalNode') {
      for (const a of (doc as DesignDocument<'BaremetalNode'>).data.addressing) check(doc, 'addressing', 'Network', a.network);
    }
  }
  for (const link of uniqueDocuments(design, 'NetworkLink')) {
    for (const n of link.data.allowed_networks ?? []) check(link, 'allowed_networks', 'Network', n);
    check(link, 'trunking.default_network', 'Network', link.data.trunking?.default_network);
  }
  for (const rack of uniqueDocuments(design, 'Rack')) {
    for (const n of rack.data.local_networks ?? []) check(rack, 'local_networks', 'Network', n);
  }
  return r;
}

function inheritance(design: SiteDesign): RuleReport {
  const r = new RuleReport(RULES.inheritance);
  // Each profile on a cycle reports it once; documents that merely lead into a cycle do not.
  for (const doc of uniqueDocuments(design, 'HostProfile')) {
    const { problem } = profileChain(design, doc);
    if (problem?.kind === 'cycle' && problem.profile === doc.name) {
      r.error(`HostProfile ${doc.name} inherits from itself through host_profile.`, [docRef(doc)], 'Break the host_profile cycle.');
    }
  }
  return r;
}

function cidrValidity(design: SiteDesign): RuleReport {
  const r = new RuleReport(RULES.cidr);
  for (const net of uniqueDocuments(design, 'Network')) {
    const c = parseCidr(net.data.cidr);
    if (!c) r.error(`The CIDR ${net.data.cidr} of Network ${net.name} is not valid.`, [docRef(net)], 'Write the CIDR as address/prefix, e.g. 10.0.0.0/24.');
    else if (hasHostBits(c)) r.error(`The provided CIDR ${net.data.cidr} has host bits set`, [docRef(net)], `Provide a CIDR acceptable by MAAS: ${networkOf(c)}`);
  }
  return r;
}

function ipLocality(design: SiteDesign): RuleReport {
  const r = new RuleReport(RULES.ipLocality);
  for (const net of uniqueDocuments(design, 'Network')) {
    const c = parseCidr(net.data.cidr);
    for (const route of net.data.routes ?? []) {
      if (route.gateway === undefined) {
        r.error(`No gateway found for route ${JSON.stringify(route)}.`, [docRef(net)], 'Define a network-local gateway for the route.');
        continue;
      }
      const gw = parseIp(route.gateway);
      if (!gw) r.error(`The gateway ${route.gateway} of Network ${net.name} is not an IP address.`, [docRef(net)], 'Route gateways are IP addresses.');
      else if (c && !cidrContains(c, gw)) {
        r.error(
          `The gateway IP Address ${route.gateway} is not within the defined CIDR: ${net.data.cidr} of ${net.name}.`,
          [docRef(net)],
          'Route gateways must reside on the local network. Check gateway IP and CIDR netmask.',
        );
      }
    }
  }
  for (const node of uniqueDocuments(design, 'BaremetalNode')) {
    for (const a of node.data.addressing) {
      if (a.address === 'dhcp') continue;
      const ip = parseIp(a.address);
      if (!ip) {
        r.error(`Address ${a.address} of node ${node.name} on ${a.network} is neither an IP address nor "dhcp".`, [docRef(node)], 'Define a valid address for this network.');
        continue;
      }
      const net = findDocument(design, 'Network', a.network);
      const c = net && parseCidr(net.data.cidr);
      // A missing network is SW1002's; an invalid CIDR is DD2006's.
      if (c && !cidrContains(c, ip)) {
        r.error(`The IP Address ${a.address} is not within the defined CIDR: ${net.data.cidr} of ${a.network}.`, [docRef(node)], 'Define a valid address for this network.');
      }
    }
  }
  return r;
}

function duplicateIps(design: SiteDesign): RuleReport {
  const r = new RuleReport(RULES.duplicateIps);
  const found = new Map<string, DesignDocument>();
  for (const node of uniqueDocuments(design, 'BaremetalNode')) {
    for (const a of node.data.addressing) {
      const ip = a.address === 'dhcp' ? undefined : parseIp(a.address);
      if (!ip) continue;
      // Canonical form, so `::1` and `0::1` collide.
      const key = `${ip.version}/${ip.value}`;
      const first = found.get(key);
      if (first && first !== node) r.error(`Duplicate IP Address Found: ${a.address}`, [docRef(node), docRef(first)], 'Select unique IP addresses for each node.');
      else found.set(key, node);
    }
  }
  return r;
}

function hostnames(design: SiteDesign): RuleReport {
  const r = new RuleReport(RULES.hostname);
  for (const node of uniqueDocuments(design, 'BaremetalNode')) {
    // Upstream tags the provisioner's machine `<hostname>__baid__<key>` (§1.6.1).
    if (node.name.includes('__')) r.error(`Node name ${node.name} contains "__".`, [docRef(node)], 'Drydock does not support hostnames containing "__".');
  }
  return r;
}

const OOB_TYPES = ['ipmi', 'redfish'];

function oobValidity(design: SiteDesign, opts: ValidateOptions): RuleReport {
  const r = new RuleReport(RULES.oob);
  // A project's task drives its nodes through the BMCs the site registered: its design's oob is
  // not used, so it need not (and cannot usefully) give one.
  if (opts.project) return r;
  for (const node of uniqueDocuments(design, 'BaremetalNode')) {
    const ref = [docRef(node)];
    const oob = oobOf(effectiveData(design, node).data);
    if (oob.type === null) {
      r.error(`OOB type for node ${node.name} missing.`, ref, 'Define oob.type (ipmi or redfish) on the node or its host profile.');
      continue;
    }
    if (!OOB_TYPES.includes(oob.type)) {
      r.error(
        `OOB type ${oob.type} of node ${node.name} is not supported.`,
        ref,
        'Slipway drives BMCs over ipmi or redfish; the upstream types libvirt and manual are not supported.',
      );
      continue;
    }
    const label = oob.type === 'ipmi' ? 'IPMI' : 'Redfish';
    for (const p of ['account', 'credential', 'network'] as const) {
      if (!oob[p]) r.error(`OOB parameter ${p} for ${label} node ${node.name} missing.`, ref, `Define OOB parameter ${p}`);
    }
    if (oob.network && !oob.address) r.error(`OOB address missing for ${label} node ${node.name}.`, ref, 'Provide address to node OOB interface.');
  }
  return r;
}

function storageSizing(design: SiteDesign): RuleReport {
  const r = new RuleReport(RULES.storageSizing);
  const diagnostic = 'Sizes are an integer and a unit (m, g, t, mi, gi, ti and their spellings, or %), optionally prefixed by ">".';
  // Size strings: once per document that writes them.
  for (const doc of hostDocs(design)) {
    const storage = (doc.data as HostProfileData).storage;
    for (const [dev, d] of Object.entries(storage?.physical_devices ?? {})) {
      for (const p of d.partitions ?? []) {
        if (p.size !== undefined && !parseSize(p.size)) r.error(`Size ${p.size} of partition ${p.name ?? '?'} on device ${dev} in ${doc.kind} ${doc.name} is not valid.`, [docRef(doc)], diagnostic);
      }
    }
    for (const [vg, v] of Object.entries(storage?.volume_groups ?? {})) {
      for (const lv of v.logical_volumes ?? []) {
        if (lv.size !== undefined && !parseSize(lv.size)) r.error(`Size ${lv.size} of logical volume ${lv.name ?? '?'} in ${vg} in ${doc.kind} ${doc.name} is not valid.`, [docRef(doc)], diagnostic);
      }
    }
  }
  // Percentages: on each node's effective storage (upstream DD2003: they must sum to at most 99%).
  for (const node of uniqueDocuments(design, 'BaremetalNode')) {
    const storage = effectiveData(design, node).data.storage;
    const percent = (size: string | undefined) => (size === undefined ? 0 : (parseSize(size)?.percent ?? 0));
    for (const [dev, d] of Object.entries(storage?.physical_devices ?? {})) {
      const sum = (d.partitions ?? []).reduce((s, p) => s + percent(p.size), 0);
      if (sum > 99) r.error(`Cumulative partition sizes on device ${dev} of node ${node.name} is greater than 99%.`, [docRef(node)], 'Percentage-based sizes must sum to less than 100%.');
    }
    for (const [vg, v] of Object.entries(storage?.volume_groups ?? {})) {
      const sum = (v.logical_volumes ?? []).reduce((s, lv) => s + percent(lv.size), 0);
      if (sum > 99) r.error(`Cumulative logical volume size is greater than 99% in volume group ${vg} of node ${node.name}.`, [docRef(node)], 'Percentage-based sizes must sum to less than 100%.');
    }
  }
  return r;
}

function kernelParams(design: SiteDesign): RuleReport {
  const r = new RuleReport(RULES.kernelParams);
  for (const node of uniqueDocuments(design, 'BaremetalNode')) {
    const data = effectiveData(design, node).data;
    const hardware = data.hardware_profile === undefined ? undefined : findDocument(design, 'HardwareProfile', data.hardware_profile);
    for (const [k, v] of Object.entries(data.platform?.kernel_params ?? {})) {
      if (typeof v !== 'string') continue;
      const ref = resolveHardwareReference(v, hardware?.data);
      // Upstream logs and keeps the reference text as the value.
      if (ref.isReference && ref.value === undefined) {
        r.warn(
          `Kernel parameter ${k}=${v} of node ${node.name} does not resolve in hardware profile ${data.hardware_profile ?? '(none)'}; it is kept as written.`,
          [docRef(node)],
          'Define the cpu_sets / hugepages entry in the node’s HardwareProfile.',
        );
      }
    }
  }
  return r;
}

/** Schemes an asset `location` may use (§1.6.5; https added, `xxx+http` prefixes are stripped upstream). */
const LOCATION = /^(?:[a-z]+\+)?https?:\/\//;

function bootactionAssets(design: SiteDesign, opts: ValidateOptions): RuleReport {
  const r = new RuleReport(RULES.bootactionAssets);
  if (opts.project) for (const p of projectDesignProblems(design)) r.error(p.text, p.documents, PROJECT_LOCATION_DIAGNOSTIC);
  for (const ba of uniqueDocuments(design, 'BootAction')) {
    const ref = [docRef(ba)];
    ba.data.assets.forEach((a, i) => {
      const what = `Asset ${i} (${a.type}) of BootAction ${ba.name}`;
      if (a.type === 'pkg_list') return; // DD4002
      if (a.path === undefined) r.error(`${what} has no path.`, ref, 'unit and file assets are written to their absolute path on the node.');
      if (a.data === undefined && a.location === undefined) r.error(`${what} has neither data nor location.`, ref, 'Give the asset inline data or a location to fetch.');
      if (a.data !== undefined && typeof a.data !== 'string') r.error(`${what} has mapping data.`, ref, 'Only pkg_list assets take a mapping; unit and file data is a string.');
      if (a.location !== undefined && !LOCATION.test(a.location)) r.error(`${what} location ${a.location} has an unsupported scheme.`, ref, 'Locations are http(s), deckhand+http or promenade+http URLs.');
    });
  }
  return r;
}

const PROJECT_LOCATION_DIAGNOSTIC = 'Give the asset inline data (with data_pipeline base64_decode for binary content).';

/**
 * What a project's design may not do: make Slipway fetch a URL. An asset `location` is fetched
 * by the control plane when the bootdata is rendered, so a project could reach the site's
 * internal addresses through it; inline `data` does the same job. The problems, as messages.
 */
export function projectDesignProblems(design: SiteDesign): { text: string; documents: ReturnType<typeof docRef>[] }[] {
  const out: { text: string; documents: ReturnType<typeof docRef>[] }[] = [];
  for (const ba of design.BootAction) {
    ba.data.assets.forEach((a, i) => {
      if (a.location !== undefined) out.push({ text: `Asset ${i} (${a.type}) of BootAction ${ba.name} has a location: a project's design may not make Slipway fetch URLs.`, documents: [docRef(ba)] });
    });
  }
  return out;
}

function pkgLists(design: SiteDesign): RuleReport {
  const r = new RuleReport(RULES.pkgList);
  for (const ba of uniqueDocuments(design, 'BootAction')) {
    for (const a of ba.data.assets) {
      if (a.type !== 'pkg_list') continue;
      if (a.location === undefined && (a.data === undefined || typeof a.data === 'string')) {
        r.error("Bootaction has asset of type 'pkg_list' but no valid package data", [docRef(ba)], 'pkg_list bootaction assets must specify a list of packages.');
      }
    }
  }
  return r;
}

function bootactionFilters(design: SiteDesign): RuleReport {
  const r = new RuleReport(RULES.nodeFilter);
  const nodes = new Set(nodeNames(design));
  for (const ba of uniqueDocuments(design, 'BootAction')) {
    for (const f of ba.data.node_filter?.filter_set ?? []) {
      if (f.rack_labels && Object.keys(f.rack_labels).length > 0) {
        r.warn(`BootAction ${ba.name} filters on rack_labels, which match every node.`, [docRef(ba)], 'rack_labels is not implemented (as upstream); use rack_names.');
      }
      for (const n of f.node_names ?? []) if (!nodes.has(n)) r.warn(`BootAction ${ba.name} names node ${n}, which is not in the design.`, [docRef(ba)], 'Check node_names.');
      for (const n of f.rack_names ?? []) if (!findDocument(design, 'Rack', n)) r.warn(`BootAction ${ba.name} names rack ${n}, which is not in the design.`, [docRef(ba)], 'Check rack_names.');
    }
  }
  return r;
}

function bootactionDefined(design: SiteDesign): RuleReport {
  const r = new RuleReport(RULES.bootactionDefined);
  const targets = bootactionTargets(design);
  for (const node of uniqueDocuments(design, 'BaremetalNode')) {
    if (!targets.get(node.name)?.length) {
      r.warn(`Node ${node.name} is not in scope for any bootactions.`, [docRef(node)], 'It is expected all nodes have at least one post-deploy action.');
    }
  }
  return r;
}
