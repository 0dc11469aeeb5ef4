/**
 * Issue "Reserve, deploy, use, give back clean", end to end on QEMU VMs behind Redfish
 * simulators, with the real Debian `baremetal` client (python3-ironicclient) where a user types:
 *
 *   project A: one lease of two VMs, t1 as it is and t2 with an image (`slipway:image` on its
 *              reservation). At the start the lease deploys t2 while A's member, on t1,
 *              `baremetal node set --instance-info image_source=test-os` and `node deploy
 *              --config-drive '{meta_data, user_data}' --wait` → active: the installed OS ran the
 *              user data (a marker with its hostname) and took the key; t2's disk holds the image;
 *              the lease is ACTIVE once t2 is `active`;
 *   project B: cannot see, deploy or power them; A's reader cannot deploy them;
 *   project A: `baremetal node undeploy t1 --wait` → available, the disk (marker and all) zeros;
 *   project C (meanwhile, on a VM whose disk cannot be written): its lease ends, the erase
 *              fails: the node is `clean failed` in maintenance with the reason, the lease
 *              TERMINATED with a note; its next lease (min=max=1) gets the other node of the pool;
 *   project A: the lease ends early (end_date now): both nodes erased again (t2's image read back
 *              as zeros), both `available`, the lease TERMINATED;
 *   project B: a lease starting inside the cleaning gap after it is refused (409, the reason);
 *              one starting after the gap gets both nodes.
 *
 * The stack's clock is a TestClock so that the cleaning gap (10 minutes) is jumped over, not
 * waited for; it is moved only once every job has finished (a job's claim runs on it). At most
 * three VMs run at once (t4 is enrolled, never powered on). The local stack, agent, boot service
 * and VMs come from test/support/vm-site.ts.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { explain, runCommand } from '../contract/clients.ts';
import { call, tokenFor, unique } from '../support/api.ts';
import { TestClock } from '../support/clock.ts';
import { blazarIn, hostReservation } from '../support/fixtures.ts';
import { prepareMachines, readAt } from '../support/machines.ts';
import { buildTestOsImage, TEST_OS_INIT } from '../support/test-os.ts';
import { enrolNodes, startVmSite, type VmNodeSpec, type VmSite } from '../support/vm-site.ts';
import { waitFor } from '../support/wait.ts';

const run = promisify(execFile);
const MiB = 1024 ** 2;
const V = { 'X-OpenStack-Ironic-API-Version': '1.78' };
const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHtenantkeyforthevmtest tenant@a';
const GAP_MINUTES = 10;
const POOL_A = JSON.stringify(['==', '$pool', 'tenant-a']);
const POOL_SPARE = JSON.stringify(['==', '$pool', 'tenant-spare']);
const NODES: VmNodeSpec[] = [
  { name: 't1', mac: '52:54:00:7e:00:01' },
  { name: 't2', mac: '52:54:00:7e:00:02' },
  // Every write to its disk fails: its erase fails.
  { name: 't3', mac: '52:54:00:7e:00:03', diskMb: 8, failWrites: true },
  // The spare the next lease gets; nothing powers it on.
  { name: 't4', mac: '52:54:00:7e:00:04', diskMb: 8 },
];

const clock = new TestClock();
let site: VmSite;
let dir: string;
let a: { token: string; project: string };
let aReader: { token: string };
let b: { token: string; project: string };
let c: { token: string; project: string };
let leaseA: string;
/** Project C's failing erase, run beside A's tests 2 and 3 (started in test 2, awaited in test 4). */
let failing: Promise<FailingErase> | undefined;

/** The real `baremetal` client with a token (no Keystone here: admin_token auth). */
const baremetal = (token: string, args: string[], timeoutMs = 30_000) =>
  runCommand('baremetal', ['--os-auth-type', 'admin_token', '--os-endpoint', site.stack.url, '--os-token', token, '--os-baremetal-api-version', '1.78', ...args], { env: {}, timeoutMs });

const node = async (name: string) => (await call('GET', `/v1/nodes/${name}`, { headers: V })).body;
const lease = async (id: string) => (await call('GET', `/v1/leases/${id}`)).body.lease;
const visibleTo = async (token: string) => ((await call('GET', '/v1/nodes', { token, headers: V })).body.nodes as { name: string }[]).map((n) => n.name).sort();
const debugfs = async (disk: string, request: string) => (await run('debugfs', ['-R', request, disk])).stdout;
const ms = (t0: number) => `${Math.round(performance.now() - t0)} ms`;
/** A Blazar date (`2030-01-06T09:00:00.000000`, naive UTC) as epoch ms. */
const epoch = (blazar: string) => Date.parse(`${blazar.slice(0, 19)}Z`);
/** A lease filter naming one host. */
const host = (name: string) => JSON.stringify(['==', '$hypervisor_hostname', name]);
const mac = (name: string) => NODES.find((n) => n.name === name)!.mac;
const consoles = (names: string[]) => names.map((n) => `--- ${n}\n${site.vms.get(n)!.console().slice(-2000)}`).join('\n');

