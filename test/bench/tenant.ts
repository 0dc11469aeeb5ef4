import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { call, tokenFor, unique } from '../support/api.ts';
import { blazarIn, hostReservation } from '../support/fixtures.ts';
import { prepareMachines } from '../support/machines.ts';
import { buildTestOsImage } from '../support/test-os.ts';
import { enrolNodes, startVmSite, type VmNodeSpec, type VmSite } from '../support/vm-site.ts';

/**
 * `npm run bench -- tenant` (issue "Reserve, deploy, use, give back clean"): a project's lease
 * of 1, then 5 QEMU VMs (BENCH_TENANT, default `1,5`) naming an image (`slipway:image`, the test
 * OS as a BENCH_IMAGE_MB (default 64) MiB filesystem image; disks of BENCH_DISK_MB, default 128),
 * on one site whose nodes are enrolled once. Per node and for the set:
 *
 * - lease start → node `active`: the lease is created to start now → the node's provision state
 *   is `active` (the start event's deploy: power on from the network, the ramdisk writes and
 *   verifies the image, the disk boots); the set's time is until every node is `active` and the
 *   lease `ACTIVE`;
 * - lease end → node `available`: `end_date` set to now → the node is back in the pool (the end
 *   event's erase: power on from the network, the ramdisk zeroes the disk, reads a sample back,
 *   powers off); the set's time is until every node is `available` and the lease `TERMINATED`.
 *
 * The site's one agent runs its default 4 jobs at once: with 5 nodes the fifth deploy and erase
 * wait for a slot. Node states are polled every 250 ms, so figures are that coarse. TCG (no KVM):
 * figures of the control path and of emulated I/O, not of real hardware.
 */
const MiB = 1024 ** 2;
const GiB = 1024 ** 3;
const V = { 'X-OpenStack-Ironic-API-Version': '1.78' };

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor((s.length - 1) / 2)]! : NaN;
};
const range = (xs: number[], digits = 1) =>
  xs.length === 0 ? 'n/a' : xs.length === 1 ? xs[0]!.toFixed(digits) : `${median(xs).toFixed(digits)} (${Math.min(...xs).toFixed(digits)}–${Math.max(...xs).toFixed(digits)})`;

