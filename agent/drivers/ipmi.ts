/**
 * IPMI driver: power, boot device and vendor operations through `ipmitool` (lanplus by
 * default), after Ironic's `drivers/modules/ipmitool.py`.
 *
 * Rules that protect fragile BMCs (docs/performance-and-reliability.md §4): one command in
 * flight per BMC and a minimum interval between commands to it, shared by every driver instance
 * in the process; bounded retries for `unreachable`/`timeout` only. The password reaches
 * ipmitool through IPMI_PASSWORD (`-E`), never argv (visible in `ps`), and is scrubbed from
 * every message.
 */
import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { type BmcDriver, BmcError, type BmcErrorCode, type BootDevice, type BootDeviceReading, type PowerAction, type PowerState } from './types.ts';

export interface IpmiDriverConfig {
  address: string;
  port?: number;
  username: string;
  password: string;
  /** RMCP+ cipher suite; giving one skips ipmitool's ~10 s cipher-suite discovery. */
  cipherSuite?: number;
  interface?: 'lanplus' | 'lan';
  /** Upper bound for one ipmitool run; its UDP resend budget (-N/-R) is sized to fit inside. */
  timeoutSeconds?: number;
  /** Extra attempts after an `unreachable` or `timeout` failure. */
  retries?: number;
  retryBackoffMs?: number;
  /** Quiet time between two commands to one BMC (Ironic: 5 s; BMCs crash when hammered). */
  minCommandIntervalMs?: number;
  /** How long a power action may take to show in the BMC's power status (per phase of a soft reboot). */
  powerTimeoutMs?: number;
  pollIntervalMs?: number;
  /**
   * Before setting a boot device, turn off the BMC's 60 s boot-flag-valid timeout so the
   * override survives a late power-on (Ironic's `ipmi_disable_boot_timeout`).
   */
  disableBootTimeout?: boolean;
  ipmitool?: string;
  /** Called after every ipmitool run (for logs and tests); `args` never hold the password. */
  onCommand?: (event: IpmiCommandEvent) => void;
}

export interface IpmiCommandEvent {
  bmc: string;
  args: string[];
  attempt: number;
  startedAt: number;
  finishedAt: number;
  error?: BmcErrorCode;
}

/** `chassis status` as snake_case keys (system_power, power_overload, cooling_fan_fault, …); "true"/"false" become booleans. */
export type ChassisStatus = Record<string, string | boolean>;

type Resolved = Required<Omit<IpmiDriverConfig, 'onCommand'>> & Pick<IpmiDriverConfig, 'onCommand'>;

interface RunOptions {
  /** Safe to send twice; otherwise only failures before the session opened are retried. */
  idempotent: boolean;
}

interface RunResult {
  stdout: string;
  stderr: string;
}

/** Per-BMC serialisation for the whole process: key "address:port". */
interface BmcSlot {
  tail: Promise<unknown>;
  lastEnd: number;
}
const slots = new Map<string, BmcSlot>();

export class IpmiDriver implements BmcDriver {
  readonly kind = 'ipmi' as const;
  private readonly config: Resolved;
  private readonly bmc: string;

  constructor(config: IpmiDriverConfig) {
    this.config = resolveConfig(config);
    this.bmc = `${this.config.address}:${this.config.port}`;
  }

  async getPowerState(): Promise<PowerState> {
    const { stdout, stderr } = await this.run(['chassis', 'power', 'status'], { idempotent: true });
    return parsePowerStatus(stdout) ?? this.fail(['chassis', 'power', 'status'], stdout, stderr);
  }

  async setPowerState(action: PowerAction): Promise<PowerState> {
    switch (action) {
      case 'power on':
        await this.power('on');
        return this.waitFor('power on', 'on');
      case 'power off':
        await this.power('off');
        return this.waitFor('power off', 'off');
      case 'soft power off':
        await this.power('soft');
        return this.waitFor('power off', 'soft');
      case 'rebooting':
        if ((await this.getPowerState()) === 'power on') {
          await this.power('cycle');
          return this.waitFor('power on', 'cycle');
        }
        await this.power('on');
        return this.waitFor('power on', 'on');
      case 'soft rebooting':
        if ((await this.getPowerState()) === 'power on') {
          await this.power('soft');
          await this.waitFor('power off', 'soft');
        }
        await this.power('on');
        return this.waitFor('power on', 'on');
    }
  }

