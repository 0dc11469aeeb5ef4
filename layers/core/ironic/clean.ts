import * as z from '../util/zod.ts';
import type { Job } from '../agent/model.ts';
import { ConcurrentModificationError, ValidationError } from '../errors.ts';
import type { BmcInfo, Node } from '../inventory/node.ts';
import type { Ports } from '../ports.ts';
import { idProblem } from '../util/bounds.ts';
import { log } from '../util/log.ts';
import { notifyNode } from './events.ts';
import { type InspectPayload, inspectPayload } from './inspect.ts';
import { driverInfoProblem } from './nodes.ts';

/**
 * Ironic cleaning (upstream-apis.md §3.7): the site's agent boots the Slipway ramdisk on the node
 * through its BMC and erases every disk (`deploy.erase_devices`), as one `clean` job.
 *
 * - Manual cleaning, `{"target": "clean", "clean_steps": [{"interface": "deploy", "step":
 *   "erase_devices"}]}`: `manageable` → `cleaning` (target `manageable`) → `manageable`.
 * - Automated cleaning on `provide` (`[conductor]automated_clean`, `SLIPWAY_AUTOMATED_CLEAN`, or
 *   the node's own `automated_clean`): `manageable` → `cleaning` (target `available`) → `available`.
 *
 * A failed clean (the agent's error, or a report that does not check out) leaves the node in
 * `clean failed` with maintenance on, `maintenance_reason` and `last_error` the reason, as
 * upstream's cleaning error handler does; `manage` takes it back to `manageable` (maintenance
 * stays until an admin clears it), and such a node is never allocated to a lease.
 */

/** The `clean` job's payload: exactly the `inspect` job's (the agent's contract). */
export type CleanPayload = InspectPayload;

export async function cleanPayload(deps: Ports, node: Node & { bmc: BmcInfo }): Promise<CleanPayload> {
  return inspectPayload(deps, node, deps.config.cleanTimeoutSeconds);
}

const text = (max = 255) =>
  z.string().check(z.minLength(1), z.superRefine((v, ctx) => {
    const p = idProblem(v, max);
    if (p) ctx.addIssue({ code: 'custom', message: p });
  }));
const bytes = z.number().check(z.int(), z.gte(0), z.lte(Number.MAX_SAFE_INTEGER));

/** The `clean` job's successful output: what was erased, how, and how much was read back. */
export const CleanOutput = z.object({
  disks: z.array(z.object({ name: text(), size: bytes, method: z.enum(['zero', 'discard']), verified_bytes: bytes })).check(z.maxLength(256)),
  boot_mac: z.nullable(z.string().check(z.maxLength(255))),
});
export type CleanOutput = z.infer<typeof CleanOutput>;

/** Upstream's step of a node's deploy interface that erases its disks, as a user names it. */
export const ERASE_STEP = { interface: 'deploy', step: 'erase_devices' } as const;
/**
 * The clean steps a manual clean may name. `erase_devices_metadata` (upstream: wipe partition
 * tables and file system signatures only) is run as the same full erase: the ramdisk has one
 * erase, and erasing more than asked never leaves a tenant's data behind.
 */
const ERASE_STEPS = new Set(['erase_devices', 'erase_devices_metadata']);

/** Upstream's interfaces a clean step may name (its clean_steps JSON schema). */
const INTERFACES = ['bios', 'deploy', 'firmware', 'management', 'power', 'raid'] as const;

const CleanStep = z.strictObject({
  interface: z.enum(INTERFACES),
  step: z.string().check(z.minLength(1), z.maxLength(255)),
  args: z.optional(z.record(z.string(), z.unknown())),
  priority: z.optional(z.number().check(z.int())),
});

/** A step as Python prints the dict in upstream's messages: `{'interface': 'deploy', 'step': 'x'}`. */
function pyRepr(step: Record<string, unknown>): string {
  const val = (v: unknown): string => (typeof v === 'string' ? `'${v}'` : typeof v === 'boolean' ? (v ? 'True' : 'False') : v === null ? 'None' : JSON.stringify(v));
  return `{${Object.entries(step).map(([k, v]) => `'${k}': ${val(v)}`).join(', ')}}`;
}

/**
 * Checks a manual clean's `clean_steps` (400s with upstream's messages): required and non-empty;
 * each step `{interface, step, args?}`; only `deploy.erase_devices` (or `erase_devices_metadata`,
 * run as the same erase) — any other step is one this node does not support.
 */
