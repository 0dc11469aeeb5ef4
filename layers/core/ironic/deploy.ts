import * as z from '../util/zod.ts';
import type { Job } from '../agent/model.ts';
import { ConcurrentModificationError, ValidationError } from '../errors.ts';
import type { BmcInfo, Node } from '../inventory/node.ts';
import type { Ports } from '../ports.ts';
import { isSealed, type Sealed } from '../secrets.ts';
import { byteLength, jsonProblem } from '../util/bounds.ts';
import { log } from '../util/log.ts';
import { notifyNode } from './events.ts';
import { driverInfoProblem } from './nodes.ts';

/**
 * Ironic's deploy (upstream-apis.md §3.7), done by the site's agent through the Slipway ramdisk
 * (agent/executor.ts `deploy_node`, docs/machines.md):
 *
 *   available | deploy failed ─active/deploy→ deploying ─(the agent claims the job)→ wait call-back
 *                                                       → active, or deploy failed with last_error
 *   active | deploy failed ─rebuild→ deploying → …
 *
 * The node's `instance_info.image_source` names an image of the site's catalog (agent.json
 * `netboot.images`) or is an http(s) URL the agent fetches, checked against
 * `instance_info.image_checksum` (sha256; or `image_os_hash_algo: sha256` with
 * `image_os_hash_value`). A config drive is Ironic's JSON form (API 1.56): `{"meta_data": {…},
 * "user_data": "…", "network_data": {…}}`; it travels sealed in the job (user data may hold
 * secrets) and reaches the installed OS as cloud-init NoCloud data.
 */

/** Upstream's message when instance_info lacks the image (its spelling kept). */
export const missingImageText = (id: string) =>
  `Cannot validate image information for node ${id} because one or more parameters are missing from its instance_info and insufficent information is present to boot from a remote volume. Missing are: ['image_source']`;

const MAX_CONFIGDRIVE_BYTES = 64 * 1024;

/** Ironic's JSON config drive (`--config-drive '{"meta_data": …}'`), bounded. */
export const ConfigDrive = z
  .strictObject({
    meta_data: z.optional(z.record(z.string(), z.unknown())),
    user_data: z.optional(z.union([z.string(), z.record(z.string(), z.unknown())])),
    network_data: z.optional(z.record(z.string(), z.unknown())),
    vendor_data: z.optional(z.record(z.string(), z.unknown())),
  }).check(z.superRefine((v, ctx) => {
    const p = jsonProblem(v);
    if (p) ctx.addIssue({ code: 'custom', message: p });
  }));
export type ConfigDrive = z.infer<typeof ConfigDrive>;

/** The request's `configdrive`, checked: absent, or the JSON form within bounds (400 otherwise). */
export function checkConfigDrive(raw: unknown): ConfigDrive | undefined {
  if (raw === undefined || raw === null) return undefined;
  if (typeof raw === 'string') {
    throw new ValidationError(
      'A config drive given as an ISO image (a gzipped, base64 string) is not supported here: give it as JSON, {"meta_data": {...}, "user_data": "...", "network_data": {...}} (API 1.56 and later)',
      'INVALID_PARAMETER_VALUE',
    );
  }
  if (byteLength(JSON.stringify(raw)) > MAX_CONFIGDRIVE_BYTES) throw new ValidationError(`Invalid configdrive: larger than ${MAX_CONFIGDRIVE_BYTES} bytes`, 'INVALID_PARAMETER_VALUE');
  const r = ConfigDrive.safeParse(raw);
  if (!r.success) throw new ValidationError(`Invalid configdrive: ${r.error.issues.slice(0, 3).map((i) => `${i.path.join('.') || 'configdrive'}: ${i.message}`).join('; ')}`, 'INVALID_PARAMETER_VALUE');
  return r.data;
}

const SHA256 = /^[0-9a-f]{64}$/i;

/** What the agent is told to write: a catalog name, or a URL with its sha256. */
export type ImageRef = { image: string } | { image_url: string; image_sha256: string };

/** The image of a node's instance_info (400 with upstream's message when there is none). */
export function imageOf(node: Node & { bmc: BmcInfo }): ImageRef {
  return imageRefOf(node.bmc.instance_info ?? {}, node.id);
}

/**
 * The image of an instance_info-like object (`image_source`, `image_checksum`,
 * `image_os_hash_algo`/`image_os_hash_value`); `id` names the node in upstream's message.
 */
