import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Worker } from 'node:worker_threads';
import { freePort } from '../../infra/local/dynamodb.ts';

/**
 * The hot read path (issue 16): `GET /v1/nodes/{uuid}` at CONNECTIONS keep-alive connections for
 * SECONDS per round, Slipway and the real Ironic side by side, alternating rounds (S I S I S I)
 * so that both see the same machine. Printed: req/s, p50 and p99 latency per round, their medians
 * and the ratio.
 *
 * - Slipway runs as `npm start` runs it (infra/local/main.ts in a process of its own, over
 *   DynamoDB Local, logging every request at the default level to a file), and serves an admin
 *   token (the token check is on the path).
 * - Ironic is Debian's `ironic-api` (21.4, `apt-get install ironic-api`; a bench tool, never a
 *   test dependency): standalone, sqlite, `auth_strategy = noauth`, its default workers (one per
 *   CPU), logging to a file. Its node (fake-hardware) is created through the API of the
 *   single-process `ironic` (node creation needs a conductor), which is then stopped; `ironic-api`
 *   alone (json-rpc, no conductor) serves the reads, which need none.
 * - The load comes from a worker thread of this process: CONNECTIONS sockets, each sending the
 *   next request when the last answer is complete (no pipelining), parsing only the status line
 *   and the framing, so that the generator takes as little of the two cores as it can.
 *
 * BENCH_HOT_SECONDS (10), BENCH_HOT_ROUNDS (3), BENCH_HOT_CONNECTIONS (16), BENCH_HOT_WARMUP_SECONDS (8,
 * each); BENCH_HOT_PROFILE=<dir>
 * runs Slipway under `node --cpu-prof` and leaves the profile there; BENCH_HOT_BASELINE=<checkout>
 * also runs that checkout's Slipway (node_modules in place) in the same alternation, for a
 * before/after on one machine state. Without ironic-api the bench prints Slipway's figures and
 * says Ironic is not installed.
 */
const SECONDS = Number(process.env.BENCH_HOT_SECONDS ?? 10);
const ROUNDS = Number(process.env.BENCH_HOT_ROUNDS ?? 3);
const CONNECTIONS = Number(process.env.BENCH_HOT_CONNECTIONS ?? 16);
const WARMUP_MS = Number(process.env.BENCH_HOT_WARMUP_SECONDS ?? 8) * 1000;
const PROFILE = process.env.BENCH_HOT_PROFILE;
const BASELINE = process.env.BENCH_HOT_BASELINE;
const ROOT = resolve(import.meta.dirname, '../..');
const ADMIN_TOKEN = 'slp_bench-hot-admin-token-000000000000000';

interface Load {
  requests: number;
  errors: number;
  seconds: number;
  p50: number;
  p99: number;
  /** CPU time of the server's processes (Slipway: node and DynamoDB Local's JVM) per request, µs. */
  cpu?: Record<string, number>;
}

/**
 * CPU seconds used so far by a process and its descendants, by command name (from /proc; Linux
 * only, else empty). Per request, these are steadier than req/s on a shared machine.
 */
function cpuByCommand(root: number): Map<string, number> {
  const out = new Map<string, number>();
  let stats: { pid: number; ppid: number; comm: string; ticks: number }[];
  try {
    stats = readdirSync('/proc')
      .filter((d) => /^\d+$/.test(d))
      .flatMap((d) => {
        try {
          const s = readFileSync(`/proc/${d}/stat`, 'utf8');
          const close = s.lastIndexOf(')');
          const f = s.slice(close + 2).split(' ');
          return [{ pid: Number(d), ppid: Number(f[1]), comm: s.slice(s.indexOf('(') + 1, close), ticks: Number(f[11]) + Number(f[12]) }];
        } catch {
          return [];
        }
      });
  } catch {
    return out;
  }
  const tree = new Set([root]);
  for (let grew = true; grew; ) {
    grew = false;
    for (const p of stats) if (!tree.has(p.pid) && tree.has(p.ppid)) (tree.add(p.pid), (grew = true));
  }
  // USER_HZ is 100 on Linux.
  for (const p of stats) if (tree.has(p.pid)) out.set(p.comm, (out.get(p.comm) ?? 0) + p.ticks / 100);
  return out;
}

