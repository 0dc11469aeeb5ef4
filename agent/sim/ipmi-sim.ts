/**
 * A simulated IPMI BMC for tests and demos: Debian's `ipmi_sim` (OpenIPMI) on a loopback UDP
 * port, with power and boot behind a small `chassis_control` script whose event log shows
 * exactly what a client asked the BMC to do. Facts it relies on: docs/client-contracts.md §6.
 *
 *   npx tsx agent/sim/ipmi-sim.ts --port 9001 [--power-on] [--ignore-soft-off]
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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
  state(): { power: 'on' | 'off'; boot: string };
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
  const script = join(dir, 'chassis-control.sh');
  copyFileSync(join(FIXTURES, 'chassis-control.sh'), script);
  writeFileSync(join(dir, 'power'), options.powerOn ? '1\n' : '0\n');
  writeFileSync(join(dir, 'boot'), 'default\n');
  writeFileSync(join(dir, 'events.log'), '');
  if (options.ignoreSoftOff) writeFileSync(join(dir, 'ignore-soft-off'), '');
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
      rmSync(dir, { recursive: true, force: true });
    })());

  const sim: IpmiSim = {
    address: '127.0.0.1',
    port,
    username,
    password,
    stop,
    events: () => parseEvents(readFileSync(join(dir, 'events.log'), 'utf8')),
    state: () => ({
      power: readFileSync(join(dir, 'power'), 'utf8').trim() === '1' ? 'on' : 'off',
      boot: readFileSync(join(dir, 'boot'), 'utf8').trim(),
    }),
  };

  try {
    await waitUntilAnswering(sim, ipmitool, exited, () => output);
  } catch (err) {
    await stop();
    throw err;
  }
  return sim;
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
