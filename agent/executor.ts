import * as z from 'zod';
import { log } from '#core/util/log.ts';
import type { AgentConfig } from './config.ts';
import { buildConfigDrive, ConfigDriveError, type IronicConfigDrive, ironicPublicKeys, ironicUserData } from './configdrive.ts';
import { type CachedImage, displayUrl, type ImageCache, ImageError, MAX_IMAGE_URL_CHARS, normalizeImageUrl } from './images.ts';
import {
  cleaningOutput,
  type DeployOptions,
  deployOutput,
  InspectionTimeout,
  inspectionOutput,
  type NetbootService,
  normalizeMac,
  type RamdiskStep,
  RamdiskStepError,
  type StepResult,
  stepReport,
} from './netboot.ts';
import { SshError, type SshOptions } from './drivers/ssh.ts';
import { BmcError, type BmcDriver, type BootDevice, type PowerAction } from './drivers/types.ts';
import { FetchJobError, FetchPayload, type FetchPolicy, runFetch } from './fetch-job.ts';
import { CommandFailedError, investigate, isSshJobKind, runCommands, SshInvestigatePayload, SshRunPayload, sshHostKey, sshTarget } from './ssh-jobs.ts';

/**
 * What a job asks of a BMC or a host, by kind. BMC jobs name the node's driver and its
 * Ironic-style `driver_info`; `makeDriver` turns that into a driver (resolving on-prem
 * credentials). SSH jobs carry the host's address and key (opened by the API at claim time).
 *
 *   power           { target: PowerAction }            → { power_state }
 *   power_state     {}                                 → { power_state }
 *   boot_device     { boot_device, persistent }        → { boot_device, persistent }
 *   boot_device_get {}                                 → { boot_device, persistent }
 *                   (read from the BMC, Ironic's GET …/management/boot_device: boot_device in
 *                   Ironic's names — pxe, disk, cdrom, bios, safe, floppy, uefihttp; both null when
 *                   no override is in effect; boot_device alone null for a device with no name)
 *   vendor          { method, args }                   → the method's answer
 *   deploy_node     { node_id?, macs?, bootaction?, image?, bootdata_url?, hostname?, root_device?, timeout_seconds?,
 *                     require_image?, image_url?, image_sha256?, configdrive? }
 *                   Drydock's deploy of one node (deploy contract §6) and Ironic's deploy/rebuild
 *                   (issue 14; the Ironic fields), one of:
 *                   - image deploy, when the job names an `image_url` (Ironic: instance_info's
 *                     image_source when it is a URL) or an `image` in the agent's catalog
 *                     (netboot.images; `image` and `image_url` are exclusive): the node must have
 *                     known MACs (its Ironic ports) — an image deploy is never a discovery, which
 *                     would hand the image to whichever unknown machine network-boots first, so
 *                     without `macs` the job fails (`cannot deploy node <node_id>: it has no known
 *                     MAC address …`); the image is fetched into the cache and its sha256 checked
 *                     BEFORE the BMC is touched; the node network-boots the ramdisk's `deploy`
 *                     step, which writes the image to its disk, reads it back, and extracts a
 *                     config drive (cloud-init NoCloud seed, the boot-action key, or the job's
 *                     `configdrive`, agent/configdrive.ts) into its root filesystem, reports and
 *                     powers off; then boot device disk (persistent) and power on
 *                     → { method: 'image', image, image_sha256, root_device, root_filesystem,
 *                         written_bytes, write_seconds, boot_device: 'disk', power_state }
 *                     where `image` is the catalog name, or a URL image's display form (no
 *                     credentials, no query: displayUrl).
 *                     A URL image (http or https, ≤ 2048 characters) is fetched only when the
 *                     agent's policy allows it (netboot.image_url_prefixes, default any https URL;
 *                     its redirects too) — else `cannot deploy node <id>: image URL <display> is
 *                     not allowed by this agent (netboot.image_url_prefixes)` — and only with its
 *                     `image_sha256` (64 hex digits, lower-cased) — else `cannot deploy node <id>:
 *                     an image URL needs its sha256 (instance_info image_checksum)`. It is cached
 *                     by sha256 like catalog images (a cached file with that sha256 is reused).
 *                     `configdrive` is Ironic's JSON config drive { meta_data?, user_data? (a
 *                     string verbatim, an object cloud-config), network_data?, vendor_data? }, at
 *                     most 64 KiB as JSON and 64 KiB of user_data (more: an invalid job).
 *                   - else with `require_image` (Ironic): the job fails, never falling back to the
 *                     hook: `cannot deploy node <id>: instance_info has no image_source the site
 *                     can use (image "<x>" is not in the agent's catalog)` (or `(no image given)`);
 *                   - else, with a deploy hook configured: the hook gets `bootaction` (when there
 *                     is one), then PXE next boot and a power cycle, for the site's own installer
 *                     → { method: 'hook', boot_device: 'pxe', power_state, hook? }
 *                   - else the job fails (`cannot deploy: …`): nothing would install the node.
 *                   Every refusal comes before any BMC call.
 *   ssh_investigate { ssh }                            → { os, cpus, memory, space, host_key_sha256 }
 *   ssh_run         { ssh, commands, timeout_seconds? } → { results: [{ command, exit_code, stdout, stderr }], host_key_sha256 }
 *   inspect         { node_id, macs, timeout_seconds? } → { cpus, cpu_arch, memory_mb, disks: [{ name, size }],
 *                                                          interfaces: [{ name, mac_address }], boot_mac }
 *                   (the node network-boots the Slipway ramdisk from the agent's boot service,
 *                   agent/netboot.ts; `macs: []` is a discovery: any unknown MAC may answer, one
 *                   discovery per agent at a time. Sizes in bytes, MACs lower-case.)
 *   clean           { node_id, macs, timeout_seconds? } → { disks: [{ name, size, method: 'zero' | 'discard', verified_bytes }],
 *                                                          boot_mac }
 *                   (Ironic's erase_devices: as inspect, the ramdisk's `clean` step erases every
 *                   writable fixed disk and reads a sample back as zeros; its error, e.g.
 *                   `erasing /dev/vdb failed: …`, fails the job. Never a discovery: without
 *                   `macs` the job fails before the BMC is touched.)
 *
 *   fetch           { url, method?, headers?, body?, timeout_seconds, max_bytes, upload_url? }
 *                   → { status, content_type, size, sha256, text | base64 | uploaded }
 *                   (one HTTP request to an address inside the site for the control plane, which
 *                   runs outside it: agent/fetch-job.ts; the agent's fetch.url_prefixes may refuse it)
 *
 * where ssh = { address, port?, username, private_key, host_key_sha256? }.
 */