export function imageRefOf(info: Record<string, unknown>, id: string): ImageRef {
  const source = info.image_source;
  if (typeof source !== 'string' || source.trim() === '') throw new ValidationError(missingImageText(id), 'INVALID_PARAMETER_VALUE');
  if (!/^[a-z][a-z0-9+.-]*:/i.test(source)) {
    if (!/^[A-Za-z0-9_-][A-Za-z0-9._-]{0,199}$/.test(source)) throw new ValidationError(`Invalid instance_info image_source "${source.slice(0, 64)}": an image name of the site's catalog, or an http(s) URL`, 'INVALID_PARAMETER_VALUE');
    return { image: source };
  }
  let url: URL;
  try {
    url = new URL(source);
  } catch {
    throw new ValidationError(`Invalid instance_info image_source: not a URL`, 'INVALID_PARAMETER_VALUE');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new ValidationError(`Invalid instance_info image_source: only http(s) URLs can be fetched by the site's agent, not ${url.protocol}`, 'INVALID_PARAMETER_VALUE');
  if (source.length > 2048) throw new ValidationError('Invalid instance_info image_source: a URL of at most 2048 characters', 'INVALID_PARAMETER_VALUE');
  const algo = typeof info.image_os_hash_algo === 'string' ? info.image_os_hash_algo.toLowerCase() : undefined;
  const sum = algo === 'sha256' && typeof info.image_os_hash_value === 'string' ? info.image_os_hash_value : info.image_checksum;
  if (typeof sum !== 'string' || !SHA256.test(sum)) {
    throw new ValidationError(
      'An image URL needs its sha256: set instance_info image_checksum to the image\'s sha256 (64 hex digits), or image_os_hash_algo "sha256" with image_os_hash_value; other checksums (md5) are not accepted',
      'INVALID_PARAMETER_VALUE',
    );
  }
  return { image_url: source, image_sha256: sum.toLowerCase() };
}

/** Checks before a node starts deploying (after its state allowed the verb). */
export function checkDeployable(node: Node & { bmc: BmcInfo }): ImageRef {
  if (node.bmc.maintenance) throw new ValidationError(`The deploy operation can't be performed on node ${node.id} because it's in maintenance mode.`, 'NODE_IN_MAINTENANCE');
  const problem = driverInfoProblem(node.bmc);
  if (problem) throw new ValidationError(`Failed to validate power driver interface for node ${node.id}. Error: ${problem}`, 'INVALID_PARAMETER_VALUE');
  return imageOf(node);
}

/**
 * What every `deploy_node` job carries about its node (Ironic's, a lease start's, Drydock's): its
 * BMC, the MACs of its ports (the agent boots the ramdisk on those only), its name, the root
 * device hint of `properties.root_device.name`, and how long the agent may take.
 */
export async function nodeDeployBase(deps: Ports, node: Node & { bmc: BmcInfo }, timeoutSeconds: number): Promise<Record<string, unknown>> {
  const ports = await deps.bmPorts.listByNode(node.id);
  const hint = (node.bmc.properties.root_device as { name?: unknown } | undefined)?.name;
  return {
    driver: node.bmc.driver,
    driver_info: node.bmc.driver_info,
    node_id: node.id,
    macs: ports.map((p) => p.address).sort(),
    hostname: node.name,
    ...(typeof hint === 'string' && hint.startsWith('/dev/') ? { root_device: hint } : {}),
    timeout_seconds: timeoutSeconds,
  };
}

/** The `deploy_node` job of an Ironic deploy (the agent's deploy contract, agent/executor.ts). */
/** `configdrive`: checked JSON (sealed here), or one sealed already (a lease's, sealed when the lease was written). */
export async function deployPayload(deps: Ports, node: Node & { bmc: BmcInfo }, image: ImageRef, configdrive: ConfigDrive | Sealed | undefined): Promise<Record<string, unknown>> {
  return {
    ...(await nodeDeployBase(deps, node, deps.config.deployTimeoutSeconds)),
    // An Ironic deploy installs the image it names or fails; it never falls back to a hook.
    require_image: true,
    ...image,
    ...(configdrive ? { configdrive: isSealed(configdrive) ? configdrive : { $sealed: await deps.secrets.seal('config-drive', JSON.stringify(configdrive)) } } : {}),
  };
}

/**
 * Whether the node's state follows the job: an Ironic deploy's or a lease start's (both
 * `require_image`); a Drydock deploy's node is settled by its task, after the boot-action reports.
 */
const isIronicDeploy = (job: Job) => job.kind === 'deploy_node' && job.payload.require_image === true && Boolean(job.node_id);

/**
 * The agent took the deploy: the node now waits for the ramdisk's call-back, as upstream's
 * `wait call-back` (Drydock's deploys too, for what `GET /v1/nodes` shows).
 */
export async function onDeployClaimed(deps: Ports, job: Job): Promise<void> {
  if (job.kind !== 'deploy_node' || !job.node_id) return;
  await moveNode(deps, job, ['deploying'], (b) => ({ ...b, provision_state: 'wait call-back' }));
}

/** An Ironic deploy's job is final: `active`, or `deploy failed` with the agent's reason. */
export async function onDeployFinished(deps: Ports, job: Job): Promise<void> {
  if (!isIronicDeploy(job)) return;
  const at = deps.clock.now().toISOString();
  const moved = await moveNode(deps, job, ['deploying', 'wait call-back'], (b) =>
    job.status === 'succeeded'
      ? // The agent powered the node on from its disk. (A failure may come before or after it touched the BMC: the power state is left to the next read.)
        { ...b, provision_state: 'active', target_provision_state: null, provision_updated_at: at, last_error: null, power_state: 'power on', target_power_state: null }
      : { ...b, provision_state: 'deploy failed', target_provision_state: null, provision_updated_at: at, last_error: `Failed to deploy: ${job.error ?? 'the agent gave no reason'}`.slice(0, 4000) },
  );
  if (moved) await notifyNode(deps, 'deploy', job.status === 'succeeded', moved);
}

/**
 * A version-checked move of the job's node from one of `from`, only for the deploy this job was
 * queued for (the node entered its state no later than the job was queued).
 */
async function moveNode(deps: Ports, job: Job, from: readonly string[], to: (b: BmcInfo) => BmcInfo): Promise<Node | undefined> {
  for (let attempt = 0; attempt < 10; attempt++) {
    const node = await deps.nodes.get(job.node_id!);
    const b = node?.bmc;
    if (!node || !b || !from.includes(b.provision_state) || (b.provision_updated_at && b.provision_updated_at > job.created_at)) return undefined;
    try {
      return await deps.nodes.update(node.id, node.version, { bmc: to(b) });
    } catch (err) {
      if (!(err instanceof ConcurrentModificationError)) throw err;
    }
  }
  log.error('deploy state not recorded: the node kept changing', { job_id: job.id, node_id: job.node_id });
  return undefined;
}
