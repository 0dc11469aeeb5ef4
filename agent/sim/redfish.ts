/**
 * A Redfish BMC simulator for the agent's tests and the local demo: the service root, Systems
 * (power and boot override), minimal Chassis and Managers (one virtual CD), sessions and event
 * subscriptions, over HTTP or HTTPS on loopback.
 *
 * It mimics what real BMCs and emulators do (docs/client-contracts.md §7): a reset is accepted
 * with 204 and PowerState changes only after a delay; values outside the advertised
 * `@Redfish.AllowableValues` get 400 with a Redfish error body; everything except `/redfish` and
 * the service root needs HTTP Basic auth or a session token. Shapes follow DMTF schemas closely
 * enough for Debian's `redfishtool` to drive it.
 *
 * A system may be backed by a virtual machine (`vm`, e.g. agent/sim/vm.ts's Vm): then power On
 * starts it, booting from the network when the boot override is Pxe (else from disk), ForceOff
 * and GracefulShutdown stop it, the restarts reset it, and PowerState reads whether the VM runs
 * (a guest that powers itself off reads Off). Without `vm` the power model is the timer above.
 *
 * Run directly for a demo:
 *   npx tsx agent/sim/redfish.ts --port 8000 --user admin --password password --systems 2 --delay-ms 2000
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { type IncomingMessage, type Server, type ServerResponse, createServer as createHttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

export type SimPowerState = 'On' | 'Off' | 'PoweringOn' | 'PoweringOff';

/** Every ResetType of the DMTF ComputerSystem schema. */
export const ALL_RESET_TYPES = [
  'On',
  'ForceOff',
  'GracefulShutdown',
  'GracefulRestart',
  'ForceRestart',
  'Nmi',
  'ForceOn',
  'PushPowerButton',
  'PowerCycle',
] as const;

const DEFAULT_BOOT_TARGETS = ['None', 'Pxe', 'Hdd', 'Cd', 'Usb', 'BiosSetup'];
const BOOT_ENABLED_VALUES = ['Disabled', 'Once', 'Continuous'];
const EVENT_TYPES = ['StatusChange', 'ResourceUpdated', 'ResourceAdded', 'ResourceRemoved', 'Alert'];

/**
 * The machine behind a simulated system (agent/sim/vm.ts's Vm fits). start() and reset() boot
 * from 'network' or 'disk'; `running` is the power state.
 */
export interface SimSystemVm {
  readonly running: boolean;
  start(boot: 'network' | 'disk'): Promise<void>;
  stop(): Promise<void>;
  reset(boot: 'network' | 'disk'): Promise<void>;
}

export interface SimSystemOptions {
  id: string;
  /**
   * A machine to power: its running state is PowerState, resets start, stop and reset it (and
   * powerState, powerDelayMs and transitionalStates do not apply). The simulator stops it on stop().
   */
  vm?: SimSystemVm;
  /** Default 'Off'. */
  powerState?: 'On' | 'Off';
  /** How long after an accepted reset PowerState changes. Default 0. */
  powerDelayMs?: number;
  /** Default: all of ALL_RESET_TYPES. */
  allowableResetTypes?: string[];
  /** Default: None, Pxe, Hdd, Cd, Usb, BiosSetup. */
  allowableBootTargets?: string[];
  /** Report PoweringOn/PoweringOff during the delay instead of the old state. */
  transitionalStates?: boolean;
  /** Advertise the reset types through `@Redfish.ActionInfo` (as OpenBMC does) instead of inline. */
  resetActionInfo?: boolean;
  /**
   * Answer 409 to On/ForceOn while On and to ForceOff/GracefulShutdown while Off, as some BMCs do
   * (iDRAC: "Server is already powered ON"); by default such a reset is accepted and changes nothing.
   */
  refuseSatisfiedResets?: boolean;
  name?: string;
  manufacturer?: string;
  model?: string;
}

export interface RedfishSimOptions {
  /** 0 (default) picks a free port. */
  port?: number;
  host?: string;
  username: string;
  password: string;
  /** Default: one system '1', Off, no delay. */
  systems?: SimSystemOptions[];
  /** PEM certificate and key to serve HTTPS; false (default) serves plain HTTP. */
  tls?: false | { cert: string; key: string };
  /** Image in the manager's virtual CD at start; default none. */
  virtualMediaImage?: string;
}

export interface SimSystemState {
  PowerState: SimPowerState;
  BootSourceOverrideTarget: string;
  BootSourceOverrideEnabled: string;
  /** ResetTypes the sim accepted, in order. */
  resets: string[];
  /** Bodies of the PATCHes the sim accepted, in order. */
  patches: unknown[];
  /** VM-backed systems: the boot devices the VM was started with, in order. */
  vmBoots: ('network' | 'disk')[];
  /** VM-backed systems: the last error starting or stopping the VM, else null. */
  vmError: string | null;
}