export interface JobPayload {
  driver: 'ipmi' | 'redfish';
  driver_info: Record<string, unknown>;
  [k: string]: unknown;
}

/** A claimed job with its payload checked: BMC work or SSH work. */
export type ParsedJob =
  | { family: 'bmc'; kind: string; payload: JobPayload }
  | { family: 'ssh'; kind: 'ssh_investigate'; payload: SshInvestigatePayload }
  | { family: 'ssh'; kind: 'ssh_run'; payload: SshRunPayload }
  | { family: 'fetch'; kind: 'fetch'; payload: FetchPayload; id: number };

export type VendorDriver = BmcDriver & { vendor(method: string, args: Record<string, unknown>): Promise<unknown> };
export type DriverFactory = (driver: JobPayload['driver'], info: Record<string, unknown>) => VendorDriver;

/** Failures that are the job's own (bad input), as opposed to the BMC's or the host's. */
export class JobInputError extends Error {}

const POWER_ACTIONS: readonly PowerAction[] = ['power on', 'power off', 'rebooting', 'soft power off', 'soft rebooting'];

/** An `inspect` or `clean` job's own fields (driver and driver_info as for every BMC job). */
export const InspectPayload = z.object({
  node_id: z.string().min(1).max(255),
  macs: z
    .array(z.string().refine((m) => normalizeMac(m) !== null, 'not a MAC address'))
    .max(64)
    .transform((ms) => ms.map((m) => normalizeMac(m)!)),
  timeout_seconds: z.number().min(1).max(86_400).optional(),
});

