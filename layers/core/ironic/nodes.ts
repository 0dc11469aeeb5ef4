import { randomUUID } from 'node:crypto';
import * as z from '../util/zod.ts';
import { enqueueJob } from '../agent/enqueue.ts';
import { noAgentText, sitePresence } from '../agent/presence.ts';
import type { Job } from '../agent/model.ts';
import { AgentTimeoutError, BmcOperationError, ConcurrentModificationError, ConflictError, ForbiddenError, NotFoundError, ValidationError } from '../errors.ts';
import { isAdmin, type Principal, requireAdmin, requireAuth } from '../identity/identity.ts';
import { type BmcInfo, newNode, type Node } from '../inventory/node.ts';
import type { Ports } from '../ports.ts';
import { nodeVisible } from '../inventory/nodes.ts';
import { isSealed, SECRET_FIELDS, sealedShapeAt, sealSecrets } from '../secrets.ts';
import { byteLength, freeFormObject, idProblem, MAX_QUERY_BYTES, nameProblem } from '../util/bounds.ts';
import { bmcErrorFor } from './redact.ts';
import { deleteNodePorts } from './bm-ports.ts';
import { JsonPatch, patchSteps } from './json-patch.ts';
import { afterPowerRead } from './power-read.ts';

/**
 * Ironic-compatible BMC registration and power/boot control over the node inventory (issue 3).
 * A power or boot request becomes an agent job for the node's site (`conductor_group`); the
 * job's result becomes the node's `power_state` / `last_error` (see `onJobFinished`).
 */
const port = z.pipe(z.pipe(z.union([z.number().check(z.int()), z.string().check(z.regex(/^\d+$/))]), z.transform(Number)), z.number().check(z.int(), z.gte(1), z.lte(65535)));
/** A zod refinement from one of the `bounds.ts` problem functions. */
const refineWith = (problem: (v: string) => string | undefined) => (v: string, ctx: z.core.$RefinementCtx) => {
  const p = problem(v);
  if (p) ctx.addIssue({ code: 'custom', message: p });
};
/** CLIs send `key=1` as a number; Ironic keeps such fields as strings (at most 255 bytes, no control characters). */
const text = z.pipe(z.pipe(z.union([z.string(), z.number()]), z.transform(String)), z.string().check(z.minLength(1), z.superRefine(refineWith((v) => idProblem(v)))));
/** A BMC password: any characters, but bounded (IPMI takes 20 bytes; Redfish services a few hundred). */
const password = z.pipe(
  z.pipe(z.union([z.string(), z.number()]), z.transform(String)),
  z.string().check(z.refine((v) => byteLength(v) <= MAX_QUERY_BYTES, { message: `is longer than ${MAX_QUERY_BYTES} bytes` })),
);

const IpmiInfo = z
  .strictObject({
    ipmi_address: text,
    ipmi_port: z.optional(port),
    ipmi_username: z.optional(text),
    ipmi_password: z.optional(password),
    credential_ref: z.optional(text),
    ipmi_cipher_suite: z.optional(z.pipe(z.union([z.number().check(z.int()), z.string().check(z.regex(/^\d+$/))]), z.transform(Number))),
  }).check(z.refine((i) => i.credential_ref !== undefined || i.ipmi_username !== undefined, { message: 'ipmi_username or credential_ref is required' }));

const RedfishInfo = z
  .strictObject({
    redfish_address: text,
    redfish_system_id: z.optional(text),
    redfish_username: z.optional(text),
    redfish_password: z.optional(password),
    credential_ref: z.optional(text),
    redfish_verify_ca: z.optional(z.union([z.boolean(), z.enum(['true', 'false', 'True', 'False'])])),
  }).check(z.refine((i) => i.credential_ref !== undefined || i.redfish_username !== undefined, { message: 'redfish_username or credential_ref is required' }));

export const DRIVERS = { ipmi: IpmiInfo, redfish: RedfishInfo } as const;
export type DriverName = keyof typeof DRIVERS;

