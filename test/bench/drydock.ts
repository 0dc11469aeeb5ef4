import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AgentConfig } from '../../agent/config.ts';
import { driverFactory } from '../../agent/drivers/index.ts';
import { Agent } from '../../agent/runner.ts';
import { type RedfishSim, startRedfishSim } from '../../agent/sim/redfish.ts';
import { getDeps } from '#aws/deps.ts';
import { dynamoStats } from '#aws/dynamo/client.ts';
import { s3Stats } from '#aws/s3-blobs.ts';
import { startLocalStack } from '../../infra/local/stack.ts';
import { siteDesign } from '../support/drydock-site.ts';

/**
 * Drydock figures (issue 5 §6): `deploy_nodes` for BENCH_DEPLOY_NODES nodes (default 100) on the
 * local stack, each node a Redfish simulator of its own on a loopback address, one agent. Each
 * simulated node does what an installer does once the agent's deploy hook names it: fetch both
 * tarballs through the presigned redirect and report success. Measured: time to render and store
 * every node's tarballs, the whole task, state transitions, DynamoDB and S3 operations per node.
 */
const s = (x: number) => `${(x / 1000).toFixed(2)} s`;

export async function drydockBench(record: (k: string, v: string) => void): Promise<void> {
  const N = Number(process.env.BENCH_DEPLOY_NODES ?? 100);
  const dir = mkdtempSync(join(tmpdir(), 'slipway-bench-drydock-'));
  const hookDir = mkdtempSync(join(tmpdir(), 'slipway-bench-hook-'));
  const root = mkdtempSync(join(tmpdir(), 'slipway-bench-root-'));
  const stack = await startLocalStack({ port: 0, dataDir: dir, ephemeral: true, adminToken: 'slp_bench-admin-token-00000000000', env: { SLIPWAY_BOOTACTION_FINAL_STATUS_SECONDS: '300' } });
  const sims: RedfishSim[] = [];
  let agent: Agent | undefined;
  try {
    const H = { 'X-Auth-Token': stack.adminToken, 'Content-Type': 'application/json' };
    const req = async (method: string, path: string, body?: unknown, headers: Record<string, string> = H) => {
      const res = await fetch(`${stack.url}${path}`, { method, headers, body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body) });
      const text = await res.text();
      if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${text}`);
      return text ? JSON.parse(text) : undefined;
    };
    // One BMC per node on 127.0.0.(11+i), one port for all (the design's oob.port).
    const first = await startRedfishSim({ host: '127.0.0.11', username: 'admin', password: 'sim-secret', systems: [{ id: '1' }] });
    sims.push(first);
    const port = Number(new URL(first.url).port);
    for (let i = 1; i < N; i++) sims.push(await startRedfishSim({ host: `127.0.0.${11 + i}`, port, username: 'admin', password: 'sim-secret', systems: [{ id: '1' }] }));
    const nodes = Array.from({ length: N }, (_, i) => `node${String(i + 1).padStart(3, '0')}`);
    const site = 'bench-lab';
    const design = await req('POST', '/api/v1.0/designs', {});
    await req('POST', `/api/v1.0/designs/${design.design_id}/parts`, siteDesign({ site, redfishPort: port, nodes, root }), { ...H, 'Content-Type': 'application/x-yaml' });

    const token = (await req('POST', '/v1.1/admin/tokens', { project_id: site, role: 'agent' })).token.token as string;
    const cfg = {
      ...AgentConfig.parse({
        api_url: stack.url,
        token,
        concurrency: 16,
        poll_seconds: 5,
        redfish: { poll_interval_ms: 50 },
        deploy_hook: { command: ['sh', '-c', `cat > "$(mktemp -p '${hookDir}' hook.XXXXXX)"`] },
      }),
      token,
    };
    agent = new Agent(cfg, driverFactory(cfg));
    agent.start();

    // The installers: each node fetches both tarballs (following the redirect) and reports.
    const reported = new Set<string>();
    let installing = true;
    const installers = (async () => {
      while (installing) {
        for (const f of readdirSync(hookDir)) {
          if (reported.has(f)) continue;
          let info: { node_name: string; action_key: string; report_url: string; actions: { action_id: string; action_status: string }[] };
          try {
            info = JSON.parse(readFileSync(join(hookDir, f), 'utf8'));
          } catch {
            continue; // still being written
          }
          reported.add(f);
          void (async () => {
            for (const kind of ['units', 'files']) {
              const r = await fetch(`${stack.url}/api/v1.0/bootactions/nodes/${info.node_name}/${kind}`, { headers: { 'X-Bootaction-Key': info.action_key } });
              if (!r.ok) throw new Error(`${info.node_name} ${kind}: ${r.status}`);
              await r.arrayBuffer();
            }
            for (const a of info.actions.filter((x) => x.action_status === 'incomplete')) {
              await fetch(`${info.report_url}${a.action_id}/`, {
                method: 'POST',
                headers: { 'Content-Type': 'application/json', 'X-Bootaction-Key': info.action_key },
                body: JSON.stringify({ status: 'success', details: [{ message: 'installed', error: false }] }),
              });
            }
          })().catch((err: Error) => process.stdout.write(`  installer error: ${err.message}\n`));
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    })();

    const stats0 = { ...stack.lifecycle.tasks.stats };
    dynamoStats.reset();
    s3Stats.reset();
    const t0 = Date.now();
    const task = await req('POST', '/api/v1.0/tasks', { action: 'deploy_nodes', design_ref: design.design_ref, node_filter: null });
    let shown: { status: string; result: { status: string; successes: string[] }; subtask_id_list: string[] };
    for (;;) {
      shown = await req('GET', `/api/v1.0/tasks/${task.task_id}`);
      if (shown.status === 'complete') break;
      await new Promise((r) => setTimeout(r, 500));
    }
    const total = Date.now() - t0;
    await stack.lifecycle.tasks.idle();
    installing = false;
    await installers;

    // When each node's tarballs were stored: its "rendered" message on its subtask.
    const renderedAt: number[] = [];
    for (const id of shown.subtask_id_list) {
      const sub = await req('GET', `/api/v1.0/tasks/${id}`);
      const m = (sub.result.details.messageList as { message: string; ts: string }[]).find((x) => /boot action\(s\) rendered/.test(x.message));
      if (m) renderedAt.push(Date.parse(m.ts.replace(' ', 'T')));
    }
    const st = stack.lifecycle.tasks.stats;
    const transitions = st.transitions - stats0.transitions;
    record(`deploy_nodes, ${N} nodes (${getDeps().config.drydock.nodeConcurrency} at a time), one agent`, `${shown.result.status}, ${shown.result.successes.length}/${N} in successes, task ${s(total)}`);
    record('  render and store every node\'s tarballs (task created → last node stored)', `${s(Math.max(...renderedAt) - t0)} (${renderedAt.length} nodes; first after ${s(Math.min(...renderedAt) - t0)})`);
    record('  state transitions per node', `${(transitions / N).toFixed(1)} (${transitions} in all) → Step Functions Standard about $${((transitions / N) * 0.025).toFixed(2)} per 1,000 node deployments`);
    const calls = [...dynamoStats.calls.entries()];
    const dynamo = calls.reduce((a, [, v]) => a + v, 0);
    record('  DynamoDB calls per node (task, agent jobs and polls, downloads, reports)', `${(dynamo / N).toFixed(1)}: ${calls.map(([k, v]) => `${k.replace('Command', '')} ${(v / N).toFixed(1)}`).join(', ')}`);
    const s3calls = [...s3Stats.calls.entries()];
    record('  S3 operations per node', `${s3calls.map(([k, v]) => `${k.replace('Command', '')} ${(v / N).toFixed(2)}`).join(', ')}; presigned URLs ${(s3Stats.presigns / N).toFixed(2)}`);
  } finally {
    await agent?.stop();
    await stack.stop();
    for (const sim of sims) await sim.stop();
    for (const d of [dir, hookDir, root]) rmSync(d, { recursive: true, force: true });
  }
}