/** Default wait for an inspection's report. */
export const DEFAULT_INSPECT_TIMEOUT_SECONDS = 300;
/** Default wait for a cleaning's report (erasing takes as long as writing every disk once). */
export const DEFAULT_CLEAN_TIMEOUT_SECONDS = 3600;
/** Default wait for a deploy's report (writing and reading back the image). */
export const DEFAULT_DEPLOY_TIMEOUT_SECONDS = 1800;

const MacList = z
  .array(z.string().refine((m) => normalizeMac(m) !== null, 'not a MAC address'))
  .max(64)
  .transform((ms) => ms.map((m) => normalizeMac(m)!));

const SHA256_ANY_CASE = /^[0-9a-fA-F]{64}$/;
/** The config drive's bound: its JSON, and its user_data, at most 64 KiB each. */
export const MAX_CONFIGDRIVE_JSON_BYTES = 64 * 1024;
export const MAX_USER_DATA_BYTES = 64 * 1024;
const HOSTNAME_RE = /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
const JsonObject = z.record(z.string(), z.unknown());

/**
 * Ironic's JSON config drive: the four keys Ironic takes (others are dropped), at most 64 KiB as
 * JSON and 64 KiB of user_data; meta_data.hostname, when given, a host name; meta_data.public_keys,
 * when given, one-line key strings (they become authorized_keys lines).
 */
const IronicConfigDriveSchema = z
  .object({
    meta_data: JsonObject.optional(),
    user_data: z.union([z.string(), JsonObject]).optional(),
    network_data: JsonObject.optional(),
    vendor_data: JsonObject.optional(),
  })
  .superRefine((cd, ctx) => {
    const total = Buffer.byteLength(JSON.stringify(cd));
    if (total > MAX_CONFIGDRIVE_JSON_BYTES) ctx.addIssue({ code: 'custom', message: `${total} bytes as JSON, more than the limit of ${MAX_CONFIGDRIVE_JSON_BYTES}` });
    if (cd.user_data !== undefined) {
      const bytes = ironicUserData(cd.user_data).length;
      if (bytes > MAX_USER_DATA_BYTES) ctx.addIssue({ code: 'custom', path: ['user_data'], message: `${bytes} bytes, more than the limit of ${MAX_USER_DATA_BYTES}` });
    }
    const hostname = cd.meta_data?.hostname;
    if (hostname !== undefined && (typeof hostname !== 'string' || hostname.length > 253 || !HOSTNAME_RE.test(hostname))) {
      ctx.addIssue({ code: 'custom', path: ['meta_data', 'hostname'], message: 'a host name' });
    }
    try {
      ironicPublicKeys(cd.meta_data);
    } catch (err) {
      ctx.addIssue({ code: 'custom', path: ['meta_data'], message: (err as Error).message.replace(/^config drive: meta_data\./, '') });
    }
  });

/**
 * A `deploy_node` job's own fields (deploy contract §6); `bootaction` is checked where it is used
 * (the hook gets it as sent). Everything that ends up in the config drive or the ramdisk's
 * instructions is bounded to one line here.
 */
export const DeployPayload = z.object({
  node_id: z.string().min(1).max(255).optional(),
  macs: MacList.optional(),
  image: z.string().min(1).max(255).optional(),
  bootdata_url: z.url({ protocol: /^https?$/ }).max(2048).optional(),
  /** RFC 1123 host name (labels of letters, digits and `-`, dot-separated). */
  hostname: z.string().max(253).regex(HOSTNAME_RE, 'a host name').optional(),
  /** A whole disk, e.g. /dev/vda or /dev/disk/by-path/…; empty: the ramdisk picks. */
  root_device: z
    .string()
    .max(128)
    .regex(/^(\/dev\/[A-Za-z0-9][A-Za-z0-9._/:-]*)?$/, 'a /dev path')
    .optional(),
  timeout_seconds: z.number().min(1).max(86_400).optional(),
  /** Ironic: never fall back to the deploy hook; without an image the site can use, the job fails. */
  require_image: z.boolean().optional(),
  /** Ironic: an image_source that is a URL (http or https; the agent's policy decides which it fetches). */
  image_url: z
    .string()
    .max(MAX_IMAGE_URL_CHARS)
    .refine((u) => normalizeImageUrl(u) !== null, 'an http(s) URL')
    .optional(),
  /**
   * Ironic: the URL image's sha256. Any short string is taken here so that a missing or unusable
   * one (an md5 image_checksum) fails with the contract's words; 64 hex digits are lower-cased.
   */
  image_sha256: z
    .string()
    .max(256)
    .transform((h) => (SHA256_ANY_CASE.test(h) ? h.toLowerCase() : h))
    .optional(),
  /** Ironic's JSON config drive (API ≥ 1.56), as the lessee gave it (agent/configdrive.ts). */
  configdrive: IronicConfigDriveSchema.optional(),
}).refine((p) => p.image === undefined || p.image_url === undefined, { message: 'image (a catalog name) and image_url are exclusive', path: ['image_url'] });
export type DeployPayload = z.infer<typeof DeployPayload>;

