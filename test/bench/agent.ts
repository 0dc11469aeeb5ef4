import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AgentConfig } from '../../agent/config.ts';
import { driverFactory } from '../../agent/drivers/index.ts';
import { Agent } from '../../agent/runner.ts';
import { type RedfishSim, startRedfishSim } from '../../agent/sim/redfish.ts';
import { dynamoStats } from '#aws/dynamo/client.ts';
import { getDeps } from '#aws/deps.ts';
import { enqueueJob } from '#core/agent/enqueue.ts';
import { startLocalStack } from '../../infra/local/stack.ts';

/**
 * Agent figures (issue 3 §8): jobs per second through claim → BMC → result with one agent and
 * 50 simulated Redfish BMCs, and the latency from an Ironic API call to the BMC action.
 */
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;
const ms = (x: number) => `${x.toFixed(1)} ms`;

export async function agentBench(record: (k: string, v: string) => void): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'slipway-bench-agent-'));
  const stack = await startLocalStack({ port: 0, dataDir: dir, ephemeral: true, adminToken: 'slp_bench-admin-token-00000000000' });
  const sims: RedfishSim[] = [];
  let agent: Agent | undefined;
  try {
    const BMCS = Number(process.env.BENCH_BMCS ?? 50);
    for (let i = 0; i < BMCS; i++) sims.push(await startRedfishSim({ username: 'root', password: 'calvin', systems: [{ id: '1' }] }));
    const H = { 'X-Auth-Token': stack.adminToken, 'Content-Type': 'application/json' };
    const post = async (path: string, body: unknown, method = 'POST') => fetch(`${stack.url}${path}`, { method, headers: H, body: JSON.stringify(body) });
    const token = ((await (await post('/v1.1/admin/tokens', { project_id: 'bench', role: 'agent' })).json()) as { token: { token: string } }).token.token;
    const cfg = { ...AgentConfig.parse({ api_url: stack.url, token, concurrency: 16, poll_seconds: 5, redfish: { poll_interval_ms: 20 } }), token };
    agent = new Agent(cfg, driverFactory(cfg));
    agent.start();
    const info = (i: number) => ({ redfish_address: sims[i]!.url, redfish_system_id: '1', redfish_username: 'root', redfish_password: 'calvin' });

    // Throughput: 1,000 power-state reads spread over the 50 BMCs.
    const JOBS = Number(process.env.BENCH_AGENT_JOBS ?? 1000);
    const deps = getDeps();
    dynamoStats.reset();
    const t0 = performance.now();
    const jobs = await Promise.all(Array.from({ length: JOBS }, (_, i) => enqueueJob(deps, { site: 'bench', kind: 'power_state', payload: { driver: 'redfish', driver_info: info(i % BMCS) } })));
    const enqueued = performance.now() - t0;
    for (const end = Date.now() + 300_000; agent.stats.succeeded + agent.stats.failed < JOBS; ) {
      if (Date.now() > end) throw new Error(`agent finished ${agent.stats.succeeded + agent.stats.failed} of ${JOBS} jobs in 5 minutes`);
      await new Promise((r) => setTimeout(r, 20));
    }
    const wall = performance.now() - t0;
    const calls = [...dynamoStats.calls.values()].reduce((a, b) => a + b, 0);
    record(`${JOBS} jobs, 1 agent (concurrency 16), ${BMCS} Redfish BMCs`, `${(JOBS / (wall / 1000)).toFixed(0)} jobs/s end to end (enqueue ${ms(enqueued)}), ${agent.stats.failed} failed`);
    record('  DynamoDB calls per job (enqueue, claim, result, auth)', (calls / JOBS).toFixed(2));
    void jobs;

    // Latency: Ironic PUT power → the BMC sees the reset.
    const names: string[] = [];
    for (let i = 0; i < 20; i++) {
      const name = `bench-${i}`;
      await post('/v1/nodes', { name, driver: 'redfish', conductor_group: 'bench', driver_info: info(i) });
      names.push(name);
    }
    const lat: number[] = [];
    const done: number[] = [];
    for (let i = 0; i < names.length; i++) {
      const before = sims[i]!.state('1').resets.length;
      const t = performance.now();
      await post(`/v1/nodes/${names[i]}/states/power`, { target: 'power on' }, 'PUT');
      while (sims[i]!.state('1').resets.length === before) await new Promise((r) => setTimeout(r, 2));
      lat.push(performance.now() - t);
      for (;;) {
        const s = (await (await fetch(`${stack.url}/v1/nodes/${names[i]}/states`, { headers: H })).json()) as { target_power_state: string | null };
        if (s.target_power_state === null) break;
        await new Promise((r) => setTimeout(r, 5));
      }
      done.push(performance.now() - t);
    }
    record('PUT /v1/nodes/{n}/states/power → BMC reset (n=20)', `p50 ${ms(pct(lat, 50))}, p95 ${ms(pct(lat, 95))}`);
    record('PUT /v1/nodes/{n}/states/power → node power_state updated', `p50 ${ms(pct(done, 50))}, p95 ${ms(pct(done, 95))}`);
  } finally {
    await agent?.stop();
    for (const s of sims) await s.stop();
    await stack.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
