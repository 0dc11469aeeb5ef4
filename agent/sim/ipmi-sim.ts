/**
 * A simulated IPMI BMC for tests and demos: Debian's `ipmi_sim` (OpenIPMI) on a loopback UDP
 * port, with power and boot behind a small `chassis_control` script whose event log shows
 * exactly what a client asked the BMC to do. Facts it relies on: docs/client-contracts.md §6.
 *
 * A BMC may drive a virtual machine (`vm`, e.g. agent/sim/vm.ts's Vm), as the Redfish simulator's
 * systems can: then chassis_control is agent/sim/ipmi/chassis-control-vm.sh, which forwards
 * every request over a unix socket in the simulator's private temp dir to this Node process.
 * Power on starts the VM, from the network when the boot device set through IPMI is pxe (else
 * from disk); power off and ACPI soft-off stop it; a hard reset restarts it (when it runs); a
 * power cycle is ipmi_sim's "off now, on 1 s later". Power status reads whether the VM process
 * runs, so a guest that powers itself off reads off. ipmi_sim passes chassis_control only the
 * boot device, never the valid or persistent bits of Set System Boot Options (and always
 * answers "Boot Flag Invalid", "Options apply to only next boot"), so a pxe override is used
 * up by the next boot, as a one-time override is on a real BMC, unless `vmBootOverride` is
 * 'persistent'. Without `vm` nothing of this runs: power and boot are files behind
 * chassis-control.sh, as before.
 *
 *   npx tsx agent/sim/ipmi-sim.ts --port 9001 [--power-on] [--ignore-soft-off]
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { appendFileSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

export interface IpmiSimOptions {
  /** UDP port on 127.0.0.1; 0 (the default) picks a free one. */
  port?: number;
  username?: string;
  password?: string;
  powerOn?: boolean;
  /** The simulated OS ignores ACPI soft-off (`chassis power soft`), as a hung OS would. */
  ignoreSoftOff?: boolean;
  ipmiSim?: string;
  ipmitool?: string;
  /**
   * A machine behind the BMC (agent/sim/vm.ts's Vm fits): power on starts it (network boot
   * when the boot device is pxe, else disk), off stops it, power status reads `running`. The
   * simulator stops it on stop(). `powerOn` starts it from disk at start-up.
   */
  vm?: IpmiSimVm;
  /**
   * VM-backed BMCs: whether a boot device set through IPMI is used up by the boot it applies
   * to ('once', the default: ipmi_sim does not tell chassis_control whether a client asked for
   * options=persistent) or holds for every later boot.
   */
  vmBootOverride?: 'once' | 'persistent';
}

/** The machine behind a VM-backed BMC; start() and reset() boot from 'network' or 'disk'. */
export interface IpmiSimVm {
  readonly running: boolean;
  start(boot: 'network' | 'disk'): Promise<void>;
  stop(): Promise<void>;
  reset(boot: 'network' | 'disk'): Promise<void>;
}

/** What the BMC was asked to do, in order. `boot` holds ipmi_sim's names: disk is 'default'. */
export interface IpmiSimEvents {
  power: ('on' | 'off')[];
  boot: string[];
  resets: number;
  /** ACPI soft-off requests (`chassis power soft`); an obeyed one also appears as power 'off'. */
  shutdowns: number;
  /** The raw event lines, e.g. "power 1", "boot pxe", "shutdown 1". */
  lines: string[];
}

export interface IpmiSim {
  readonly address: '127.0.0.1';
  readonly port: number;
  readonly username: string;
  readonly password: string;
  stop(): Promise<void>;
  events(): IpmiSimEvents;
  /**
   * Every request ipmi_sim passed to its chassis control since the simulator answered, reads
   * included, in order: "get power" (a `chassis power status`), "set power 1" (`chassis power
   * on`), "set boot pxe" …
   */
  requests(): string[];
  state(): { power: 'on' | 'off'; boot: string };
  /** VM-backed BMCs: the boot devices the VM was started with, in order (empty without a VM). */
  vmBoots(): ('network' | 'disk')[];
  /** VM-backed BMCs: the last error starting or stopping the VM, else null. */
  vmError(): string | null;
}