/** The load generator (plain JS: a worker thread runs it as it is). */
const GENERATOR = String.raw`
const { parentPort, workerData } = require('node:worker_threads');
const net = require('node:net');
const { port, request, connections, ms } = workerData;
const payload = Buffer.from(request);
const lat = [];
let errors = 0;
let stopAt = 0;
let open = 0;

// One connection: send, read one whole response (Content-Length or chunked), repeat until stopAt.
function connection(done) {
  const socket = net.connect({ port, host: '127.0.0.1', noDelay: true });
  let buf = Buffer.alloc(0);
  let sent = 0;
  let ended = false;
  const send = () => {
    if (performance.now() >= stopAt) { ended = true; socket.end(); return done(); }
    sent = performance.now();
    socket.write(payload);
  };
  socket.on('connect', send);
  socket.on('data', (chunk) => {
    buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
    for (;;) {
      const head = buf.indexOf('\r\n\r\n');
      if (head < 0) return;
      const headers = buf.toString('latin1', 0, head);
      const status = Number(headers.slice(9, 12));
      let end;
      const cl = /\r\ncontent-length:\s*(\d+)/i.exec(headers);
      if (cl) {
        end = head + 4 + Number(cl[1]);
        if (buf.length < end) return;
      } else if (/\r\ntransfer-encoding:\s*chunked/i.test(headers)) {
        let at = head + 4;
        for (;;) {
          const line = buf.indexOf('\r\n', at);
          if (line < 0) return;
          const size = parseInt(buf.toString('latin1', at, line), 16);
          at = line + 2 + size + 2;
          if (buf.length < at) return;
          if (size === 0) break;
        }
        end = at;
      } else {
        end = head + 4;
      }
      buf = buf.subarray(end);
      if (status === 200) lat.push(performance.now() - sent);
      else errors++;
      send();
    }
  });
  socket.on('error', () => { errors++; });
  socket.on('close', () => {
    if (!ended) { ended = true; connection(done); }
  });
}

const t0 = performance.now();
stopAt = t0 + ms;
for (let i = 0; i < connections; i++) {
  open++;
  connection(() => {
    if (--open > 0) return;
    const seconds = (performance.now() - t0) / 1000;
    lat.sort((a, b) => a - b);
    const pct = (p) => lat.length ? lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] : NaN;
    parentPort.postMessage({ requests: lat.length, errors, seconds, p50: pct(0.5), p99: pct(0.99) });
  });
}
`;

function load(port: number, path: string, headers: Record<string, string>, ms: number): Promise<Load> {
  const request = `GET ${path} HTTP/1.1\r\n${Object.entries({ Host: `127.0.0.1:${port}`, ...headers })
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('')}\r\n`;
  return new Promise((res, rej) => {
    const w = new Worker(GENERATOR, { eval: true, workerData: { port, request, connections: CONNECTIONS, ms } });
    w.once('message', (m: Load) => {
      void w.terminate();
      res(m);
    });
    w.once('error', rej);
  });
}

const CLIENT_HEADERS = { Accept: 'application/json', 'Accept-Encoding': 'gzip, deflate', 'User-Agent': 'slipway-bench-hot', Connection: 'keep-alive' };

