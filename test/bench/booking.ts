import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dynamoStats, makeDynamo } from '#aws/dynamo/client.ts';
import { DynamoNodeRepository } from '#aws/dynamo/nodes.ts';
import { DEFAULT_TABLE_NAME } from '#aws/dynamo/schema.ts';
import { overlapping } from '#core/inventory/node.ts';
import { startLocalStack } from '../../infra/local/stack.ts';
import { processCpuMs } from './cpu.ts';
import { seedFleet } from './fleet.ts';

/**
 * Lease booking and the reads around it at one fleet size (issue 16): a fresh local stack in this
 * process, `hosts` enrolled hosts and `leases` existing leases seeded straight into DynamoDB
 * Local (test/bench/fleet.ts), then, over HTTP: one-host creates sequentially and at
 * concurrency 16, a 100-host lease, 16 clients racing for the last 4 free hosts, 50-item pages
 * and point lookups. Each row gives latency and the read and write units DynamoDB Local
 * reported for the requests (`dynamoStats`), per request.
 */
type Record = (k: string, v: string) => void;

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

/** Latency and DynamoDB units of `n` runs of `task` at concurrency `c`. */
async function measured(n: number, c: number, task: (i: number) => Promise<number>) {
  dynamoStats.reset();
  dynamoStats.measureCapacity = true;
  try {
    const r = await pool(n, c, task);
    return {
      ...r,
      perSecond: n / (r.wall / 1000),
      read: dynamoStats.readUnits / n,
      write: dynamoStats.writeUnits / n,
      transactions: (dynamoStats.calls.get('TransactWriteItemsCommand') ?? 0) / n,
    };
  } finally {
    dynamoStats.measureCapacity = false;
  }
}

const units = (m: { read: number; write: number }) => `read ${m.read.toFixed(1)} RU, write ${m.write.toFixed(1)} WU`;