  async setBootDevice(device: BootDevice, persistent: boolean): Promise<void> {
    if (this.config.disableBootTimeout) {
      try {
        // Set System Boot Options, parameter 3 (boot flag valid bit clearing): 0x08 = never.
        await this.run(['raw', '0x00', '0x08', '0x03', '0x08'], { idempotent: true });
      } catch (err) {
        // Optional on many BMCs; only connection and credential problems matter here.
        if (!(err instanceof BmcError) || (err.code !== 'unsupported' && err.code !== 'protocol')) throw err;
      }
    }
    const command = ['chassis', 'bootdev', device, ...(persistent ? ['options=persistent'] : [])];
    const { stdout, stderr } = await this.run(command, { idempotent: true });
    // ipmitool exits 0 even when the BMC refuses the boot parameter; only this line means success.
    if (!stdout.includes(`Set Boot Device to ${device}`)) this.fail(command, stdout, stderr);
  }

  /** `chassis bootparam get 5` (Get System Boot Options, boot flags); see parseBootFlags/bootDeviceOf. */
  async getBootDevice(): Promise<BootDeviceReading> {
    const command = ['chassis', 'bootparam', 'get', '5'];
    const { stdout, stderr } = await this.run(command, { idempotent: true });
    const flags = parseBootFlags(stdout);
    return flags ? bootDeviceOf(flags) : this.fail(command, stdout, stderr);
  }

  /** Vendor: `chassis status`. */
  async chassisStatus(): Promise<ChassisStatus> {
    const command = ['chassis', 'status'];
    const { stdout, stderr } = await this.run(command, { idempotent: true });
    const status = parseChassisStatus(stdout);
    return 'system_power' in status ? status : this.fail(command, stdout, stderr);
  }

  /** Vendor: any IPMI request (`raw`); returns the response data bytes after the completion code. */
  async sendRaw(netfn: number, command: number, data: number[] = []): Promise<number[]> {
    checkByte('netfn', netfn, 0x3f);
    checkByte('command', command, 0xff);
    data.forEach((b, i) => checkByte(`data[${i}]`, b, 0xff));
    const args = ['raw', ...[netfn, command, ...data].map(hex)];
    // Raw requests may change state, so they are not resent once a session was open.
    const { stdout } = await this.run(args, { idempotent: false });
    return parseRawResponse(stdout);
  }

  /** Vendor: `mc reset warm|cold`. The BMC is unreachable for a while afterwards. */
  async bmcReset(kind: 'warm' | 'cold'): Promise<void> {
    await this.run(['mc', 'reset', kind], { idempotent: false });
  }

  private async power(verb: 'on' | 'off' | 'soft' | 'cycle'): Promise<void> {
    const command = ['chassis', 'power', verb];
    // A resent cycle could reboot twice; on/off/soft are harmless to repeat.
    const { stdout, stderr } = await this.run(command, { idempotent: verb !== 'cycle' });
    if (!stdout.includes('Chassis Power Control:')) this.fail(command, stdout, stderr);
  }

  /** Polls power status until `target` or powerTimeoutMs after the action. */
  private async waitFor(target: PowerState, after: string): Promise<PowerState> {
    const started = Date.now();
    const deadline = started + this.config.powerTimeoutMs;
    for (;;) {
      const state = await this.getPowerState();
      if (state === target) return state;
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new BmcError(
          'timeout',
          `IPMI BMC at ${this.bmc} still reports '${state}' ${((Date.now() - started) / 1000).toFixed(1)} s after 'chassis power ${after}' (expected '${target}')`,
        );
      }
      await sleep(Math.min(this.config.pollIntervalMs, left));
    }
  }

  private fail(command: string[], stdout: string, stderr: string): never {
    throw ipmitoolFailure({
      bmc: this.bmc,
      username: this.config.username,
      password: this.config.password,
      command,
      stderr,
      stdout,
      timedOut: false,
    });
  }

  private async run(command: string[], options: RunOptions): Promise<RunResult> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await serialize(this.bmc, this.config.minCommandIntervalMs, () => this.exec(command, attempt));
      } catch (err) {
        const again =
          err instanceof IpmitoolError &&
          err.retryable &&
          attempt < this.config.retries &&
          (options.idempotent || err.beforeSession);
        if (!again) throw err;
        await sleep(this.config.retryBackoffMs * 2 ** attempt);
      }
    }
  }

  private exec(command: string[], attempt: number): Promise<RunResult> {
    const { config } = this;
    const args = buildArgs(config, command);
    const startedAt = Date.now();
    return new Promise<RunResult>((resolve, reject) => {
      let stdout = '';
      let stderr = '';
      let timedOut = false;
      let settled = false;
      const child = spawn(config.ipmitool, args, { env: buildEnv(config.password), stdio: ['ignore', 'pipe', 'pipe'] });
      const timer = setTimeout(() => {
        timedOut = true;
        child.kill('SIGKILL');
      }, config.timeoutSeconds * 1000);
      child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      const finish = (error: BmcError | undefined): void => {
        if (settled) return; // a failed spawn emits both 'error' and 'close'
        settled = true;
        clearTimeout(timer);
        try {
          config.onCommand?.({ bmc: this.bmc, args, attempt, startedAt, finishedAt: Date.now(), ...(error ? { error: error.code } : {}) });
        } catch {
          // An observer must not wedge the BMC queue.
        }
        if (error) reject(error);
        else resolve({ stdout, stderr });
      };
      child.once('error', (err: NodeJS.ErrnoException) => {
        finish(new IpmitoolError('protocol', `cannot run ${config.ipmitool} for IPMI BMC at ${this.bmc}: ${err.code ?? err.message}`, false));
      });
      child.once('close', (code) => {
        if (code === 0 && !timedOut) return finish(undefined);
        finish(
          ipmitoolFailure({
            bmc: this.bmc,
            username: config.username,
            password: config.password,
            command,
            stderr,
            stdout,
            timedOut,
            timeoutSeconds: config.timeoutSeconds,
          }),
        );
      });
    });
  }
}