export function checkCleanSteps(raw: unknown): void {
  if (raw === undefined || raw === null || (Array.isArray(raw) && raw.length === 0)) {
    throw new ValidationError('"clean_steps" is required when setting target provision state to clean', 'INVALID_PARAMETER_VALUE');
  }
  const r = z.array(CleanStep).check(z.maxLength(32)).safeParse(raw);
  if (!r.success) {
    const issues = r.error.issues.slice(0, 3).map((i) => `${i.path.join('.') || 'clean_steps'}: ${i.message}`);
    throw new ValidationError(`Invalid clean_steps: ${issues.join('; ')}`, 'INVALID_PARAMETER_VALUE');
  }
  const unsupported = r.data
    .filter((s) => !(s.interface === 'deploy' && ERASE_STEPS.has(s.step)))
    .map((s) => `node does not support this clean step: ${pyRepr({ interface: s.interface, step: s.step, ...(s.args ? { args: s.args } : {}) })}`);
  if (unsupported.length) throw new ValidationError(unsupported.join('; '), 'INVALID_PARAMETER_VALUE');
}

/**
 * Checks before a node starts cleaning (after its state allowed the verb): not in maintenance
 * (the agent would power it; upstream's NodeInMaintenance), a BMC the agent can reach.
 */
export function checkCleanable(node: Node & { bmc: BmcInfo }): void {
  if (node.bmc.maintenance) throw new ValidationError(`The cleaning operation can't be performed on node ${node.id} because it's in maintenance mode.`, 'NODE_IN_MAINTENANCE');
  const problem = driverInfoProblem(node.bmc);
  if (problem) throw new ValidationError(`Failed to validate power driver interface for node ${node.id}. Error: ${problem}`, 'INVALID_PARAMETER_VALUE');
}

/**
 * Whether `provide` cleans the node first (upstream's `skip_automated_cleaning`): the node's own
 * `automated_clean` when set, else the setting — and only for a node whose BMC the agent can
 * reach (a node without complete driver_info has nothing the agent could boot).
 */
export function cleansOnProvide(deps: Ports, bmc: BmcInfo): boolean {
  const wanted = bmc.automated_clean ?? deps.config.automatedClean;
  return wanted && driverInfoProblem(bmc) === undefined;
}

/** The reason a clean job's result is a failure, or undefined when the disks were erased. */
export function cleanFailure(job: Pick<Job, 'status' | 'output' | 'error'>): string | undefined {
  if (job.status !== 'succeeded') return job.error ?? 'the agent gave no reason';
  const r = CleanOutput.safeParse(job.output);
  if (r.success) return undefined;
  const issues = r.error.issues.slice(0, 5).map((i) => `${i.path.join('.') || 'output'}: ${i.message}`);
  return `the agent's cleaning report is malformed (${issues.join('; ')})`;
}

/**
 * The handler of `clean` jobs (`agent/kinds.ts`): a cleaning node goes where it was headed
 * (`manageable` for a manual clean, `available` after `provide`), or to `clean failed` with
 * maintenance on and the reason. Every move is a version-checked write from `cleaning`, and only
 * for the cleaning this job was queued for (the node entered `cleaning` no later than the job was
 * queued): a handler that runs again, or a stale job's, finds nothing to do.
 */
export async function onCleanFinished(deps: Ports, job: Job): Promise<void> {
  if (job.kind !== 'clean' || !job.node_id) return;
  const failure = cleanFailure(job);
  for (let attempt = 0; attempt < 10; attempt++) {
    const node = await deps.nodes.get(job.node_id);
    const b = node?.bmc;
    if (!node || !b || b.provision_state !== 'cleaning' || (b.provision_updated_at && b.provision_updated_at > job.created_at)) {
      if (attempt === 0) log.warn('cleaning result for a node that is not cleaning for this job; ignored', { job_id: job.id, node_id: job.node_id, state: b?.provision_state ?? null });
      return;
    }
    const done = { target_provision_state: null, provision_updated_at: deps.clock.now().toISOString() };
    // After an erase the agent has powered the node off (a failure may come before it touched the BMC).
    const off = failure ? {} : { power_state: 'power off' as const, target_power_state: null };
    let bmc: BmcInfo;
    if (failure) {
      const reason = `Node ${node.id} failed step deploy.erase_devices: ${failure}`;
      bmc = { ...b, ...done, provision_state: 'clean failed', last_error: reason, maintenance: true, maintenance_reason: reason };
    } else {
      bmc = { ...b, ...done, ...off, provision_state: b.target_provision_state === 'available' ? 'available' : 'manageable', last_error: null };
    }
    try {
      const moved = await deps.nodes.update(node.id, node.version, { bmc });
      if (failure) log.warn('cleaning failed', { job_id: job.id, node_id: node.id, error: failure });
      await notifyNode(deps, 'clean', !failure, moved);
      return;
    } catch (err) {
      if (!(err instanceof ConcurrentModificationError)) throw err;
    }
  }
  // The job is final either way; the node stays `cleaning` (as after a lost agent) until an
  // operator looks.
  log.error('cleaning result not recorded: the node kept changing', { job_id: job.id, node_id: job.node_id });
}
