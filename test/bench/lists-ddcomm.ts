import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { dynamoStats, makeDynamo, queryAll } from '#aws/dynamo/client.ts';
import { startLocalStack } from '../../infra/local/stack.ts';
import { designs, hosts, seedDesigns, seedHosts, seedTasks, tasks } from '../support/ddcomm-seed.ts';

/**
 * `npm run bench -- ddcomm` (issue 16): Drydock task and design lists and Commissaire host lists
 * at 100 and at BENCH_DDCOMM_ITEMS (default 10,000) items of each, seeded straight into DynamoDB
 * Local with the adapters' own item builders (test/support/ddcomm-seed.ts). Each list request is
 * made R times over HTTP to the local stack, which runs in this process, so the DynamoDB counters
 * see what the request read: p50/p99 latency, read units and DynamoDB calls per request. Beside
 * them, what reading the whole list partition costs (what `GET /tasks` and `GET /hosts` read for
 * every request before issue 16). Read units are exact; latencies depend on the machine's load
 * (printed with them).
 */
const R = Number(process.env.BENCH_DDCOMM_REPEAT ?? 30);
const SMALL = 100;
const LARGE = Number(process.env.BENCH_DDCOMM_ITEMS ?? 10_000);
const PROJECT = 'bench-proj';
const PROJECT_TASKS = 60;

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};

export async function listsDdcommBench(record: (k: string, v: string) => void): Promise<void> {
  process.env.SLIPWAY_LOG_LEVEL = 'error';
  const dir = mkdtempSync(join(tmpdir(), 'slipway-bench-ddcomm-'));
  const stack = await startLocalStack({ port: 0, dataDir: dir, ephemeral: true, adminToken: 'slp_bench-admin-token-00000000000' });
  try {
    const d = makeDynamo({ tableName: 'slipway', endpoint: stack.dynamoEndpoint });
    const admin = { 'X-Auth-Token': stack.adminToken };
    const tokenRes = await fetch(`${stack.url}/v1.1/admin/tokens`, {
      method: 'POST',
      headers: { ...admin, 'Content-Type': 'application/json' },
      body: JSON.stringify({ project_id: PROJECT, role: 'member' }),
    });
    const member = { 'X-Auth-Token': ((await tokenRes.json()) as { token: { token: string } }).token.token };

    const ops: { name: string; path: string; headers: Record<string, string>; whole?: string }[] = [
      { name: 'drydock GET /tasks?limit=50 (site)', path: '/api/v1.0/tasks?limit=50', headers: admin, whole: 'DD#TASKS' },
      { name: 'drydock GET /tasks (no limit: newest 500)', path: '/api/v1.0/tasks', headers: admin },
      { name: "drydock GET /tasks?limit=50 (a project's)", path: '/api/v1.0/tasks?limit=50', headers: member },
      { name: 'drydock GET /designs?limit=50', path: '/api/v1.0/designs?limit=50', headers: admin, whole: 'DD#DESIGNS' },
      { name: 'commissaire GET /hosts?limit=50', path: '/api/v0/hosts?limit=50', headers: admin, whole: 'COMM#HOSTS' },
      { name: 'commissaire GET /hosts (no limit: first 1,000)', path: '/api/v0/hosts', headers: admin },
    ];

    const measure = async (size: number) => {
      const out = new Map<string, { p50: number; p99: number; ru: number; calls: number; items: number; wholeRu?: number }>();
      for (const op of ops) {
        // One warm-up request (token cache, JIT), then R measured ones, one at a time.
        await (await fetch(`${stack.url}${op.path}`, { headers: op.headers })).text();
        const lat: number[] = [];
        let items = 0;
        dynamoStats.reset();
        dynamoStats.measureCapacity = true;
        for (let i = 0; i < R; i++) {
          const t = performance.now();
          const res = await fetch(`${stack.url}${op.path}`, { headers: op.headers });
          const body = (await res.json()) as unknown[];
          lat.push(performance.now() - t);
          if (res.status !== 200) throw new Error(`${op.path}: ${res.status} ${JSON.stringify(body)}`);
          items = body.length;
        }
        const ru = dynamoStats.readUnits / R;
        const calls = [...dynamoStats.calls.values()].reduce((a, b) => a + b, 0) / R;
        let wholeRu: number | undefined;
        if (op.whole) {
          dynamoStats.reset();
          await queryAll(d, { IndexName: 'GSI3', KeyConditionExpression: 'GSI3PK = :p', ExpressionAttributeValues: { ':p': op.whole } });
          wholeRu = dynamoStats.readUnits;
        }
        dynamoStats.measureCapacity = false;
        out.set(op.name, { p50: pct(lat, 50), p99: pct(lat, 99), ru, calls, items, ...(wholeRu !== undefined ? { wholeRu } : {}) });
        record(
          `${op.name} @ ${size.toLocaleString('en-US')}`,
          `p50 ${pct(lat, 50).toFixed(1)} ms, p99 ${pct(lat, 99).toFixed(1)} ms, ${ru.toFixed(1)} RU, ${calls.toFixed(0)} DynamoDB calls, ${items} items` +
            (wholeRu !== undefined ? ` (whole list partition: ${wholeRu.toFixed(1)} RU)` : ''),
        );
      }
      return out;
    };

    // The project's tasks are the oldest; every later task is the site's.
    let t = performance.now();
    await seedTasks(d, tasks(0, PROJECT_TASKS, PROJECT));
    await Promise.all([seedTasks(d, tasks(PROJECT_TASKS, SMALL)), seedDesigns(d, designs(0, SMALL)), seedHosts(d, hosts(0, SMALL))]);
    record(`seed ${SMALL} tasks, designs and hosts (BatchWrite)`, `${(performance.now() - t).toFixed(0)} ms`);
    record('load while measuring (1/5/15 min, 2 cores)', loadavg().map((x) => x.toFixed(2)).join(' '));
    const small = await measure(SMALL);
    t = performance.now();
    await Promise.all([seedTasks(d, tasks(SMALL, LARGE)), seedDesigns(d, designs(SMALL, LARGE)), seedHosts(d, hosts(SMALL, LARGE))]);
    record(`seed up to ${LARGE.toLocaleString('en-US')} tasks, designs and hosts (BatchWrite)`, `${(performance.now() - t).toFixed(0)} ms`);
    record('load while measuring (1/5/15 min, 2 cores)', loadavg().map((x) => x.toFixed(2)).join(' '));
    const large = await measure(LARGE);
    for (const op of ops) {
      const a = small.get(op.name)!;
      const b = large.get(op.name)!;
      record(
        `${op.name}: ${LARGE.toLocaleString('en-US')} vs ${SMALL}`,
        `read units ×${(b.ru / a.ru).toFixed(2)}, calls ×${(b.calls / a.calls).toFixed(2)}, p50 ×${(b.p50 / a.p50).toFixed(2)}` +
          (a.wholeRu !== undefined && b.wholeRu !== undefined ? `; whole-list read ×${(b.wholeRu / a.wholeRu).toFixed(1)}` : ''),
      );
    }
  } finally {
    dynamoStats.measureCapacity = false;
    await stack.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