const FIXTURES = fileURLToPath(new URL('./ipmi/', import.meta.url));
const READY_TIMEOUT_MS = 10_000;

/** Simulators (and their temp dirs) to clean up if the process exits without stopping them. */
const running = new Map<ChildProcess, string>();
let exitHookInstalled = false;

/** A UDP port that was free a moment ago (bind to 0, read, close). */
export async function freeUdpPort(): Promise<number> {
  const socket = createSocket('udp4');
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(0, '127.0.0.1', resolve);
  });
  const { port } = socket.address();
  await new Promise<void>((resolve) => socket.close(() => resolve()));
  return port;
}

export async function startIpmiSim(options: IpmiSimOptions = {}): Promise<IpmiSim> {
  const username = options.username ?? 'admin';
  const password = options.password ?? 'password';
  checkConfValue('username', username, 16);
  checkConfValue('password', password, 20);
  const port = options.port || (await freeUdpPort());
  const ipmitool = options.ipmitool ?? 'ipmitool';

  const dir = mkdtempSync(join(tmpdir(), 'slipway-ipmi-sim-'));
  // ipmi_sim hands chassis_control to /bin/sh unquoted, so the path must be shell-safe.
  if (!/^[\w./-]+$/.test(dir)) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`ipmi-sim: temp dir ${JSON.stringify(dir)} is not shell-safe; set TMPDIR to a plain path`);
  }
  const stateDir = join(dir, 'state');
  mkdirSync(stateDir);
  const vm = options.vm;
  const script = join(dir, vm ? 'chassis-control-vm.sh' : 'chassis-control.sh');
  copyFileSync(join(FIXTURES, vm ? 'chassis-control-vm.sh' : 'chassis-control.sh'), script);
  writeFileSync(join(dir, 'events.log'), '');
  writeFileSync(join(dir, 'requests.log'), '');
  let control: VmChassis | undefined;
  if (vm) {
    try {
      control = await startVmChassis(dir, vm, { ignoreSoftOff: options.ignoreSoftOff === true, override: options.vmBootOverride ?? 'once' });
    } catch (err) {
      rmSync(dir, { recursive: true, force: true });
      throw err;
    }
  } else {
    writeFileSync(join(dir, 'power'), options.powerOn ? '1\n' : '0\n');
    writeFileSync(join(dir, 'boot'), 'default\n');
    if (options.ignoreSoftOff) writeFileSync(join(dir, 'ignore-soft-off'), '');
  }
  const lanConf = join(dir, 'lan.conf');
  writeFileSync(
    lanConf,
    [
      '# Written by agent/sim/ipmi-sim.ts',
      'name "slipway-sim"',
      'startlan 1',
      `  addr 127.0.0.1 ${port}`,
      '  priv_limit admin',
      '  allowed_auths_callback none md2 md5 straight',
      '  allowed_auths_user none md2 md5 straight',
      '  allowed_auths_operator none md2 md5 straight',
      '  allowed_auths_admin none md2 md5 straight',
      `  guid ${randomBytes(16).toString('hex')}`,
      'endlan',
      `chassis_control "/bin/sh ${script} ${dir}"`,
      `user 2 true "${username}" "${password}" admin 10 none md2 md5 straight`,
      '',
    ].join('\n'),
  );

  // -s: a private state dir, else users persisted under /var/ipmi_sim override lan.conf.
  const child = spawn(
    options.ipmiSim ?? 'ipmi_sim',
    ['-c', lanConf, '-f', join(FIXTURES, 'bmc.emu'), '-s', stateDir, '-n'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => resolve());
    child.once('error', (err) => {
      output += String(err);
      resolve();
    });
  });
  running.set(child, dir);
  installExitHook();

  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopped ??= (async () => {
      if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
        child.kill('SIGTERM');
        const killer = setTimeout(() => child.kill('SIGKILL'), 2000);
        await exited;
        clearTimeout(killer);
      }
      running.delete(child);
      // The machine is powered off with its BMC: no VM outlives the simulator.
      await control?.stop();
      rmSync(dir, { recursive: true, force: true });
    })());

  const sim: IpmiSim = {
    address: '127.0.0.1',
    port,
    username,
    password,
    stop,
    events: () => parseEvents(readFileSync(join(dir, 'events.log'), 'utf8')),
    requests: () => readFileSync(join(dir, 'requests.log'), 'utf8').split('\n').filter((l) => l !== ''),
    state: () =>
      control
        ? control.state()
        : {
            power: readFileSync(join(dir, 'power'), 'utf8').trim() === '1' ? 'on' : 'off',
            boot: readFileSync(join(dir, 'boot'), 'utf8').trim(),
          },
    vmBoots: () => control?.boots() ?? [],
    vmError: () => control?.error() ?? null,
  };

  try {
    await waitUntilAnswering(sim, ipmitool, exited, () => output);
    if (control && options.powerOn) await control.powerOn();
    // The readiness probe's reads are the simulator's own, not a client's.
    writeFileSync(join(dir, 'requests.log'), '');
  } catch (err) {
    await stop();
    throw err;
  }
  return sim;
}