async function createLease(token: string, filter: string, n: number, extra: Record<string, unknown> = {}, start = 'now'): Promise<{ status: number; body: any; text: string }> {
  return call('POST', '/v1/leases', {
    token,
    body: { name: unique('tenant'), start_date: start, end_date: blazarIn(120, clock.now().getTime()), reservations: [hostReservation(filter, n, n, extra)], events: [] },
  });
}

/** Waits for the lease's status (throws at once on ERROR, with the events' reasons). */
async function leaseStatus(id: string, status: string, timeoutMs: number): Promise<any> {
  return waitFor(`lease ${id} ${status}`, async () => {
    const l = await lease(id);
    if (l.status === 'ERROR' && status !== 'ERROR') throw new Error(`lease ${id} ERROR: ${JSON.stringify(l.events)}`);
    return l.status === status ? l : undefined;
  }, timeoutMs, 250);
}

/** Every byte of the first 64 MiB of the disk is zero (readAt gives 0xff past a file's end). */
function expectZeros(disk: string, label: string): void {
  for (let at = 0; at < 64 * MiB; at += 8 * MiB) expect(readAt(disk, 8 * MiB, at).every((x) => x === 0), `${label}: bytes ${at}…`).toBe(true);
}

interface FailingErase {
  first: any;
  t3: any;
  next: any;
  visible: string[];
}

/**
 * Project C leases t3 (min=max=1), ends it at once: the end erases t3, whose disk refuses every
 * write. Then C's next lease (min=max=1) on the pool of t3 and t4.
 */
async function failingErase(): Promise<FailingErase> {
  const t0 = performance.now();
  const created = await createLease(c.token, host('t3'), 1);
  if (created.status !== 201) throw new Error(`C's lease: ${created.status} ${created.text}`);
  await leaseStatus(created.body.lease.id, 'ACTIVE', 30_000);
  const early = await call('PUT', `/v1/leases/${created.body.lease.id}`, { token: c.token, body: { end_date: 'now' } });
  if (early.status !== 200) throw new Error(`ending C's lease: ${early.status} ${early.text}`);
  const first = await leaseStatus(created.body.lease.id, 'TERMINATED', 180_000).catch((err: Error) => {
    throw new Error(`${err.message}\n${site.vms.get('t3')!.console().slice(-3000)}`);
  });
  console.log(`lease end → erase failed, node in maintenance, lease TERMINATED: ${ms(t0)}`);
  const t3 = await node('t3');
  const again = await createLease(c.token, POOL_SPARE, 1);
  if (again.status !== 201) throw new Error(`C's next lease: ${again.status} ${again.text}`);
  const next = await leaseStatus(again.body.lease.id, 'ACTIVE', 30_000);
  return { first, t3, next, visible: await visibleTo(c.token) };
}

beforeAll(async () => {
  await prepareMachines();
  dir = mkdtempSync(join(tmpdir(), 'slipway-vm-tenant-'));
  const image = await buildTestOsImage(join(dir, 'os'), { layout: 'filesystem' });
  site = await startVmSite({ name: 'vm-tenant', nodes: NODES, images: { 'test-os': image }, env: { SLIPWAY_CLEANING_MINUTES: String(GAP_MINUTES) }, clock });
  await Promise.all([enrolNodes(site, ['t1', 't2'], { pool: 'tenant-a' }), enrolNodes(site, ['t3', 't4'], { pool: 'tenant-spare' })]);
  a = await tokenFor('member');
  aReader = await tokenFor('reader', a.project);
  b = await tokenFor('member');
  c = await tokenFor('member');
}, 180_000);

