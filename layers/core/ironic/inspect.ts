import * as z from '../util/zod.ts';
import type { Job } from '../agent/model.ts';
import { ConcurrentModificationError, ConflictError, ValidationError } from '../errors.ts';
import type { BmcInfo, Node, NodeFacts } from '../inventory/node.ts';
import type { Ports } from '../ports.ts';
import { idProblem } from '../util/bounds.ts';
import { log } from '../util/log.ts';
import { normalizeMac } from './bm-ports.ts';
import { newPort } from './model.ts';
import { driverInfoProblem } from './nodes.ts';

/**
 * Ironic in-band inspection (`PUT …/states/provision {"target": "inspect"}`, upstream-apis.md
 * §3.7): `manageable` or `inspect failed` → `inspecting` (target `manageable`), and one `inspect`
 * job for the node's site. The site's agent boots the Slipway ramdisk on the node through its BMC
 * and posts what the ramdisk found; `onInspectFinished` (the kind's handler in `agent/kinds.ts`)
 * turns that into the node's properties, its Blazar host facts and its ports, then `manageable`
 * — or `inspect failed` with the reason.
 *
 * What the agent posts is checked here, not trusted: a malformed report fails the inspection.
 */

/** One byte-bounded, control-character-free string of the agent's report. */
const text = (max = 255) =>
  z.string().check(z.minLength(1), z.superRefine((v, ctx) => {
    const p = idProblem(v, max);
    if (p) ctx.addIssue({ code: 'custom', message: p });
  }));
const count = z.number().check(z.int(), z.gte(0), z.lte(Number.MAX_SAFE_INTEGER));

/** The `inspect` job's successful output (sizes in bytes). Keys beyond these are ignored. */
export const InspectOutput = z.object({
  cpus: count.check(z.gte(1)),
  cpu_arch: text(64),
  memory_mb: count.check(z.gte(1)),
  disks: z.array(z.object({ name: text(), size: count })).check(z.maxLength(256)),
  // A MAC is checked per interface below: an invalid one is skipped, as upstream does.
  interfaces: z.array(z.object({ name: text(), mac_address: z.string().check(z.maxLength(255)) })).check(z.maxLength(256)),
  boot_mac: z.nullable(z.string().check(z.maxLength(255))),
});
export type InspectOutput = z.infer<typeof InspectOutput>;

/** The payload of an `inspect` job (the agent's contract). */
export interface InspectPayload {
  driver: BmcInfo['driver'];
  /** Sealed secrets stay sealed here; the claim opens them for the agent. */
  driver_info: Record<string, unknown>;
  node_id: string;
  /** The MACs of the node's Ironic ports (lower case, colons), so the agent knows which NIC boots. */
  macs: string[];
  timeout_seconds: number;
}

/** The payload of an `inspect` job, and (with its own timeout) of a `clean` job (`clean.ts`). */
export async function inspectPayload(deps: Ports, node: Node & { bmc: BmcInfo }, timeoutSeconds = deps.config.inspectTimeoutSeconds): Promise<InspectPayload> {
  const ports = await deps.bmPorts.listByNode(node.id);
  return {
    driver: node.bmc.driver,
    driver_info: node.bmc.driver_info,
    node_id: node.id,
    macs: ports.map((p) => p.address).sort(),
    timeout_seconds: timeoutSeconds,
  };
}

const GiB = 1024 ** 3;
/** ironic-python-agent's `guess_root_disk`: disks smaller than this are never the root disk. */
export const MIN_ROOT_DISK_BYTES = 4 * GiB;

/**
 * The root disk without root device hints, as ironic-python-agent's `guess_root_disk` picks it
 * (and so Ironic's in-band inspection, which uses the ramdisk's `root_disk`): the smallest disk of
 * at least 4 GiB, the name breaking ties.
 */