interface VmChassis {
  state(): { power: 'on' | 'off'; boot: string };
  boots(): ('network' | 'disk')[];
  error(): string | null;
  /** Starts the VM from disk (the `powerOn` option); throws when that fails. */
  powerOn(): Promise<void>;
  /** Closes the socket and stops the VM (after any operation under way). */
  stop(): Promise<void>;
}

/** ipmi_sim's boot device names (bmc_chassis.c's boot_map). */
const IPMI_SIM_BOOT_DEVICES = ['none', 'pxe', 'default', 'cdrom', 'bios'];

/**
 * The Node side of chassis-control-vm.sh: a unix socket in `dir` (a private 0700 temp dir, so
 * only this user reaches it) answering one request line per connection, e.g. "get power" →
 * "power:1", "set power 0 boot pxe" → "ok". VM operations run one after another, and a request
 * is answered once its operation is done (QEMU spawned or ended), so ipmi_sim's next
 * `get power` already sees it. Requests are logged to events.log as chassis-control.sh does.
 */
async function startVmChassis(dir: string, vm: IpmiSimVm, opts: { ignoreSoftOff: boolean; override: 'once' | 'persistent' }): Promise<VmChassis> {
  const path = join(dir, 'control.sock');
  // sockaddr_un holds 108 bytes with the terminating NUL.
  if (Buffer.byteLength(path) > 100) throw new Error(`ipmi-sim: socket path ${path} is too long; set TMPDIR to a shorter path`);
  let boot = 'default';
  /** Whether `boot` still applies to the next boot (a once override is used up by one). */
  let pending = false;
  const boots: ('network' | 'disk')[] = [];
  let lastError: string | null = null;
  let ops: Promise<void> = Promise.resolve();

  const log = (line: string) => appendFileSync(join(dir, 'events.log'), `${line}\n`);
  /** Runs VM operations in order; resolves with the error text (null on success). */
  const queue = (op: () => Promise<void>): Promise<string | null> => {
    const done = ops.then(op).then(
      () => (lastError = null),
      (err: unknown) => (lastError = err instanceof Error ? err.message : String(err)),
    );
    ops = done.then(() => undefined);
    return done;
  };
  /** The device the next boot uses (using up a once override): pxe → network, else disk. */
  const takeBootDevice = (): 'network' | 'disk' => {
    const device = pending && boot === 'pxe' ? 'network' : 'disk';
    if (opts.override === 'once') pending = false;
    return device;
  };
  const powerOn = () =>
    queue(async () => {
      if (vm.running) return;
      const device = takeBootDevice();
      boots.push(device);
      await vm.start(device);
    });
  const powerOff = () => queue(() => vm.stop());

  const handle = async (request: string): Promise<string> => {
    appendFileSync(join(dir, 'requests.log'), `${request.trim()}\n`);
    const [op, ...args] = request.trim().split(/\s+/);
    if (op === 'get') {
      return args
        .map((parm) => {
          if (parm === 'power') return `power:${vm.running ? 1 : 0}`;
          if (parm === 'boot') return `boot:${boot}`;
          throw new Error(`unknown parameter: ${parm}`);
        })
        .join('\n');
    }
    if (op !== 'set') throw new Error(`unsupported operation: ${op}`); // includes "check"
    for (let i = 0; i + 1 < args.length; i += 2) {
      const parm = args[i]!;
      const value = args[i + 1]!;
      log(`${parm} ${value}`);
      let failed: string | null = null;
      switch (parm) {
        case 'power':
          failed = value === '0' ? await powerOff() : await powerOn();
          break;
        case 'boot':
          if (!IPMI_SIM_BOOT_DEVICES.includes(value)) throw new Error(`unknown boot device: ${value}`);
          boot = value;
          pending = value !== 'none' && value !== 'default';
          break;
        case 'reset':
          // A hard reset of a machine that is off does nothing.
          failed = await queue(async () => {
            if (!vm.running) return;
            const device = takeBootDevice();
            boots.push(device);
            await vm.reset(device);
          });
          break;
        case 'shutdown':
          // ACPI soft-off: the OS powers the machine off (at once here) unless it ignores it.
          if (!opts.ignoreSoftOff && vm.running) {
            log('power 0');
            failed = await powerOff();
          }
          break;
        case 'identify':
          break;
        default:
          throw new Error(`unknown parameter: ${parm}`);
      }
      if (failed !== null) throw new Error(failed);
    }
    return 'ok';
  };

  // allowHalfOpen: socat half-closes once it has sent the request; the answer comes later.
  const server: Server = createServer({ allowHalfOpen: true }, (socket: Socket) => {
    let request = '';
    let answered = false;
    const answer = (text: string) => {
      if (answered) return;
      answered = true;
      socket.end(`${text.replace(/\n+$/, '')}\n`);
    };
    socket.setEncoding('utf8');
    socket.on('error', () => undefined);
    const onRequest = () => {
      handle(request).then(answer, (err: unknown) => answer(`error: ${(err instanceof Error ? err.message : String(err)).replace(/\s+/g, ' ')}`));
    };
    socket.on('data', (chunk: string) => {
      request += chunk;
      const nl = request.indexOf('\n');
      if (nl >= 0 && !answered) {
        request = request.slice(0, nl);
        socket.removeAllListeners('data');
        socket.removeAllListeners('end');
        onRequest();
      }
    });
    socket.on('end', onRequest);
  });
  await new Promise<void>((resolveListen, rejectListen) => {
    server.once('error', rejectListen);
    server.listen(path, () => {
      server.off('error', rejectListen);
      resolveListen();
    });
  });
  server.unref();

  let stopped: Promise<void> | undefined;
  return {
    state: () => ({ power: vm.running ? 'on' : 'off', boot }),
    boots: () => [...boots],
    error: () => lastError,
    async powerOn() {
      const failed = await powerOn();
      if (failed !== null) throw new Error(`ipmi-sim: could not start the VM: ${failed}`);
    },
    stop: () =>
      (stopped ??= (async () => {
        await new Promise<void>((resolveClose) => server.close(() => resolveClose()));
        await ops;
        await vm.stop().catch(() => undefined);
      })()),
  };
}