/**
 * `GET /v1/drivers/{driver}/properties` (`baremetal driver property list`): every driver_info key
 * a driver takes, described as upstream does (the unit tests hold these to the schemas above).
 */
export const DRIVER_PROPERTIES: Record<DriverName, Record<string, string>> = {
  ipmi: {
    ipmi_address: 'IP address or hostname of the node. Required.',
    ipmi_port: 'remote IPMI RMCP port. Optional.',
    ipmi_username: 'username; required unless credential_ref is set.',
    ipmi_password: 'password. Sealed at rest and never shown. Optional.',
    credential_ref: "name of credentials kept by the site's agent (agent.json `credentials`) instead of ipmi_username/ipmi_password. Optional.",
    ipmi_cipher_suite: 'IPMI cipher suite (ipmitool -C); the agent uses 3 by default. Optional.',
  },
  redfish: {
    redfish_address: 'The URL address to the Redfish controller, e.g. https://10.0.0.2. Required.',
    redfish_system_id: 'The canonical path (or the id) of the ComputerSystem resource; the only system when omitted. Optional.',
    redfish_username: 'User account with admin/server-profile access privilege; required unless credential_ref is set.',
    redfish_password: 'User account password. Sealed at rest and never shown. Optional.',
    credential_ref: "name of credentials kept by the site's agent (agent.json `credentials`) instead of redfish_username/redfish_password. Optional.",
    redfish_verify_ca: 'Either a Boolean value or a path to a CA bundle; whether to verify the TLS certificate. Default true. Optional.',
  },
};
export const DEFAULT_SITE = 'default';

const UNRESERVED = /^[A-Za-z0-9._~-]+$/;
const UUID_LIKE = /^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i;

/**
 * The rules of a node name, at create and at `PATCH /name` alike: upstream's logical name (RFC
 * 3986 unreserved characters), at most 255 bytes, no `.`/`..` (the name becomes a Drydock
 * hostname and a path segment), and not shaped like a UUID (it would be looked up as one, as
 * upstream's `is_valid_node_name` says).
 */
export function nodeNameProblem(value: unknown): string | undefined {
  if (typeof value !== 'string') return 'must be a string';
  const p = nameProblem(value);
  if (p) return p;
  if (!UNRESERVED.test(value)) return 'letters, digits and . _ ~ - only';
  if (UUID_LIKE.test(value)) return 'must not look like a UUID';
  return undefined;
}

/**
 * Refuses a client value that holds a `$sealed` object anywhere: only the API seals (see
 * `sealedShapeAt`). Secret fields take strings, so their schema refuses an object anyway.
 */
const noSealed = (v: unknown, ctx: z.core.$RefinementCtx) => {
  const at = sealedShapeAt(v);
  if (at) ctx.addIssue({ code: 'custom', message: `${at}: sealed values ("$sealed") are made by the API, not accepted from clients` });
};

/** A free-form node field (`properties`, `extra`): a JSON object of at most 64 KiB, 32 levels, no sealed values. */
const freeForm = () => freeFormObject().check(z.superRefine(noSealed));

export const NodeCreate = z.strictObject({
  name: z.string().check(z.superRefine(refineWith((v) => nodeNameProblem(v)))),
  driver: z.enum(['ipmi', 'redfish'], { error: 'driver must be ipmi or redfish' }),
  // Checked against the driver's schema by registerNode; bounded here like any free-form object.
  driver_info: z._default(freeFormObject().check(z.superRefine(noSealed)), {}),
  conductor_group: z._default(z.string().check(z.superRefine(refineWith((v) => idProblem(v)))), ''),
  properties: z._default(freeForm(), {}),
  extra: z._default(freeForm(), {}),
  uuid: z.optional(z.uuid()),
  resource_class: z.optional(z.string().check(z.superRefine(refineWith((v) => idProblem(v))))),
  // Upstream's per-node override of automated cleaning (API 1.47): null follows the setting.
  automated_clean: z.optional(z.nullable(z.boolean())),
});
export type NodeCreate = z.infer<typeof NodeCreate>;

