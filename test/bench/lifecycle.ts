import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { Session } from 'node:inspector/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AgentConfig } from '../../agent/config.ts';
import { driverFactory } from '../../agent/drivers/index.ts';
import { Agent } from '../../agent/runner.ts';
import { type RedfishSim, startRedfishSim } from '../../agent/sim/redfish.ts';
import { dynamoStats } from '#aws/dynamo/client.ts';
import { startLocalStack } from '../../infra/local/stack.ts';
import { processCpuMs, threadCpuMs } from './cpu.ts';

/**
 * Lease lifecycle figures (issue 4 §8, issue 16), on the wall clock: LEASES leases (default 500)
 * of one node each, all starting at the same minute, their before_end a minute later and their
 * end a minute after that, on nodes with Redfish BMCs that an agent powers off at the end.
 * Measured: delay from the scheduled time to ACTIVE / TERMINATED (the moment the event's
 * notification leaves, heard in this process, so that nothing polls), the delay for a
 * lease starting "now", DynamoDB calls, and state transitions per lease (what Step Functions
 * bills: $0.025 per 1,000 transitions).
 */
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;
const s = (x: number) => `${(x / 1000).toFixed(2)} s`;
const pad = (n: number) => String(n).padStart(2, '0');
const blazar = (d: Date) => `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}`;

