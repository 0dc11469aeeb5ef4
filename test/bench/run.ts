import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dynamoStats } from '#aws/dynamo/client.ts';
import { startLocalStack } from '../../infra/local/stack.ts';
import { agentBench } from './agent.ts';
import { bundlesBench } from './bundles.ts';
import { drydockBench } from './drydock.ts';
import { lifecycleBench } from './lifecycle.ts';
import { machinesBench } from './machines.ts';
import { tenantBench } from './tenant.ts';
import { listsDdcommBench } from './lists-ddcomm.ts';

/**
 * `npm run bench`: figures, not pass/fail (issue 2 §10). The local stack runs in this process
 * (so the DynamoDB middleware counters see every call) with BENCH_HOSTS enrolled hosts and
 * BENCH_LEASES existing leases (defaults 1,000 and 5,000), then measures lease creation at
 * concurrency 1 and 16, contention, paginated lists, DynamoDB work per create and bundle sizes.
 */
process.env.SLIPWAY_LOG_LEVEL = 'error';
const HOSTS = Number(process.env.BENCH_HOSTS ?? 1000);
const LEASES = Number(process.env.BENCH_LEASES ?? 5000);

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};
const ms = (x: number) => `${x.toFixed(1)} ms`;
const pad = (n: number) => String(n).padStart(2, '0');
const blazarAt = (minutesFromNow: number) => {
  const d = new Date(Math.floor((Date.now() + minutesFromNow * 60_000) / 60_000) * 60_000);
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}`;
};

/** Runs `n` tasks with at most `c` in flight; returns each task's latency. */
async function pool(n: number, c: number, task: (i: number) => Promise<number>): Promise<{ lat: number[]; wall: number }> {
  const lat: number[] = [];
  let next = 0;
  const t = performance.now();
  await Promise.all(
    Array.from({ length: c }, async () => {
      for (let i = next++; i < n; i = next++) lat.push(await task(i));
    }),
  );
  return { lat, wall: performance.now() - t };
}

/**
 * `npm run bench` runs every part but the machines; `npm run bench -- booking`, `-- agent`,
 * `-- lifecycle`, `-- drydock`, `-- bundles` (sizes and import times of the Lambda bundles) or
 * `-- machines` (QEMU VMs: minutes) runs one.
 * `npm run bench -- tenant` (QEMU VMs: minutes): leases of 1 and 5 VMs naming an image, start → active, end → erased.
 */
const only = process.argv[2];

async function main() {
  if (only === 'agent') return runOnly('agent', agentBench);
  if (only === 'lifecycle') return runOnly('lifecycle', lifecycleBench);
  if (only === 'drydock') return runOnly('drydock', drydockBench);
  if (only === 'machines') return runOnly('machines', machinesBench);
  if (only === 'bundles') return runOnly('bundles', bundlesBench);
  if (only === 'tenant') return runOnly('tenant', tenantBench);
  if (only === 'ddcomm') return runOnly('ddcomm', listsDdcommBench);
  const dir = mkdtempSync(join(tmpdir(), 'slipway-bench-'));
  const t0 = performance.now();
  const stack = await startLocalStack({ port: 0, dataDir: dir, ephemeral: true, adminToken: 'slp_bench-admin-token-00000000000' });
  const rows: [string, string][] = [];
  const record = (k: string, v: string) => {
    rows.push([k, v]);
    process.stdout.write(`  ${k}: ${v}\n`);
  };
  record('local stack start (DynamoDB Local + s3rver + API)', ms(performance.now() - t0));
  const H = { 'X-Auth-Token': stack.adminToken, 'Content-Type': 'application/json' };
  const req = async (method: string, path: string, body?: unknown) => {
    const t = performance.now();
    const res = await fetch(`${stack.url}${path}`, { method, headers: H, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    return { status: res.status, ms: performance.now() - t, body: text ? JSON.parse(text) : undefined };
  };
  const must = <R extends { status: number; body: unknown }>(r: R, status: number): R => {
    if (r.status !== status) throw new Error(`expected ${status}, got ${r.status}: ${JSON.stringify(r.body)}`);
    return r;
  };
  const filter = JSON.stringify(['==', '$pool', 'bench']);
  const lease = (name: string, start: number, dur: number, min = 1) => ({
    name,
    start_date: blazarAt(start),
    end_date: blazarAt(start + dur),
    reservations: [{ resource_type: 'physical:host', min, max: min, hypervisor_properties: '', resource_properties: filter }],
  });
  try {
    process.stdout.write(`seeding ${HOSTS} hosts and ${LEASES} leases...\n`);
    let seed = await pool(HOSTS, 16, async (i) => must(await req('POST', '/v1/os-hosts', { name: `bench-${String(i).padStart(4, '0')}`, pool: 'bench', rack: `r${i % 40}`, vcpus: 32, memory_mb: 131072 }), 201).ms);
    record(`seed: ${HOSTS} host enrolments, concurrency 16`, `${(HOSTS / (seed.wall / 1000)).toFixed(0)} req/s, p50 ${ms(pct(seed.lat, 50))}`);
    // Existing leases: 1-8 hour windows spread over the next year.
    seed = await pool(LEASES, 16, async (i) => must(await req('POST', '/v1/leases', lease(`seed-${i}`, 1440 + ((i * 7919) % 525_000), 60 * (1 + (i % 8)))), 201).ms);
    record(`seed: ${LEASES} lease creates, concurrency 16`, `${(LEASES / (seed.wall / 1000)).toFixed(0)} req/s, p50 ${ms(pct(seed.lat, 50))}, p99 ${ms(pct(seed.lat, 99))}`);

    // Creates at concurrency 1: latency and DynamoDB work per create (auth included).
    dynamoStats.reset();
    dynamoStats.measureCapacity = true;
    const N1 = 200;
    const c1 = await pool(N1, 1, async (i) => must(await req('POST', '/v1/leases', lease(`c1-${i}`, 600_000 + i * 120, 60)), 201).ms);
    dynamoStats.measureCapacity = false;
    record(`POST /v1/leases, concurrency 1 (n=${N1})`, `p50 ${ms(pct(c1.lat, 50))}, p99 ${ms(pct(c1.lat, 99))}, ${(N1 / (c1.wall / 1000)).toFixed(1)} req/s`);
    record('  DynamoDB calls per create', [...dynamoStats.calls.entries()].map(([k, v]) => `${k.replace('Command', '')} ${(v / N1).toFixed(2)}`).join(', '));
    record('  capacity units per create (DynamoDB Local)', `read ${(dynamoStats.readUnits / N1).toFixed(1)}, write ${(dynamoStats.writeUnits / N1).toFixed(1)}; ${(dynamoStats.transactItems / N1).toFixed(1)} transaction items`);

    // Creates at concurrency 16.
    dynamoStats.reset();
    const N16 = 400;
    const c16 = await pool(N16, 16, async (i) => must(await req('POST', '/v1/leases', lease(`c16-${i}`, 700_000 + i * 120, 60)), 201).ms);
    record(`POST /v1/leases, concurrency 16 (n=${N16})`, `p50 ${ms(pct(c16.lat, 50))}, p99 ${ms(pct(c16.lat, 99))}, ${(N16 / (c16.wall / 1000)).toFixed(1)} req/s`);
    record('  transactions per create (retries after lost races)', ((dynamoStats.calls.get('TransactWriteItemsCommand') ?? 0) / N16).toFixed(2));

    // Contention: 24 requests for 3 free hosts in one window.
    for (let i = 0; i < 3; i++) must(await req('POST', '/v1/os-hosts', { name: `hot-${i}`, pool: 'hot' }), 201);
    const hot = JSON.stringify(['==', '$pool', 'hot']);
    dynamoStats.reset();
    const tc = performance.now();
    const race = await Promise.all(
      Array.from({ length: 24 }, (_, i) =>
        req('POST', '/v1/leases', { name: `hot-${i}`, start_date: blazarAt(800_000), end_date: blazarAt(800_060), reservations: [{ resource_type: 'physical:host', min: 1, max: 1, hypervisor_properties: '', resource_properties: hot }] }),
      ),
    );
    record(
      '24 parallel creates for 3 free hosts',
      `${race.filter((r) => r.status === 201).length} x 201, ${race.filter((r) => r.status === 409).length} x 409 in ${ms(performance.now() - tc)}; ${dynamoStats.calls.get('TransactWriteItemsCommand') ?? 0} transactions`,
    );

    // Large leases: one transaction (90 hosts) and stepwise (200 hosts).
    for (const [i, n] of [90, Math.min(200, HOSTS)].entries()) {
      const r = must(await req('POST', '/v1/leases', lease(`big-${n}`, 900_000 + i * 120, 60, n)), 201);
      record(`POST /v1/leases for ${n} hosts`, ms(r.ms));
    }

    // Lists.
    const listing = async (label: string, path: string, n = 10) => {
      const lat: number[] = [];
      let body: any;
      for (let i = 0; i < n; i++) {
        const r = must(await req('GET', path), 200);
        lat.push(r.ms);
        body = r.body;
      }
      record(label, `p50 ${ms(pct(lat, 50))}, p99 ${ms(pct(lat, 99))}`);
      return body;
    };
    const first = await listing(`GET /v1.1/admin/leases?limit=50 (${LEASES + N1 + N16 + 29} leases)`, '/v1.1/admin/leases?limit=50');
    await listing('GET /v1.1/admin/leases?limit=50&marker=<next>', `/v1.1/admin/leases?limit=50&marker=${first.markers.next}`);
    await listing('GET /v1.1/admin/leases?limit=50&sort_by=-start_date', '/v1.1/admin/leases?limit=50&sort_by=-start_date');
    await listing(`GET /v1.1/admin/nodes?limit=50 (${HOSTS + 3} nodes)`, '/v1.1/admin/nodes?limit=50');
    // Ironic lists read the whole inventory and page it in memory: the cost to watch there.
    const ironicFirst = await listing(`GET /v1/nodes?limit=50 (Ironic, ${HOSTS + 3} nodes)`, '/v1/nodes?limit=50');
    await listing('GET /v1/nodes?limit=50&marker=<last>', `/v1/nodes?limit=50&marker=${ironicFirst.nodes.at(-1).uuid}`);
    await listing('GET /v1/nodes/detail?sort_key=name&limit=50', '/v1/nodes/detail?sort_key=name&limit=50');
    await listing('GET /v1/leases (Blazar, whole list)', '/v1/leases', 3);
    await listing('GET /v1/os-hosts (Blazar, whole list)', '/v1/os-hosts', 3);
    const one = first.leases[0].id;
    await listing('GET /v1/leases/{id}', `/v1/leases/${one}`, 100);
  } finally {
    await stack.stop();
    rmSync(dir, { recursive: true, force: true });
  }

  // Every Lambda bundle as CDK packages it: size and import time (test/bench/bundles.ts).
  await bundlesBench(record);

  if (only !== 'booking') {
    await agentBench(record);
    await lifecycleBench(record);
    await drydockBench(record);
  }

  const w = Math.max(...rows.map(([k]) => k.length));
  process.stdout.write(`\nSlipway bench (${new Date().toISOString()}, Node ${process.version}, ${HOSTS} hosts, ${LEASES} leases)\n`);
  for (const [k, v] of rows) process.stdout.write(`${k.padEnd(w)}  ${v}\n`);
}

async function runOnly(name: string, bench: (record: (k: string, v: string) => void) => Promise<void>): Promise<void> {
  const rows: [string, string][] = [];
  await bench((k, v) => {
    rows.push([k, v]);
    process.stdout.write(`  ${k}: ${v}\n`);
  });
  const w = Math.max(...rows.map(([k]) => k.length));
  process.stdout.write(`\nSlipway ${name} bench (${new Date().toISOString()}, Node ${process.version})\n`);
  for (const [k, v] of rows) process.stdout.write(`${k.padEnd(w)}  ${v}\n`);
}

main().catch((err) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