export interface RedfishSim {
  url: string;
  stop(): Promise<void>;
  state(systemId: string): SimSystemState;
  /** Adds a computer system while running (tests add one per node they register). */
  addSystem(system: SimSystemOptions): void;
  virtualMedia(): { Inserted: boolean; Image: string | null; ejects: number };
  subscriptions(): { Id: string; Destination: string; EventTypes: string[]; Context: string | null }[];
  /**
   * The requests it answered, oldest first (the last MAX_LOGGED_REQUESTS), with when each arrived
   * and was answered (Date.now()): tests and the bench count what a client sent.
   */
  requests(): SimRequest[];
  /** The most requests it ever had in hand at once (a client that never overlaps keeps this at 1). */
  maxInFlight(): number;
}

export interface SimRequest {
  method: string;
  path: string;
  status: number;
  startedAt: number;
  finishedAt: number;
}

/** Bound on the request log (a long demo run must not grow it without end). */
const MAX_LOGGED_REQUESTS = 10_000;

interface SystemRecord {
  opts: Required<Pick<SimSystemOptions, 'id' | 'powerDelayMs' | 'allowableResetTypes' | 'allowableBootTargets'>> & SimSystemOptions;
  power: SimPowerState;
  bootTarget: string;
  bootEnabled: string;
  bootMode: string;
  resets: string[];
  patches: unknown[];
  timers: Set<NodeJS.Timeout>;
  /** VM operations run one after another. */
  vmOps: Promise<void>;
  vmBoots: ('network' | 'disk')[];
  vmError: string | null;
}

