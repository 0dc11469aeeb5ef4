/**
 * Drydock on real (virtual) machines, end to end: a site of three QEMU VMs behind Redfish
 * simulators, its agent with the boot service and an image cache, a local stack of its own, and
 * a design naming each node's `platform.image` and one boot action (test/support/vm-site.ts).
 *
 *   prepare_nodes → each VM network-boots the ramdisk and is inspected: properties, its PXE
 *                   port and the Blazar host facts a lease filter on memory_mb picks from;
 *   deploy_nodes  → the agent writes each node's image through the ramdisk (a filesystem image
 *                   on n01, a whole-disk image on n02), the VM boots its disk, the installed OS
 *                   fetches its bootdata with its key (302 to the presigned S3 URL), runs its unit,
 *                   which reports success; n03's image fails its sha256: partial_success;
 *   destroy_nodes → n01's key is revoked and its disk erased (read back: zeros), available.
 *
 * Needs qemu-system-x86, ipxe-qemu, socat, linux-image-cloud-amd64, busybox-static, e2fsprogs
 * (`bash scripts/system-packages.sh`); fails naming what is missing.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call } from '../support/api.ts';
import { prepareMachines, readAt } from '../support/machines.ts';
import { buildTestOsImage, type TestOsImage } from '../support/test-os.ts';
import { startVmSite, type VmSite } from '../support/vm-site.ts';

const run = promisify(execFile);
const MiB = 1024 ** 2;
const V = { 'X-OpenStack-Ironic-API-Version': '1.78' };
const NODES = [
  { name: 'n01', mac: '52:54:00:d0:00:01', memoryMb: 256, image: 'test-os' },
  { name: 'n02', mac: '52:54:00:d0:00:02', memoryMb: 352, image: 'test-os-disk' },
  { name: 'n03', mac: '52:54:00:d0:00:03', memoryMb: 256, image: 'broken' },
];

let site: VmSite;
let dir: string;
let fsImage: TestOsImage;
let diskImage: TestOsImage;

beforeAll(async () => {
  await prepareMachines();
  dir = mkdtempSync(join(tmpdir(), 'slipway-vm-drydock-'));
  fsImage = await buildTestOsImage(join(dir, 'fs'), { layout: 'filesystem' });
  diskImage = await buildTestOsImage(join(dir, 'disk'), { layout: 'disk' });
  // An image whose bytes are not what the catalog says (a download corrupted on the way).
  const broken = join(dir, 'broken.img');
  writeFileSync(broken, Buffer.alloc(MiB, 7));
  site = await startVmSite({
    name: 'vm-drydock',
    nodes: NODES,
    images: {
      'test-os': fsImage,
      'test-os-disk': diskImage,
      broken: { path: broken, sha256: createHash('sha256').update('something else').digest('hex') },
    },
    env: { SLIPWAY_BOOTACTION_FINAL_STATUS_SECONDS: '180' },
  });
}, 120_000);

afterAll(async () => {
  await site?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const node = async (name: string) => (await call('GET', `/v1/nodes/${name}`, { headers: V })).body;

/** A file of an ext2 filesystem on a raw disk image (at a byte offset), as debugfs reads it. */
async function debugfs(disk: string, offset: number, request: string): Promise<string> {
  const target = offset ? `${disk}?offset=${offset}` : disk;
  return (await run('debugfs', ['-R', request, target])).stdout;
}