/** The boot-action info as the config drive needs it (the workflow's bootActionJobInfo, key opened). */
const BootActionInfo = z.looseObject({
  node_name: z.string().min(1).max(255),
  action_key: z.string().regex(/^[0-9a-fA-F]{16,256}$/, 'hex'),
  report_url: z.string().min(1).max(2048),
  packages: z
    .array(z.union([z.string().min(1).max(255), z.tuple([z.string().min(1).max(255), z.string().max(255).nullable()])]))
    .max(4096)
    .default([]),
  actions: z.array(z.looseObject({ action_id: z.string().min(1).max(255) })).max(1024).default([]),
});

/**
 * A job this agent cannot do — a deploy with neither an image it has nor a hook, a clean or an
 * image deploy of a node with no known MAC, a ramdisk step without a netboot section: the
 * message is the job's error as is (it tells the operator what to change).
 */
export class UnableError extends Error {
  override name = 'UnableError';
}

/** The key under which commands to one BMC are serialized. */
export function bmcKey(p: JobPayload): string {
  const i = p.driver_info;
  return p.driver === 'ipmi' ? `ipmi:${i.ipmi_address}:${i.ipmi_port ?? 623}` : `redfish:${i.redfish_address}`;
}

/** The key under which jobs are serialized: one job per BMC, one per SSH host, at a time. */
export function serialKey(job: ParsedJob): string {
  // Fetches touch no machine's state: each runs on its own (within the agent's concurrency).
  if (job.family === 'fetch') return `fetch:${job.id}`;
  return job.family === 'bmc' ? bmcKey(job.payload) : sshHostKey(job.payload);
}

let fetchIds = 0;

export function parseJob(kind: string, payload: Record<string, unknown>): ParsedJob {
  if (kind === 'fetch') {
    const parsed = FetchPayload.safeParse(payload);
    // Paths and messages only: a header may hold a bearer token.
    if (!parsed.success) throw new JobInputError(`job fetch: ${parsed.error.issues.map((x) => `${x.path.join('.') || 'payload'}: ${x.message}`).join('; ')}`);
    return { family: 'fetch', kind, payload: parsed.data, id: ++fetchIds };
  }
  if (isSshJobKind(kind)) {
    // Issue texts name the field and the expected type, never the value (the key is in there).
    const invalid = (error: z.ZodError) => new JobInputError(`job ${kind}: ${error.issues.map((x) => `${x.path.join('.') || 'payload'}: ${x.message}`).join('; ')}`);
    if (kind === 'ssh_run') {
      const parsed = SshRunPayload.safeParse(payload);
      if (!parsed.success) throw invalid(parsed.error);
      return { family: 'ssh', kind, payload: parsed.data };
    }
    const parsed = SshInvestigatePayload.safeParse(payload);
    if (!parsed.success) throw invalid(parsed.error);
    return { family: 'ssh', kind, payload: parsed.data };
  }
  if (payload.driver !== 'ipmi' && payload.driver !== 'redfish') throw new JobInputError(`job ${kind}: unknown driver ${String(payload.driver)}`);
  if (!payload.driver_info || typeof payload.driver_info !== 'object') throw new JobInputError(`job ${kind}: driver_info missing`);
  if (kind === 'inspect' || kind === 'clean' || kind === 'deploy_node') {
    const parsed = (kind === 'deploy_node' ? DeployPayload : InspectPayload).safeParse(payload);
    if (!parsed.success) throw new JobInputError(`job ${kind}: ${parsed.error.issues.map((x) => `${x.path.join('.') || 'payload'}: ${x.message}`).join('; ')}`);
    return { family: 'bmc', kind, payload: { ...(payload as JobPayload), ...parsed.data } };
  }
  return { family: 'bmc', kind, payload: payload as JobPayload };
}