function validateDriverInfo(driver: DriverName, info: Record<string, unknown>): Record<string, unknown> {
  const r = DRIVERS[driver].safeParse(info);
  if (!r.success) {
    const issues = r.error.issues.map((i) => (i.code === 'unrecognized_keys' ? `unknown driver_info key(s) ${i.keys.join(', ')}` : `${i.path.join('.') || 'driver_info'}: ${i.message}`));
    throw new ValidationError(`Invalid driver_info for driver ${driver}: ${issues.join('; ')}`, 'INVALID_PARAMETER_VALUE');
  }
  return Object.fromEntries(Object.entries(r.data).filter(([, v]) => v !== undefined));
}

/**
 * A stored driver_info value that is a sealed secret: a secret field the API sealed. A sealed
 * value anywhere else was never the API's doing and is checked (and refused) like any value.
 */
const isStoredSecret = (k: string, v: unknown) => SECRET_FIELDS.has(k) && isSealed(v);
/** Stored driver_info with its sealed secrets as placeholders, so the schema can check the rest. */
const withSecretPlaceholders = (info: Record<string, unknown>) => Object.fromEntries(Object.entries(info).map(([k, v]) => [k, isStoredSecret(k, v) ? 'sealed' : v]));

/**
 * What is wrong with a registered BMC's driver_info (sealed secrets count as given), or undefined
 * when the site's agent has what it needs to reach the BMC.
 */
export function driverInfoProblem(bmc: BmcInfo): string | undefined {
  try {
    validateDriverInfo(bmc.driver, withSecretPlaceholders(bmc.driver_info));
    return undefined;
  } catch (err) {
    return err instanceof ValidationError ? err.message : 'invalid driver_info';
  }
}

/** The site that serves a conductor group ('' is Ironic's default group). */
export const siteOf = (bmc: BmcInfo) => bmc.conductor_group || DEFAULT_SITE;

async function findNode(deps: Ports, ident: string): Promise<Node | undefined> {
  return (/^[0-9a-f-]{36}$/i.test(ident) ? await deps.nodes.get(ident) : undefined) ?? (await deps.nodes.getByName(ident));
}

/** Admins see every node; others the nodes an active lease granted their project. */
export async function getIronicNode(deps: Ports, auth: Principal | undefined, ident: string): Promise<Node> {
  const who = requireAuth(auth);
  const node = await findNode(deps, ident);
  if (!node || !nodeVisible(who, node)) throw new NotFoundError(`Node ${ident} could not be found.`);
  return node;
}

export async function registerNode(deps: Ports, auth: Principal | undefined, input: NodeCreate): Promise<Node> {
  requireAdmin(auth);
  const info = await sealSecrets(deps.secrets, validateDriverInfo(input.driver, input.driver_info));
  const bmc: BmcInfo = {
    driver: input.driver,
    driver_info: info,
    conductor_group: input.conductor_group,
    power_state: null,
    target_power_state: null,
    provision_state: 'enroll',
    last_error: null,
    maintenance: false,
    maintenance_reason: null,
    properties: input.properties,
    extra: input.extra,
    resource_class: input.resource_class ?? null,
    automated_clean: input.automated_clean ?? null,
  };
  for (let attempt = 0; attempt < 3; attempt++) {
    const existing = await deps.nodes.getByName(input.name);
    if (existing?.bmc) throw new ConflictError(`A node with name ${input.name} already exists.`, 'DUPLICATE_NAME');
    try {
      // A node the inventory already has (a Blazar host, a design node) gets its BMC.
      if (existing) return await deps.nodes.update(existing.id, existing.version, { bmc });
      return await deps.nodes.create(newNode({ id: input.uuid ?? randomUUID(), name: input.name, bmc, created_at: deps.clock.now().toISOString() }));
    } catch (err) {
      if (err instanceof ConcurrentModificationError || (err instanceof ConflictError && err.errorName === 'DUPLICATE_NAME')) continue;
      throw err;
    }
  }
  throw new ConflictError(`Node ${input.name} was modified concurrently; please retry`, 'CONCURRENT_MODIFICATION');
}