async function waitFor(url: string, headers: Record<string, string> = {}, timeoutMs = 90_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    try {
      const res = await fetch(url, { headers });
      await res.arrayBuffer();
      if (res.status < 500) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > until) throw new Error(`${url} did not answer within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

function stopChild(child: ChildProcess, ms = 20_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((res) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
    }, ms);
    child.once('exit', () => {
      clearTimeout(timer);
      res();
    });
    child.kill('SIGTERM');
  });
}

interface Server {
  name: string;
  pid: number;
  port: number;
  path: string;
  headers: Record<string, string>;
  stop(): Promise<void>;
}

/** Slipway as `npm start` runs it, in a process of its own; one node enrolled through the Ironic API. */
async function startSlipway(dir: string, root = ROOT, name = 'Slipway'): Promise<Server> {
  const port = await freePort();
  dir = mkdtempSync(join(dir, 'slipway-'));
  const out = openSync(join(dir, 'slipway.log'), 'a');
  const args = [...(PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${resolve(PROFILE)}`] : []), '--import', 'tsx', 'infra/local/main.ts'];
  const child = spawn(process.execPath, args, {
    cwd: root,
    env: { ...process.env, PORT: String(port), SLIPWAY_DATA_DIR: join(dir, 'slipway'), SLIPWAY_ADMIN_TOKEN: ADMIN_TOKEN, SLIPWAY_LOG_LEVEL: process.env.BENCH_HOT_LOG_LEVEL ?? 'info' },
    stdio: ['ignore', out, out],
  });
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitFor(`${url}/healthz`);
    const res = await fetch(`${url}/v1/nodes`, {
      method: 'POST',
      headers: { 'X-Auth-Token': ADMIN_TOKEN, 'Content-Type': 'application/json' },
      body: JSON.stringify({ name: 'hot-0', driver: 'ipmi', driver_info: { ipmi_address: '10.9.0.1', ipmi_username: 'admin', ipmi_password: 'secret' } }),
    });
    const node = (await res.json()) as { uuid?: string };
    if (res.status !== 201 || !node.uuid) throw new Error(`Slipway node create: ${res.status} ${JSON.stringify(node)}`);
    return { name, pid: child.pid!, port, path: `/v1/nodes/${node.uuid}`, headers: { ...CLIENT_HEADERS, 'X-Auth-Token': ADMIN_TOKEN }, stop: () => stopChild(child) };
  } catch (err) {
    await stopChild(child);
    throw err;
  }
}

const IRONIC_API = '/usr/bin/ironic-api';

/** Debian's ironic-api, standalone over sqlite, noauth, fake-hardware; one node. */
async function startIronic(dir: string): Promise<Server> {
  const port = await freePort();
  const rpcPort = await freePort();
  const conf = join(dir, 'ironic.conf');
  writeFileSync(
    conf,
    `[DEFAULT]
auth_strategy = noauth
rpc_transport = json-rpc
host = slipway-bench
enabled_hardware_types = fake-hardware
enabled_bios_interfaces = no-bios
enabled_boot_interfaces = fake
enabled_console_interfaces = no-console
enabled_deploy_interfaces = fake
enabled_inspect_interfaces = no-inspect
enabled_management_interfaces = fake
enabled_network_interfaces = noop
enabled_power_interfaces = fake
enabled_raid_interfaces = no-raid
enabled_rescue_interfaces = no-rescue
enabled_storage_interfaces = noop
enabled_vendor_interfaces = no-vendor
default_network_interface = noop
log_file = ${join(dir, 'ironic.log')}
use_stderr = false
[api]
host_ip = 127.0.0.1
port = ${port}
[database]
connection = sqlite:///${join(dir, 'ironic.sqlite')}
[json_rpc]
auth_strategy = noauth
host_ip = 127.0.0.1
port = ${rpcPort}
[dhcp]
dhcp_provider = none
[conductor]
automated_clean = false
`,
  );
  writeFileSync(join(dir, 'single.conf'), '[DEFAULT]\nrpc_transport = none\n');
  execFileSync('/usr/bin/ironic-dbsync', ['--config-file', conf, 'create_schema'], { stdio: 'ignore' });
  const url = `http://127.0.0.1:${port}`;
  const out = openSync(join(dir, 'ironic.out'), 'a');
  // Node creation goes through a conductor: the single-process `ironic` (API + conductor) creates it.
  const single = spawn('/usr/bin/ironic', ['--config-file', conf, '--config-file', join(dir, 'single.conf')], { stdio: ['ignore', out, out] });
  let uuid: string;
  try {
    await waitFor(`${url}/`);
    const res = await fetch(`${url}/v1/nodes`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-OpenStack-Ironic-API-Version': '1.31' },
      body: JSON.stringify({ name: 'hot-0', driver: 'fake-hardware' }),
    });
    const node = (await res.json()) as { uuid?: string };
    if (res.status !== 201 || !node.uuid) throw new Error(`Ironic node create: ${res.status} ${JSON.stringify(node)}`);
    uuid = node.uuid;
  } finally {
    await stopChild(single);
  }
  const api = spawn(IRONIC_API, ['--config-file', conf], { stdio: ['ignore', out, out] });
  try {
    await waitFor(`${url}/v1/nodes/${uuid}`);
  } catch (err) {
    await stopChild(api);
    throw err;
  }
  return { name: 'Ironic', pid: api.pid!, port, path: `/v1/nodes/${uuid}`, headers: CLIENT_HEADERS, stop: () => stopChild(api) };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const rate = (l: Load) => l.requests / l.seconds;
