import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from 'esbuild';
import { dynamoStats } from '#aws/dynamo/client.ts';
import { startLocalStack } from '../../infra/local/stack.ts';
import { functionNames } from '../../infra/routes.ts';

/**
 * `npm run bench`: figures, not pass/fail. Runs the local stack in this process (so DynamoDB
 * call counters are visible) and measures the booking path: latency percentiles, throughput
 * under parallel load, contention outcomes, DynamoDB calls per request, bundle sizes.
 */
process.env.SLIPWAY_LOG_LEVEL = 'error';

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};
const fmt = (ms: number) => `${ms.toFixed(1)} ms`;
const pad = (n: number) => String(n).padStart(2, '0');
const blazarIn = (min: number) => {
  const d = new Date(Math.floor((Date.now() + min * 60_000) / 60_000) * 60_000);
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}`;
};

async function main() {
  const dir = mkdtempSync(join(tmpdir(), 'slipway-bench-'));
  const t0 = performance.now();
  const stack = await startLocalStack({ port: 0, dataDir: dir, ephemeral: true, adminToken: 'slp_bench-admin-token-00000000000' });
  const startup = performance.now() - t0;
  const H = { 'X-Auth-Token': stack.adminToken, 'Content-Type': 'application/json' };
  const req = async (method: string, path: string, body?: unknown) => {
    const t = performance.now();
    const res = await fetch(`${stack.url}${path}`, { method, headers: H, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    return { status: res.status, ms: performance.now() - t, body: text ? JSON.parse(text) : undefined };
  };
  const rows: [string, string][] = [['local stack start (DynamoDB Local + s3rver + API)', fmt(startup)]];
  try {
    const HOSTS = 50;
    for (let i = 0; i < HOSTS; i++) await req('POST', '/v1/os-hosts', { name: `bench-${i}`, pool: 'bench', vcpus: 32, memory_mb: 131072 });
    const filter = JSON.stringify(['==', '$pool', 'bench']);
    const lease = (name: string, start: number, dur: number, min = 1) => ({
      name, start_date: blazarIn(start), end_date: blazarIn(start + dur),
      reservations: [{ resource_type: 'physical:host', min, max: min, hypervisor_properties: '', resource_properties: filter }],
    });

    // Sequential creates: latency and DynamoDB work per create.
    const N = 200;
    const lat: number[] = [];
    dynamoStats.reset();
    for (let i = 0; i < N; i++) {
      const r = await req('POST', '/v1/leases', lease(`seq-${i}`, 1440 + i * 60, 60));
      if (r.status !== 201) throw new Error(`create failed: ${r.status} ${JSON.stringify(r.body)}`);
      lat.push(r.ms);
    }
    const perCreate = [...dynamoStats.calls.entries()].map(([k, v]) => `${k} ${(v / N).toFixed(2)}`).join(', ');
    rows.push([`POST /v1/leases, 1 host of ${HOSTS}, sequential (n=${N})`, `p50 ${fmt(pct(lat, 50))}, p95 ${fmt(pct(lat, 95))}, p99 ${fmt(pct(lat, 99))}`]);
    rows.push(['  DynamoDB calls per create (incl. auth)', perCreate]);
    rows.push(['  transaction items per create', (dynamoStats.transactItems / N).toFixed(2)]);

    // Reads.
    const gets: number[] = [];
    const list = (await req('GET', '/v1/leases')).body.leases as { id: string }[];
    dynamoStats.reset();
    for (const l of list.slice(0, 100)) gets.push((await req('GET', `/v1/leases/${l.id}`)).ms);
    rows.push(['GET /v1/leases/{id} (n=100)', `p50 ${fmt(pct(gets, 50))}, p95 ${fmt(pct(gets, 95))}; DynamoDB calls/get ${([...dynamoStats.calls.values()].reduce((a, b) => a + b, 0) / 100).toFixed(2)}`]);
    const lists: number[] = [];
    for (let i = 0; i < 10; i++) lists.push((await req('GET', '/v1/leases')).ms);
    rows.push([`GET /v1/leases with ${list.length} leases (n=10)`, `p50 ${fmt(pct(lists, 50))}`]);

    // Parallel creates on disjoint windows: throughput.
    const P = 100;
    dynamoStats.reset();
    const tp = performance.now();
    const par = await Promise.all(Array.from({ length: P }, (_, i) => req('POST', '/v1/leases', lease(`par-${i}`, 20_000 + (i % 25) * 120, 60))));
    const wall = performance.now() - tp;
    const ok = par.filter((r) => r.status === 201).length;
    rows.push([`${P} parallel creates, 25 windows x 50 hosts`, `${ok} created, ${(P / (wall / 1000)).toFixed(0)} req/s, p50 ${fmt(pct(par.map((r) => r.ms), 50))}, p95 ${fmt(pct(par.map((r) => r.ms), 95))}`]);
    rows.push(['  DynamoDB calls per parallel create', [...dynamoStats.calls.entries()].map(([k, v]) => `${k} ${(v / P).toFixed(2)}`).join(', ')]);

    // Contention: 24 requests for 3 free hosts in one window.
    for (let i = 0; i < 3; i++) await req('POST', '/v1/os-hosts', { name: `hot-${i}`, pool: 'hot' });
    const hot = JSON.stringify(['==', '$pool', 'hot']);
    dynamoStats.reset();
    const tc = performance.now();
    const race = await Promise.all(
      Array.from({ length: 24 }, (_, i) =>
        req('POST', '/v1/leases', { name: `hot-${i}`, start_date: blazarIn(30_000), end_date: blazarIn(30_060), reservations: [{ resource_type: 'physical:host', min: 1, max: 1, hypervisor_properties: '', resource_properties: hot }] }),
      ),
    );
    const won = race.filter((r) => r.status === 201).length;
    rows.push([
      '24 parallel creates for 3 hosts (contention)',
      `${won} x 201, ${race.filter((r) => r.status === 409).length} x 409 in ${fmt(performance.now() - tc)}; TransactWriteItems attempts ${dynamoStats.calls.get('TransactWriteItemsCommand') ?? 0}`,
    ]);

    // A 40-host lease (one transaction).
    const big = await req('POST', '/v1/leases', lease('big', 40_000, 60, 40));
    rows.push(['POST /v1/leases for 40 hosts', `${big.status} in ${fmt(big.ms)}`]);

    // Bundle sizes of the Lambda functions (ESM, minified, SDK external as on Lambda).
    for (const fn of [...functionNames.map((f) => `functions/api/${f}.ts`), 'functions/auth/authorizer.ts']) {
      const out = await build({ entryPoints: [fn], bundle: true, write: false, platform: 'node', format: 'esm', minify: true, target: 'node22', external: ['@aws-sdk/*'], mainFields: ['module', 'main'], metafile: false });
      rows.push([`bundle ${fn}`, `${(out.outputFiles[0]!.contents.length / 1024).toFixed(1)} KiB`]);
    }
  } finally {
    await stack.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  const w = Math.max(...rows.map(([k]) => k.length));
  process.stdout.write(`\nSlipway bench (${new Date().toISOString()}, Node ${process.version})\n`);
  for (const [k, v] of rows) process.stdout.write(`${k.padEnd(w)}  ${v}\n`);
}

main().catch((err) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