export function rootDisk(disks: readonly { name: string; size: number }[]): { name: string; size: number } | undefined {
  return disks
    .filter((d) => d.size >= MIN_ROOT_DISK_BYTES)
    .sort((a, b) => a.size - b.size || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))[0];
}

/**
 * `local_gb` as Ironic's inspection sets it (the `root-device` hook, ironic-inspector's
 * `SchedulerHook` before it): the root disk's whole GiB, less 1 GiB left for partitioning
 * (`[inspector]disk_partitioning_spacing`, true by default); 0 for a node without a disk large
 * enough ("assuming node is diskless").
 */
export function localGb(disks: readonly { name: string; size: number }[]): number {
  const root = rootDisk(disks);
  if (!root) return 0;
  return Math.floor(root.size / GiB) - 1;
}

/** A loopback interface's MAC: never a port. */
const NULL_MAC = '00:00:00:00:00:00';

/** What an inspection found, checked and in Ironic's terms. */
interface Found {
  properties: { cpus: number; cpu_arch: string; memory_mb: number; local_gb: number };
  /** Normalized MACs with whether each is the one the node booted from. */
  nics: { mac: string; pxe: boolean }[];
  /** Why some reported interfaces were not used. */
  skipped: string[];
}

function found(out: InspectOutput): Found {
  const skipped: string[] = [];
  const asMac = (raw: string) => {
    try {
      return normalizeMac(raw);
    } catch {
      return undefined;
    }
  };
  const boot = out.boot_mac === null ? undefined : asMac(out.boot_mac);
  if (out.boot_mac !== null && !boot) skipped.push('boot_mac is not a MAC address');
  const nics = new Map<string, boolean>();
  for (const nic of out.interfaces) {
    const mac = asMac(nic.mac_address);
    if (nic.name === 'lo' || mac === NULL_MAC) continue;
    if (!mac) {
      skipped.push(`interface ${nic.name} has no valid MAC address`);
      continue;
    }
    nics.set(mac, mac === boot);
  }
  return {
    properties: { cpus: out.cpus, cpu_arch: out.cpu_arch, memory_mb: out.memory_mb, local_gb: localGb(out.disks) },
    nics: [...nics].map(([mac, pxe]) => ({ mac, pxe })),
    skipped,
  };
}

/** The reason an inspect job's result cannot be used, or what it found. */
export function readInspection(job: Pick<Job, 'status' | 'output' | 'error'>): { error: string } | { found: Found } {
  if (job.status !== 'succeeded') return { error: `Failed to inspect hardware. Reason: ${job.error ?? 'the agent gave no reason'}` };
  const r = InspectOutput.safeParse(job.output);
  if (!r.success) {
    const issues = r.error.issues.slice(0, 5).map((i) => `${i.path.join('.') || 'output'}: ${i.message}`);
    return { error: `Failed to inspect hardware. Reason: the agent's inspection report is malformed (${issues.join('; ')})` };
  }
  return { found: found(r.data) };
}

/**
 * A port for every reported MAC the node lacks (PXE-enabled for the one it booted from), as
 * upstream's `ports` hook adds them. A MAC that is another node's port stays that node's: it is
 * noted, and the inspection still succeeds. Ports are unique per MAC, so running this twice adds
 * nothing the second time.
 */
async function addPorts(deps: Ports, nodeId: string, nics: Found['nics']): Promise<string[]> {
  const notes: string[] = [];
  for (const { mac, pxe } of nics) {
    for (let attempt = 0; attempt < 3; attempt++) {
      const existing = await deps.bmPorts.getByAddress(mac);
      if (existing) {
        if (existing.node_uuid !== nodeId) notes.push(`MAC ${mac} is a port of node ${existing.node_uuid}; not added`);
        break;
      }
      const port = newPort({ address: mac, node_uuid: nodeId, pxe_enabled: pxe, created_at: deps.clock.now().toISOString() });
      try {
        await deps.bmPorts.create(port);
        break;
      } catch (err) {
        // Someone else took the MAC meanwhile: look again whose it is.
        if (!(err instanceof ConflictError && err.errorName === 'MACAlreadyExists')) throw err;
      }
    }
  }
  return notes;
}