export function parseEvents(log: string): IpmiSimEvents {
  const events: IpmiSimEvents = { power: [], boot: [], resets: 0, shutdowns: 0, lines: [] };
  for (const line of log.split('\n')) {
    const [parm, value = ''] = line.trim().split(/\s+/, 2);
    if (!parm) continue;
    events.lines.push(line.trim());
    if (parm === 'power') events.power.push(value === '1' ? 'on' : 'off');
    else if (parm === 'boot') events.boot.push(value);
    else if (parm === 'reset') events.resets += 1;
    else if (parm === 'shutdown') events.shutdowns += 1;
  }
  return events;
}

/** `ipmitool … chassis power status` until it succeeds: the LAN, the user and chassis_control all work. */
async function waitUntilAnswering(
  sim: IpmiSim,
  ipmitool: string,
  exited: Promise<void>,
  output: () => string,
): Promise<void> {
  let hasExited = false;
  void exited.then(() => (hasExited = true));
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let last = '';
  while (Date.now() < deadline) {
    if (hasExited) throw new Error(`ipmi_sim exited during start-up: ${output().trim() || '(no output)'}`);
    last = await new Promise<string>((resolve, reject) => {
      execFile(
        ipmitool,
        ['-I', 'lanplus', '-H', sim.address, '-p', String(sim.port), '-U', sim.username, '-E', '-C', '3', 'chassis', 'power', 'status'],
        // Before ipmi_sim binds, the first packet is lost and ipmitool would wait 1 s to resend.
        { env: { ...process.env, IPMI_PASSWORD: sim.password }, timeout: 400, killSignal: 'SIGKILL' },
        (err, stdout, stderr) => {
          if ((err as NodeJS.ErrnoException | null)?.code === 'ENOENT') reject(new Error(`ipmi-sim: ${ipmitool} is not installed`));
          else resolve(err ? `${stderr}${err.message}` : stdout.includes('Chassis Power is') ? '' : stdout);
        },
      );
    });
    if (last === '') return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`ipmi_sim on 127.0.0.1:${sim.port} did not answer within ${READY_TIMEOUT_MS} ms: ${last.trim()} ${output().trim()}`);
}