/** `PATCH /v1/nodes/{node}`: a JSON patch. */
export const NodePatchOps = JsonPatch;

export async function patchNode(deps: Ports, auth: Principal | undefined, ident: string, ops: z.infer<typeof NodePatchOps>): Promise<Node> {
  const who = requireAuth(auth);
  // A lessee (a member of the project whose active lease holds the node) sets what its deploy
  // installs, instance_info, and nothing else; getIronicNode below answers 404 for other nodes.
  if (!isAdmin(who) && !(who.roles.includes('member') && ops.every((o) => o.path === '/instance_info' || o.path.startsWith('/instance_info/')))) {
    throw new ForbiddenError(`Access was denied to the following resource: baremetal:node:update (${who.roles.includes('member') ? 'the lessee of a node may change its instance_info only' : 'needs the member or admin role'})`);
  }
  const invalid = (msg: string) => new ValidationError(msg, 'INVALID_PARAMETER_VALUE');
  for (let attempt = 0; attempt < 3; attempt++) {
    const node = await getIronicNode(deps, auth, ident);
    if (!node.bmc) throw invalid(`Node ${ident} has no BMC registered; POST /v1/nodes registers one`);
    const bmc: BmcInfo = structuredClone(node.bmc);
    let name = node.name;
    const plain: Record<string, unknown> = {};
    for (const { op, path, head, key, value } of patchSteps(ops)) {
      // Everything checked before anything is written: a sealed blob is the API's to make.
      const sealedAt = op === 'remove' ? undefined : sealedShapeAt(value, path);
      if (sealedAt) throw invalid(`${sealedAt}: sealed values ("$sealed") are made by the API, not accepted from clients`);
      if (head === 'name' && !key) {
        // Upstream clears the name with null (or remove); the inventory keeps the uuid as the
        // name then, which views show as null (a name may never look like a uuid).
        if (op === 'remove' || value === null) name = node.id;
        else {
          const p = nodeNameProblem(value);
          if (p) throw invalid(`Invalid name: ${p}`);
          name = value as string;
        }
      } else if ((head === 'driver_info' || head === 'properties' || head === 'extra') && key) {
        const target = head === 'driver_info' ? plain : bmc[head];
        if (head === 'driver_info') Object.assign(plain, { [key]: op === 'remove' ? undefined : value });
        else if (op === 'remove') delete target[key];
        else target[key] = value;
      } else if (head === 'instance_info') {
        const info = { ...(bmc.instance_info ?? {}) };
        if (key) {
          if (op === 'remove') delete info[key];
          else info[key] = value;
          bmc.instance_info = info;
        } else if (op === 'remove') bmc.instance_info = {};
        else if (value && typeof value === 'object' && !Array.isArray(value)) bmc.instance_info = value as Record<string, unknown>;
        else throw invalid('Invalid instance_info: must be an object');
      } else if (head === 'conductor_group' && !key && op !== 'remove') bmc.conductor_group = bounded(path, value, true);
      else if (head === 'maintenance' && !key && op !== 'remove') bmc.maintenance = value === true || value === 'true';
      else if (head === 'resource_class' && !key) bmc.resource_class = op === 'remove' || value === null ? null : bounded(path, value, false);
      else if (head === 'automated_clean' && !key) {
        if (op === 'remove' || value === null) bmc.automated_clean = null;
        else if (typeof value === 'boolean' || value === 'true' || value === 'false') bmc.automated_clean = value === true || value === 'true';
        else throw invalid(`Invalid automated_clean: must be true, false or null`);
      } else if (head === 'driver' && !key && op !== 'remove' && (value === 'ipmi' || value === 'redfish')) bmc.driver = value;
      else throw invalid(`Cannot ${op} ${path}`);
    }
    for (const field of ['properties', 'extra', 'instance_info'] as const) {
      const r = freeFormObject().safeParse(bmc[field] ?? {});
      if (!r.success) throw invalid(`Invalid ${field}: ${r.error.issues.map((i) => i.message).join('; ')}`);
    }
    if (Object.keys(plain).length > 0 || ops.some((o) => o.path === '/driver')) {
      // Re-validate the whole driver_info; untouched sealed secrets stay sealed.
      const merged: Record<string, unknown> = { ...bmc.driver_info };
      for (const [k, v] of Object.entries(plain)) {
        if (v === undefined) delete merged[k];
        else merged[k] = v;
      }
      const sealed = Object.fromEntries(Object.entries(bmc.driver_info).filter(([k, v]) => !(k in plain) && isStoredSecret(k, v)));
      const checked = validateDriverInfo(bmc.driver, withSecretPlaceholders(merged));
      bmc.driver_info = { ...(await sealSecrets(deps.secrets, Object.fromEntries(Object.entries(checked).filter(([k]) => !(k in sealed))))), ...sealed };
    }
    try {
      return await deps.nodes.update(node.id, node.version, { bmc, ...(name !== node.name ? { name } : {}) });
    } catch (err) {
      if (!(err instanceof ConcurrentModificationError)) throw err;
    }
  }
  throw new ConflictError(`Node ${ident} was modified concurrently; please retry`, 'NODE_LOCKED');
}

