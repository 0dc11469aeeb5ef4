/**
 * The Redfish implementation of the agent's BMC driver (house style 5; after Ironic's
 * `drivers/modules/redfish/{power,management,vendor}.py`).
 *
 * Protocol facts it relies on (docs/client-contracts.md §7): a reset is accepted with 204 but
 * PowerState changes seconds later, so every power action polls until the BMC reports the
 * result or `powerTimeoutMs` passes; reset types and boot targets are chosen from what the
 * system advertises. It authenticates with HTTP Basic on every request rather than a session:
 * stateless requests survive a BMC reboot and never leak one of the few session slots a BMC has.
 * Requests go through node:http/https (not fetch) because TLS verification can then be turned
 * off per driver, which `verifyCa: false` needs, without touching process-wide settings.
 */
import { type IncomingHttpHeaders, type IncomingMessage, request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { setTimeout as sleep } from 'node:timers/promises';
import * as z from 'zod';
import { type BmcDriver, BmcError, type BootDevice, type BootDeviceReading, type PowerAction, type PowerState } from './types.ts';

export const redfishDriverConfigSchema = z.object({
  /** `https://10.0.0.5`, `http://127.0.0.1:8000`; without a scheme https is assumed. */
  address: z.string().min(1),
  /** Else the only (or first) member of the Systems collection. */
  systemId: z.string().min(1).optional(),
  username: z.string(),
  password: z.string(),
  /** false turns TLS certificate verification off; nothing else does. */
  verifyCa: z.boolean().default(true),
  /** PEM CA certificate(s) to verify the BMC with instead of the system store (self-signed BMCs). */
  caCert: z.string().optional(),
  /** Per HTTP request. */
  timeoutMs: z.number().int().positive().default(10_000),
  /** Upper bound for a whole power action, including waiting for the state. */
  powerTimeoutMs: z.number().int().positive().default(300_000),
  pollIntervalMs: z.number().int().positive().default(2_000),
});
export type RedfishDriverConfig = z.input<typeof redfishDriverConfigSchema>;

/** One system as `discover` shows it. */
export interface RedfishSystemSummary {
  id: string;
  name: string | null;
  power_state: PowerState | null;
  manufacturer: string | null;
  model: string | null;
}

export interface RedfishEventSubscription {
  id: string;
  destination: string;
  event_types: string[];
  context: string | null;
}

// --- resource shapes (only the fields we read; BMCs add many more) ------------------------------

const ref = z.object({ '@odata.id': z.string() });
const collectionSchema = z.object({ Members: z.array(ref) });
const serviceRootSchema = z.object({
  Systems: ref.optional(),
  Managers: ref.optional(),
  EventService: ref.optional(),
});
const systemSchema = z.object({
  Id: z.string(),
  Name: z.string().nullish(),
  PowerState: z.string().nullish(),
  Manufacturer: z.string().nullish(),
  Model: z.string().nullish(),
  Boot: z
    .object({
      BootSourceOverrideTarget: z.string().nullish(),
      BootSourceOverrideEnabled: z.string().nullish(),
      'BootSourceOverrideTarget@Redfish.AllowableValues': z.array(z.string()).optional(),
    })
    .optional(),
  Actions: z
    .object({
      '#ComputerSystem.Reset': z
        .object({
          target: z.string(),
          'ResetType@Redfish.AllowableValues': z.array(z.string()).optional(),
          '@Redfish.ActionInfo': z.string().optional(),
        })
        .optional(),
    })
    .optional(),
  VirtualMedia: ref.optional(),
  Links: z.object({ ManagedBy: z.array(ref).optional() }).optional(),
});
type RedfishSystem = z.infer<typeof systemSchema>;
const actionInfoSchema = z.object({
  Parameters: z.array(z.object({ Name: z.string(), AllowableValues: z.array(z.string()).optional() })).optional(),
});
const managerSchema = z.object({ VirtualMedia: ref.optional() });
const virtualMediaSchema = z.object({
  Id: z.string(),
  MediaTypes: z.array(z.string()).nullish(),
  Inserted: z.boolean().nullish(),
  Image: z.string().nullish(),
  Actions: z.object({ '#VirtualMedia.EjectMedia': z.object({ target: z.string() }).optional() }).optional(),
});
const eventServiceSchema = z.object({ Subscriptions: ref });
const subscriptionSchema = z.object({
  Id: z.string(),
  Destination: z.string(),
  EventTypes: z.array(z.string()).nullish(),
  Context: z.string().nullish(),
});
const redfishErrorSchema = z.object({
  error: z.object({
    message: z.string().optional(),
    '@Message.ExtendedInfo': z.array(z.object({ Message: z.string().optional() })).optional(),
  }),
});

// Ironic's vocabulary <-> Redfish values.
const BOOT_TARGET: Record<BootDevice, string> = { pxe: 'Pxe', disk: 'Hdd' };
/**
 * BootSourceOverrideTarget -> the name reported by getBootDevice. 'None' (no override) and
 * targets without an Ironic name (Usb, SDCard, Diags, RemoteDrive, Utilities, …) are absent.
 */
const BOOT_TARGET_READ: Record<string, string> = {
  Pxe: 'pxe',
  Hdd: 'disk',
  Cd: 'cdrom',
  BiosSetup: 'bios',
  Floppy: 'floppy',
  // Ironic's boot_devices has UEFIHTTP only; a UEFI shell or target has no Ironic name.
  UefiHttp: 'uefihttp',
};
/** Ironic's virtual media device names -> Redfish MediaTypes (Ironic `redfish/boot.py`). */
const IRONIC_MEDIA_KINDS: Record<string, string[]> = { cdrom: ['CD', 'DVD'], floppy: ['Floppy'], disk: ['USBStick'] };
/** Used when a system does not advertise its reset types: Redfish then allows any. */
const ANY_RESET_TYPE = null;
const MAX_BODY_BYTES = 4 << 20;

interface HttpResult {
  status: number;
  headers: IncomingHttpHeaders;
  body: unknown;
}

/**
 * What the agent learned of a BMC's system that does not change from one job to the next: its
 * URI, its reset action's target and the reset types it allows. A driver lives for one job, so
 * without this every power action would first read the service root, the Systems collection and
 * the system again; with it, powering a known system on or off is one action and one read-back.
 * Kept per process by BMC address, system id and user (no secret); at most MAX_KNOWN_SYSTEMS (the
 * oldest goes first); an entry is dropped when the BMC refuses an action sent with it.
 */
interface KnownSystem {
  path: string;
  resetTarget: string;
  /** null: the system does not advertise its reset types (any is allowed). */
  allowed: string[] | null;
}
const MAX_KNOWN_SYSTEMS = 10_000;
const knownSystems = new Map<string, KnownSystem>();

function rememberSystem(key: string, known: KnownSystem): void {
  knownSystems.delete(key);
  if (knownSystems.size >= MAX_KNOWN_SYSTEMS) knownSystems.delete(knownSystems.keys().next().value!);
  knownSystems.set(key, known);
}

export class RedfishDriver implements BmcDriver {
  readonly kind = 'redfish' as const;
  private readonly config: z.output<typeof redfishDriverConfigSchema>;
  private readonly origin: URL;
  private serviceRoot?: z.infer<typeof serviceRootSchema>;
  private systemPath?: string;
  /** This system's entry in knownSystems. */
  private readonly knownKey: string;

  constructor(config: RedfishDriverConfig) {
    const parsed = redfishDriverConfigSchema.safeParse(config);
    if (!parsed.success) {
      // zod messages name the field and the expected type, never the value (the password is safe).
      throw new TypeError(`invalid Redfish driver config: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
    }
    this.config = parsed.data;
    let origin: URL;
    try {
      origin = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(config.address) ? config.address : `https://${config.address}`);
    } catch {
      throw new TypeError(`invalid Redfish driver config: address ${JSON.stringify(config.address)} is not a URL`);
    }
    if (origin.protocol !== 'https:' && origin.protocol !== 'http:') {
      throw new TypeError(`invalid Redfish driver config: address must be http(s), not ${origin.protocol}`);
    }
    // Only scheme, host and port are used; credentials in the address would end up in messages.
    this.origin = new URL(origin.origin);
    this.knownKey = `${this.origin.origin}\n${this.config.systemId ?? ''}\n${this.config.username}`;
  }

  /** The address as shown in messages: no user info, no path. */
  get address(): string {
    return this.origin.origin;
  }

  // --- PowerDriver -------------------------------------------------------------------------

  async getPowerState(): Promise<PowerState> {
    const deadline = Date.now() + this.config.powerTimeoutMs;
    const sys = await this.readStableSystem(deadline);
    return this.powerOf(sys);
  }

  /**
   * Reset types in order of preference (Ironic's choice where it has one). A system that is off
   * is simply powered on by a reboot, as Ironic does, since a restart of an off system is
   * BMC-specific. An action that is already satisfied (power on while on, off while off) sends
   * nothing (and needs no reset type): many BMCs reject such a reset, and the result is the same.
   *
   * A reboot with one reset (ForceRestart, PowerCycle, GracefulRestart) is complete when the BMC
   * accepted it and then reports On. We do not insist on seeing Off in between: many BMCs do a
   * warm reset that never reports Off, and a quick power cycle falls between two polls. Only the
   * two-step fallback (off, then on) waits for each state.
   */
  async setPowerState(action: PowerAction): Promise<PowerState> {
    const deadline = Date.now() + this.config.powerTimeoutMs;
    const known = knownSystems.get(this.knownKey);
    if (known && (action === 'power on' || action === 'power off' || action === 'soft power off')) {
      const done = await this.powerKnown(action, known, deadline);
      if (done) return done;
    }
    const sys = await this.readStableSystem(deadline);
    const current = this.powerOf(sys);
    const allowed = await this.allowedResetTypes(sys);
    const resetTarget = sys.Actions?.['#ComputerSystem.Reset']?.target;
    if (resetTarget && this.systemPath) rememberSystem(this.knownKey, { path: this.systemPath, resetTarget, allowed });
    const pick = (...candidates: string[]) => candidates.find((c) => allowed === ANY_RESET_TYPE || allowed.includes(c));
    const need = (what: string, ...candidates: string[]): string => {
      const type = pick(...candidates);
      if (type === undefined) {
        throw new BmcError(
          'unsupported',
          `Redfish system ${sys.Id} at ${this.address} cannot do '${what}': it allows ResetType ${allowed?.join(', ') || '(none)'}, not ${candidates.join(' or ')}`,
        );
      }
      return type;
    };

    const powerOn = async () => {
      if (current === 'power on') return 'power on' as const;
      const type = need(action, 'On', 'ForceOn');
      await this.reset(sys, type);
      return this.waitFor('power on', type, deadline, 0);
    };

    switch (action) {
      case 'power on':
        return powerOn();
      case 'power off':
      case 'soft power off': {
        if (current === 'power off') return 'power off';
        const type = action === 'power off' ? need(action, 'ForceOff') : need(action, 'GracefulShutdown');
        await this.reset(sys, type);
        return this.waitFor('power off', type, deadline, 0);
      }
      case 'rebooting':
      case 'soft rebooting': {
        if (current === 'power off') return powerOn();
        const soft = action === 'soft rebooting';
        const single = soft ? pick('GracefulRestart') : pick('ForceRestart', 'PowerCycle');
        if (single) {
          await this.reset(sys, single);
          return this.waitFor('power on', single, deadline);
        }
        // Decide the whole sequence before sending anything, so an unsupported reboot changes nothing.
        const off = need(action, soft ? 'GracefulShutdown' : 'ForceOff');
        const on = need(action, 'On', 'ForceOn');
        await this.reset(sys, off);
        await this.waitFor('power off', off, deadline, 0);
        await this.reset(sys, on);
        return this.waitFor('power on', on, deadline, 0);
      }
    }
  }

  /**
   * Power on or off a system seen before: the action straight away, then its read-back — no
   * read first. On and ForceOff are harmless to a system already in that state; a BMC that
   * refuses one anyway (some answer 409 to On while on) is read once: already in the wanted state
   * is success, else the refusal is the job's error. Undefined when no advertised reset type fits
   * (the full path reads the system and names the problem).
   */
  private async powerKnown(action: 'power on' | 'power off' | 'soft power off', known: KnownSystem, deadline: number): Promise<PowerState | undefined> {
    const want: PowerState = action === 'power on' ? 'power on' : 'power off';
    const candidates = action === 'power on' ? ['On', 'ForceOn'] : action === 'power off' ? ['ForceOff'] : ['GracefulShutdown'];
    const type = candidates.find((c) => known.allowed === ANY_RESET_TYPE || known.allowed.includes(c));
    if (type === undefined) return undefined;
    this.systemPath ??= known.path;
    try {
      await this.send('POST', known.resetTarget, { ResetType: type });
    } catch (err) {
      if (!(err instanceof BmcError) || (err.code !== 'protocol' && err.code !== 'unsupported')) throw err;
      // What we knew may be out of date (new firmware, another system at that address): forget it.
      knownSystems.delete(this.knownKey);
      this.systemPath = undefined;
      if (this.powerOf(await this.readStableSystem(deadline)) === want) return want;
      throw err;
    }
    return this.waitFor(want, type, deadline, 0);
  }

  // --- ManagementDriver --------------------------------------------------------------------

  async setBootDevice(device: BootDevice, persistent: boolean): Promise<void> {
    const target = BOOT_TARGET[device];
    const sys = await this.readSystem();
    const allowed = sys.Boot?.['BootSourceOverrideTarget@Redfish.AllowableValues'];
    if (allowed && !allowed.includes(target)) {
      throw new BmcError('unsupported', `Redfish system ${sys.Id} at ${this.address} cannot boot from ${target}: it allows ${allowed.join(', ')}`);
    }
    // 200 (with a body) and 204 both mean done; anything else has become a BmcError in send().
    await this.send('PATCH', await this.resolveSystemPath(), {
      Boot: { BootSourceOverrideTarget: target, BootSourceOverrideEnabled: persistent ? 'Continuous' : 'Once' },
    });
  }

  /**
   * From the system's `Boot` object. With BootSourceOverrideEnabled Disabled (or absent) the BMC
   * boots by its own order and a stale BootSourceOverrideTarget means nothing, so there is no
   * override (Ironic would still report the target); target None is no override either. Once is
   * `persistent: false`, Continuous `true`; a target without an Ironic name is `boot_device: null`
   * with the persistence the BMC reports.
   */
  async getBootDevice(): Promise<BootDeviceReading> {
    const boot = (await this.readSystem()).Boot;
    const enabled = boot?.BootSourceOverrideEnabled;
    const target = boot?.BootSourceOverrideTarget;
    if ((enabled !== 'Once' && enabled !== 'Continuous') || !target || target === 'None') return { boot_device: null, persistent: null };
    return { boot_device: Object.hasOwn(BOOT_TARGET_READ, target) ? BOOT_TARGET_READ[target]! : null, persistent: enabled === 'Continuous' };
  }

  // --- vendor operations (Ironic vendor passthru) ------------------------------------------

  /** Every system behind this BMC, for `discover`. */
  async listSystems(): Promise<RedfishSystemSummary[]> {
    const out: RedfishSystemSummary[] = [];
    for (const path of await this.systemMembers()) {
      const sys = await this.getAs(path, systemSchema);
      out.push({
        id: sys.Id,
        name: sys.Name ?? null,
        power_state: sys.PowerState === 'On' ? 'power on' : sys.PowerState === 'Off' ? 'power off' : null,
        manufacturer: sys.Manufacturer ?? null,
        model: sys.Model ?? null,
      });
    }
    return out;
  }

  /**
   * Ejects the device with Id `deviceId` (or, as Ironic names them, every 'cdrom', 'floppy' or
   * 'disk' device), or every inserted device when none is given; returns the Ids ejected.
   * An empty device is left alone, so a retried eject succeeds. Devices are found under the
   * system (newer BMCs) and under the managers that manage it (older ones).
   */
  async ejectVirtualMedia(deviceId?: string): Promise<string[]> {
    const sys = await this.readSystem();
    const collections = new Set<string>();
    if (sys.VirtualMedia) collections.add(sys.VirtualMedia['@odata.id']);
    const managers = sys.Links?.ManagedBy?.map((m) => m['@odata.id']) ?? (await this.managerMembers());
    for (const path of managers) {
      const manager = await this.getAs(path, managerSchema);
      if (manager.VirtualMedia) collections.add(manager.VirtualMedia['@odata.id']);
    }
    const devices: (z.infer<typeof virtualMediaSchema> & { path: string })[] = [];
    for (const coll of collections) {
      for (const member of (await this.getAs(coll, collectionSchema)).Members) {
        devices.push({ ...(await this.getAs(member['@odata.id'], virtualMediaSchema)), path: member['@odata.id'] });
      }
    }
    let chosen = devices;
    if (deviceId !== undefined) {
      chosen = devices.filter((d) => d.Id === deviceId);
      // Ironic's eject_vmedia names a device kind ('cdrom', 'floppy', 'disk'), not an Id.
      const kinds = IRONIC_MEDIA_KINDS[deviceId];
      // A kind with no device is nothing to eject, as in Ironic; an unknown Id is an error.
      if (chosen.length === 0 && kinds) chosen = devices.filter((d) => d.MediaTypes?.some((t) => kinds.includes(t)));
      else if (chosen.length === 0) {
        throw new BmcError('unsupported', `Redfish BMC at ${this.address} has no virtual media device ${deviceId} (it has: ${devices.map((d) => d.Id).join(', ') || 'none'})`);
      }
    }
    const ejected: string[] = [];
    for (const d of chosen) {
      if (!(d.Inserted ?? Boolean(d.Image))) continue;
      const action = d.Actions?.['#VirtualMedia.EjectMedia'];
      if (!action) throw new BmcError('unsupported', `virtual media ${d.Id} at ${this.address} has no EjectMedia action`);
      await this.send('POST', action.target, {});
      ejected.push(d.Id);
    }
    return ejected;
  }

  async createEventSubscription(opts: { destination: string; eventTypes?: string[]; context?: string }): Promise<RedfishEventSubscription> {
    const body: Record<string, unknown> = { Destination: opts.destination, Protocol: 'Redfish' };
    if (opts.eventTypes) body.EventTypes = opts.eventTypes;
    if (opts.context !== undefined) body.Context = opts.context;
    const res = await this.send('POST', await this.subscriptionsPath(), body);
    const inline = subscriptionSchema.safeParse(res.body);
    if (inline.success) return toSubscription(inline.data);
    // Some BMCs answer 201 with only a Location.
    const location = res.headers.location;
    if (typeof location !== 'string') throw this.protocolError('created an event subscription but returned neither the resource nor a Location');
    return toSubscription(await this.getAs(location, subscriptionSchema));
  }

  async listEventSubscriptions(): Promise<RedfishEventSubscription[]> {
    const coll = await this.getAs(await this.subscriptionsPath(), collectionSchema);
    const out: RedfishEventSubscription[] = [];
    for (const m of coll.Members) out.push(toSubscription(await this.getAs(m['@odata.id'], subscriptionSchema)));
    return out;
  }

  async deleteEventSubscription(id: string): Promise<void> {
    await this.send('DELETE', `${await this.subscriptionsPath()}/${encodeURIComponent(id)}`);
  }

  // --- Redfish resources -------------------------------------------------------------------

  private async root(): Promise<z.infer<typeof serviceRootSchema>> {
    this.serviceRoot ??= await this.getAs('/redfish/v1/', serviceRootSchema);
    return this.serviceRoot;
  }

  private async systemMembers(): Promise<string[]> {
    const path = (await this.root()).Systems?.['@odata.id'] ?? '/redfish/v1/Systems';
    return (await this.getAs(path, collectionSchema)).Members.map((m) => m['@odata.id']);
  }

  private async managerMembers(): Promise<string[]> {
    const path = (await this.root()).Managers?.['@odata.id'];
    if (!path) return [];
    return (await this.getAs(path, collectionSchema)).Members.map((m) => m['@odata.id']);
  }

  /** The system's URI, found once from the Systems collection and cached. */
  private async resolveSystemPath(): Promise<string> {
    this.systemPath ??= knownSystems.get(this.knownKey)?.path;
    if (this.systemPath) return this.systemPath;
    const members = await this.systemMembers();
    const wanted = this.config.systemId;
    let path: string | undefined;
    if (wanted === undefined) {
      path = members[0];
      if (path === undefined) throw this.protocolError('has no systems in its Systems collection');
    } else {
      // The id is usually the last URI segment; otherwise compare each member's Id.
      path = members.find((m) => decodeURIComponent(m.replace(/\/+$/, '').split('/').pop() ?? '') === wanted);
      for (const m of path ? [] : members) {
        if ((await this.getAs(m, systemSchema)).Id === wanted) {
          path = m;
          break;
        }
      }
      if (path === undefined) {
        throw new BmcError('protocol', `Redfish BMC at ${this.address} has no system ${wanted} (it has: ${members.join(', ') || 'none'})`);
      }
    }
    this.systemPath = path;
    return path;
  }

  private async readSystem(): Promise<RedfishSystem> {
    try {
      return await this.getAs(await this.resolveSystemPath(), systemSchema);
    } catch (err) {
      // A remembered URI that no longer answers (404) is found afresh by the next job.
      if (err instanceof BmcError && err.code === 'protocol') knownSystems.delete(this.knownKey);
      throw err;
    }
  }

  /** Reads the system, polling while it is PoweringOn/PoweringOff. */
  private async readStableSystem(deadline: number): Promise<RedfishSystem> {
    for (;;) {
      const sys = await this.readSystem();
      if (sys.PowerState !== 'PoweringOn' && sys.PowerState !== 'PoweringOff') return sys;
      if (Date.now() + this.config.pollIntervalMs > deadline) {
        throw new BmcError('timeout', `Redfish system ${sys.Id} at ${this.address} stayed ${sys.PowerState} for longer than ${this.config.powerTimeoutMs} ms`);
      }
      await sleep(this.config.pollIntervalMs);
    }
  }

  private powerOf(sys: RedfishSystem): PowerState {
    if (sys.PowerState === 'On') return 'power on';
    if (sys.PowerState === 'Off') return 'power off';
    throw this.protocolError(`reported PowerState ${JSON.stringify(sys.PowerState ?? null)} for system ${sys.Id}`);
  }

  /** The advertised reset types, inline or through `@Redfish.ActionInfo` (OpenBMC); null = not advertised. */
  private async allowedResetTypes(sys: RedfishSystem): Promise<string[] | null> {
    const action = sys.Actions?.['#ComputerSystem.Reset'];
    if (!action) throw new BmcError('unsupported', `Redfish system ${sys.Id} at ${this.address} has no ComputerSystem.Reset action`);
    const inline = action['ResetType@Redfish.AllowableValues'];
    if (inline) return inline;
    if (!action['@Redfish.ActionInfo']) return ANY_RESET_TYPE;
    const info = await this.getAs(action['@Redfish.ActionInfo'], actionInfoSchema);
    return info.Parameters?.find((p) => p.Name === 'ResetType')?.AllowableValues ?? ANY_RESET_TYPE;
  }

  private async reset(sys: RedfishSystem, type: string): Promise<void> {
    const action = sys.Actions?.['#ComputerSystem.Reset'];
    if (!action) throw new BmcError('unsupported', `Redfish system ${sys.Id} at ${this.address} has no ComputerSystem.Reset action`);
    await this.send('POST', action.target, { ResetType: type });
  }

  /**
   * Polls PowerState until it is `want`. A poll that fails with a retryable error (the BMC can
   * drop off the network while the host resets) is retried until the deadline.
   *
   * `firstDelayMs` (default the poll interval): when to read first. After On or Off the first
   * read-back may come at once — read too early it can only show the old state, and the next
   * poll follows — but after a restart the system still reads On until its reset begins, so
   * reading at once would report a reboot that has not happened.
   */
  private async waitFor(want: PowerState, resetType: string, deadline: number, firstDelayMs = this.config.pollIntervalMs): Promise<PowerState> {
    let last = 'unknown';
    for (let delay = firstDelayMs; ; delay = this.config.pollIntervalMs) {
      await sleep(Math.max(0, Math.min(delay, deadline - Date.now())));
      try {
        const sys = await this.readSystem();
        last = sys.PowerState ?? 'null';
        if ((sys.PowerState === 'On' ? 'power on' : sys.PowerState === 'Off' ? 'power off' : null) === want) return want;
      } catch (err) {
        if (!(err instanceof BmcError && err.retryable)) throw err;
        last = `unknown (${err.message})`;
      }
      if (Date.now() >= deadline) {
        throw new BmcError(
          'timeout',
          `Redfish BMC at ${this.address} accepted ResetType ${resetType} but did not report '${want}' within ${this.config.powerTimeoutMs} ms (last PowerState: ${last})`,
        );
      }
    }
  }

  private async subscriptionsPath(): Promise<string> {
    const path = (await this.root()).EventService?.['@odata.id'];
    if (!path) throw new BmcError('unsupported', `Redfish BMC at ${this.address} has no EventService`);
    return (await this.getAs(path, eventServiceSchema)).Subscriptions['@odata.id'];
  }

  // --- HTTP --------------------------------------------------------------------------------

  private async getAs<T extends z.ZodType>(path: string, schema: T): Promise<z.output<T>> {
    const res = await this.send('GET', path);
    const parsed = schema.safeParse(res.body);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw this.protocolError(`sent an unexpected ${path}: ${issue ? `${issue.path.join('.') || '(body)'}: ${issue.message}` : 'invalid'}`);
    }
    return parsed.data;
  }

  /** One request; any non-2xx answer or transport failure becomes a BmcError. */
  private async send(method: string, path: string, body?: unknown): Promise<HttpResult> {
    const url = new URL(path, this.origin);
    // A BMC-supplied link must not send our credentials to another host.
    if (url.origin !== this.origin.origin) throw this.protocolError(`linked to ${url.origin}, outside the BMC`);
    const res = await this.transport(method, url, body);
    if (res.status >= 200 && res.status < 300) return res;
    const what = `${method} ${url.pathname}`;
    if (res.status === 401 || res.status === 403) {
      throw new BmcError('auth', `Redfish BMC at ${this.address} rejected the credentials for user ${this.config.username} (${res.status} on ${what})`);
    }
    const location = res.headers.location;
    // Typically http -> https; following it silently would hide a wrong address in the config.
    const detail = res.status >= 300 && res.status < 400 && location ? `redirect to ${location}; configure that address` : redfishMessage(res.body);
    const text = `Redfish BMC at ${this.address} answered ${res.status} to ${what}${detail ? `: ${detail}` : ''}`;
    if (res.status === 501) throw new BmcError('unsupported', text);
    // 503 is how BMCs say "busy, try again" (and some answer it while rebooting).
    if (res.status === 503) throw new BmcError('unreachable', text);
    throw new BmcError('protocol', text);
  }

  private transport(method: string, url: URL, body: unknown): Promise<HttpResult> {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const headers: Record<string, string> = {
      Accept: 'application/json',
      'OData-Version': '4.0',
      Authorization: `Basic ${Buffer.from(`${this.config.username}:${this.config.password}`).toString('base64')}`,
    };
    if (payload) {
      headers['Content-Type'] = 'application/json';
      headers['Content-Length'] = String(payload.length);
    }
    const what = `${method} ${url.pathname}`;
    return new Promise<HttpResult>((resolve, reject) => {
      let settled = false;
      const fail = (err: unknown) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        reject(this.transportError(err, what));
      };
      // agent: false -> a fresh connection per request; a BMC is slow to notice reused sockets die.
      const options = { method, headers, agent: false as const };
      const onResponse = (res: IncomingMessage) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_BODY_BYTES) req.destroy(new Error(`response body larger than ${MAX_BODY_BYTES} bytes`));
          else chunks.push(chunk);
        });
        res.on('error', fail);
        res.on('end', () => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown;
          if (text.trim() !== '') {
            try {
              parsed = JSON.parse(text);
            } catch {
              // Success needs JSON only where we parse it (getAs); an error page may be HTML.
              parsed = text;
            }
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: parsed });
        });
      };
      const req =
        url.protocol === 'https:'
          ? httpsRequest(url, { ...options, rejectUnauthorized: this.config.verifyCa, ...(this.config.caCert ? { ca: this.config.caCert } : {}) }, onResponse)
          : httpRequest(url, options, onResponse);
      const timer = setTimeout(() => req.destroy(new RequestTimeoutError()), this.config.timeoutMs);
      req.on('error', fail);
      req.end(payload);
    });
  }

  private transportError(err: unknown, what: string): BmcError {
    if (err instanceof RequestTimeoutError) {
      return new BmcError('timeout', `Redfish BMC at ${this.address} did not answer ${what} within ${this.config.timeoutMs} ms`);
    }
    const code = typeof err === 'object' && err !== null && 'code' in err ? String((err as { code: unknown }).code) : '';
    const message = err instanceof Error ? err.message : String(err);
    if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER/.test(code)) {
      // Not retryable: the certificate will not change by itself.
      return new BmcError(
        'protocol',
        `Redfish BMC at ${this.address} presented a TLS certificate that failed verification (${code}: ${message}); give its CA as caCert, or set verifyCa=false to skip verification`,
      );
    }
    if (code === 'EPROTO' || code.startsWith('ERR_SSL') || code.startsWith('HPE_')) {
      return new BmcError('protocol', `Redfish BMC at ${this.address} broke the HTTP/TLS exchange on ${what} (${code}: ${message}); check the address scheme`);
    }
    return new BmcError('unreachable', `Redfish BMC at ${this.address} is unreachable: ${message}`);
  }

  private protocolError(what: string): BmcError {
    return new BmcError('protocol', `Redfish BMC at ${this.address} ${what}`);
  }
}

class RequestTimeoutError extends Error {}

/** The most specific text of a Redfish error body: the extended messages, else `error.message`. */
function redfishMessage(body: unknown): string | undefined {
  const parsed = redfishErrorSchema.safeParse(body);
  if (!parsed.success) return typeof body === 'string' && body.length <= 200 ? body.trim() || undefined : undefined;
  const extended = (parsed.data.error['@Message.ExtendedInfo'] ?? []).map((m) => m.Message).filter((m): m is string => Boolean(m));
  return extended.length > 0 ? extended.join('; ') : parsed.data.error.message;
}

function toSubscription(s: z.infer<typeof subscriptionSchema>): RedfishEventSubscription {
  return { id: s.Id, destination: s.Destination, event_types: s.EventTypes ?? [], context: s.Context ?? null };
}