export async function lifecycleBench(record: (k: string, v: string) => void): Promise<void> {
  const LEASES = Number(process.env.BENCH_LIFECYCLE_LEASES ?? 500);
  const ROUNDS = Number(process.env.BENCH_LIFECYCLE_ROUNDS ?? 1);
  const dir = mkdtempSync(join(tmpdir(), 'slipway-bench-lifecycle-'));
  // lease.event.* notifications with the time they left, heard in this process (the notifier's
  // subscribers). BENCH_LIFECYCLE_WEBHOOK=1 receives them on a local webhook instead, as the
  // figures before 2026-12-07 were taken: its HTTP work, client and server, then runs in this
  // process during the burst it measures.
  const notices: { type: string; lease: string; status: string; at: number }[] = [];
  const heard = (type: string, payload: { lease_id?: unknown; lease_status?: unknown }) =>
    notices.push({ type, lease: String(payload.lease_id), status: typeof payload.lease_status === 'string' ? payload.lease_status : '', at: Date.now() });
  const hook = process.env.BENCH_LIFECYCLE_WEBHOOK
    ? createServer((req, res) => {
        let body = '';
        req.on('data', (c) => (body += c));
        req.on('end', () => {
          const n = JSON.parse(body) as { event_type: string; payload: { lease_id: string; lease_status?: string } };
          heard(n.event_type, n.payload);
          res.writeHead(204).end();
        });
      })
    : undefined;
  if (hook) await new Promise<void>((r) => hook.listen(0, '127.0.0.1', r));
  const previousHook = process.env.SLIPWAY_NOTIFY_WEBHOOK;
  if (hook) process.env.SLIPWAY_NOTIFY_WEBHOOK = `http://127.0.0.1:${(hook.address() as { port: number }).port}/`;
  else delete process.env.SLIPWAY_NOTIFY_WEBHOOK;
  const stack = await startLocalStack({ port: 0, dataDir: dir, ephemeral: true, adminToken: 'slp_bench-admin-token-00000000000' });
  let sim: RedfishSim | undefined;
  let agent: Agent | undefined;
  if (!hook) stack.lifecycle.notifier.subscribe(heard);
  try {
    const H = { 'X-Auth-Token': stack.adminToken, 'Content-Type': 'application/json', 'X-OpenStack-Ironic-API-Version': '1.78' };
    const req = async (method: string, path: string, body?: unknown) => {
      const res = await fetch(`${stack.url}${path}`, { method, headers: H, body: body === undefined ? undefined : JSON.stringify(body) });
      const text = await res.text();
      if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${text}`);
      return text ? JSON.parse(text) : undefined;
    };
    sim = await startRedfishSim({ username: 'root', password: 'calvin', systems: [] });
    const token = (await req('POST', '/v1.1/admin/tokens', { project_id: 'bench-site', role: 'agent' })).token.token as string;
    const cfg = { ...AgentConfig.parse({ api_url: stack.url, token, concurrency: 16, poll_seconds: 5, redfish: { poll_interval_ms: 50 } }), token };
    agent = new Agent(cfg, driverFactory(cfg));
    agent.start();
    // Hosts and nodes, eight requests at a time (setup, not measured).
    let nextHost = 0;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        for (let i = nextHost++; i <= LEASES; i = nextHost++) {
          const name = `life-${String(i).padStart(3, '0')}`;
          sim!.addSystem({ id: name, powerState: 'On' });
          await req('POST', '/v1/os-hosts', { name, pool: 'life' });
          await req('POST', '/v1/nodes', {
            name,
            driver: 'redfish',
            conductor_group: 'bench-site',
            driver_info: { redfish_address: sim!.url, redfish_system_id: name, redfish_username: 'root', redfish_password: 'calvin' },
          });
        }
      }),
    );
    const res = (name: string) => [{ resource_type: 'physical:host', min: 1, max: 1, hypervisor_properties: '', resource_properties: JSON.stringify(['==', '$hypervisor_hostname', name]) }];

    // A lease starting now: from the create's answer to ACTIVE.
    const t = performance.now();
    const now = await req('POST', '/v1/leases', { name: 'now', start_date: 'now', end_date: blazar(new Date(Date.now() + 3600_000)), reservations: res(`life-${String(LEASES).padStart(3, '0')}`) });
    const created = performance.now();
    while ((await req('GET', `/v1/leases/${now.lease.id}`)).lease.status !== 'ACTIVE') await new Promise((r) => setTimeout(r, 20));
    record('lease with start_date "now": create answered → ACTIVE', `${s(performance.now() - created)} (create itself ${s(created - t)})`);
    await req('DELETE', `/v1/leases/${now.lease.id}`);
    await stack.lifecycle.runner.idle();

    // BENCH_LIFECYCLE_ROUNDS (default 1) rounds of LEASES leases on the same hosts, each starting
    // after the round before has ended, each reported. The first meets a fresh DynamoDB Local,
    // whose JIT compiles the transaction's code during the burst (the compiler threads' CPU is
    // printed: the emulator warming up, not Slipway's work nor DynamoDB's on AWS); a later one
    // meets a stack that already ran a round, as a running control plane would.
    for (let round = 1; round <= ROUNDS; round++) {
      const of = ROUNDS > 1 ? ` (round ${round} of ${ROUNDS}${round === 1 ? ', fresh DynamoDB Local' : ''})` : '';
      // LEASES leases at the next minute far enough away to create them all first (20 s, and
      // 100 ms a lease: 500 creates at once take about 30 s on the 2-core machine).
      const start = new Date(Math.ceil((Date.now() + 20_000 + LEASES * 100) / 60_000) * 60_000);
      // before_end a minute after the start, the end a minute later: three bursts of LEASES events
      // each. (Left to its default, a short lease's before_end is clamped to its start and waits
      // for it, which measures that wait rather than the starts.)
      const beforeEnd = new Date(start.getTime() + 60_000);
      const end = new Date(start.getTime() + 120_000);
      const stats0 = { ...stack.lifecycle.runner.stats };
      dynamoStats.reset();
      // Sixteen clients at a time (setup, not measured): 500 requests at once would only measure
      // the local server's queue, and risk the function timeout on a busy machine.
      const ids: string[] = [];
      let nextLease = 0;
      await Promise.all(
        Array.from({ length: 16 }, async () => {
          for (let i = nextLease++; i < LEASES; i = nextLease++) {
            const body = { name: `b${round}-${i}`, start_date: blazar(start), before_end_date: blazar(beforeEnd), end_date: blazar(end), reservations: res(`life-${String(i).padStart(3, '0')}`) };
            ids[i] = (await req('POST', '/v1/leases', body)).lease.id as string;
          }
        }),
      );
      const writesCreate = dynamoStats.calls.get('TransactWriteItemsCommand') ?? 0;
      // A lease created after its start would start "now", not on its schedule: the figure would lie.
      if (Date.now() >= start.getTime()) throw new Error(`creating ${LEASES} leases took past their start (${start.toISOString()}); raise the margin`);
      const mine = new Set(ids);
      // The first notice of each lease with that status (before_end's notice says ACTIVE too, later).
      const reached = (status: string) => {
        const first = new Map<string, number>();
        for (const n of notices) if (mine.has(n.lease) && n.status === status && !first.has(n.lease)) first.set(n.lease, n.at);
        return first;
      };
      process.stdout.write(`  (waiting for ${LEASES} leases to start at ${start.toISOString()} and end two minutes later)\n`);
      dynamoStats.reset();
      const transitions0 = stack.lifecycle.runner.stats.transitions;
      // Whose CPU the starts take — this process (API, workflows, agent) and DynamoDB Local's JVM —
      // in two parts: their triggers fire PREPARE_LEAD_SECONDS early and Begin prepares them
      // (reads and checks), then at their time each is one write (engine.ts prepareEvent).
      const cpuPrep = { own: process.cpuUsage(), jvm: processCpuMs(stack.dynamoPid) };
      while (Date.now() < start.getTime() - 100) await new Promise((r) => setTimeout(r, 50));
      // BENCH_CPU_PROFILE=<file>: a sampled CPU profile of this process through the burst, for
      // Chrome DevTools or `node --cpu-prof`'s readers (it slows the burst: not for the figures).
      const profiler = process.env.BENCH_CPU_PROFILE ? new Session() : undefined;
      if (profiler) {
        profiler.connect();
        await profiler.post('Profiler.enable');
        await profiler.post('Profiler.start');
      }
      const cpu0 = { own: process.cpuUsage(), jvm: processCpuMs(stack.dynamoPid), threads: threadCpuMs(stack.dynamoPid) };
      const calls0 = new Map(dynamoStats.calls);
      while (reached('ACTIVE').size < LEASES && Date.now() < start.getTime() + 5 * 60_000) await new Promise((r) => setTimeout(r, 100));
      if (profiler) {
        const { profile } = await profiler.post('Profiler.stop');
        writeFileSync(round > 1 ? `${process.env.BENCH_CPU_PROFILE}.${round}` : process.env.BENCH_CPU_PROFILE!, JSON.stringify(profile));
        profiler.disconnect();
      }
      const callsOf = (since: Map<string, number>, until: Map<string, number>) => {
        const xs = [...until.entries()].map(([k, n]): [string, number] => [k, n - (since.get(k) ?? 0)]).filter(([, n]) => n > 0).sort((a, b) => b[1] - a[1]);
        return `${(xs.reduce((a, [, n]) => a + n, 0) / LEASES).toFixed(1)} calls (${xs.map(([k, n]) => `${k.replace('Command', '')} ${(n / LEASES).toFixed(1)}`).join(', ') || 'none'})`;
      };
      const startTransitions = stack.lifecycle.runner.stats.transitions - transitions0;
      const ms = (c: NodeJS.CpuUsage) => ((c.user + c.system) / 1000 / LEASES).toFixed(1);
      const own = process.cpuUsage(cpu0.own);
      const jvmThreads = threadCpuMs(stack.dynamoPid);
      const jvmShare = (kind: string) => ((jvmThreads.get(kind) ?? 0) - (cpu0.threads.get(kind) ?? 0)) / LEASES;
      const ownPrep = process.cpuUsage(cpuPrep.own);
      record(
        `start burst at the leases' time: CPU of this process (API, workflows, agent) and of DynamoDB Local, per lease${of}`,
        `${ms(own)} ms and ${((processCpuMs(stack.dynamoPid) - cpu0.jvm) / LEASES).toFixed(1)} ms (its JIT compilers ${jvmShare('jit').toFixed(1)}, its collector ${jvmShare('gc').toFixed(1)}); DynamoDB ${callsOf(calls0, dynamoStats.calls)} per lease`,
      );
      record(
        `starts prepared before their time (from the creates' end): CPU per lease, this process and DynamoDB Local${of}`,
        `${((ownPrep.user + ownPrep.system - own.user - own.system) / 1000 / LEASES).toFixed(1)} ms and ${((cpu0.jvm - cpuPrep.jvm) / LEASES).toFixed(1)} ms; DynamoDB ${callsOf(new Map(), calls0)} per lease`,
      );
      record(`start events, prepared and written: DynamoDB calls and state transitions per lease${of}`, `${callsOf(new Map(), dynamoStats.calls)}, ${(startTransitions / LEASES).toFixed(1)} transitions`);
      while (reached('TERMINATED').size < LEASES && Date.now() < end.getTime() + 5 * 60_000) await new Promise((r) => setTimeout(r, 200));
      await stack.lifecycle.runner.idle();
      const active = reached('ACTIVE');
      const terminated = reached('TERMINATED');
      const startDelay = [...active.values()].map((x) => x - start.getTime());
      const endDelay = [...terminated.values()].map((x) => x - end.getTime());
      record(`${LEASES} leases starting at the same minute: scheduled time → ACTIVE${of}`, `p50 ${s(pct(startDelay, 50))}, p99 ${s(pct(startDelay, 99))}, max ${s(Math.max(...startDelay))} (${active.size}/${LEASES}; first ${s(Math.min(...startDelay))}, p10 ${s(pct(startDelay, 10))}, p25 ${s(pct(startDelay, 25))})`);
      record(`${LEASES} leases ending at the same minute: scheduled time → TERMINATED (power-off by the agent included)${of}`, `p50 ${s(pct(endDelay, 50))}, p99 ${s(pct(endDelay, 99))}, max ${s(Math.max(...endDelay))} (${terminated.size}/${LEASES})`);
      const st = stack.lifecycle.runner.stats;
      const transitions = st.transitions - stats0.transitions;
      const perLease = transitions / LEASES;
      record(`workflow executions per lease (start, before_end, end; repeats included)${of}`, `${((st.executions - stats0.executions) / LEASES).toFixed(2)} (skipped repeats: ${st.skipped - stats0.skipped}, failed: ${st.failed - stats0.failed})`);
      record(`state transitions per lease (3 events, 1 node with a BMC)${of}`, `${perLease.toFixed(1)} → Step Functions Standard about $${((perLease * 1000 * 0.025) / 1000).toFixed(3)} per 1,000 leases`);
      const calls = [...dynamoStats.calls.values()].reduce((a, b) => a + b, 0);
      const agentCalls = (dynamoStats.calls.get('QueryCommand') ?? 0);
      record(`DynamoDB calls per lease from its start to its end (events, agent job, agent polls included)${of}`, `${(calls / LEASES).toFixed(1)} (of which queries ${(agentCalls / LEASES).toFixed(1)}); create: ${(writesCreate / LEASES).toFixed(2)} transactions each`);
    }
  } finally {
    await agent?.stop();
    await stack.stop();
    await sim?.stop();
    hook?.close();
    if (previousHook === undefined) delete process.env.SLIPWAY_NOTIFY_WEBHOOK;
    else process.env.SLIPWAY_NOTIFY_WEBHOOK = previousHook;
    rmSync(dir, { recursive: true, force: true });
  }
}