export async function bookingBench(record: Record, hosts: number, leases: number): Promise<void> {
  const at = (s: string) => `[${hosts.toLocaleString('en-US')} hosts] ${s}`;
  const dir = mkdtempSync(join(tmpdir(), 'slipway-bench-'));
  const t0 = performance.now();
  const stack = await startLocalStack({ port: 0, dataDir: dir, ephemeral: true, adminToken: 'slp_bench-admin-token-00000000000' });
  record(at('local stack start (DynamoDB Local + s3rver + API)'), ms(performance.now() - t0));
  const H = { 'X-Auth-Token': stack.adminToken, 'Content-Type': 'application/json', 'X-OpenStack-Ironic-API-Version': '1.78' };
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
  const lease = (name: string, filter: string, start: number, dur: number, min = 1) => ({
    name,
    start_date: blazarAt(start),
    end_date: blazarAt(start + dur),
    reservations: [{ resource_type: 'physical:host', min, max: min, hypervisor_properties: '', resource_properties: filter }],
  });
  try {
    const ts = performance.now();
    const fleet = await seedFleet(stack.dynamoEndpoint, { hosts, leases, firstHostId: 1_000_000, tag: 'bench' });
    record(at(`seed: ${hosts} hosts + ${leases} leases (BatchWrite of the repositories' items)`), `${((performance.now() - ts) / 1000).toFixed(1)} s`);
    const filter = JSON.stringify(['==', '$fleet', fleet.tag]);

    // Warm-up: the first creates after a start run cold code in both this process and DynamoDB
    // Local's JVM: the first takes about 10x a warm one, and until about the hundredth a few still
    // take 2-3x (JIT compilation). They are reported on a row of their own and left out of the
    // rows below, which are a warm stack's, as a Lambda's and a table's are after their first
    // requests. BENCH_WARMUP_CREATES changes how many.
    const W = Number(process.env.BENCH_WARMUP_CREATES ?? 100);
    const warm = await pool(W, 1, async (i) => must(await req('POST', '/v1/leases', lease(`w-${i}`, filter, 590_000 + i * 120, 60)), 201).ms);
    record(at(`POST /v1/leases 1 host, the first ${W} after start (warm-up, not in the rows below)`), `first ${ms(warm.lat[0]!)}, then p50 ${ms(pct(warm.lat.slice(1), 50))}, max ${ms(Math.max(...warm.lat.slice(1)))}`);

    // One-host creates, sequential: latency and DynamoDB work per create (auth included).
    const N1 = 200;
    const c1 = await measured(N1, 1, async (i) => must(await req('POST', '/v1/leases', lease(`c1-${i}`, filter, 600_000 + i * 120, 60)), 201).ms);
    record(at(`POST /v1/leases 1 host, filter $fleet==, sequential (n=${N1})`), `p50 ${ms(pct(c1.lat, 50))}, p99 ${ms(pct(c1.lat, 99))}, ${c1.perSecond.toFixed(1)} req/s; ${units(c1)}`);
    const N0 = 100;
    const c0 = await measured(N0, 1, async (i) => must(await req('POST', '/v1/leases', lease(`c0-${i}`, '', 610_000 + i * 120, 60)), 201).ms);
    record(at(`POST /v1/leases 1 host, no filter, sequential (n=${N0})`), `p50 ${ms(pct(c0.lat, 50))}, p99 ${ms(pct(c0.lat, 99))}; ${units(c0)}`);

    // Concurrency 16.
    const N16 = 400;
    // Whose CPU the creates take: this process (the bench's client and the API) and DynamoDB Local's JVM.
    const cpu0 = { own: process.cpuUsage(), jvm: processCpuMs(stack.dynamoPid) };
    const c16 = await measured(N16, 16, async (i) => must(await req('POST', '/v1/leases', lease(`c16-${i}`, filter, 700_000 + i * 120, 60)), 201).ms);
    const own = process.cpuUsage(cpu0.own);
    record(
      at(`POST /v1/leases 1 host, concurrency 16 (n=${N16})`),
      `${c16.perSecond.toFixed(1)} req/s, p50 ${ms(pct(c16.lat, 50))}, p99 ${ms(pct(c16.lat, 99))}; ${units(c16)}; ${c16.transactions.toFixed(2)} transactions per create; ` +
        `CPU per create: this process ${ms((own.user + own.system) / 1000 / N16)}, DynamoDB Local ${ms((processCpuMs(stack.dynamoPid) - cpu0.jvm) / N16)}`,
    );

    // 100-host leases (more than one transaction: holds, lease, calendars).
    const big = await measured(3, 1, async (i) => must(await req('POST', '/v1/leases', lease(`big-${i}`, filter, 900_000 + i * 120, 60, 100)), 201).ms);
    record(at('POST /v1/leases 100 hosts (n=3)'), `p50 ${ms(pct(big.lat, 50))}, max ${ms(Math.max(...big.lat))}; ${units(big)}`);

    // Contention: 16 clients for the last 4 free hosts of a pool of 20 in one window.
    const hot = await seedFleet(stack.dynamoEndpoint, { hosts: 20, leases: 0, firstHostId: 2_000_000, tag: 'hot' });
    const hotFilter = JSON.stringify(['==', '$fleet', hot.tag]);
    must(await req('POST', '/v1/leases', lease('hot-16', hotFilter, 800_000, 60, 16)), 201);
    dynamoStats.reset();
    dynamoStats.measureCapacity = true;
    const tc = performance.now();
    const race = await Promise.all(Array.from({ length: 16 }, (_, i) => req('POST', '/v1/leases', lease(`hot-${i}`, hotFilter, 800_000, 60))));
    dynamoStats.measureCapacity = false;
    const wall = performance.now() - tc;
    const repo = new DynamoNodeRepository(makeDynamo({ tableName: DEFAULT_TABLE_NAME, endpoint: stack.dynamoEndpoint }));
    const nodes = await repo.getMany(hot.hosts.map((h) => h.id), true);
    const window = [new Date(race.find((r) => r.status === 201)?.body.lease.start_date ?? Date.now()), new Date(race.find((r) => r.status === 201)?.body.lease.end_date ?? Date.now())] as const;
    const doubly = nodes.filter((n) => overlapping(n, window[0], window[1], 0).length > 1).length;
    record(
      at('16 parallel 1-host creates for the last 4 free hosts'),
      `${race.filter((r) => r.status === 201).length} x 201, ${race.filter((r) => r.status === 409).length} x 409 in ${ms(wall)}; ${doubly} hosts booked twice; ` +
        `${dynamoStats.calls.get('TransactWriteItemsCommand') ?? 0} transactions; read ${(dynamoStats.readUnits / 16).toFixed(1)} RU per request`,
    );

    // Page reads and point lookups: 10 runs each, units per request.
    const read = async (label: string, path: string, n = 10) => {
      const m = await measured(n, 1, async () => must(await req('GET', path), 200).ms);
      record(at(label), `p50 ${ms(pct(m.lat, 50))}, p99 ${ms(pct(m.lat, 99))}; read ${m.read.toFixed(1)} RU`);
      return (await req('GET', path)).body;
    };
    const first = await read('GET /v1/nodes?limit=50 (Ironic)', '/v1/nodes?limit=50');
    await read('GET /v1/nodes?limit=50&marker=<last>', `/v1/nodes?limit=50&marker=${first.nodes.at(-1).uuid}`);
    await read('GET /v1/nodes?limit=50&provision_state=enroll', '/v1/nodes?limit=50&provision_state=enroll');
    await read('GET /v1/nodes?limit=50&maintenance=true (not indexed: bounded)', '/v1/nodes?limit=50&maintenance=true', 3);
    await read('GET /v1/ports?limit=50 (Ironic)', '/v1/ports?limit=50');
    const leasesPage = await read('GET /v1.1/admin/leases?limit=50 (native)', '/v1.1/admin/leases?limit=50');
    await read('GET /v1.1/admin/leases?limit=50&marker=<next>', `/v1.1/admin/leases?limit=50&marker=${leasesPage.markers.next}`);
    await read('GET /v1.1/admin/nodes?limit=50 (native)', '/v1.1/admin/nodes?limit=50');
    await read('GET /v1/leases?name=<name> (Blazar, name index)', '/v1/leases?name=c1-7');
    await read('GET /v1/nodes/<name> (node by name)', `/v1/nodes/${fleet.hosts[7]!.name}`);
    await read('GET /v1/os-hosts (Blazar, every host: the host index)', '/v1/os-hosts', 3);
  } finally {
    await stack.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