const cpuText = (cpu: Record<string, number> | undefined) =>
  cpu && Object.keys(cpu).length ? `; CPU per request ${Object.entries(cpu).map(([k, v]) => `${k} ${v.toFixed(0)} µs`).join(', ')}` : '';
const fmt = (l: Load) => `${rate(l).toFixed(0)} req/s, p50 ${l.p50.toFixed(2)} ms, p99 ${l.p99.toFixed(2)} ms${l.errors ? `, ${l.errors} errors` : ''}${cpuText(l.cpu)}`;

/** One measured run, with the CPU the server's processes and the load generator spent on it. */
async function measure(s: Server): Promise<Load> {
  const before = cpuByCommand(s.pid);
  const self = process.cpuUsage();
  const l = await load(s.port, s.path, s.headers, SECONDS * 1000);
  const after = cpuByCommand(s.pid);
  const used = process.cpuUsage(self);
  const cpu: Record<string, number> = {};
  for (const [comm, t] of after) {
    const d = t - (before.get(comm) ?? 0);
    if (d > 0) cpu[comm] = (d * 1e6) / Math.max(1, l.requests);
  }
  cpu['load generator'] = (used.user + used.system) / Math.max(1, l.requests);
  return { ...l, cpu };
}
const loadavg = () => {
  try {
    return execFileSync('uptime', { encoding: 'utf8' }).trim().replace(/^.*load average/, 'load average');
  } catch {
    return '';
  }
};

export async function hotBench(record: (k: string, v: string) => void): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'slipway-bench-hot-'));
  const servers: Server[] = [];
  try {
    record('machine before', loadavg());
    servers.push(await startSlipway(dir));
    // Another checkout (before a change), measured in the same alternation: a before/after on one machine state.
    if (BASELINE) servers.push(await startSlipway(dir, resolve(BASELINE), 'Slipway baseline'));
    if (existsSync(IRONIC_API)) servers.push(await startIronic(dir));
    else record('Ironic', `not installed (${IRONIC_API} missing: apt-get install -y ironic-api to compare)`);
    // Warm-up: JIT (V8's and DynamoDB Local's JVM, which takes seconds), connection pools, the
    // token cache, Ironic's workers: both are measured as the long-running services they are.
    for (const s of servers) await load(s.port, s.path, s.headers, WARMUP_MS);
    const runs = new Map<string, Load[]>(servers.map((s) => [s.name, []]));
    for (let round = 1; round <= ROUNDS; round++) {
      for (const s of servers) {
        const l = await measure(s);
        runs.get(s.name)!.push(l);
        record(`GET /v1/nodes/{uuid} ${s.name} round ${round} (${CONNECTIONS} connections, ${SECONDS} s)`, fmt(l));
      }
    }
    for (const s of servers) {
      const ls = runs.get(s.name)!;
      const cpu: Record<string, number> = {};
      for (const k of new Set(ls.flatMap((l) => Object.keys(l.cpu ?? {})))) cpu[k] = median(ls.map((l) => l.cpu?.[k] ?? 0));
      record(
        `GET /v1/nodes/{uuid} ${s.name} median`,
        `${median(ls.map(rate)).toFixed(0)} req/s, p50 ${median(ls.map((l) => l.p50)).toFixed(2)} ms, p99 ${median(ls.map((l) => l.p99)).toFixed(2)} ms${cpuText(cpu)}`,
      );
    }
    if (runs.has('Ironic')) {
      const ironic = median(runs.get('Ironic')!.map(rate));
      for (const s of servers.filter((x) => x.name !== 'Ironic')) {
        record(`${s.name} / Ironic throughput (medians)`, `${(median(runs.get(s.name)!.map(rate)) / ironic).toFixed(2)}×`);
      }
    }
    record('machine after', loadavg());
  } finally {
    for (const s of servers) await s.stop();
    if (PROFILE) record('profile', `Slipway's CPU profile in ${resolve(PROFILE)}`);
    rmSync(dir, { recursive: true, force: true });
  }
}