/**
 * The handler of `inspect` jobs (`agent/kinds.ts`): an inspecting node takes what the agent found
 * and becomes `manageable`, or `inspect failed` with the reason. Every move is a version-checked
 * write from `inspecting`: a node that left it (or a handler that already ran) is left alone.
 */
export async function onInspectFinished(deps: Ports, job: Job): Promise<void> {
  if (job.kind !== 'inspect' || !job.node_id) return;
  const first = await deps.nodes.get(job.node_id);
  if (first?.bmc?.provision_state !== 'inspecting') {
    log.warn('inspection result for a node that is not inspecting; ignored', { job_id: job.id, node_id: job.node_id, state: first?.bmc?.provision_state ?? null });
    return;
  }
  const result = readInspection(job);
  let notes: string[] = [];
  if ('found' in result) {
    notes = [...result.found.skipped, ...(await addPorts(deps, job.node_id, result.found.nics))];
    if (notes.length) log.warn('inspection: some interfaces were not added as ports', { job_id: job.id, node_id: job.node_id, notes });
  } else {
    log.warn('inspection failed', { job_id: job.id, node_id: job.node_id, error: result.error });
  }
  for (let attempt = 0; attempt < 10; attempt++) {
    const node = attempt === 0 ? first : await deps.nodes.get(job.node_id);
    if (!node?.bmc || node.bmc.provision_state !== 'inspecting') return;
    const at = deps.clock.now().toISOString();
    const done = { target_provision_state: null, provision_updated_at: at };
    let bmc: BmcInfo;
    let facts: Partial<NodeFacts> | undefined;
    if ('found' in result) {
      const p = result.found.properties;
      bmc = {
        ...node.bmc,
        ...done,
        provision_state: 'manageable',
        // The agent powered the node off after the ramdisk's inspection.
        power_state: 'power off',
        target_power_state: null,
        inspection_finished_at: at,
        properties: { ...node.bmc.properties, ...p },
        // Ironic's last_error is for failures; an interface left out is worth showing all the same.
        last_error: notes.length ? `Inspection succeeded, but: ${notes.join('; ')}` : null,
      };
      // The Blazar host facts lease filters read ($vcpus, $memory_mb, $local_gb); cpu_info gets
      // the architecture unless an operator described the CPU already.
      facts = { vcpus: p.cpus, memory_mb: p.memory_mb, local_gb: p.local_gb, ...(node.facts.cpu_info ? {} : { cpu_info: p.cpu_arch }) };
    } else {
      bmc = { ...node.bmc, ...done, provision_state: 'inspect failed', last_error: result.error };
    }
    try {
      await deps.nodes.update(node.id, node.version, { bmc, ...(facts ? { facts } : {}) });
      return;
    } catch (err) {
      if (!(err instanceof ConcurrentModificationError)) throw err;
    }
  }
  // The job is final either way; the node stays `inspecting` (as after a lost agent) until an
  // operator looks.
  log.error('inspection result not recorded: the node kept changing', { job_id: job.id, node_id: job.node_id });
}

/**
 * Checks before a node starts inspecting (after its state allowed the verb): not in maintenance
 * (the agent would power it), a BMC the agent can reach.
 */
export function checkInspectable(node: Node & { bmc: BmcInfo }): void {
  if (node.bmc.maintenance) throw new ValidationError(`The inspection operation can't be performed on node ${node.id} because it's in maintenance mode.`, 'NODE_IN_MAINTENANCE');
  const problem = driverInfoProblem(node.bmc);
  if (problem) {
    throw new ValidationError(`Failed to inspect hardware. Reason: RPC inspect_hardware failed to validate inspection or power info. Error: ${problem}`, 'HARDWARE_INSPECTION_FAILURE');
  }
}