describe('Drydock on VMs', () => {
  it('prepare_nodes inspects the nodes: properties, PXE ports and host facts; a lease filter on memory_mb picks the bigger one', { timeout: 300_000 }, async () => {
    const t0 = performance.now();
    const t = await site.finished((await site.createTask('prepare_nodes', ['n01', 'n02'])).task_id);
    console.log(`prepare_nodes (inspect) of 2 VMs: ${Math.round(performance.now() - t0)} ms`);
    expect(t.result, JSON.stringify(await site.messages(t.task_id))).toMatchObject({ status: 'success', failures: [] });
    expect(t.result.successes.sort()).toEqual(['n01', 'n02']);
    const [n1, n2] = [await node('n01'), await node('n02')];
    for (const [n, mb] of [
      [n1, 256],
      [n2, 352],
    ] as const) {
      expect(n).toMatchObject({ provision_state: 'manageable', properties: { cpus: 1, cpu_arch: 'x86_64', local_gb: 0 } });
      expect(n.inspection_finished_at).toBeTruthy();
      // MemTotal: RAM less what the firmware and the kernel keep.
      expect(n.properties.memory_mb).toBeLessThanOrEqual(mb);
      expect(n.properties.memory_mb).toBeGreaterThan(mb - 64);
    }
    const ports = (await call('GET', `/v1/nodes/n02/ports/detail`, { headers: V })).body.ports;
    expect(ports.map((p: any) => [p.address, p.pxe_enabled])).toEqual([[NODES[1]!.mac, true]]);
    // Build data, as upstream keeps what commissioning found.
    const build = (await call('GET', '/api/v1.0/nodes/n01/builddata')).body;
    expect(JSON.stringify(build)).toContain('inspect_hardware');

    // Enrolled with Blazar, the nodes carry the inspected facts: a lease asking for 300 MB or
    // more gets n02.
    const enrol = async (name: string) => {
      const res = await call('POST', '/v1/os-hosts', { body: { name } });
      expect(res.status, res.text).toBe(201);
      return res.body.host as { id: string; hypervisor_hostname: string; memory_mb: number; vcpus: number };
    };
    const h1 = await enrol('n01');
    const h2 = await enrol('n02');
    expect(h1).toMatchObject({ memory_mb: n1.properties.memory_mb, vcpus: 1 });
    expect(h2).toMatchObject({ memory_mb: n2.properties.memory_mb, vcpus: 1 });
    const start = new Date(Date.now() + 2 * 86_400_000);
    const fmt = (d: Date) => d.toISOString().slice(0, 16).replace('T', ' ');
    const lease = await call('POST', '/v1/leases', {
      body: {
        name: 'big-memory',
        start_date: fmt(start),
        end_date: fmt(new Date(start.getTime() + 3_600_000)),
        reservations: [{ resource_type: 'physical:host', min: 1, max: 1, hypervisor_properties: '', resource_properties: JSON.stringify(['>=', '$memory_mb', '300']) }],
      },
    });
    expect(lease.status, lease.text).toBe(201);
    const alloc = (await call('GET', `/v1/os-hosts/allocations?lease_id=${lease.body.lease.id}`)).body.allocations;
    expect(alloc.filter((a: any) => a.reservations.length > 0).map((a: any) => a.resource_id)).toEqual([h2.id]);
    expect((await call('DELETE', `/v1/leases/${lease.body.lease.id}`)).status).toBe(204);

    // Again: nothing to do, no VM boots (inspected nodes are not inspected again).
    const boots = site.vms.get('n01')!.starts;
    const again = await site.finished((await site.createTask('prepare_nodes', ['n01'])).task_id);
    expect(again.result.status).toBe('success');
    expect(await site.messages(again.task_id)).toContainEqual(expect.stringMatching(/^Node n01: inspected at .*; not inspected again$/));
    expect(site.vms.get('n01')!.starts).toBe(boots);
  });

  it('deploy_nodes writes each image, the installed OS runs its boot action and reports; a corrupt image fails its node: partial_success', { timeout: 400_000 }, async () => {
    const t0 = performance.now();
    const task = await site.finished((await site.createTask('deploy_nodes')).task_id, 360_000);
    console.log(`deploy_nodes of 2 VMs (+1 failing): ${Math.round(performance.now() - t0)} ms`);
    const messages = await site.messages(task.task_id);
    expect(task.result, JSON.stringify(messages)).toMatchObject({ status: 'partial_success', failures: ['n03'] });
    expect(task.result.successes.sort()).toEqual(['n01', 'n02']);
    // The agent refused the corrupt image before touching the node.
    expect(messages).toContainEqual(expect.stringMatching(/^Node n03: .*image "broken": sha256 mismatch \(expected [0-9a-f]{64}, got [0-9a-f]{64}\)/));
    expect(site.vms.get('n03')!.starts).toBe(0);
    const n3 = await node('n03');
    expect(n3.provision_state).toBe('deploy failed');
    expect(n3.last_error).toContain('sha256 mismatch');
    // Boot actions reported success from inside the VMs (the report's own message).
    for (const n of ['n01', 'n02']) {
      expect(messages).toContainEqual(expect.stringMatching(new RegExp(`^Node ${n}: image test-os(-disk)? written to /dev/vda \\(16\\.8 MB, [\\d.]+ MB/s, sha256 verified\\); booting from disk$`)));
      expect(messages).toContain(`hello from ${n}`);
      expect((await node(n)).provision_state).toBe('active');
    }
    for (const [n, vm] of site.vms) if (n !== 'n03') expect(vm.running, `${n} runs its installed OS`).toBe(true);

    // On the disks: the image's files, the config drive, and what the bootdata unpacked, with
    // the design's modes. n02's filesystem is in the partition at 1 MiB.
    for (const [n, offset] of [
      ['n01', 0],
      ['n02', MiB],
    ] as const) {
      const vm = site.vms.get(n)!;
      const disk = vm.disks[0]!;
      expect(await debugfs(disk, offset, 'cat /var/lib/hello')).toBe(`hello from ${n}\n`);
      expect(await debugfs(disk, offset, 'stat /usr/local/bin/hello.sh')).toMatch(/Mode: +0755/);
      expect(await debugfs(disk, offset, 'stat /etc/systemd/system/hello.service')).toMatch(/Mode: +0444/);
      expect(JSON.parse(await debugfs(disk, offset, 'cat /var/lib/cloud/seed/nocloud/meta-data'))).toMatchObject({ 'local-hostname': n });
      expect(await debugfs(disk, offset, 'stat /etc/slipway/bootaction')).toMatch(/Mode: +0600/);
    }
  });

  it('destroy_nodes revokes the key and erases the disk before the node is available', { timeout: 300_000 }, async () => {
    const vm = site.vms.get('n01')!;
    const info = (await call('GET', '/api/v1.0/bootactions/nodes/n01')).body;
    const t0 = performance.now();
    const t = await site.finished((await site.createTask('destroy_nodes', ['n01'])).task_id);
    console.log(`destroy_nodes (erase a 64 MiB disk) of 1 VM: ${Math.round(performance.now() - t0)} ms`);
    expect(t.result, JSON.stringify(await site.messages(t.task_id))).toMatchObject({ status: 'success', successes: ['n01'] });
    expect(vm.running).toBe(false);
    const disk = vm.disks[0]!;
    for (let at = 0; at < 64 * MiB; at += 8 * MiB) expect(readAt(disk, 8 * MiB, at).every((b) => b === 0), `bytes ${at}…`).toBe(true);
    expect(await node('n01')).toMatchObject({ provision_state: 'available', maintenance: false });
    const gone = await fetch(`${site.stack.url}/api/v1.0/bootactions/nodes/n01/files`, { headers: { 'X-Bootaction-Key': info.action_key }, redirect: 'manual' });
    expect(gone.status).toBe(404);
  });
});