/** A patched identifier-like field (conductor group, resource class): a string of at most 255 bytes. */
function bounded(path: string, value: unknown, emptyOk: boolean): string {
  const v = typeof value === 'number' ? String(value) : value;
  const p = typeof v !== 'string' ? 'must be a string' : v === '' && !emptyOk ? 'must not be empty' : idProblem(v);
  if (p) throw new ValidationError(`Invalid ${path.slice(1)}: ${p}`, 'INVALID_PARAMETER_VALUE');
  return v as string;
}

export async function deleteIronicNode(deps: Ports, auth: Principal | undefined, ident: string): Promise<void> {
  requireAdmin(auth);
  const node = await getIronicNode(deps, auth, ident);
  if (node.host_id) {
    // Keep the inventory node for Blazar; only the BMC registration goes.
    await deps.nodes.update(node.id, node.version, { bmc: null });
    return;
  }
  if (node.bmc?.target_power_state) throw new ConflictError(`Node ${ident} is locked by a power action in progress, please retry after the current operation is completed.`, 'NODE_LOCKED');
  await deps.nodes.delete(node.id, node.version);
  await deleteNodePorts(deps, node.id);
}

/**
 * Anything that makes the site's agent talk to a node's BMC (power, boot device, reading the boot
 * device): admins, or a member of a project whose active lease holds the node. A reader never
 * makes the agent touch a BMC, not even to read it. `what` names upstream's policy for the 403.
 */
function requireOperator(who: Principal, what: string): void {
  if (!isAdmin(who) && !who.roles.includes('member')) throw new ForbiddenError(`Access was denied to the following resource: ${what} (needs the member or admin role)`);
}

/** Power and boot control: admins, or a project whose active lease holds the node. */
async function controllable(deps: Ports, auth: Principal | undefined, ident: string, what: string): Promise<Node & { bmc: BmcInfo }> {
  const who = requireAuth(auth);
  const node = await getIronicNode(deps, auth, ident);
  requireOperator(who, what);
  if (!node.bmc) throw new ValidationError(`Node ${ident} has no BMC registered`, 'INVALID_PARAMETER_VALUE');
  if (node.bmc.maintenance) throw new ValidationError(`Node ${ident} is in maintenance mode`, 'NODE_IN_MAINTENANCE');
  return node as Node & { bmc: BmcInfo };
}