/**
 * ipmitool's argv for one command. `-E` reads the password from IPMI_PASSWORD; `-v` makes
 * ipmitool say why a session failed (bad HMAC vs no answer), which the classifier needs.
 */
export function buildArgs(config: Resolved, command: string[]): string[] {
  return [
    '-I', config.interface,
    '-H', config.address,
    '-p', String(config.port),
    '-U', config.username,
    '-E',
    ...(config.interface === 'lanplus' ? ['-C', String(config.cipherSuite)] : []),
    '-N', '1',
    '-R', String(resendsFor(config.interface, config.timeoutSeconds)),
    '-v',
    ...command,
  ];
}

export function buildEnv(password: string): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH ?? '/usr/bin:/bin', LC_ALL: 'C', IPMI_PASSWORD: password };
}

/**
 * ipmitool's resend count (-R, with -N 1) so that it gives up on a silent BMC by itself, as
 * `unreachable`, before our process timeout would call it `timeout`. Measured with 1.8.19 on
 * a dead port: lanplus takes R·(R+1) s (two capability probes, +1 s per resend), lan R+1 s.
 */
export function resendsFor(iface: 'lanplus' | 'lan', timeoutSeconds: number): number {
  const budget = iface === 'lanplus' ? (r: number) => r * (r + 1) : (r: number) => r + 1;
  let r = 1;
  while (r < 4 && budget(r + 1) < timeoutSeconds) r++;
  return r;
}

export function resolveConfig(config: IpmiDriverConfig): Resolved {
  const resolved: Resolved = {
    port: 623,
    cipherSuite: 3,
    interface: 'lanplus',
    timeoutSeconds: 15,
    retries: 2,
    retryBackoffMs: 500,
    minCommandIntervalMs: 1000,
    powerTimeoutMs: 60_000,
    pollIntervalMs: 1000,
    disableBootTimeout: true,
    ipmitool: 'ipmitool',
    ...withoutUndefined(config),
    address: config.address.trim().toLowerCase(),
    username: config.username,
    password: config.password,
  };
  if (!resolved.address) throw new TypeError('IPMI driver: address is required');
  if (!Number.isInteger(resolved.port) || resolved.port < 1 || resolved.port > 65535) {
    throw new RangeError(`IPMI driver: port ${resolved.port} is not a UDP port`);
  }
  if (!Number.isInteger(resolved.cipherSuite) || resolved.cipherSuite < 0 || resolved.cipherSuite > 17) {
    throw new RangeError(`IPMI driver: cipher suite ${resolved.cipherSuite} is not 0-17`);
  }
  if (resolved.interface !== 'lanplus' && resolved.interface !== 'lan') {
    throw new RangeError(`IPMI driver: interface must be 'lanplus' or 'lan'`);
  }
  if (!(resolved.timeoutSeconds > 0)) throw new RangeError('IPMI driver: timeoutSeconds must be positive');
  if (!Number.isInteger(resolved.retries) || resolved.retries < 0) throw new RangeError('IPMI driver: retries must be a whole number');
  for (const key of ['retryBackoffMs', 'minCommandIntervalMs', 'powerTimeoutMs', 'pollIntervalMs'] as const) {
    if (!(resolved[key] >= 0)) throw new RangeError(`IPMI driver: ${key} must not be negative`);
  }
  return resolved;
}