class RedfishHttpError extends Error {
  constructor(
    readonly status: number,
    readonly messageId: string,
    message: string,
    readonly args: string[] = [],
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

const R = '/redfish/v1';
const MANAGER_ID = 'BMC';
const CD_ID = 'CD1';

function errorBody(e: RedfishHttpError): unknown {
  return {
    error: {
      code: `Base.1.0.${e.messageId}`,
      message: e.message,
      '@Message.ExtendedInfo': [
        {
          '@odata.type': '#Message.v1_1_1.Message',
          MessageId: `Base.1.0.${e.messageId}`,
          Message: e.message,
          MessageArgs: e.args,
          Severity: e.status >= 500 ? 'Critical' : 'Warning',
          Resolution: 'Correct the request and resubmit it.',
        },
      ],
    },
  };
}

function collection(path: string, type: string, name: string, members: string[]): unknown {
  return {
    '@odata.id': path,
    '@odata.type': `#${type}.${type}`,
    Name: name,
    Members: members.map((m) => ({ '@odata.id': m })),
    'Members@odata.count': members.length,
  };
}

/** Compares through fixed-length digests so that neither content nor length leaks by timing. */
function sameSecret(a: string, b: string): boolean {
  const da = createHash('sha256').update(a).digest();
  const db = createHash('sha256').update(b).digest();
  return timingSafeEqual(da, db);
}

export async function startRedfishSim(options: RedfishSimOptions): Promise<RedfishSim> {
  const systems = new Map<string, SystemRecord>();
  const addSystem = (s: SimSystemOptions) => {
    if (systems.has(s.id)) throw new Error(`duplicate system id ${s.id}`);
    systems.set(s.id, {
      opts: {
        ...s,
        powerDelayMs: s.powerDelayMs ?? 0,
        allowableResetTypes: s.allowableResetTypes ?? [...ALL_RESET_TYPES],
        allowableBootTargets: s.allowableBootTargets ?? DEFAULT_BOOT_TARGETS,
      },
      power: s.powerState ?? 'Off',
      bootTarget: 'None',
      bootEnabled: 'Disabled',
      bootMode: 'UEFI',
      resets: [],
      patches: [],
      timers: new Set(),
      vmOps: Promise.resolve(),
      vmBoots: [],
      vmError: null,
    });
  };
  for (const s of options.systems ?? [{ id: '1' }]) addSystem(s);
  const media = { Inserted: options.virtualMediaImage !== undefined, Image: options.virtualMediaImage ?? null, ejects: 0 };
  const sessions = new Map<string, { id: string; user: string }>(); // token -> session
  let sessionSeq = 0;
  const subs = new Map<string, { Id: string; Destination: string; EventTypes: string[]; Context: string | null; Protocol: string }>();
  let subSeq = 0;

  // --- power model ---------------------------------------------------------------------------

  const later = (sys: SystemRecord, fn: () => void) => {
    const t = setTimeout(() => {
      sys.timers.delete(t);
      fn();
    }, sys.opts.powerDelayMs);
    t.unref();
    sys.timers.add(t);
  };

  const settle = (sys: SystemRecord, target: 'On' | 'Off') => {
    sys.power = target;
    // A one-time override is consumed by the boot it applies to, as on real BMCs.
    if (target === 'On' && sys.bootEnabled === 'Once') sys.bootEnabled = 'Disabled';
  };

  const moveTo = (sys: SystemRecord, target: 'On' | 'Off') => {
    if (sys.power === target) return;
    if (sys.opts.transitionalStates) sys.power = target === 'On' ? 'PoweringOn' : 'PoweringOff';
    later(sys, () => settle(sys, target));
  };

  /** PowerState: a VM-backed system is On exactly while its VM runs. */
  const powerOf = (sys: SystemRecord): SimPowerState => (sys.opts.vm ? (sys.opts.vm.running ? 'On' : 'Off') : sys.power);

  /** The device the next boot uses (consuming a one-time override): Pxe → network, else disk. */
  const takeBootDevice = (sys: SystemRecord): 'network' | 'disk' => {
    const boot = sys.bootEnabled !== 'Disabled' && sys.bootTarget === 'Pxe' ? 'network' : 'disk';
    if (sys.bootEnabled === 'Once') sys.bootEnabled = 'Disabled';
    return boot;
  };

  const vmReset = (sys: SystemRecord, vm: SimSystemVm, type: string) => {
    sys.resets.push(type);
    const queue = (op: () => Promise<void>) => {
      sys.vmOps = sys.vmOps.then(op).then(
        () => {
          sys.vmError = null;
        },
        (err: unknown) => {
          sys.vmError = err instanceof Error ? err.message : String(err);
        },
      );
    };
    const powerOn = () => {
      const boot = takeBootDevice(sys);
      queue(async () => {
        if (vm.running) return;
        sys.vmBoots.push(boot);
        await vm.start(boot);
      });
    };
    const powerOff = () => queue(() => vm.stop());
    switch (type) {
      case 'On':
      case 'ForceOn':
        if (!vm.running) powerOn();
        break;
      case 'ForceOff':
      case 'GracefulShutdown':
        powerOff();
        break;
      case 'ForceRestart':
      case 'GracefulRestart':
      case 'PowerCycle': {
        const boot = takeBootDevice(sys);
        queue(async () => {
          sys.vmBoots.push(boot);
          await vm.reset(boot);
        });
        break;
      }
      case 'PushPowerButton':
        if (vm.running) powerOff();
        else powerOn();
        break;
      default: // Nmi: no power change
        break;
    }
  };

  const reset = (sys: SystemRecord, type: string) => {
    if (sys.opts.vm) {
      vmReset(sys, sys.opts.vm, type);
      return;
    }
    // The latest accepted reset wins over one still pending.
    for (const t of sys.timers) clearTimeout(t);
    sys.timers.clear();
    sys.resets.push(type);
    const on = sys.power === 'On' || sys.power === 'PoweringOn';
    switch (type) {
      case 'On':
      case 'ForceOn':
        moveTo(sys, 'On');
        break;
      case 'ForceOff':
      case 'GracefulShutdown':
        moveTo(sys, 'Off');
        break;
      case 'ForceRestart':
      case 'GracefulRestart':
      case 'PowerCycle':
        sys.power = 'Off';
        moveTo(sys, 'On');
        break;
      case 'PushPowerButton':
        moveTo(sys, on ? 'Off' : 'On');
        break;
      default: // Nmi: no power change
        break;
    }
  };

  // --- resources -----------------------------------------------------------------------------

  const systemPath = (id: string) => `${R}/Systems/${id}`;
  const systemOf = (id: string) => {
    const s = systems.get(id);
    if (!s) throw new RedfishHttpError(404, 'ResourceMissingAtURI', `The resource at the URI ${systemPath(id)} was not found.`, [systemPath(id)]);
    return s;
  };

  const serviceRoot = () => ({
    '@odata.id': `${R}/`,
    '@odata.type': '#ServiceRoot.v1_5_0.ServiceRoot',
    Id: 'RootService',
    Name: 'Slipway Redfish Simulator',
    RedfishVersion: '1.6.0',
    UUID: '5e1f0c6a-0000-4000-8000-51197a550001',
    Systems: { '@odata.id': `${R}/Systems` },
    Chassis: { '@odata.id': `${R}/Chassis` },
    Managers: { '@odata.id': `${R}/Managers` },
    SessionService: { '@odata.id': `${R}/SessionService` },
    AccountService: { '@odata.id': `${R}/AccountService` },
    EventService: { '@odata.id': `${R}/EventService` },
    Links: { Sessions: { '@odata.id': `${R}/SessionService/Sessions` } },
  });

  const systemBody = (sys: SystemRecord) => {
    const id = sys.opts.id;
    const reset: Record<string, unknown> = { target: `${systemPath(id)}/Actions/ComputerSystem.Reset` };
    if (sys.opts.resetActionInfo) reset['@Redfish.ActionInfo'] = `${systemPath(id)}/ResetActionInfo`;
    else reset['ResetType@Redfish.AllowableValues'] = sys.opts.allowableResetTypes;
    return {
      '@odata.id': systemPath(id),
      '@odata.type': '#ComputerSystem.v1_13_0.ComputerSystem',
      Id: id,
      Name: sys.opts.name ?? `System ${id}`,
      SystemType: 'Physical',
      Manufacturer: sys.opts.manufacturer ?? 'Slipway',
      Model: sys.opts.model ?? 'Redfish Simulator',
      SerialNumber: `SIM-${id}`,
      AssetTag: '',
      PowerState: powerOf(sys),
      Status: { State: 'Enabled', Health: 'OK' },
      Boot: {
        BootSourceOverrideTarget: sys.bootTarget,
        BootSourceOverrideEnabled: sys.bootEnabled,
        BootSourceOverrideMode: sys.bootMode,
        'BootSourceOverrideTarget@Redfish.AllowableValues': sys.opts.allowableBootTargets,
      },
      Links: {
        Chassis: [{ '@odata.id': `${R}/Chassis/${id}` }],
        ManagedBy: [{ '@odata.id': `${R}/Managers/${MANAGER_ID}` }],
      },
      Actions: { '#ComputerSystem.Reset': reset },
    };
  };

  const mediaPath = `${R}/Managers/${MANAGER_ID}/VirtualMedia/${CD_ID}`;

  // --- routes --------------------------------------------------------------------------------

  type Handler = (req: IncomingMessage, m: RegExpMatchArray, body: unknown) => { status: number; body?: unknown; headers?: Record<string, string> };
  interface Route {
    pattern: RegExp;
    auth: boolean | 'except-post';
    methods: Record<string, Handler>;
  }
  const ok = (body: unknown) => ({ status: 200, body });
  const noContent = () => ({ status: 204 });

  const requireObject = (body: unknown): Record<string, unknown> => {
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      throw new RedfishHttpError(400, 'MalformedJSON', 'The request body submitted was malformed JSON and could not be parsed by the receiving service.');
    }
    return body as Record<string, unknown>;
  };

  const notInList = (value: unknown, prop: string) =>
    new RedfishHttpError(400, 'ActionParameterValueNotInList', `The value ${JSON.stringify(value)} for the parameter ${prop} is not in the list of acceptable values.`, [
      String(value),
      prop,
    ]);
  const propertyNotInList = (value: unknown, prop: string) =>
    new RedfishHttpError(400, 'PropertyValueNotInList', `The value ${JSON.stringify(value)} for the property ${prop} is not in the list of acceptable values.`, [
      String(value),
      prop,
    ]);

  const routes: Route[] = [
    { pattern: /^\/redfish$/, auth: false, methods: { GET: () => ok({ v1: `${R}/` }) } },
    { pattern: /^\/redfish\/v1$/, auth: false, methods: { GET: () => ok(serviceRoot()) } },
    {
      pattern: /^\/redfish\/v1\/Systems$/,
      auth: true,
      methods: { GET: () => ok(collection(`${R}/Systems`, 'ComputerSystemCollection', 'Computer System Collection', [...systems.keys()].map(systemPath))) },
    },
    {
      pattern: /^\/redfish\/v1\/Systems\/([^/]+)$/,
      auth: true,
      methods: {
        GET: (_req, m) => ok(systemBody(systemOf(m[1]!))),
        PATCH: (_req, m, raw) => {
          const sys = systemOf(m[1]!);
          const body = requireObject(raw);
          for (const key of Object.keys(body)) {
            if (key !== 'Boot') throw new RedfishHttpError(400, 'PropertyNotWritable', `The property ${key} is a read only property and cannot be assigned a value.`, [key]);
          }
          const boot = requireObject(body.Boot);
          // Validate everything before changing anything: a rejected PATCH changes nothing.
          for (const [key, value] of Object.entries(boot)) {
            if (key === 'BootSourceOverrideTarget') {
              if (typeof value !== 'string' || !sys.opts.allowableBootTargets.includes(value)) throw propertyNotInList(value, key);
            } else if (key === 'BootSourceOverrideEnabled') {
              if (typeof value !== 'string' || !BOOT_ENABLED_VALUES.includes(value)) throw propertyNotInList(value, key);
            } else if (key === 'BootSourceOverrideMode') {
              if (value !== 'UEFI' && value !== 'Legacy') throw propertyNotInList(value, key);
            } else {
              throw new RedfishHttpError(400, 'PropertyUnknown', `The property ${key} is not in the list of valid properties for the resource.`, [key]);
            }
          }
          if (typeof boot.BootSourceOverrideTarget === 'string') sys.bootTarget = boot.BootSourceOverrideTarget;
          if (typeof boot.BootSourceOverrideEnabled === 'string') sys.bootEnabled = boot.BootSourceOverrideEnabled;
          if (typeof boot.BootSourceOverrideMode === 'string') sys.bootMode = boot.BootSourceOverrideMode;
          sys.patches.push(structuredClone(body));
          return noContent();
        },
      },
    },
    {
      pattern: /^\/redfish\/v1\/Systems\/([^/]+)\/ResetActionInfo$/,
      auth: true,
      methods: {
        GET: (_req, m) => {
          const sys = systemOf(m[1]!);
          return ok({
            '@odata.id': `${systemPath(sys.opts.id)}/ResetActionInfo`,
            '@odata.type': '#ActionInfo.v1_1_2.ActionInfo',
            Id: 'ResetActionInfo',
            Name: 'Reset Action Info',
            Parameters: [{ Name: 'ResetType', Required: true, DataType: 'String', AllowableValues: sys.opts.allowableResetTypes }],
          });
        },
      },
    },
    {
      pattern: /^\/redfish\/v1\/Systems\/([^/]+)\/Actions\/ComputerSystem\.Reset$/,
      auth: true,
      methods: {
        POST: (_req, m, raw) => {
          const sys = systemOf(m[1]!);
          const body = requireObject(raw);
          const type = body.ResetType;
          if (type === undefined) {
            throw new RedfishHttpError(400, 'ActionParameterMissing', 'The action ComputerSystem.Reset requires the parameter ResetType to be present in the request body.', [
              'ComputerSystem.Reset',
              'ResetType',
            ]);
          }
          if (typeof type !== 'string' || !sys.opts.allowableResetTypes.includes(type)) throw notInList(type, 'ResetType');
          if (sys.opts.refuseSatisfiedResets) {
            const power = powerOf(sys);
            if ((power === 'On' && (type === 'On' || type === 'ForceOn')) || (power === 'Off' && (type === 'ForceOff' || type === 'GracefulShutdown'))) {
              throw new RedfishHttpError(409, 'ActionNotSupported', `The system is already powered ${power === 'On' ? 'on' : 'off'}.`, ['ComputerSystem.Reset']);
            }
          }
          reset(sys, type);
          return noContent();
        },
      },
    },
    {
      pattern: /^\/redfish\/v1\/Chassis$/,
      auth: true,
      methods: { GET: () => ok(collection(`${R}/Chassis`, 'ChassisCollection', 'Chassis Collection', [...systems.keys()].map((id) => `${R}/Chassis/${id}`))) },
    },
    {
      pattern: /^\/redfish\/v1\/Chassis\/([^/]+)$/,
      auth: true,
      methods: {
        GET: (_req, m) => {
          const sys = systemOf(m[1]!);
          const id = sys.opts.id;
          return ok({
            '@odata.id': `${R}/Chassis/${id}`,
            '@odata.type': '#Chassis.v1_10_0.Chassis',
            Id: id,
            Name: `Chassis ${id}`,
            ChassisType: 'RackMount',
            PowerState: powerOf(sys),
            Status: { State: 'Enabled', Health: 'OK' },
            Links: { ComputerSystems: [{ '@odata.id': systemPath(id) }], ManagedBy: [{ '@odata.id': `${R}/Managers/${MANAGER_ID}` }] },
          });
        },
      },
    },
    {
      pattern: /^\/redfish\/v1\/Managers$/,
      auth: true,
      methods: { GET: () => ok(collection(`${R}/Managers`, 'ManagerCollection', 'Manager Collection', [`${R}/Managers/${MANAGER_ID}`])) },
    },
    {
      pattern: /^\/redfish\/v1\/Managers\/BMC$/,
      auth: true,
      methods: {
        GET: () =>
          ok({
            '@odata.id': `${R}/Managers/${MANAGER_ID}`,
            '@odata.type': '#Manager.v1_5_0.Manager',
            Id: MANAGER_ID,
            Name: 'Manager',
            ManagerType: 'BMC',
            FirmwareVersion: '1.0.0',
            Status: { State: 'Enabled', Health: 'OK' },
            VirtualMedia: { '@odata.id': `${R}/Managers/${MANAGER_ID}/VirtualMedia` },
            Links: { ManagerForServers: [...systems.keys()].map((id) => ({ '@odata.id': systemPath(id) })) },
          }),
      },
    },
    {
      pattern: /^\/redfish\/v1\/Managers\/BMC\/VirtualMedia$/,
      auth: true,
      methods: { GET: () => ok(collection(`${R}/Managers/${MANAGER_ID}/VirtualMedia`, 'VirtualMediaCollection', 'Virtual Media Services', [mediaPath])) },
    },
    {
      pattern: /^\/redfish\/v1\/Managers\/BMC\/VirtualMedia\/CD1$/,
      auth: true,
      methods: {
        GET: () =>
          ok({
            '@odata.id': mediaPath,
            '@odata.type': '#VirtualMedia.v1_3_0.VirtualMedia',
            Id: CD_ID,
            Name: 'Virtual CD',
            MediaTypes: ['CD', 'DVD'],
            Image: media.Image,
            ImageName: media.Image === null ? null : media.Image.split('/').pop(),
            Inserted: media.Inserted,
            WriteProtected: true,
            ConnectedVia: media.Inserted ? 'URI' : 'NotConnected',
            Actions: {
              '#VirtualMedia.EjectMedia': { target: `${mediaPath}/Actions/VirtualMedia.EjectMedia` },
              '#VirtualMedia.InsertMedia': { target: `${mediaPath}/Actions/VirtualMedia.InsertMedia` },
            },
          }),
      },
    },
    {
      pattern: /^\/redfish\/v1\/Managers\/BMC\/VirtualMedia\/CD1\/Actions\/VirtualMedia\.EjectMedia$/,
      auth: true,
      methods: {
        POST: () => {
          // Ejecting an empty drive is a no-op, so an eject can be retried safely.
          if (media.Inserted) media.ejects += 1;
          media.Inserted = false;
          media.Image = null;
          return noContent();
        },
      },
    },
    {
      pattern: /^\/redfish\/v1\/Managers\/BMC\/VirtualMedia\/CD1\/Actions\/VirtualMedia\.InsertMedia$/,
      auth: true,
      methods: {
        POST: (_req, _m, raw) => {
          const body = requireObject(raw);
          if (typeof body.Image !== 'string' || !/^https?:\/\//.test(body.Image)) {
            throw new RedfishHttpError(400, 'ActionParameterValueFormatError', `The value ${JSON.stringify(body.Image)} for the parameter Image is of a different format than the parameter can accept.`, [
              String(body.Image),
              'Image',
            ]);
          }
          media.Image = body.Image;
          media.Inserted = true;
          return noContent();
        },
      },
    },
    {
      pattern: /^\/redfish\/v1\/SessionService$/,
      auth: true,
      methods: {
        GET: () =>
          ok({
            '@odata.id': `${R}/SessionService`,
            '@odata.type': '#SessionService.v1_1_6.SessionService',
            Id: 'SessionService',
            Name: 'Session Service',
            ServiceEnabled: true,
            SessionTimeout: 1800,
            Sessions: { '@odata.id': `${R}/SessionService/Sessions` },
          }),
      },
    },
    {
      pattern: /^\/redfish\/v1\/SessionService\/Sessions$/,
      // Login (POST) is how a client without a session gets one; listing needs auth.
      auth: 'except-post',
      methods: {
        GET: () =>
          ok(collection(`${R}/SessionService/Sessions`, 'SessionCollection', 'Session Collection', [...sessions.values()].map((s) => `${R}/SessionService/Sessions/${s.id}`))),
        POST: (_req, _m, raw) => {
          const body = requireObject(raw);
          const user = typeof body.UserName === 'string' ? body.UserName : '';
          const pass = typeof body.Password === 'string' ? body.Password : '';
          if (!(sameSecret(user, options.username) && sameSecret(pass, options.password))) {
            throw new RedfishHttpError(401, 'NoValidSession', 'There is no valid session established with the implementation.');
          }
          sessionSeq += 1;
          const id = String(sessionSeq);
          const token = randomBytes(24).toString('hex');
          sessions.set(token, { id, user });
          const path = `${R}/SessionService/Sessions/${id}`;
          return {
            status: 201,
            headers: { 'X-Auth-Token': token, Location: path },
            body: { '@odata.id': path, '@odata.type': '#Session.v1_1_0.Session', Id: id, Name: 'User Session', UserName: user },
          };
        },
      },
    },
    {
      pattern: /^\/redfish\/v1\/SessionService\/Sessions\/([^/]+)$/,
      auth: true,
      methods: {
        GET: (_req, m) => {
          const s = [...sessions.values()].find((x) => x.id === m[1]);
          if (!s) throw missing(`${R}/SessionService/Sessions/${m[1]}`);
          return ok({ '@odata.id': `${R}/SessionService/Sessions/${s.id}`, '@odata.type': '#Session.v1_1_0.Session', Id: s.id, Name: 'User Session', UserName: s.user });
        },
        DELETE: (_req, m) => {
          const entry = [...sessions.entries()].find(([, x]) => x.id === m[1]);
          if (!entry) throw missing(`${R}/SessionService/Sessions/${m[1]}`);
          sessions.delete(entry[0]);
          return noContent();
        },
      },
    },
    {
      pattern: /^\/redfish\/v1\/AccountService$/,
      auth: true,
      methods: {
        GET: () =>
          ok({
            '@odata.id': `${R}/AccountService`,
            '@odata.type': '#AccountService.v1_5_0.AccountService',
            Id: 'AccountService',
            Name: 'Account Service',
            ServiceEnabled: true,
            Accounts: { '@odata.id': `${R}/AccountService/Accounts` },
            Roles: { '@odata.id': `${R}/AccountService/Roles` },
          }),
      },
    },
    {
      pattern: /^\/redfish\/v1\/AccountService\/Accounts$/,
      auth: true,
      methods: { GET: () => ok(collection(`${R}/AccountService/Accounts`, 'ManagerAccountCollection', 'Accounts Collection', [`${R}/AccountService/Accounts/1`])) },
    },
    {
      pattern: /^\/redfish\/v1\/AccountService\/Accounts\/1$/,
      auth: true,
      methods: {
        GET: () =>
          ok({
            '@odata.id': `${R}/AccountService/Accounts/1`,
            '@odata.type': '#ManagerAccount.v1_3_0.ManagerAccount',
            Id: '1',
            Name: 'User Account',
            UserName: options.username,
            RoleId: 'Administrator',
            Enabled: true,
            Password: null, // Redfish always reads the password back as null
          }),
      },
    },
    {
      pattern: /^\/redfish\/v1\/EventService$/,
      auth: true,
      methods: {
        GET: () =>
          ok({
            '@odata.id': `${R}/EventService`,
            '@odata.type': '#EventService.v1_0_8.EventService',
            Id: 'EventService',
            Name: 'Event Service',
            ServiceEnabled: true,
            DeliveryRetryAttempts: 3,
            DeliveryRetryIntervalSeconds: 60,
            EventTypesForSubscription: EVENT_TYPES,
            Subscriptions: { '@odata.id': `${R}/EventService/Subscriptions` },
          }),
      },
    },
    {
      pattern: /^\/redfish\/v1\/EventService\/Subscriptions$/,
      auth: true,
      methods: {
        GET: () =>
          ok(collection(`${R}/EventService/Subscriptions`, 'EventDestinationCollection', 'Event Subscriptions', [...subs.keys()].map((id) => `${R}/EventService/Subscriptions/${id}`))),
        POST: (_req, _m, raw) => {
          const body = requireObject(raw);
          const dest = body.Destination;
          if (dest === undefined) {
            throw new RedfishHttpError(400, 'PropertyMissing', 'The property Destination is a required property and must be included in the request.', ['Destination']);
          }
          if (typeof dest !== 'string' || !/^https?:\/\/[^/\s]+/.test(dest)) {
            throw new RedfishHttpError(400, 'PropertyValueFormatError', `The value ${JSON.stringify(dest)} for the property Destination is of a different format than the property can accept.`, [
              String(dest),
              'Destination',
            ]);
          }
          if (body.Protocol !== undefined && body.Protocol !== 'Redfish') throw propertyNotInList(body.Protocol, 'Protocol');
          const types = body.EventTypes ?? ['Alert'];
          if (!Array.isArray(types)) throw propertyNotInList(types, 'EventTypes');
          for (const t of types) if (typeof t !== 'string' || !EVENT_TYPES.includes(t)) throw propertyNotInList(t, 'EventTypes');
          if (body.Context !== undefined && body.Context !== null && typeof body.Context !== 'string') throw propertyNotInList(body.Context, 'Context');
          subSeq += 1;
          const id = String(subSeq);
          const sub = { Id: id, Destination: dest, EventTypes: types as string[], Context: (body.Context as string | null | undefined) ?? null, Protocol: 'Redfish' };
          subs.set(id, sub);
          const path = `${R}/EventService/Subscriptions/${id}`;
          return { status: 201, headers: { Location: path }, body: subscriptionBody(sub) };
        },
      },
    },
    {
      pattern: /^\/redfish\/v1\/EventService\/Subscriptions\/([^/]+)$/,
      auth: true,
      methods: {
        GET: (_req, m) => {
          const sub = subs.get(m[1]!);
          if (!sub) throw missing(`${R}/EventService/Subscriptions/${m[1]}`);
          return ok(subscriptionBody(sub));
        },
        DELETE: (_req, m) => {
          if (!subs.delete(m[1]!)) throw missing(`${R}/EventService/Subscriptions/${m[1]}`);
          return noContent();
        },
      },
    },
  ];

  function subscriptionBody(sub: { Id: string; Destination: string; EventTypes: string[]; Context: string | null; Protocol: string }) {
    return {
      '@odata.id': `${R}/EventService/Subscriptions/${sub.Id}`,
      '@odata.type': '#EventDestination.v1_2_0.EventDestination',
      Name: 'Event Subscription',
      ...sub,
    };
  }

  function missing(path: string) {
    return new RedfishHttpError(404, 'ResourceMissingAtURI', `The resource at the URI ${path} was not found.`, [path]);
  }

  // --- HTTP plumbing -------------------------------------------------------------------------

  const realm = 'Redfish Simulator';

  const authenticated = (req: IncomingMessage): boolean => {
    const token = req.headers['x-auth-token'];
    if (typeof token === 'string' && token !== '') {
      for (const known of sessions.keys()) if (sameSecret(token, known)) return true;
      return false;
    }
    const header = req.headers.authorization ?? '';
    const m = /^Basic\s+(\S+)$/i.exec(header);
    if (!m) return false;
    const decoded = Buffer.from(m[1]!, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) return false;
    const userOk = sameSecret(decoded.slice(0, colon), options.username);
    const passOk = sameSecret(decoded.slice(colon + 1), options.password);
    return userOk && passOk;
  };

  const readBody = async (req: IncomingMessage): Promise<unknown> => {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req) {
      size += (chunk as Buffer).length;
      if (size > 1 << 20) throw new RedfishHttpError(413, 'GeneralError', 'The request body is too large.');
      chunks.push(chunk as Buffer);
    }
    const text = Buffer.concat(chunks).toString('utf8');
    if (text.trim() === '') return undefined;
    try {
      return JSON.parse(text) as unknown;
    } catch {
      throw new RedfishHttpError(400, 'MalformedJSON', 'The request body submitted was malformed JSON and could not be parsed by the receiving service.');
    }
  };