export const POWER_TARGETS = ['power on', 'power off', 'rebooting', 'soft power off', 'soft rebooting'] as const;
export const PowerRequest = z.strictObject({
  target: z.enum(POWER_TARGETS, { error: `target must be one of: ${POWER_TARGETS.join(', ')}` }),
  timeout: z.optional(z.number().check(z.int(), z.gte(1))),
});

/**
 * Records the target power state (one power action per node at a time: the version-checked
 * write is the lock) and queues the job for the site's agent.
 */
export async function requestPowerState(deps: Ports, auth: Principal | undefined, ident: string, req: z.infer<typeof PowerRequest>): Promise<Job> {
  for (let attempt = 0; attempt < 3; attempt++) {
    const node = await controllable(deps, auth, ident, 'baremetal:node:set_power_state');
    if (node.bmc.target_power_state || node.bmc.reservation) {
      const by = node.bmc.reservation ?? `a power action in progress (${node.bmc.target_power_state})`;
      throw new ConflictError(`Node ${ident} is locked by ${by}, please retry after the current operation is completed.`, 'NODE_LOCKED');
    }
    try {
      await deps.nodes.update(node.id, node.version, { bmc: { ...node.bmc, target_power_state: req.target, last_error: null } });
    } catch (err) {
      if (err instanceof ConcurrentModificationError) continue;
      throw err;
    }
    return enqueueJob(deps, {
      site: siteOf(node.bmc),
      kind: 'power',
      node_id: node.id,
      payload: { driver: node.bmc.driver, driver_info: node.bmc.driver_info, target: req.target, ...(req.timeout ? { timeout: req.timeout } : {}) },
    });
  }
  throw new ConflictError(`Node ${ident} is locked, please retry`, 'NODE_LOCKED');
}

export const BootDeviceRequest = z.strictObject({
  boot_device: z.enum(['pxe', 'disk'], { error: 'boot_device must be pxe or disk' }),
  persistent: z._default(z.boolean(), false),
});

/**
 * Sets the boot device through the agent and waits (bounded) for it, as upstream answers only
 * once it is done: 'done', or 'pending' when the agent is slower than the wait.
 */
export async function setBootDevice(deps: Ports, auth: Principal | undefined, ident: string, req: z.infer<typeof BootDeviceRequest>): Promise<'done' | 'pending'> {
  const who = requireAuth(auth);
  const node = await controllable(deps, auth, ident, 'baremetal:node:set_boot_device');
  const job = await enqueueJob(deps, {
    site: siteOf(node.bmc),
    kind: 'boot_device',
    node_id: node.id,
    payload: { driver: node.bmc.driver, driver_info: node.bmc.driver_info, boot_device: req.boot_device, persistent: req.persistent },
  });
  const done = await waitForJob(deps, job.id, SYNC_WAIT_MS);
  if (!done) return 'pending';
  if (done.status === 'failed') throw new BmcOperationError(bmcErrorFor(who, node.bmc, `Setting the boot device failed: ${done.error}`));
  return 'done';
}

/**
 * Reads the boot device from the BMC through the agent (upstream asks the BMC too), waiting as
 * long as a synchronous call may. Admins and the members of the project leasing the node may
 * ask (a reader is refused at once: a read still makes the agent talk to the BMC); a node in
 * maintenance may be read.
 */
export async function getBootDevice(deps: Ports, auth: Principal | undefined, ident: string): Promise<{ boot_device: string | null; persistent: boolean | null }> {
  const who = requireAuth(auth);
  const node = await getIronicNode(deps, auth, ident);
  requireOperator(who, 'baremetal:node:get_boot_device');
  if (!node.bmc) throw new ValidationError(`Node ${ident} has no BMC registered`, 'INVALID_PARAMETER_VALUE');
  const job = await enqueueJob(deps, {
    site: siteOf(node.bmc),
    kind: 'boot_device_get',
    node_id: node.id,
    payload: { driver: node.bmc.driver, driver_info: node.bmc.driver_info },
  });
  const done = await waitForJob(deps, job.id, SYNC_WAIT_MS);
  if (!done) throw new AgentTimeoutError(`No agent read the boot device of node ${ident} within ${SYNC_WAIT_MS / 1000} s (job ${job.id}); is the site's agent running?`);
  if (done.status === 'failed') throw new BmcOperationError(bmcErrorFor(who, node.bmc, `Reading the boot device failed: ${done.error}`));
  const out = (done.output ?? {}) as { boot_device?: string | null; persistent?: boolean | null };
  return { boot_device: out.boot_device ?? null, persistent: out.persistent ?? null };
}