export function parsePowerStatus(stdout: string): PowerState | undefined {
  const match = /Chassis Power is (on|off)/.exec(stdout);
  return match ? (`power ${match[1]}` as PowerState) : undefined;
}

/** The boot flags (boot option parameter 5) as `ipmitool chassis bootparam get 5` prints them. */
export interface BootFlags {
  /**
   * "Boot Flag Valid" (bit 7 of data 1): the BMC will apply the flags to the next boot. The BMC
   * clears it when the boot it applied to has started, and after 60 s unless that timer is off.
   */
  valid: boolean;
  /** "Options apply to all future boots" (bit 6) rather than "Options apply to only next boot". */
  persistent: boolean;
  /** ipmitool's text for the device selector, e.g. "Force PXE", "No override". */
  selector: string;
  /** The selector in Ironic's names; null for "No override" and selectors Ironic has no name for. */
  device: string | null;
}

/**
 * Ironic's names for ipmitool's device selector texts, by the words that tell them apart (as
 * Ironic's ipmitool driver matches them, so other ipmitool versions' wording still works).
 * Order matters: safe mode is also "Hard-Drive". Diagnostic Partition and "primary remote
 * media" have no Ironic name.
 */
const SELECTOR_DEVICES: [RegExp, string][] = [
  [/PXE/, 'pxe'],
  [/Hard-Drive.*Safe-Mode/i, 'safe'],
  [/Hard-Drive/i, 'disk'],
  [/CD\/DVD/, 'cdrom'],
  [/BIOS/, 'bios'],
  [/Floppy/i, 'floppy'],
];

/** Parses `chassis bootparam get 5`; undefined when the output has no boot device selector. */
export function parseBootFlags(stdout: string): BootFlags | undefined {
  const selector = /Boot Device Selector : (.*)/.exec(stdout)?.[1]?.trim();
  if (selector === undefined) return undefined;
  return {
    valid: !/Boot Flag Invalid/.test(stdout),
    persistent: /Options apply to all future boots/.test(stdout),
    selector,
    device: SELECTOR_DEVICES.find(([re]) => re.test(selector))?.[1] ?? null,
  };
}

/**
 * What the boot flags mean for the node's next boot. Flags that are not valid are not applied,
 * so they are no override, whatever device they still name: after a one-time boot BMCs clear
 * the valid bit and keep the selector, and reporting that device would promise a boot that will
 * not happen (Ironic ignores the bit and reports it; we do as Redfish's Disabled). "No override"
 * is none either. A valid override to a device without an Ironic name is `boot_device: null`
 * with its persistence.
 */
export function bootDeviceOf(flags: BootFlags): BootDeviceReading {
  if (!flags.valid || /No override/i.test(flags.selector)) return { boot_device: null, persistent: null };
  return { boot_device: flags.device, persistent: flags.persistent };
}

export function parseChassisStatus(stdout: string): ChassisStatus {
  const status: ChassisStatus = {};
  for (const line of stdout.split('\n')) {
    const sep = line.indexOf(':');
    if (sep < 0) continue;
    const key = line
      .slice(0, sep)
      .trim()
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, '_')
      .replace(/^_|_$/g, '');
    if (!key) continue;
    const value = line.slice(sep + 1).trim();
    status[key] = value === 'true' ? true : value === 'false' ? false : value;
  }
  return status;
}

export function parseRawResponse(stdout: string): number[] {
  return (stdout.match(/\b[0-9a-fA-F]{2}\b/g) ?? []).map((b) => Number.parseInt(b, 16));
}

/** A BmcError that also knows whether ipmitool failed before opening a session (nothing sent). */
class IpmitoolError extends BmcError {
  constructor(
    code: BmcErrorCode,
    message: string,
    readonly beforeSession: boolean,
  ) {
    super(code, message);
  }
}

// ipmitool -v chatter that is not about the failure.
const NOISE = [
  /^Loading IANA PEN Registry/,
  /^Running Get (VSO|PICMG) /,
  /^Invalid completion code received: Invalid command$/, // the VSO/PICMG probe above
  /^Discovered IPMB address/,
  /^RAW (REQ|RSP)/,
];
// Wrong password (RAKP HMAC; IPMI 1.5 BMCs just drop Activate Session), unknown user, too little privilege.
const AUTH = new RegExp(
  [
    'RAKP \\d HMAC is invalid',
    'unauthorized name',
    'invalid role',
    'unauthorized role',
    'invalid integrity check value',
    'Invalid user name',
    'Activate Session command failed',
    'Activate Session error:.*(password|user|privilege|authentication)',
    'Insufficient privilege',
    'Set Session Privilege Level to \\w+ failed',
  ].join('|'),
  'i',
);
// No reply to the first packets: ipmitool never reached a BMC.
const NO_ANSWER = /Get Auth Capabilities (error|command failed)|Error issuing Get Channel Authentication Capabilities/;
// Session open, then silence: "Unable to <do X>" without a completion code, or a failed close.
const STOPPED_ANSWERING = /^Close Session command failed|^Unable to (?!establish)[^:]*$/;
// The BMC answered Open Session but refused the algorithms of our cipher suite (-C).
const CIPHER = /invalid (authentication|integrity|confidentiality|encryption) algorithm/i;
const INVALID_COMMAND = /: Invalid command$|rsp=0xc1\b/;