afterAll(async () => {
  await failing?.catch(() => undefined);
  await site?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('reserve, deploy, use, give back clean: leased VMs with the baremetal client', () => {
  it("one lease, two VMs: the member deploys t1 with its config drive, the lease deploys t2 with its image; ACTIVE once t2 is active", { timeout: 300_000 }, async () => {
    const t0 = performance.now();
    const created = await call('POST', '/v1/leases', {
      token: a.token,
      body: {
        name: unique('tenant'),
        start_date: 'now',
        end_date: blazarIn(120, clock.now().getTime()),
        reservations: [hostReservation(host('t1'), 1, 1), hostReservation(host('t2'), 1, 1, { 'slipway:image': 'test-os' })],
        events: [],
      },
    });
    expect(created.status, created.text).toBe(201);
    leaseA = created.body.lease.id;
    // The start grants both nodes before it deploys t2: the member may deploy t1 meanwhile.
    await waitFor('t1 granted to A', async () => (await visibleTo(a.token)).includes('t1'), 30_000);
    const set = await baremetal(a.token, ['node', 'set', 't1', '--instance-info', 'image_source=test-os']);
    expect(set.code, explain(set)).toBe(0);
    const drive = JSON.stringify({ meta_data: { hostname: 'tenant-web', public_keys: { a: KEY } }, user_data: '#!/bin/sh\necho "marker-$(hostname)" > /root/marker\n' });
    const seen = new Set<string>();
    const [deploy, active] = await Promise.all([
      baremetal(a.token, ['node', 'deploy', 't1', '--config-drive', drive, '--wait', '240'], 260_000).then((r) => {
        console.log(`baremetal node deploy --config-drive --wait on a VM (beside the lease's deploy of another): ${ms(t0)}`);
        return r;
      }),
      // The lease's status, then t2's state (in that order: once ACTIVE is read, t2 must be active).
      waitFor('lease A ACTIVE', async () => {
        const l = await lease(leaseA);
        if (l.status === 'ERROR') throw new Error(`lease A ERROR: ${JSON.stringify(l.events)}`);
        seen.add(`${l.status} ${(await node('t2')).provision_state}`);
        return l.status === 'ACTIVE' ? l : undefined;
      }, 240_000, 250).then((l) => {
        console.log(`lease start → t2 deployed with slipway:image, lease ACTIVE: ${ms(t0)}`);
        return l;
      }),
    ]).catch((err: Error) => {
      throw new Error(`${err.message}\n${consoles(['t1', 't2'])}`);
    });
    expect(deploy.code, `${explain(deploy)}\n${consoles(['t1'])}`).toBe(0);
    // STARTING while t2 deployed; ACTIVE only with t2 active.
    expect([...seen].filter((x) => x.startsWith('STARTING ')), [...seen].join(', ')).toContain('STARTING wait call-back');
    expect([...seen].filter((x) => x.startsWith('ACTIVE ')), [...seen].join(', ')).toEqual(['ACTIVE active']);
    const start = active.events.find((e: any) => e.event_type === 'start_lease');
    expect(start.status).toBe('DONE');
    expect(start.status_reason ?? '').not.toMatch(/failed|not deployed/);
    expect(await visibleTo(a.token)).toEqual(['t1', 't2']);
    for (const name of ['t1', 't2']) {
      expect(await node(name)).toMatchObject({ provision_state: 'active', last_error: null, instance_info: { image_source: 'test-os' } });
      expect(site.vms.get(name)!.running).toBe(true);
      await waitFor(`${name}'s first boot`, async () => site.vms.get(name)!.console().includes('slipway-os: first boot done'), 60_000);
    }
    // t1: the installed OS applied the config drive; t2: the image, booted without one.
    const d1 = site.vms.get('t1')!.disks[0]!;
    expect(await debugfs(d1, 'cat /root/marker')).toBe('marker-tenant-web\n');
    expect(await debugfs(d1, 'cat /root/.ssh/authorized_keys')).toContain(KEY);
    expect(await debugfs(d1, 'stat /root/.ssh/authorized_keys')).toMatch(/Mode: +0600/);
    const d2 = site.vms.get('t2')!.disks[0]!;
    expect(await debugfs(d2, 'cat /sbin/init')).toBe(TEST_OS_INIT);
    expect(await debugfs(d2, 'cat /var/log/slipway-firstboot.log')).toContain('first boot done');
    expect(await debugfs(d2, 'ls /root')).not.toContain('marker');
    // A deployed node is powered on (upstream: the deploy boots the instance, power_state follows).
    for (const name of ['t1', 't2']) expect((await node(name)).power_state, name).toBe('power on');
  });

  it("project B cannot see, deploy or power A's nodes; A's reader cannot deploy them", { timeout: 60_000 }, async () => {
    // Project C's failing erase runs from here on (its VM the busy one beside t1's undeploy).
    failing = failingErase();
    failing.catch(() => undefined);
    const [show, deploy, power, readerDeploy, readerRebuild, readerShow] = await Promise.all([
      baremetal(b.token, ['node', 'show', 't1']),
      baremetal(b.token, ['node', 'deploy', 't2']),
      baremetal(b.token, ['node', 'power', 'off', 't1']),
      baremetal(aReader.token, ['node', 'deploy', 't1']),
      baremetal(aReader.token, ['node', 'rebuild', 't2']),
      baremetal(aReader.token, ['node', 'show', 't1', '-f', 'value', '-c', 'provision_state']),
    ]);
    for (const r of [show, deploy, power]) {
      expect(r.code, explain(r)).not.toBe(0);
      expect(r.stderr).toMatch(/could not be found/);
    }
    expect(await visibleTo(b.token)).toEqual([]);
    for (const r of [readerDeploy, readerRebuild]) {
      expect(r.code, explain(r)).not.toBe(0);
      expect(r.stderr).toMatch(/Access was denied|403/);
    }
    // The reader sees the node (its project's): what it lacks is the right to change it.
    expect(readerShow.code, explain(readerShow)).toBe(0);
    expect(readerShow.stdout.trim()).toBe('active');
    expect(site.vms.get('t1')!.running).toBe(true);
    expect((await node('t2')).provision_state).toBe('active');
  });

  it('the member undeploys t1 with --wait: deleting → cleaning → available, its disk erased', { timeout: 300_000 }, async () => {
    const vm = site.vms.get('t1')!;
    const t0 = performance.now();
    const undeploy = await baremetal(a.token, ['node', 'undeploy', 't1', '--wait', '240'], 260_000);
    expect(undeploy.code, `${explain(undeploy)}\n${vm.console().slice(-3000)}`).toBe(0);
    console.log(`baremetal node undeploy --wait (erase 64 MiB) on a VM: ${ms(t0)}`);
    expect(await node('t1')).toMatchObject({ provision_state: 'available', maintenance: false, last_error: null, power_state: 'power off' });
    expect(vm.running).toBe(false);
    expectZeros(vm.disks[0]!, 't1 after undeploy');
    // Still the lease's: A sees it.
    expect(await visibleTo(a.token)).toEqual(['t1', 't2']);
  });

  it('a node whose erase fails at its lease end: maintenance with the reason, the lease TERMINATED with a note, the next lease gets the other node', { timeout: 240_000 }, async () => {
    const { first, t3, next, visible } = await failing!;
    const end = first.events.find((e: any) => e.event_type === 'end_lease');
    expect(end.status).toBe('DONE');
    expect(end.status_reason).toMatch(/node t3 could not be erased and is in maintenance: .*erasing \/dev\/vda failed/);
    expect(t3).toMatchObject({ provision_state: 'clean failed', maintenance: true });
    expect(t3.maintenance_reason).toMatch(/erasing \/dev\/vda failed/);
    expect(site.vms.get('t3')!.running).toBe(false);
    expect(next.status).toBe('ACTIVE');
    expect(visible).toEqual(['t4']);
  });

  it("the lease ends: both nodes erased, available, the lease TERMINATED; B's lease inside the cleaning gap is refused, after it gets them", { timeout: 300_000 }, async () => {
    site.events.length = 0;
    const t0 = performance.now();
    const early = await call('PUT', `/v1/leases/${leaseA}`, { token: a.token, body: { end_date: 'now' } });
    expect(early.status, early.text).toBe(200);
    const ended = await leaseStatus(leaseA, 'TERMINATED', 240_000).catch((err: Error) => {
      throw new Error(`${err.message}\n${consoles(['t1', 't2'])}`);
    });
    console.log(`lease end → both nodes erased (2 VMs at once) and available, lease TERMINATED: ${ms(t0)}`);
    const end = ended.events.find((e: any) => e.event_type === 'end_lease');
    expect(end.status).toBe('DONE');
    expect(end.status_reason ?? '').not.toMatch(/could not be erased|not erased/);
    // Both were erased: the deployed one and the one its member had undeployed already.
    const cleaned = site.events.filter((e) => e.kind === 'script' && e.step === 'clean').map((e) => (e as { mac: string }).mac).sort();
    expect(cleaned).toEqual([mac('t1'), mac('t2')]);
    for (const name of ['t1', 't2']) {
      expect(await node(name)).toMatchObject({ provision_state: 'available', maintenance: false, last_error: null, power_state: 'power off' });
      const vm = site.vms.get(name)!;
      expect(vm.running).toBe(false);
      expectZeros(vm.disks[0]!, `${name} after the lease`);
    }
    expect(await visibleTo(a.token)).toEqual([]);

    // Every job has finished (C's too): the clock may jump. The gap runs from the lease's end.
    await failing;
    const endedAt = epoch(ended.end_date);
    const inside = await createLease(b.token, POOL_A, 2, {}, blazarIn(GAP_MINUTES - 1, endedAt));
    expect(inside.status, inside.text).toBe(409);
    expect(inside.body.error_message).toMatch(/cleaning gap/);
    const after = await createLease(b.token, POOL_A, 2, {}, blazarIn(GAP_MINUTES, endedAt));
    expect(after.status, after.text).toBe(201);
    clock.advanceTo(new Date(endedAt + GAP_MINUTES * 60_000));
    await leaseStatus(after.body.lease.id, 'ACTIVE', 30_000);
    expect(await visibleTo(b.token)).toEqual(['t1', 't2']);
  });
});