export async function tenantBench(record: (k: string, v: string) => void): Promise<void> {
  process.env.SLIPWAY_LOG_LEVEL = 'error';
  await prepareMachines();
  const counts = (process.env.BENCH_TENANT ?? '1,5').split(',').map(Number);
  if (counts.some((n) => !Number.isInteger(n) || n < 1 || n > 9)) throw new RangeError(`BENCH_TENANT: whole numbers of VMs from 1 to 9, not ${process.env.BENCH_TENANT}`);
  const diskMb = Number(process.env.BENCH_DISK_MB ?? 128);
  const imageMb = Number(process.env.BENCH_IMAGE_MB ?? 64);
  const dir = mkdtempSync(join(tmpdir(), 'slipway-bench-tenant-'));
  let site: VmSite | undefined;
  try {
    const image = await buildTestOsImage(join(dir, 'os'), { layout: 'filesystem', sizeMb: imageMb });
    record('image', `test OS, ${imageMb} MiB filesystem image (slipway:image), sha256 ${image.sha256.slice(0, 12)}…; disks ${diskMb} MiB; 256 MB, 1 vCPU per VM (TCG)`);
    const nodes: VmNodeSpec[] = Array.from({ length: Math.max(...counts) }, (_, i) => ({
      name: `l${String(i + 1).padStart(2, '0')}`,
      mac: `52:54:00:1e:00:${(i + 1).toString(16).padStart(2, '0')}`,
      diskMb,
    }));
    site = await startVmSite({ name: 'bench-tenant', nodes, images: { os: image } });
    await enrolNodes(site, nodes.map((n) => n.name), { pool: 'bench-tenant' });
    // Warm the agent's image cache (hashing a file:// image is the agent's work once, not each node's).
    await site.netboot.images!.ensure('os');
    const member = await tokenFor('member');
    for (const n of counts) await oneLease(site, n, member.token, diskMb, record);
  } finally {
    await site?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function oneLease(site: VmSite, n: number, token: string, diskMb: number, record: (k: string, v: string) => void): Promise<void> {
  const t0 = performance.now();
  const created = await call('POST', '/v1/leases', {
    token,
    body: {
      name: unique('bench-tenant'),
      start_date: 'now',
      end_date: blazarIn(120),
      reservations: [hostReservation(JSON.stringify(['==', '$pool', 'bench-tenant']), n, n, { 'slipway:image': 'os' })],
      events: [],
    },
  });
  if (created.status !== 201) throw new Error(`lease of ${n}: ${created.status} ${created.text}`);
  const id = created.body.lease.id as string;
  // The lessee's own view names its nodes (granted at the start, before they deploy).
  const mine = async () => ((await call('GET', '/v1/nodes', { token, headers: V })).body.nodes as { name: string }[]).map((x) => x.name);
  const started = await until(id, 'ACTIVE', 'active', t0, n, mine);
  const names = [...started.at.keys()].sort();
  record(`${n} VM(s): lease start → node active`, `${range([...started.at.values()])} s per node; all active, lease ACTIVE ${started.wall.toFixed(1)} s`);

  const t1 = performance.now();
  const end = await call('PUT', `/v1/leases/${id}`, { token, body: { end_date: 'now' } });
  if (end.status !== 200) throw new Error(`ending the lease of ${n}: ${end.status} ${end.text}`);
  const ended = await until(id, 'TERMINATED', 'available', t1, n, async () => names);
  // The ramdisk's own erase timing (zero, fsync, sample read back), from each node's console.
  const erase = names.flatMap((name) => {
    const m = [...site.vms.get(name)!.console().matchAll(/slipway-ramdisk: erased \/dev\/\w+ \(.*?\) in ([\d.]+) s/g)].at(-1);
    return m ? [Number(m[1]) / ((diskMb * MiB) / GiB)] : [];
  });
  record(`${n} VM(s): lease end → node available (erased)`, `${range([...ended.at.values()])} s per node; all available, lease TERMINATED ${ended.wall.toFixed(1)} s; erase ${range(erase)} s per GiB`);
}

/**
 * Polls the lease and its `n` nodes (named by `nodesOf`) every 250 ms until each node is `state`
 * and the lease `status`: when each node got there (s since `t0`), and the wall time. A node that
 * failed (`deploy failed`, `clean failed`) or a lease in ERROR ends the bench with the reason.
 */
async function until(leaseId: string, status: string, state: string, t0: number, n: number, nodesOf: () => Promise<string[]>, ms = 900_000): Promise<{ at: Map<string, number>; wall: number }> {
  const at = new Map<string, number>();
  const deadline = Date.now() + ms;
  let names: string[] = [];
  for (;;) {
    const lease = (await call('GET', `/v1/leases/${leaseId}`)).body.lease;
    if (lease.status === 'ERROR') throw new Error(`lease ${leaseId} ERROR: ${JSON.stringify(lease.events)}`);
    if (names.length < n) names = await nodesOf();
    const nodes = await Promise.all(names.map(async (name) => (await call('GET', `/v1/nodes/${name}`, { headers: V })).body as { name: string; provision_state: string; last_error: string | null }));
    for (const node of nodes) {
      if (/failed/.test(node.provision_state)) throw new Error(`node ${node.name} ${node.provision_state}: ${node.last_error}`);
      if (node.provision_state === state && !at.has(node.name)) at.set(node.name, (performance.now() - t0) / 1000);
    }
    if (lease.status === status && names.length === n && at.size === n) return { at, wall: (performance.now() - t0) / 1000 };
    if (Date.now() > deadline) throw new Error(`lease ${leaseId} still ${lease.status} after ${ms} ms, nodes ${JSON.stringify(nodes)}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}