export interface IpmitoolFailure {
  bmc: string;
  username: string;
  password: string;
  command: string[];
  stderr: string;
  stdout: string;
  timedOut: boolean;
  timeoutSeconds?: number;
}

/** Turns a failed ipmitool run into a BmcError with clear text and no password. */
export function ipmitoolFailure(f: IpmitoolFailure): BmcError {
  const what = `'${f.command.join(' ')}'`;
  const lines = f.stderr
    .split('\n')
    .map((l) => l.replace(/^>\s*/, '').trim())
    .filter((l) => l && !NOISE.some((re) => re.test(l)))
    .map((l) => scrub(l, f.password));
  const said = lines.length ? ` (ipmitool: ${lines.join('; ')})` : '';
  const make = (code: BmcErrorCode, message: string, beforeSession = false): BmcError =>
    new IpmitoolError(code, scrub(message, f.password), beforeSession);

  if (f.timedOut) {
    return make('timeout', `IPMI BMC at ${f.bmc} did not complete ${what} within ${f.timeoutSeconds ?? '?'} s; ipmitool was stopped${said}`);
  }
  if (AUTH.test(f.stderr)) {
    return make('auth', `IPMI BMC at ${f.bmc} rejected the credentials for user ${JSON.stringify(f.username)}${said}`);
  }
  if (NO_ANSWER.test(f.stderr)) {
    return make(
      'unreachable',
      `no answer from IPMI BMC at ${f.bmc}${said}. IPMI runs over UDP, so a wrong address or port, a firewall and a BMC without power all look the same`,
      true,
    );
  }
  if (CIPHER.test(f.stderr)) {
    return make('unsupported', `IPMI BMC at ${f.bmc} does not accept the configured cipher suite${said}`);
  }
  if (lines.some((l) => STOPPED_ANSWERING.test(l))) {
    return make('timeout', `IPMI BMC at ${f.bmc} stopped answering during ${what}; it may or may not have acted${said}`);
  }
  if (lines.some((l) => INVALID_COMMAND.test(l))) {
    return make('unsupported', `IPMI BMC at ${f.bmc} does not support ${what}${said}`);
  }
  const out = scrub(f.stdout.trim(), f.password);
  return make('protocol', `IPMI BMC at ${f.bmc}: ${what} failed${said || (out ? ` (output: ${out})` : '')}`);
}

function scrub(text: string, secret: string): string {
  return secret ? text.split(secret).join('***') : text;
}

/** Runs `fn` after every earlier command to `bmc` has finished and `intervalMs` has passed since the last. */
function serialize<T>(bmc: string, intervalMs: number, fn: () => Promise<T>): Promise<T> {
  let slot = slots.get(bmc);
  if (!slot) {
    slot = { tail: Promise.resolve(), lastEnd: 0 };
    slots.set(bmc, slot);
  }
  const s = slot;
  const run = s.tail.then(async () => {
    // Loop: timers and Date.now() use different clocks and can disagree by a millisecond.
    for (let wait = s.lastEnd + intervalMs - Date.now(); wait > 0; wait = s.lastEnd + intervalMs - Date.now()) {
      await sleep(wait);
    }
    try {
      return await fn();
    } finally {
      s.lastEnd = Date.now();
    }
  });
  s.tail = run.catch(() => undefined);
  return run;
}

function checkByte(what: string, value: number, max: number): void {
  if (!Number.isInteger(value) || value < 0 || value > max) throw new RangeError(`IPMI raw: ${what} must be 0-0x${max.toString(16)}`);
}

function hex(byte: number): string {
  return `0x${byte.toString(16).padStart(2, '0')}`;
}

function withoutUndefined<T extends object>(obj: T): Partial<T> {
  return Object.fromEntries(Object.entries(obj).filter(([, v]) => v !== undefined)) as Partial<T>;
}
