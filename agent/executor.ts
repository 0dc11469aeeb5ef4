import * as z from 'zod';
import { log } from '#core/util/log.ts';
import type { AgentConfig } from './config.ts';
import { cleaningOutput, InspectionTimeout, inspectionOutput, type NetbootService, normalizeMac, type RamdiskStep, RamdiskStepError, type StepResult, stepReport } from './netboot.ts';
import { SshError, type SshOptions } from './drivers/ssh.ts';
import { BmcError, type BmcDriver, type BootDevice, type PowerAction } from './drivers/types.ts';
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
 *   deploy_node     { bootaction? }                    → { boot_device: 'pxe', power_state, hook? }
 *                   (Drydock: the deploy hook gets `bootaction`, then PXE next boot and a power cycle)
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
 *                   `erasing /dev/vdb failed: …`, fails the job.)
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
  | { family: 'ssh'; kind: 'ssh_run'; payload: SshRunPayload };

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

/** The key under which commands to one BMC are serialized. */
export function bmcKey(p: JobPayload): string {
  const i = p.driver_info;
  return p.driver === 'ipmi' ? `ipmi:${i.ipmi_address}:${i.ipmi_port ?? 623}` : `redfish:${i.redfish_address}`;
}

/** The key under which jobs are serialized: one job per BMC, one per SSH host, at a time. */
export function serialKey(job: ParsedJob): string {
  return job.family === 'bmc' ? bmcKey(job.payload) : sshHostKey(job.payload);
}

export function parseJob(kind: string, payload: Record<string, unknown>): ParsedJob {
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
  if (kind === 'inspect' || kind === 'clean') {
    const parsed = InspectPayload.safeParse(payload);
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
}

/** The agent config's SSH section as driver options. */
export function sshOptions(cfg: AgentConfig): SshOptions {
  return {
    connectTimeoutMs: cfg.ssh.connect_timeout_seconds * 1000,
    commandTimeoutMs: cfg.ssh.command_timeout_seconds * 1000,
    maxOutputBytes: cfg.ssh.max_output_bytes,
  };
}

export async function execute(job: ParsedJob, executors: Executors): Promise<unknown> {
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
    case 'deploy_node': {
      const info = payload.bootaction;
      let hook: { exit_code: number } | undefined;
      if (executors.deployHook && info && typeof info === 'object') hook = await executors.deployHook(info as Record<string, unknown>);
      await driver.setBootDevice('pxe', false);
      return { boot_device: 'pxe', power_state: await driver.setPowerState('rebooting'), ...(hook ? { hook } : {}) };
    }
    case 'inspect': {
      const result = await bootIntoRamdisk('inspect', payload as JobPayload & z.infer<typeof InspectPayload>, driver, executors.netboot);
      return inspectionOutput(result);
    }
    case 'clean': {
      const result = await bootIntoRamdisk('clean', payload as JobPayload & z.infer<typeof InspectPayload>, driver, executors.netboot);
      return cleaningOutput(result);
    }
    default:
      throw new JobInputError(`unknown job kind ${kind}`);
  }
}

const STEP_VERB: Record<RamdiskStep, string> = { inspect: 'inspect', clean: 'clean' };

/**
 * Boots the node into the Slipway ramdisk for `step` and waits for its report (inspect and
 * clean): register the node's MACs with the boot service, PXE once, power on (a power cycle when
 * on), wait for the report, power off. Unregistered and powered off on failure too; a report of
 * the step's error form fails with the ramdisk's message (RamdiskStepError).
 */
async function bootIntoRamdisk<S extends RamdiskStep>(
  step: S,
  payload: JobPayload & z.infer<typeof InspectPayload>,
  driver: BmcDriver,
  netboot: NetbootService | undefined,
): Promise<StepResult<S>> {
  if (!netboot) throw new Error(`this agent has no netboot section in its config: it cannot ${STEP_VERB[step]} nodes (see README, "Machines")`);
  const seconds = payload.timeout_seconds ?? (step === 'clean' ? DEFAULT_CLEAN_TIMEOUT_SECONDS : DEFAULT_INSPECT_TIMEOUT_SECONDS);
  const registration = await netboot.register(payload.macs, step);
  log.info(`ramdisk ${step} started`, { node_id: payload.node_id, macs: payload.macs, discovery: registration.discovery, timeout_seconds: seconds });
  try {
    await driver.setBootDevice('pxe', false);
    // 'rebooting' powers on a node that is off, and power-cycles one that is on.
    await driver.setPowerState('rebooting');
    const result: StepResult<S> = await registration.wait(seconds * 1000);
    await driver.setPowerState('power off');
    stepReport(step, result); // the ramdisk's error form fails the job with its message
    return result;
  } catch (err) {
    try {
      await driver.setPowerState('power off');
    } catch (offErr) {
      log.warn(`could not power the node off after a failed ramdisk ${step}`, { node_id: payload.node_id, error: (offErr as Error).message });
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
  else if (err instanceof InspectionTimeout || err instanceof RamdiskStepError) text = err.message;
  else if (err instanceof Error && err.name === 'DeployHookError') text = err.message;
  else text = `agent error: ${err instanceof Error ? err.message : String(err)}`;
  return text.length <= MAX_ERROR_CHARS ? text : `${text.slice(0, MAX_ERROR_CHARS - 1)}…`;
}