  const send = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
    res.statusCode = status;
    res.setHeader('OData-Version', '4.0');
    res.setHeader('Cache-Control', 'no-cache');
    for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
    if (status === 204 || body === undefined) {
      res.end();
      return;
    }
    res.setHeader('Content-Type', 'application/json');
    res.end(JSON.stringify(body));
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const method = req.method ?? 'GET';
    // Redfish URIs are case-sensitive; a trailing slash is tolerated (the service root is `/redfish/v1/`).
    let path = (req.url ?? '/').split('?')[0]!;
    if (path.length > 1 && path.endsWith('/')) path = path.slice(0, -1);
    const route = routes.find((r) => r.pattern.test(path));
    if (!route) throw missing(path);
    const needsAuth = route.auth === true || (route.auth === 'except-post' && method !== 'POST');
    if (needsAuth && !authenticated(req)) {
      throw new RedfishHttpError(401, 'NoValidSession', 'There is no valid session established with the implementation.', [], {
        'WWW-Authenticate': `Basic realm="${realm}"`,
      });
    }
    const handler = route.methods[method];
    if (!handler) {
      throw new RedfishHttpError(405, 'OperationNotAllowed', `The HTTP method ${method} is not allowed on the URI ${path}.`, [method, path], {
        Allow: Object.keys(route.methods).join(', '),
      });
    }
    const body = method === 'GET' || method === 'DELETE' ? undefined : await readBody(req);
    const m = path.match(route.pattern)!;
    const out = handler(req, m, body);
    send(res, out.status, out.body, out.headers);
  };

  const requestLog: SimRequest[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const listener = (req: IncomingMessage, res: ServerResponse) => {
    const startedAt = Date.now();
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    let logged = false;
    const done = () => {
      if (logged) return;
      logged = true;
      inFlight--;
      if (requestLog.length >= MAX_LOGGED_REQUESTS) requestLog.shift();
      requestLog.push({ method: req.method ?? 'GET', path: (req.url ?? '/').split('?')[0]!, status: res.statusCode, startedAt, finishedAt: Date.now() });
    };
    res.once('finish', done);
    res.once('close', done);
    handle(req, res).catch((err: unknown) => {
      if (err instanceof RedfishHttpError) {
        send(res, err.status, errorBody(err), err.headers);
      } else {
        send(res, 500, errorBody(new RedfishHttpError(500, 'InternalError', 'The request failed due to an internal service error.')));
      }
    });
  };

  const server: Server = options.tls ? createHttpsServer({ cert: options.tls.cert, key: options.tls.key }, listener) : createHttpServer(listener);
  const host = options.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const url = `${options.tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${port}`;

  return {
    url,
    async stop() {
      for (const sys of systems.values()) {
        for (const t of sys.timers) clearTimeout(t);
        sys.timers.clear();
      }
      // Machines behind the systems are powered off with the BMC: no VM outlives the simulator.
      await Promise.allSettled([...systems.values()].map(async (sys) => {
        await sys.vmOps;
        await sys.opts.vm?.stop();
      }));
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
    state(systemId) {
      const sys = systems.get(systemId);
      if (!sys) throw new Error(`the simulator has no system ${systemId}`);
      return {
        PowerState: powerOf(sys),
        BootSourceOverrideTarget: sys.bootTarget,
        BootSourceOverrideEnabled: sys.bootEnabled,
        resets: [...sys.resets],
        patches: structuredClone(sys.patches),
        vmBoots: [...sys.vmBoots],
        vmError: sys.vmError,
      };
    },
    addSystem,
    virtualMedia: () => ({ ...media }),
    subscriptions: () => [...subs.values()].map(({ Id, Destination, EventTypes, Context }) => ({ Id, Destination, EventTypes: [...EventTypes], Context })),
    requests: () => requestLog.map((r) => ({ ...r })),
    maxInFlight: () => maxInFlight,
  };
}

// --- CLI: `npx tsx agent/sim/redfish.ts --port 8000 ...` ------------------------------------------

async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      port: { type: 'string', default: '8000' },
      host: { type: 'string', default: '127.0.0.1' },
      user: { type: 'string', default: 'admin' },
      password: { type: 'string', default: 'password' },
      systems: { type: 'string', default: '1' },
      'delay-ms': { type: 'string', default: '2000' },
      'tls-cert': { type: 'string' },
      'tls-key': { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(
      'usage: tsx agent/sim/redfish.ts [--port 8000] [--host 127.0.0.1] [--user admin] [--password password]\n' +
        '                               [--systems N] [--delay-ms 2000] [--tls-cert cert.pem --tls-key key.pem]',
    );
    return;
  }
  const count = Number(values.systems);
  const delay = Number(values['delay-ms']);
  const port = Number(values.port);
  if (!Number.isInteger(count) || count < 1 || !Number.isFinite(delay) || delay < 0 || !Number.isInteger(port) || port < 0) {
    throw new Error('--systems must be a positive integer, --delay-ms and --port non-negative numbers');
  }
  const certFile = values['tls-cert'];
  const keyFile = values['tls-key'];
  if ((certFile === undefined) !== (keyFile === undefined)) throw new Error('--tls-cert and --tls-key go together');
  const sim = await startRedfishSim({
    port,
    host: values.host,
    username: values.user,
    password: values.password,
    systems: Array.from({ length: count }, (_, i) => ({ id: String(i + 1), powerState: 'Off' as const, powerDelayMs: delay })),
    tls: certFile && keyFile ? { cert: readFileSync(certFile, 'utf8'), key: readFileSync(keyFile, 'utf8') } : false,
  });
  console.log(`Redfish simulator listening on ${sim.url} (systems: ${count}, power delay: ${delay} ms, user: ${values.user})`);
  const shutdown = () => {
    sim.stop().then(() => process.exit(0));
  };
  process.once('SIGINT', shutdown);
  process.once('SIGTERM', shutdown);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  });
}