/** How long a synchronous call waits for the agent (API Gateway cuts at 30 s). */
export const SYNC_WAIT_MS = 25_000;

/** Waits (bounded, within the API Gateway limit) for a job to finish; undefined on timeout. */
export async function waitForJob(deps: Ports, id: string, timeoutMs: number): Promise<Job | undefined> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const job = await deps.jobs.get(id);
    if (job && (job.status === 'succeeded' || job.status === 'failed')) return job;
    if (Date.now() >= end) return undefined;
    await new Promise((r) => setTimeout(r, 200));
  }
}

/**
 * What a finished job means for its node: the BMC's power state, or the error (the handler of
 * `power`, `power_state` and `vendor` jobs in `agent/kinds.ts`).
 */
export async function onJobFinished(deps: Ports, job: Job): Promise<void> {
  const releasesLock = job.kind === 'vendor' && job.payload.exclusive === true;
  if (!job.node_id || (job.kind !== 'power' && job.kind !== 'power_state' && !releasesLock)) return;
  for (let attempt = 0; attempt < 5; attempt++) {
    const node = await deps.nodes.get(job.node_id);
    if (!node?.bmc) return;
    const out = job.output as { power_state?: BmcInfo['power_state'] } | undefined;
    const bmc: BmcInfo = releasesLock
      ? { ...node.bmc, reservation: null, last_error: job.status === 'failed' ? (job.error ?? 'vendor passthru failed') : node.bmc.last_error }
      : job.kind === 'power_state'
        ? afterPowerRead(node.bmc, job, deps.clock.now().toISOString())
      : job.status === 'succeeded'
        ? { ...node.bmc, power_state: out?.power_state ?? node.bmc.power_state, target_power_state: null, last_error: null }
        : { ...node.bmc, target_power_state: null, last_error: job.error ?? 'power action failed' };
    try {
      await deps.nodes.update(node.id, node.version, { bmc });
      return;
    } catch (err) {
      if (!(err instanceof ConcurrentModificationError)) throw err;
    }
  }
}

/**
 * A power action the system itself orders (a lease ending), not a user: no permission check,
 * and it does not wait for a user's action in progress (the last one queued wins at the BMC).
 * The job carries the workflow's task token when a workflow waits for it. Undefined when the
 * node has no BMC to drive.
 */
export async function queueSystemPower(
  deps: Ports,
  nodeId: string,
  target: (typeof POWER_TARGETS)[number],
  taskToken?: string,
): Promise<Job | undefined> {
  for (let attempt = 0; ; attempt++) {
    const node = await deps.nodes.get(nodeId);
    if (!node?.bmc) return undefined;
    try {
      await deps.nodes.update(node.id, node.version, { bmc: { ...node.bmc, target_power_state: target, last_error: null } });
    } catch (err) {
      if (err instanceof ConcurrentModificationError && attempt < 5) continue;
      throw err;
    }
    return enqueueJob(deps, {
      site: siteOf(node.bmc),
      kind: 'power',
      node_id: node.id,
      payload: { driver: node.bmc.driver, driver_info: node.bmc.driver_info, target },
      ...(taskToken ? { task_token: taskToken } : {}),
    });
  }
}

/** `PUT /v1/nodes/{node}/maintenance` body: the client always sends `reason`, null when not given. */
export const MaintenanceRequest = z.strictObject({ reason: z.nullish(z.string().check(z.maxLength(255))) });