/** lan.conf takes these as double-quoted strings; IPMI caps user names at 16 and passwords at 20 bytes. */
function checkConfValue(what: string, value: string, max: number): void {
  if (value.length > max || /["\\\s]/.test(value) || /[^\x21-\x7e]/.test(value)) {
    throw new Error(`ipmi-sim: ${what} must be at most ${max} printable characters without quotes, backslashes or spaces`);
  }
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const [child, dir] of running) {
      child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      port: { type: 'string', default: '0' },
      username: { type: 'string', default: 'admin' },
      password: { type: 'string', default: 'password' },
      'power-on': { type: 'boolean', default: false },
      'ignore-soft-off': { type: 'boolean', default: false },
    },
  });
  const sim = await startIpmiSim({
    port: Number(values.port),
    username: values.username,
    password: values.password,
    powerOn: values['power-on'],
    ignoreSoftOff: values['ignore-soft-off'],
  });
  const base = `ipmitool -I lanplus -H ${sim.address} -p ${sim.port} -U ${sim.username} -E -C 3`;
  console.log(`Simulated BMC (ipmi_sim) on udp://${sim.address}:${sim.port}, power ${sim.state().power}. Try:`);
  console.log(`  export IPMI_PASSWORD='${sim.password}'`);
  console.log(`  ${base} chassis power status`);
  console.log(`  ${base} chassis power on`);
  console.log(`  ${base} chassis bootdev pxe`);
  console.log('Chassis events are printed below as they happen; Ctrl-C stops.');
  let seen = 0;
  const timer = setInterval(() => {
    const { lines } = sim.events();
    for (const line of lines.slice(seen)) console.log(`  event: ${line}`);
    seen = lines.length;
  }, 250);
  const shutdown = (): void => {
    clearInterval(timer);
    void sim.stop().then(() => process.exit(0));
  };
  process.once('SIGINT', shutdown);
  process.once('SIGTERM', shutdown);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  });
}
