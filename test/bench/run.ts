import { loadavg } from 'node:os';
import { bookingBench } from './booking.ts';
import { agentBench } from './agent.ts';
import { bundlesBench } from './bundles.ts';
import { drydockBench } from './drydock.ts';
import { lifecycleBench } from './lifecycle.ts';
import { machinesBench } from './machines.ts';
import { memoryBench } from './memory.ts';
import { tenantBench } from './tenant.ts';
import { hotBench } from './hot.ts';
import { listsDdcommBench } from './lists-ddcomm.ts';

/**
 * `npm run bench`: figures, not pass/fail (issue 2 §10), as one table. The booking part
 * (test/bench/booking.ts) runs a local stack in this process (so the DynamoDB middleware
 * counters see every call) per fleet size, then the other parts.
 */
process.env.SLIPWAY_LOG_LEVEL = 'error';

/**
 * `npm run bench` runs every part but the QEMU ones (machines, tenant) and prints one table:
 * booking at the fleet sizes the flags pick, bundles, agent, lifecycle, drydock, ddcomm, hot and
 * memory (about 15 minutes at `--large`). `npm run bench -- booking`, `-- agent`,
 * `-- lifecycle`, `-- drydock`, `-- bundles` (sizes and import times of the Lambda bundles) or
 * `-- machines` (QEMU VMs: minutes) runs one.
 * `npm run bench -- tenant` (QEMU VMs: minutes): leases of 1 and 5 VMs naming an image, start → active, end → erased.
 * `npm run bench -- memory`: `npm start` (and `-- --bundled`) and `npm run agent` at rest, each process group's PSS and RSS (test/bench/memory.ts).
 * `npm run bench -- hot`: `GET /v1/nodes/{uuid}` at 16 connections, Slipway beside Debian's ironic-api (test/bench/hot.ts).
 * `npm run bench -- ddcomm`: Drydock task/design and Commissaire host list pages at 100 and 10,000 items (test/bench/lists-ddcomm.ts).
 */
const args = process.argv.slice(2);
/** The part to run: the first argument that is neither a flag nor a flag's value. */
const only = args.find((a, i) => !a.startsWith('--') && args[i - 1] !== '--fleet');
/**
 * Fleet sizes (hosts) of the booking part: `--fleet 1000,10000`, or `--large` for 1,000 and
 * 10,000 (issue 16's two sizes), else BENCH_HOSTS (default 1,000). Leases: BENCH_LEASES, else
 * five per host (5,000 and 50,000). The fleet is seeded straight into DynamoDB Local
 * (test/bench/fleet.ts); what is measured goes over HTTP.
 */
const fleetArg = args[args.indexOf('--fleet') + 1];
const FLEETS: number[] = args.includes('--fleet') && fleetArg
  ? fleetArg.split(',').map(Number)
  : args.includes('--large')
    ? [1000, 10_000]
    : [Number(process.env.BENCH_HOSTS ?? 1000)];
const LEASES = process.env.BENCH_LEASES === undefined ? undefined : Number(process.env.BENCH_LEASES);

async function main() {
  if (only === 'agent') return runOnly('agent', agentBench);
  if (only === 'lifecycle') return runOnly('lifecycle', lifecycleBench);
  if (only === 'drydock') return runOnly('drydock', drydockBench);
  if (only === 'machines') return runOnly('machines', machinesBench);
  if (only === 'bundles') return runOnly('bundles', bundlesBench);
  if (only === 'tenant') return runOnly('tenant', tenantBench);
  if (only === 'memory') return runOnly('memory', memoryBench);
  if (only === 'hot') return runOnly('hot', hotBench);
  if (only === 'ddcomm') return runOnly('ddcomm', listsDdcommBench);
  const rows: [string, string][] = [];
  const record = (k: string, v: string) => {
    rows.push([k, v]);
    process.stdout.write(`  ${k}: ${v}\n`);
  };
  for (const hosts of FLEETS) await bookingBench(record, hosts, LEASES ?? hosts * 5);
  if (only === 'booking') return printTable(rows, `${FLEETS.join(' and ')} hosts`);

  // Every Lambda bundle as CDK packages it: size and import time (test/bench/bundles.ts).
  await bundlesBench(record);

  if (only !== 'booking') {
    await agentBench(record);
    await lifecycleBench(record);
    await drydockBench(record);
    // Issue 16's other parts, so that one run prints one table of all of them.
    await listsDdcommBench(record);
    await hotBench(record);
    await memoryBench(record);
  }

  printTable(rows, `${FLEETS.join(' and ')} hosts`);
}

function printTable(rows: [string, string][], what: string): void {
  const w = Math.max(...rows.map(([k]) => k.length));
  process.stdout.write(`\nSlipway bench (${new Date().toISOString()}, Node ${process.version}, ${what}; load average ${loadavg().map((x) => x.toFixed(2)).join(' ')})\n`);
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