/**
 * Puts a node in maintenance (`on`, with the reason) or takes it out (the reason goes too, as
 * upstream clears `maintenance_reason` and `fault`). A node in maintenance takes no power or boot
 * request. Admins only; the version-checked write is retried after a concurrent one.
 */
export async function setMaintenance(deps: Ports, auth: Principal | undefined, ident: string, on: boolean, reason?: string | null): Promise<void> {
  requireAdmin(auth);
  for (let attempt = 0; attempt < 3; attempt++) {
    const node = await getIronicNode(deps, auth, ident);
    if (!node.bmc) throw new ValidationError(`Node ${ident} has no BMC registered; POST /v1/nodes registers one`, 'INVALID_PARAMETER_VALUE');
    const bmc: BmcInfo = { ...node.bmc, maintenance: on, maintenance_reason: on ? (reason ?? null) : null };
    try {
      await deps.nodes.update(node.id, node.version, { bmc });
      return;
    } catch (err) {
      if (!(err instanceof ConcurrentModificationError)) throw err;
    }
  }
  throw new ConflictError(`Node ${ident} was modified concurrently; please retry`, 'NODE_LOCKED');
}

/** What `set boot device` takes (`GET …/management/boot_device/supported`). */
export const SUPPORTED_BOOT_DEVICES = BootDeviceRequest.shape.boot_device.options;

export async function supportedBootDevices(deps: Ports, auth: Principal | undefined, ident: string): Promise<string[]> {
  const node = await getIronicNode(deps, auth, ident);
  return node.bmc ? [...SUPPORTED_BOOT_DEVICES] : [];
}

/** Upstream's interfaces in a validation answer; the ones Slipway has no use for are "not supported". */
const VALIDATED_INTERFACES = ['bios', 'boot', 'console', 'deploy', 'inspect', 'management', 'network', 'power', 'raid', 'rescue', 'storage'] as const;
export type InterfaceValidation = Record<(typeof VALIDATED_INTERFACES)[number], { result: boolean | null; reason: string | null }>;

/**
 * `GET /v1/nodes/{node}/validate`: power and management are what the agent drives, and they (and
 * inspect, which the agent does through them) are usable when the BMC is registered with a
 * complete driver_info (checked again here), the node is not in maintenance, and an agent of its
 * site is connected — upstream's conductor is always
 * there; ours is on-prem and may not be. Every other interface is "not supported", as upstream
 * reports an interface a driver does not implement. Deploying is Drydock's (`/api/v1.0/tasks`).
 */
export async function validateNode(deps: Ports, auth: Principal | undefined, ident: string): Promise<InterfaceValidation> {
  const who = requireAuth(auth);
  const node = await getIronicNode(deps, auth, ident);
  let problem: string | null = null;
  if (!node.bmc) problem = `Node ${ident} has no BMC registered; POST /v1/nodes registers one`;
  else {
    try {
      validateDriverInfo(node.bmc.driver, withSecretPlaceholders(node.bmc.driver_info));
    } catch (err) {
      // Only administrators see driver_info, so only they learn which of its fields is wrong.
      problem = !isAdmin(who) ? `Node ${ident}: the BMC's driver_info is incomplete or invalid; ask an administrator` : err instanceof ValidationError ? err.message : 'invalid driver_info';
    }
    if (!problem && node.bmc.maintenance) problem = `Node ${ident} is in maintenance mode${node.bmc.maintenance_reason ? `: ${node.bmc.maintenance_reason}` : ''}`;
    if (!problem) {
      const site = siteOf(node.bmc);
      const { connected, lastSeen } = await sitePresence(deps, site);
      if (connected === 0) problem = noAgentText(site, lastSeen);
    }
  }
  const usable = { result: problem === null, reason: problem };
  const out = Object.fromEntries(VALIDATED_INTERFACES.map((i) => [i, { result: null, reason: 'not supported' }])) as InterfaceValidation;
  // Inspection is the site's agent booting the Slipway ramdisk through the same BMC.
  return { ...out, inspect: usable, management: usable, power: usable };
}
