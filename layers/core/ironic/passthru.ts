import * as z from '../util/zod.ts';
import { enqueueJob } from '../agent/enqueue.ts';
import type { Job } from '../agent/model.ts';
import { AgentTimeoutError, BmcOperationError, ConcurrentModificationError, ConflictError, ForbiddenError, NotFoundError, ValidationError } from '../errors.ts';
import { isAdmin, type Principal, requireAuth } from '../identity/identity.ts';
import type { BmcInfo } from '../inventory/node.ts';
import type { Ports } from '../ports.ts';
import { sealSecrets } from '../secrets.ts';
import { boundedId, byteLength, MAX_QUERY_BYTES } from '../util/bounds.ts';
import { DEFAULT_SITE, DRIVER_PROPERTIES, type DriverName, getIronicNode, siteOf, SYNC_WAIT_MS, waitForJob } from './nodes.ts';

/**
 * Ironic vendor passthru (upstream-apis.md §3): methods are declared once, here, with their
 * metadata and argument schema (Ironic's `@passthru` decorator as data). A call becomes a
 * `vendor` job for the agent; sync methods wait for its answer, async ones answer 202.
 */
export type HttpVerb = 'GET' | 'POST' | 'PUT' | 'DELETE';

export interface PassthruMethod {
  name: string;
  httpMethods: HttpVerb[];
  async: boolean;
  attach: boolean;
  description: string;
  /** Node methods only: the node is held exclusively while it runs (409 for others). */
  requireExclusiveLock?: boolean;
  /** The body: extra, missing or invalid parameters are a 400. */
  args: z.ZodMiniType<Record<string, unknown>>;
  /** What the agent's driver method receives. */
  toVendorArgs?: (args: Record<string, unknown>) => Record<string, unknown>;
  /** Driver methods: the BMC to reach, from the arguments. */
  toDriverInfo?: (args: Record<string, unknown>) => Record<string, unknown>;
}

const portArg = z.pipe(z.pipe(z.union([z.number().check(z.int()), z.string().check(z.regex(/^\d+$/))]), z.transform(Number)), z.number().check(z.int(), z.gte(1), z.lte(65535)));
/** An identifier-like argument: 1..255 bytes, no control characters. */
const id = () => boundedId();
/** A password argument: any characters, at most 1 KiB. */
const secret = () => z.string().check(z.refine((v) => byteLength(v) <= MAX_QUERY_BYTES, { message: `is longer than ${MAX_QUERY_BYTES} bytes` }));
/** A longer text argument (a URL, a raw command): at most 1 KiB, no control characters. */
const longText = () => boundedId(MAX_QUERY_BYTES);
/** Which site's agent reaches the BMC of a driver-level call (our extension; default site). */
const site = { conductor_group: z.optional(id()) };

/** `"0x06 0x01 0x..."` → netfn, command, data (Ironic's raw_bytes). */
function rawBytes(args: Record<string, unknown>): Record<string, unknown> {
  const bytes = String(args.raw_bytes).trim().split(/\s+/).map((b) => Number(b));
  return { netfn: bytes[0], command: bytes[1], data: bytes.slice(2) };
}