/** What jobs run with: the BMC driver factory and the SSH tunables. */
export interface Executors {
  makeDriver: DriverFactory;
  ssh: SshOptions;
  /** Runs the configured deploy hook with the node's boot-action info (absent: no hook). */
  deployHook?: (info: Record<string, unknown>) => Promise<{ exit_code: number }>;
  /** The site boot service (absent: no netboot section, so no inspections). */
  netboot?: NetbootService;
  /**
   * The image catalog and cache for image deploys (netboot.images; the boot service serves from
   * it), and the policy for URL images (its urlPrefixes: netboot.image_url_prefixes).
   */
  images?: ImageCache;
  /** What `fetch` jobs may reach and how much of a body they answer inline (default: any http(s) URL, 60 KiB). */
  fetch?: FetchPolicy;
  /**
   * After a deploy's report: how long the node has to power itself off (the ramdisk's
   * `poweroff -f`) before the agent forces it off, then boots it from disk. Default 120 s.
   */
  ramdiskPowerOffWaitMs?: number;
}

/** The agent config's SSH section as driver options. */
export function sshOptions(cfg: AgentConfig): SshOptions {
  return {
    connectTimeoutMs: cfg.ssh.connect_timeout_seconds * 1000,
    commandTimeoutMs: cfg.ssh.command_timeout_seconds * 1000,
    maxOutputBytes: cfg.ssh.max_output_bytes,
  };
}

/** The job API takes 64 KiB of output JSON; an inline body leaves room for the rest of it. */
export const DEFAULT_FETCH_INLINE_BYTES = 60 * 1024;

export async function execute(job: ParsedJob, executors: Executors): Promise<unknown> {
  if (job.family === 'fetch') return runFetch(job.payload, executors.fetch ?? { inlineMaxBytes: DEFAULT_FETCH_INLINE_BYTES });
  if (job.family === 'ssh') {
    const target = sshTarget(job.payload);
    if (job.kind === 'ssh_investigate') return investigate(target, executors.ssh);
    const { commands, timeout_seconds } = job.payload;
    return runCommands(target, commands, { ...executors.ssh, ...(timeout_seconds ? { timeoutMs: timeout_seconds * 1000 } : {}) });
  }
  const { kind, payload } = job;
  const driver = executors.makeDriver(payload.driver, payload.driver_info);
  switch (kind) {
    case 'power': {
      const target = payload.target as PowerAction;
      if (!POWER_ACTIONS.includes(target)) throw new JobInputError(`unknown power target ${String(payload.target)}`);
      return { power_state: await driver.setPowerState(target) };
    }
    case 'power_state':
      return { power_state: await driver.getPowerState() };
    case 'boot_device': {
      const dev = payload.boot_device as BootDevice;
      if (dev !== 'pxe' && dev !== 'disk') throw new JobInputError(`unknown boot device ${String(payload.boot_device)}`);
      await driver.setBootDevice(dev, payload.persistent === true);
      return { boot_device: dev, persistent: payload.persistent === true };
    }
    case 'boot_device_get': {
      const { boot_device, persistent } = await driver.getBootDevice();
      return { boot_device, persistent };
    }
    case 'vendor':
      return driver.vendor(String(payload.method), (payload.args as Record<string, unknown>) ?? {});
    case 'deploy_node':
      return deployNode(payload as JobPayload & DeployPayload, driver, executors);
    case 'inspect': {
      const result = await bootIntoRamdisk('inspect', payload as JobPayload & z.infer<typeof InspectPayload>, driver, executors.netboot, powerOffAfter('inspect', driver));
      return inspectionOutput(result);
    }
    case 'clean': {
      // Never a discovery: erasing whichever unknown machine network-boots first would destroy
      // a machine nobody asked to clean.
      const macs = (payload as JobPayload & z.infer<typeof InspectPayload>).macs;
      if (macs.length === 0) throw new UnableError(`cannot clean node ${String(payload.node_id)}: it has no known MAC address (no Ironic ports; inspect it first)`);
      const result = await bootIntoRamdisk('clean', payload as JobPayload & z.infer<typeof InspectPayload>, driver, executors.netboot, powerOffAfter('clean', driver));
      return cleaningOutput(result);
    }
    default:
      throw new JobInputError(`unknown job kind ${kind}`);
  }
}

