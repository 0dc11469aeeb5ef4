import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { type IpmiSim, startIpmiSim } from '../../agent/sim/ipmi-sim.ts';
import { type RedfishSim, startRedfishSim } from '../../agent/sim/redfish.ts';
import { startLocalStack } from '../../infra/local/stack.ts';

/**
 * Agent figures (issue 16): how long an Ironic power-on takes from the API call to `power on`
 * visible through the API, for IPMI (`ipmitool` against Debian's `ipmi_sim`) and Redfish (the
 * simulator), with the agent's default timings (IPMI: 1 s between commands to one BMC); and a
 * burst of power requests to BMCS Redfish BMCs (each its own simulator, an HTTP server in this
 * process) and IPMI_BMCS `ipmi_sim` BMCs (one process each, so fewer), one agent: jobs per
 * second from the first call until every node shows its new state, and the agent's CPU.
 *
 * The agent is `npm run agent` in a process of its own (its CPU is read from /proc), with
 * `concurrency` BENCH_AGENT_CONCURRENCY (default: the agent's default). What reached each BMC is
 * counted at the BMC: the simulator's request log, ipmi_sim's chassis-control log (reads too).
 *
 *   npm run bench -- agent        BENCH_BMCS=100 BENCH_IPMI_BMCS=20 BENCH_LATENCY_RUNS=20
 */
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;
const ms = (x: number) => `${x.toFixed(0)} ms`;
const sleep = (t: number) => new Promise((r) => setTimeout(r, t));
const ROOT = resolve(import.meta.dirname, '..', '..');

/** CPU seconds (user + system) the process has used, from /proc/<pid>/stat (clock ticks of 10 ms). */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