export const PASSTHRU: Record<DriverName, { driver: PassthruMethod[]; node: PassthruMethod[] }> = {
  ipmi: {
    driver: [
      {
        name: 'probe',
        httpMethods: ['POST'],
        async: false,
        attach: false,
        description: "Ask a BMC for its chassis status. Arguments: 'address' (required), 'port', 'username', 'password' or 'credential_ref'.",
        args: z.strictObject({
          address: id(),
          port: z.optional(portArg),
          username: z.optional(id()),
          password: z.optional(secret()),
          credential_ref: z.optional(id()),
          cipher_suite: z.optional(z.number().check(z.int())),
          ...site,
        }).check(z.refine((a) => a.username !== undefined || a.credential_ref !== undefined, { message: "'username' or 'credential_ref' is required" })),
        toDriverInfo: (a) => ({
          ipmi_address: a.address,
          ...(a.port !== undefined ? { ipmi_port: a.port } : {}),
          ...(a.username !== undefined ? { ipmi_username: a.username } : {}),
          ...(a.password !== undefined ? { ipmi_password: a.password } : {}),
          ...(a.credential_ref !== undefined ? { credential_ref: a.credential_ref } : {}),
          ...(a.cipher_suite !== undefined ? { ipmi_cipher_suite: a.cipher_suite } : {}),
        }),
      },
    ],
    node: [
      {
        name: 'send_raw',
        httpMethods: ['POST'],
        async: true,
        attach: false,
        description: "Send a raw IPMI command. Argument: 'raw_bytes', e.g. '0x06 0x01' (netfn, command, data...).",
        requireExclusiveLock: true,
        args: z.strictObject({
          raw_bytes: z.string().check(z.maxLength(MAX_QUERY_BYTES), z.regex(/^\s*(0x[0-9a-fA-F]{1,2}|\d{1,3})(\s+(0x[0-9a-fA-F]{1,2}|\d{1,3}))+\s*$/, "'raw_bytes' must be at least two bytes like '0x06 0x01'")),
        }),
        toVendorArgs: rawBytes,
      },
      {
        name: 'bmc_reset',
        httpMethods: ['POST'],
        async: true,
        attach: false,
        description: "Reset the BMC. Argument: 'warm' (boolean, default true; false = cold).",
        requireExclusiveLock: true,
        args: z.strictObject({ warm: z.optional(z.union([z.boolean(), z.enum(['true', 'false'])])) }),
        toVendorArgs: (a) => ({ warm: !(a.warm === false || a.warm === 'false') }),
      },
    ],
  },
  redfish: {
    driver: [
      {
        name: 'discover',
        httpMethods: ['POST'],
        async: false,
        attach: false,
        description: "List the systems behind a Redfish BMC. Arguments: 'address' (required), 'username', 'password' or 'credential_ref', 'verify_ca'.",
        args: z.strictObject({
          address: longText(),
          username: z.optional(id()),
          password: z.optional(secret()),
          credential_ref: z.optional(id()),
          verify_ca: z.optional(z.boolean()),
          ...site,
        }).check(z.refine((a) => a.username !== undefined || a.credential_ref !== undefined, { message: "'username' or 'credential_ref' is required" })),
        toDriverInfo: (a) => ({
          redfish_address: a.address,
          ...(a.username !== undefined ? { redfish_username: a.username } : {}),
          ...(a.password !== undefined ? { redfish_password: a.password } : {}),
          ...(a.credential_ref !== undefined ? { credential_ref: a.credential_ref } : {}),
          ...(a.verify_ca !== undefined ? { redfish_verify_ca: a.verify_ca } : {}),
        }),
      },
    ],
    node: [
      {
        name: 'eject_vmedia',
        httpMethods: ['POST'],
        async: true,
        attach: false,
        description: "Eject virtual media. Argument: 'boot_device' (optional: cdrom, floppy, ...).",
        requireExclusiveLock: true,
        args: z.strictObject({ boot_device: z.optional(id()) }),
      },
      {
        name: 'create_subscription',
        httpMethods: ['POST'],
        async: false,
        attach: false,
        description: "Create an event subscription. Arguments: 'Destination' (required), 'EventTypes', 'Context', 'Protocol', 'HttpHeaders'.",
        requireExclusiveLock: false,
        args: z.strictObject({
          Destination: z.url().check(z.maxLength(MAX_QUERY_BYTES)),
          EventTypes: z.optional(z.array(id()).check(z.maxLength(64))),
          Context: z.optional(longText()),
          Protocol: z.optional(z.literal('Redfish')),
          HttpHeaders: z.optional(z.array(z.record(id(), longText())).check(z.maxLength(32))),
        }),
      },
      {
        name: 'delete_subscription',
        httpMethods: ['DELETE'],
        async: false,
        attach: false,
        description: "Delete an event subscription. Argument: 'id'.",
        requireExclusiveLock: false,
        args: z.strictObject({ id: id() }),
      },
      {
        name: 'get_subscription',
        httpMethods: ['GET'],
        async: false,
        attach: false,
        description: "Show one event subscription. Argument: 'id'.",
        requireExclusiveLock: false,
        args: z.strictObject({ id: id() }),
      },
      {
        name: 'get_all_subscriptions',
        httpMethods: ['GET'],
        async: false,
        attach: false,
        description: 'List the event subscriptions.',
        requireExclusiveLock: false,
        args: z.strictObject({}),
      },
    ],
  },
};