/** Where a deploy's image comes from: a catalog name, or a URL and its sha256 (Ironic). */
type DeploySource = { kind: 'catalog'; name: string } | { kind: 'url'; url: string; sha256: string };

/**
 * `deploy_node` (deploy contract §6; Ironic's deploy, issue 14): an image deploy when the job
 * names an image URL or a catalog image, else (unless `require_image`) the deploy hook, else a
 * failure. Everything is checked before anything touches the BMC.
 */
async function deployNode(payload: JobPayload & DeployPayload, driver: BmcDriver, executors: Executors): Promise<unknown> {
  const { image } = payload;
  const nodeId = payload.node_id ?? payload.hostname ?? '(unnamed node)';
  if (payload.image_url !== undefined) {
    const url = payload.image_url;
    // The policy first: a URL the agent may not fetch is refused whatever else the job says.
    if (!executors.images?.allowsUrl(url)) {
      if (!executors.netboot || !executors.images) throw new UnableError(`this agent has no netboot section in its config: it cannot ${STEP_VERB.deploy} nodes (see docs/machines.md)`);
      throw new UnableError(`cannot deploy node ${nodeId}: image URL ${displayUrl(url)} is not allowed by this agent (netboot.image_url_prefixes)`);
    }
    const sha256 = payload.image_sha256;
    if (sha256 === undefined || !/^[0-9a-f]{64}$/.test(sha256)) throw new UnableError(`cannot deploy node ${nodeId}: an image URL needs its sha256 (instance_info image_checksum)`);
    if (!executors.netboot) throw new UnableError(`this agent has no netboot section in its config: it cannot ${STEP_VERB.deploy} nodes (see docs/machines.md)`);
    return imageDeploy(payload, { kind: 'url', url, sha256 }, driver, executors.netboot, executors.images, executors);
  }
  if (image !== undefined && executors.netboot && executors.images?.has(image)) return imageDeploy(payload, { kind: 'catalog', name: image }, driver, executors.netboot, executors.images, executors);
  if (payload.require_image) {
    // Ironic: the node is to get this image or nothing; the site's own installer is no substitute.
    throw new UnableError(
      `cannot deploy node ${nodeId}: instance_info has no image_source the site can use (${image === undefined ? 'no image given' : `image ${JSON.stringify(image)} is not in the agent's catalog`})`,
    );
  }
  if (executors.deployHook) {
    if (image !== undefined) log.warn('deploy_node: the image is not in this agent\'s catalog; running the deploy hook instead', { node_id: payload.node_id, image });
    const info = payload.bootaction;
    let hook: { exit_code: number } | undefined;
    if (info && typeof info === 'object') hook = await executors.deployHook(info as Record<string, unknown>);
    await driver.setBootDevice('pxe', false);
    return { method: 'hook', boot_device: 'pxe', power_state: await driver.setPowerState('rebooting'), ...(hook ? { hook } : {}) };
  }
  // Powering a node into PXE with nothing to install it would "succeed" and leave it blank.
  if (image === undefined) throw new UnableError('cannot deploy: the design names no platform.image and the agent has no deploy_hook');
  throw new UnableError(`cannot deploy: the site has no image ${JSON.stringify(image)} (netboot.images) and no deploy_hook`);
}