export async function agentBench(record: (k: string, v: string) => void): Promise<void> {
  const BMCS = Number(process.env.BENCH_BMCS ?? 100);
  const IPMI_BMCS = Number(process.env.BENCH_IPMI_BMCS ?? 20);
  const RUNS = Number(process.env.BENCH_LATENCY_RUNS ?? 20);
  const dir = mkdtempSync(join(tmpdir(), 'slipway-bench-agent-'));
  const stack = await startLocalStack({ port: 0, dataDir: join(dir, 'stack'), ephemeral: true, adminToken: 'slp_bench-admin-token-00000000000' });
  const redfish: RedfishSim[] = [];
  const ipmi: IpmiSim[] = [];
  let agent: ChildProcess | undefined;
  try {
    const H = { 'X-Auth-Token': stack.adminToken, 'Content-Type': 'application/json', 'X-OpenStack-Ironic-API-Version': '1.78' };
    const api = async (method: string, path: string, body?: unknown) => {
      const res = await fetch(`${stack.url}${path}`, { method, headers: H, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
      const text = await res.text();
      if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${text}`);
      return text ? (JSON.parse(text) as any) : undefined;
    };
    const token = (await api('POST', '/v1.1/admin/tokens', { project_id: 'bench', role: 'agent' })).token.token as string;
    const concurrency = process.env.BENCH_AGENT_CONCURRENCY ? Number(process.env.BENCH_AGENT_CONCURRENCY) : undefined;
    const cfgFile = join(dir, 'agent.json');
    writeFileSync(cfgFile, JSON.stringify({ api_url: stack.url, token, ...(concurrency ? { concurrency } : {}) }));
    agent = spawn(process.execPath, ['--import', 'tsx', 'agent/main.ts', '--config', cfgFile], {
      cwd: ROOT,
      env: { ...process.env, SLIPWAY_LOG_LEVEL: 'error' },
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    const pid = agent.pid!;

    for (let i = 0; i < BMCS; i++) redfish.push(await startRedfishSim({ username: 'root', password: 'calvin', systems: [{ id: '1' }] }));
    for (let i = 0; i < IPMI_BMCS; i++) ipmi.push(await startIpmiSim({}));
    const rfNode = (i: number) => `bench-rf-${i}`;
    const ipmiNode = (i: number) => `bench-ipmi-${i}`;
    for (let i = 0; i < BMCS; i++) {
      await api('POST', '/v1/nodes', {
        name: rfNode(i),
        driver: 'redfish',
        conductor_group: 'bench',
        driver_info: { redfish_address: redfish[i]!.url, redfish_system_id: '1', redfish_username: 'root', redfish_password: 'calvin' },
      });
    }
    for (let i = 0; i < IPMI_BMCS; i++) {
      const s = ipmi[i]!;
      await api('POST', '/v1/nodes', {
        name: ipmiNode(i),
        driver: 'ipmi',
        conductor_group: 'bench',
        driver_info: { ipmi_address: s.address, ipmi_port: s.port, ipmi_username: s.username, ipmi_password: s.password },
      });
    }

    /** PUT the power target, then poll the node's states until it shows the result; ms from the PUT. */
    const powerAndSee = async (name: string, target: 'power on' | 'power off'): Promise<number> => {
      const t = performance.now();
      await api('PUT', `/v1/nodes/${name}/states/power`, { target });
      for (;;) {
        const s = await api('GET', `/v1/nodes/${name}/states`);
        if (s.target_power_state === null) {
          if (s.power_state !== target) throw new Error(`${name}: ${target} ended as ${s.power_state} (${s.last_error})`);
          return performance.now() - t;
        }
        await sleep(5);
      }
    };

    // Latency, one node at a time. Each power-on follows its power-off by 1.2 s, so the
    // spacing between commands to the BMC never delays it: what is measured is the path.
    const latency = async (name: string, requests: () => number): Promise<{ lat: number[]; perOn: number[] }> => {
      const lat: number[] = [];
      const perOn: number[] = [];
      await powerAndSee(name, 'power off');
      for (let i = 0; i < RUNS; i++) {
        await sleep(1200);
        const before = requests();
        lat.push(await powerAndSee(name, 'power on'));
        perOn.push(requests() - before);
        await powerAndSee(name, 'power off');
      }
      return { lat, perOn };
    };
    const show = (xs: number[]) => [...new Set(xs)].sort().join(' or ');
    const ip = await latency(ipmiNode(0), () => ipmi[0]!.requests().length);
    record(
      `IPMI power on, PUT → power on visible (ipmi_sim, n=${RUNS})`,
      `p50 ${ms(pct(ip.lat, 50))}, p99 ${ms(pct(ip.lat, 99))}; ${show(ip.perOn)} commands at the BMC per power on`,
    );
    const rf = await latency(rfNode(0), () => redfish[0]!.requests().length);
    record(
      `Redfish power on, PUT → power on visible (simulator, n=${RUNS})`,
      `p50 ${ms(pct(rf.lat, 50))}, p99 ${ms(pct(rf.lat, 99))}; ${show(rf.perOn)} requests at the BMC per power on`,
    );

    // Bursts: every node's power request at once, then one node list every 50 ms (a watcher
    // per node would load the API more than the agent does) until every node shows the result.
    const burst = async (names: string[], target: 'power on' | 'power off'): Promise<{ wall: number; cpu: number; lat: number[]; puts: number }> => {
      const cpu0 = cpuSeconds(pid);
      const t0 = performance.now();
      await Promise.all(names.map((n) => api('PUT', `/v1/nodes/${n}/states/power`, { target })));
      const puts = performance.now() - t0;
      const pending = new Set(names);
      const lat: number[] = [];
      while (pending.size > 0) {
        const list = await api('GET', '/v1/nodes?conductor_group=bench&fields=name,power_state,target_power_state,last_error&limit=1000');
        const seen = performance.now() - t0;
        for (const n of list.nodes as { name: string; power_state: string; target_power_state: string | null; last_error: string | null }[]) {
          if (!pending.has(n.name) || n.target_power_state !== null) continue;
          if (n.power_state !== target) throw new Error(`${n.name}: ${target} ended as ${n.power_state} (${n.last_error})`);
          pending.delete(n.name);
          lat.push(seen);
        }
        if (pending.size > 0) await sleep(50);
      }
      const wall = performance.now() - t0;
      return { wall, cpu: cpuSeconds(pid) - cpu0, lat, puts };
    };
    const rfNames = Array.from({ length: BMCS }, (_, i) => rfNode(i));
    const describe = (b: { wall: number; cpu: number; lat: number[]; puts: number }, n: number) =>
      `${(n / (b.wall / 1000)).toFixed(1)} jobs/s (${n} in ${ms(b.wall)}, the PUTs answered in ${ms(b.puts)}; each p50 ${ms(pct(b.lat, 50))}, p99 ${ms(pct(b.lat, 99))}); agent CPU ${(b.cpu * 1000).toFixed(0)} ms = ${((b.cpu * 1000) / n).toFixed(1)} ms per job, ${((100 * b.cpu) / (b.wall / 1000)).toFixed(0)}% of a core`;
    const counts = () => redfish.map((s) => s.requests().length);
    const rfReq0 = counts();
    const on = await burst(rfNames, 'power on');
    record(`Redfish burst: ${BMCS} power on, 1 agent, ${BMCS} BMCs`, describe(on, BMCS));
    const rfReq1 = counts();
    const off = await burst(rfNames, 'power off');
    record(`Redfish burst: ${BMCS} power off`, describe(off, BMCS));
    const rfReq2 = counts();
    // The first job on a BMC the agent has not seen finds its system (service root, Systems, system).
    record(
      '  requests per BMC: power-on burst, power-off burst; most in flight at once at any BMC',
      `${show(rfReq1.map((n, i) => n - rfReq0[i]!))}; ${show(rfReq2.map((n, i) => n - rfReq1[i]!))}; ${Math.max(...redfish.map((s) => s.maxInFlight()))}`,
    );
    if (IPMI_BMCS > 0) {
      const ipNames = Array.from({ length: IPMI_BMCS }, (_, i) => ipmiNode(i));
      const ipReq0 = ipmi.map((s) => s.requests().length);
      const ipOn = await burst(ipNames, 'power on');
      record(`IPMI burst: ${IPMI_BMCS} power on, 1 agent, ${IPMI_BMCS} ipmi_sim BMCs`, describe(ipOn, IPMI_BMCS));
      record('  commands per BMC', show(ipmi.map((s, i) => s.requests().length - ipReq0[i]!)));
    }
    record('agent process RSS after the bursts', `${rssMiB(pid).toFixed(0)} MiB`);
  } finally {
    if (agent && agent.exitCode === null) {
      const exited = new Promise((r) => agent!.once('exit', r));
      agent.kill('SIGTERM');
      await exited;
    }
    for (const s of redfish) await s.stop();
    for (const s of ipmi) await s.stop();
    await stack.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