// Own keys only: a driver named "constructor" or "__proto__" is just unknown.
export const isDriverName = (d: string): d is DriverName => Object.hasOwn(PASSTHRU, d);

function driverOf(name: string): DriverName {
  if (!isDriverName(name)) throw new NotFoundError(`Driver ${name} could not be found.`);
  return name;
}

/** The methods listing as Ironic answers it (`require_exclusive_lock` for node methods only). */
export function listing(methods: PassthruMethod[], node: boolean): Record<string, unknown> {
  return Object.fromEntries(
    methods.map((m) => [
      m.name,
      {
        http_methods: m.httpMethods,
        async: m.async,
        attach: m.attach,
        description: m.description,
        ...(node ? { require_exclusive_lock: m.requireExclusiveLock ?? true } : {}),
      },
    ]),
  );
}

/** The drivers this deployment has (every one with a vendor interface). */
export function listDrivers(auth: Principal | undefined): DriverName[] {
  requireAuth(auth);
  return Object.keys(PASSTHRU) as DriverName[];
}

export function getDriver(auth: Principal | undefined, name: string): DriverName {
  requireAuth(auth);
  return driverOf(name);
}

export function driverProperties(auth: Principal | undefined, name: string): Record<string, string> {
  requireAuth(auth);
  return DRIVER_PROPERTIES[driverOf(name)];
}

export function driverMethods(auth: Principal | undefined, driver: string): Record<string, unknown> {
  requireAuth(auth);
  return listing(PASSTHRU[driverOf(driver)].driver, false);
}

export async function nodeMethods(deps: Ports, auth: Principal | undefined, ident: string): Promise<Record<string, unknown>> {
  const node = await getIronicNode(deps, auth, ident);
  if (!node.bmc) throw new ValidationError(`Node ${ident} has no BMC registered, so no vendor interface`, 'UNSUPPORTED_DRIVER_EXTENSION');
  return listing(PASSTHRU[node.bmc.driver].node, true);
}

/** Upstream's checks in order: method named, known, verb allowed, arguments valid. */
function resolve(methods: PassthruMethod[], method: string | undefined, verb: string, body: unknown): { m: PassthruMethod; args: Record<string, unknown> } {
  if (!method) throw new ValidationError('Method not specified', 'INVALID_PARAMETER_VALUE');
  const m = methods.find((x) => x.name === method);
  if (!m) throw new ValidationError(`No handler for method ${method}`, 'INVALID_PARAMETER_VALUE');
  if (!m.httpMethods.includes(verb as HttpVerb)) throw new ValidationError(`The method ${method} does not support HTTP ${verb}`, 'INVALID_PARAMETER_VALUE');
  if (body !== undefined && (typeof body !== 'object' || body === null || Array.isArray(body))) {
    throw new ValidationError('The body must be a JSON object of arguments', 'INVALID_PARAMETER_VALUE');
  }
  const r = m.args.safeParse(body ?? {});
  if (!r.success) {
    const why = r.error.issues.map((i) =>
      i.code === 'unrecognized_keys' ? `unexpected argument(s) ${i.keys.join(', ')}` : i.path.length ? `'${i.path.join('.')}': ${i.message}` : i.message,
    );
    throw new ValidationError(`Invalid arguments for ${method}: ${why.join('; ')}`, 'INVALID_PARAMETER_VALUE');
  }
  return { m, args: r.data };
}