async function imageDeploy(
  payload: JobPayload & DeployPayload,
  source: DeploySource,
  driver: BmcDriver,
  netboot: NetbootService,
  images: ImageCache,
  executors: Executors,
): Promise<unknown> {
  // Everything that can fail without the node is done first: a bad image or a bad job leaves
  // the machine as it was.
  const nodeId = payload.node_id ?? payload.hostname ?? '(unnamed node)';
  // No MACs would register a discovery: the first unknown machine to network-boot would get
  // this node's image and config drive. Only the node's own MACs may answer.
  if (!payload.macs || payload.macs.length === 0) {
    throw new UnableError(`cannot deploy node ${nodeId}: it has no known MAC address (no Ironic ports; inspect it first, e.g. Drydock prepare_nodes)`);
  }
  const drive = configDriveFor(payload);
  const cached: CachedImage = source.kind === 'catalog' ? await images.ensure(source.name) : await images.ensureUrl(source.url, source.sha256);
  const name = cached.name;
  const deploy: DeployOptions = { image: { sha256: cached.sha256, size: cached.size }, configdrive: drive, ...(payload.root_device ? { rootDevice: payload.root_device } : {}) };
  const target = { node_id: nodeId, macs: payload.macs, timeout_seconds: payload.timeout_seconds };
  const waitOffMs = executors.ramdiskPowerOffWaitMs ?? 120_000;
  return bootIntoRamdisk(
    'deploy',
    target,
    driver,
    netboot,
    async (result) => {
      const out = deployOutput(result); // the ramdisk's error form fails the job with its message
      if (out.image_sha256 !== cached.sha256 || out.written_bytes !== cached.size) {
        throw new UnableError(
          `the ramdisk reported writing ${out.written_bytes} bytes of image ${out.image_sha256} to ${out.root_device}, not the ${cached.size} bytes of ${cached.sha256} (image ${JSON.stringify(name)}) it was sent`,
        );
      }
      await driver.setBootDevice('disk', true);
      await waitPoweredOff(driver, waitOffMs, payload.node_id);
      const power_state = await driver.setPowerState('power on');
      log.info('image deployed', { node_id: payload.node_id, image: name, sha256: cached.sha256, root_device: out.root_device, write_seconds: out.write_seconds });
      return {
        method: 'image',
        image: name,
        image_sha256: out.image_sha256,
        root_device: out.root_device,
        root_filesystem: out.root_filesystem,
        written_bytes: out.written_bytes,
        write_seconds: out.write_seconds,
        boot_device: 'disk',
        power_state,
      };
    },
    deploy,
  );
}

/** The job's config drive; a value it cannot hold fails the job as bad input. */
function configDriveFor(payload: JobPayload & DeployPayload): Buffer {
  let bootaction: z.infer<typeof BootActionInfo> | undefined;
  if (payload.bootaction !== undefined && payload.bootaction !== null) {
    const parsed = BootActionInfo.safeParse(payload.bootaction);
    // Issue paths only: the key's value never reaches an error text.
    if (!parsed.success) throw new JobInputError(`job deploy_node: ${parsed.error.issues.map((x) => `bootaction.${x.path.join('.')}: ${x.message}`).join('; ')}`);
    bootaction = parsed.data;
  }
  const hostname = payload.hostname ?? bootaction?.node_name ?? payload.node_id;
  if (!hostname) throw new JobInputError('job deploy_node: no hostname, bootaction.node_name or node_id to name the node');
  try {
    return buildConfigDrive({
      instanceId: payload.node_id ?? hostname,
      hostname,
      ...(payload.configdrive ? { configdrive: payload.configdrive as IronicConfigDrive } : {}),
      ...(payload.bootdata_url ? { bootdataUrl: payload.bootdata_url } : {}),
      ...(bootaction
        ? {
            bootaction: {
              node_name: bootaction.node_name,
              action_key: bootaction.action_key,
              report_url: bootaction.report_url,
              packages: bootaction.packages,
              action_ids: bootaction.actions.map((a) => a.action_id),
            },
          }
        : {}),
    });
  } catch (err) {
    if (err instanceof ConfigDriveError) throw new JobInputError(`job deploy_node: ${err.message}`);
    throw err;
  }
}

/** Polls until the node is off (the ramdisk powers off after its report); forces it off after `ms`. */
async function waitPoweredOff(driver: BmcDriver, ms: number, nodeId: string | undefined): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if ((await driver.getPowerState()) === 'power off') return;
    if (Date.now() >= deadline) break;
    await new Promise((r) => setTimeout(r, Math.min(1000, Math.max(50, ms / 20))));
  }
  log.warn('the node did not power off after its deploy report; forcing it off', { node_id: nodeId, waited_ms: ms });
  await driver.setPowerState('power off');
}

const STEP_VERB: Record<RamdiskStep, string> = { inspect: 'inspect', clean: 'clean', deploy: 'deploy images to' };
const DEFAULT_TIMEOUT_SECONDS: Record<RamdiskStep, number> = { inspect: DEFAULT_INSPECT_TIMEOUT_SECONDS, clean: DEFAULT_CLEAN_TIMEOUT_SECONDS, deploy: DEFAULT_DEPLOY_TIMEOUT_SECONDS };

/** A step's failure found after `finish` powered the node off: bootIntoRamdisk has nothing left to power off. */
class FailedPoweredOff extends Error {
  constructor(readonly failure: unknown) {
    super('failed after powering the node off');
  }
}

/** inspect's and clean's end: power the node off, then fail with the ramdisk's error form if that is what it sent. */
function powerOffAfter<S extends RamdiskStep>(step: S, driver: BmcDriver) {
  return async (result: StepResult<S>): Promise<StepResult<S>> => {
    await driver.setPowerState('power off');
    try {
      stepReport(step, result);
    } catch (err) {
      throw new FailedPoweredOff(err);
    }
    return result;
  };
}

/**
 * Boots the node into the Slipway ramdisk for `step` and waits for its report (inspect, clean
 * and deploy): register the node's MACs with the boot service, PXE once, power on (a power cycle
 * when on), wait for the report, then `finish` (inspect and clean power off; deploy boots the
 * disk). On any failure, including `finish`'s, the node is powered off; it is unregistered
 * always. A report of the step's error form fails with the ramdisk's message (RamdiskStepError).
 */
async function bootIntoRamdisk<S extends RamdiskStep, T>(
  step: S,
  target: { node_id: string; macs: string[]; timeout_seconds?: number | undefined },
  driver: BmcDriver,
  netboot: NetbootService | undefined,
  finish: (result: StepResult<S>) => Promise<T>,
  deploy?: DeployOptions,
): Promise<T> {
  if (!netboot) throw new UnableError(`this agent has no netboot section in its config: it cannot ${STEP_VERB[step]} nodes (see docs/machines.md)`);
  const seconds = target.timeout_seconds ?? DEFAULT_TIMEOUT_SECONDS[step];
  const registration =
    step === 'deploy' ? await netboot.register(target.macs, 'deploy', deploy!) : await netboot.register(target.macs, step as 'inspect' | 'clean');
  log.info(`ramdisk ${step} started`, { node_id: target.node_id, macs: target.macs, discovery: registration.discovery, timeout_seconds: seconds });
  try {
    await driver.setBootDevice('pxe', false);
    // 'rebooting' powers on a node that is off, and power-cycles one that is on.
    await driver.setPowerState('rebooting');
    const result = (await registration.wait(seconds * 1000)) as StepResult<S>;
    return await finish(result);
  } catch (err) {
    // Powered off and verified already: a second power-off would be one more command to the BMC.
    if (err instanceof FailedPoweredOff) throw err.failure;
    try {
      await driver.setPowerState('power off');
    } catch (offErr) {
      log.warn(`could not power the node off after a failed ramdisk ${step}`, { node_id: target.node_id, error: (offErr as Error).message });
    }
    throw err;
  } finally {
    registration.close();
  }
}

/** The job API takes at most this much error text. */
const MAX_ERROR_CHARS = 4000;

/** Error text for the job result: what failed and why, never a secret. */
export function describeFailure(err: unknown): string {
  let text: string;
  if (err instanceof BmcError || err instanceof SshError) text = `${err.code}: ${err.message}`;
  else if (err instanceof CommandFailedError) text = `command_failed: ${err.message}`;
  else if (err instanceof JobInputError) text = `invalid job: ${err.message}`;
  else if (err instanceof InspectionTimeout || err instanceof RamdiskStepError || err instanceof ImageError || err instanceof UnableError || err instanceof FetchJobError) text = err.message;
  else if (err instanceof Error && err.name === 'DeployHookError') text = err.message;
  else text = `agent error: ${err instanceof Error ? err.message : String(err)}`;
  return text.length <= MAX_ERROR_CHARS ? text : `${text.slice(0, MAX_ERROR_CHARS - 1)}…`;
}