/** 403 in upstream's words ("Access was denied to the following resource: <policy>") for a non-admin. */
function requireAdminFor(auth: Principal | undefined, policy: string): void {
  const who = requireAuth(auth);
  if (!isAdmin(who)) throw new ForbiddenError(`Access was denied to the following resource: ${policy} (administrators only)`);
}

export type PassthruResult = { async: true } | { async: false; output: unknown };

async function finish(deps: Ports, m: PassthruMethod, job: Job): Promise<PassthruResult> {
  if (m.async) return { async: true };
  const done = await waitForJob(deps, job.id, SYNC_WAIT_MS);
  if (!done) throw new AgentTimeoutError(`No agent finished ${m.name} within ${SYNC_WAIT_MS / 1000} s (job ${job.id}); is the site's agent running?`);
  if (done.status === 'failed') throw new BmcOperationError(`${m.name} failed: ${done.error}`);
  return { async: false, output: done.output };
}

export async function callDriverPassthru(deps: Ports, auth: Principal | undefined, driver: string, method: string | undefined, verb: string, body: unknown): Promise<PassthruResult> {
  // Driver methods reach any BMC the caller names: administrators only, as upstream.
  requireAdminFor(auth, 'baremetal:driver:vendor_passthru');
  const d = driverOf(driver);
  const { m, args } = resolve(PASSTHRU[d].driver, method, verb, body);
  const { conductor_group, ...rest } = args as Record<string, unknown> & { conductor_group?: string };
  const driverInfo = await sealSecrets(deps.secrets, m.toDriverInfo!(rest));
  const job = await enqueueJob(deps, {
    site: conductor_group || DEFAULT_SITE,
    kind: 'vendor',
    payload: { driver: d, driver_info: driverInfo, method: m.name, args: m.toVendorArgs ? m.toVendorArgs(rest) : {} },
  });
  return finish(deps, m, job);
}

export async function callNodePassthru(deps: Ports, auth: Principal | undefined, ident: string, method: string | undefined, verb: string, body: unknown): Promise<PassthruResult> {
  for (let attempt = 0; attempt < 3; attempt++) {
    const node = await getIronicNode(deps, auth, ident);
    // Every node method talks to the BMC with the operator's credentials, and what it changes
    // there (BMC users, LAN settings, event subscriptions, a cold reset) outlives any lease:
    // administrators only, as upstream's baremetal:node:vendor_passthru policy. Checked before
    // the method, its arguments, the lock or the job.
    requireAdminFor(auth, 'baremetal:node:vendor_passthru');
    if (!node.bmc) throw new ValidationError(`Node ${ident} has no BMC registered, so no vendor interface`, 'UNSUPPORTED_DRIVER_EXTENSION');
    const bmc: BmcInfo = node.bmc;
    const { m, args } = resolve(PASSTHRU[bmc.driver].node, method, verb, body);
    const exclusive = m.requireExclusiveLock ?? true;
    if (exclusive) {
      if (bmc.reservation || bmc.target_power_state) {
        throw new ConflictError(`Node ${ident} is locked by ${bmc.reservation ?? `a power action (${bmc.target_power_state})`}, please retry after the current operation is completed.`, 'NODE_LOCKED');
      }
      try {
        // The version-checked write is the lock; onJobFinished releases it.
        await deps.nodes.update(node.id, node.version, { bmc: { ...bmc, reservation: `vendor_passthru ${m.name}` } });
      } catch (err) {
        if (err instanceof ConcurrentModificationError) continue;
        throw err;
      }
    }
    const job = await enqueueJob(deps, {
      site: siteOf(bmc),
      kind: 'vendor',
      node_id: node.id,
      payload: { driver: bmc.driver, driver_info: bmc.driver_info, method: m.name, args: m.toVendorArgs ? m.toVendorArgs(args) : args, ...(exclusive ? { exclusive: true } : {}) },
    });
    return finish(deps, m, job);
  }
  throw new ConflictError(`Node ${ident} is locked, please retry`, 'NODE_LOCKED');
}
