/**
 * A tenant deploys the machine it reserved, with the real Debian `baremetal` client
 * (python3-ironicclient), on a QEMU VM behind the Redfish simulator, and gives it back erased:
 *
 *   admin: enrol the VM's BMC and port, manage, provide; enrol it with Blazar
 *   project A: lease it; `baremetal node set --instance-info image_source=test-os`;
 *              `baremetal node deploy --config-drive '{meta_data, user_data}' --wait` → active:
 *              the installed OS ran the user data (a marker with its hostname) and took the key;
 *   project B: cannot see or deploy it; A's reader cannot deploy it;
 *   project A: `baremetal node undeploy --wait` → deleting → cleaning → available, the disk zeros.
 *
 * The local stack, agent, boot service and VM come from test/support/vm-site.ts.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { explain, runCommand } from '../contract/clients.ts';
import { call, tokenFor, unique } from '../support/api.ts';
import { blazarIn } from '../support/fixtures.ts';
import { prepareMachines, readAt } from '../support/machines.ts';
import { buildTestOsImage } from '../support/test-os.ts';
import { startVmSite, type VmSite } from '../support/vm-site.ts';
import { waitFor } from '../support/wait.ts';

const run = promisify(execFile);
const MiB = 1024 ** 2;
const V = { 'X-OpenStack-Ironic-API-Version': '1.78' };
const MAC = '52:54:00:7e:00:01';
const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHtenantkeyforthevmtest tenant@a';

let site: VmSite;
let dir: string;
let uuid: string;
let a: { token: string; project: string };
let aReader: { token: string };
let b: { token: string };

/** The real `baremetal` client with a token (no Keystone here: admin_token auth). */
const baremetal = (token: string, args: string[], timeoutMs = 30_000) =>
  runCommand('baremetal', ['--os-auth-type', 'admin_token', '--os-endpoint', site.stack.url, '--os-token', token, '--os-baremetal-api-version', '1.78', ...args], { env: {}, timeoutMs });

const node = async () => (await call('GET', `/v1/nodes/${uuid}`, { headers: V })).body;
const debugfs = async (disk: string, request: string) => (await run('debugfs', ['-R', request, disk])).stdout;

beforeAll(async () => {
  await prepareMachines();
  dir = mkdtempSync(join(tmpdir(), 'slipway-vm-tenant-'));
  const image = await buildTestOsImage(join(dir, 'os'), { layout: 'filesystem' });
  site = await startVmSite({ name: 'vm-tenant', nodes: [{ name: 't1', mac: MAC }], images: { 'test-os': image } });
  const sim = site.sims.get('t1')!;
  const created = await call('POST', '/v1/nodes', {
    headers: V,
    body: {
      name: 't1',
      driver: 'redfish',
      conductor_group: site.site,
      // Enrolled clean; undeploy below erases it (the node's automated_clean, set then).
      automated_clean: false,
      driver_info: { redfish_address: sim.url, redfish_system_id: '1', redfish_username: 'admin', redfish_password: 'vm-site-secret' },
    },
  });
  expect(created.status, created.text).toBe(201);
  uuid = created.body.uuid;
  expect((await call('POST', '/v1/ports', { headers: V, body: { address: MAC, node_uuid: uuid, pxe_enabled: true } })).status).toBe(201);
  for (const [target, state] of [
    ['manage', 'manageable'],
    ['provide', 'available'],
  ] as const) {
    expect((await call('PUT', `/v1/nodes/${uuid}/states/provision`, { headers: V, body: { target } })).status).toBe(202);
    await waitFor(`t1 ${state}`, async () => (await node()).provision_state === state, 30_000);
  }
  expect((await call('POST', '/v1/os-hosts', { body: { name: 't1' } })).status).toBe(201);
  a = await tokenFor('member');
  aReader = await tokenFor('reader', a.project);
  b = await tokenFor('member');
  const lease = await call('POST', '/v1/leases', {
    token: a.token,
    body: { name: unique('tenant'), start_date: 'now', end_date: blazarIn(120), reservations: [{ resource_type: 'physical:host', min: 1, max: 1, hypervisor_properties: '', resource_properties: '' }], events: [] },
  });
  expect(lease.status, lease.text).toBe(201);
  await waitFor('the lease to start', async () => (await call('GET', `/v1/leases/${lease.body.lease.id}`, { token: a.token })).body.lease.status === 'ACTIVE', 30_000);
}, 180_000);

afterAll(async () => {
  await site?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('a tenant deploys its leased VM with the baremetal client and gives it back erased', () => {
  it('deploy --config-drive --wait: active, and the installed OS applied the user data and the key', { timeout: 300_000 }, async () => {
    const set = await baremetal(a.token, ['node', 'set', 't1', '--instance-info', 'image_source=test-os']);
    expect(set.code, explain(set)).toBe(0);
    const drive = JSON.stringify({ meta_data: { hostname: 'tenant-web', public_keys: { a: KEY } }, user_data: '#!/bin/sh\necho "marker-$(hostname)" > /root/marker\n' });
    const t0 = performance.now();
    const deploy = await baremetal(a.token, ['node', 'deploy', 't1', '--config-drive', drive, '--wait', '240'], 260_000);
    const vm = site.vms.get('t1')!;
    expect(deploy.code, `${explain(deploy)}\n${vm.console().slice(-3000)}`).toBe(0);
    console.log(`baremetal node deploy --wait on a VM: ${Math.round(performance.now() - t0)} ms`);
    expect(await node()).toMatchObject({ provision_state: 'active', last_error: null, instance_info: { image_source: 'test-os' } });
    expect(vm.running).toBe(true);
    // The installed OS's first boot: wait for it, then read its disk.
    await waitFor('the first boot', async () => vm.console().includes('first boot done'), 60_000);
    const disk = vm.disks[0]!;
    expect(await debugfs(disk, 'cat /root/marker')).toBe('marker-tenant-web\n');
    expect(await debugfs(disk, 'cat /root/.ssh/authorized_keys')).toContain(KEY);
    expect(await debugfs(disk, 'stat /root/.ssh/authorized_keys')).toMatch(/Mode: +0600/);
  });

  it('project B cannot see or deploy it; A reader cannot deploy it', async () => {
    const show = await baremetal(b.token, ['node', 'show', 't1']);
    expect(show.code).not.toBe(0);
    expect(show.stderr).toMatch(/could not be found/);
    const other = await baremetal(b.token, ['node', 'rebuild', 't1']);
    expect(other.code).not.toBe(0);
    expect(other.stderr).toMatch(/could not be found/);
    const reader = await baremetal(aReader.token, ['node', 'rebuild', 't1']);
    expect(reader.code).not.toBe(0);
    expect(reader.stderr).toMatch(/Access was denied|403/);
    expect((await node()).provision_state).toBe('active');
  });

  it('undeploy --wait: deleting → cleaning → available, the disk erased', { timeout: 300_000 }, async () => {
    expect((await call('PATCH', `/v1/nodes/${uuid}`, { headers: V, body: [{ op: 'replace', path: '/automated_clean', value: true }] })).status).toBe(200);
    const t0 = performance.now();
    const undeploy = await baremetal(a.token, ['node', 'undeploy', 't1', '--wait', '240'], 260_000);
    const vm = site.vms.get('t1')!;
    expect(undeploy.code, `${explain(undeploy)}\n${vm.console().slice(-3000)}`).toBe(0);
    console.log(`baremetal node undeploy --wait (erase 64 MiB) on a VM: ${Math.round(performance.now() - t0)} ms`);
    expect(await node()).toMatchObject({ provision_state: 'available', maintenance: false });
    expect(vm.running).toBe(false);
    for (let at = 0; at < 64 * MiB; at += 8 * MiB) expect(readAt(vm.disks[0]!, 8 * MiB, at).every((x) => x === 0), `bytes ${at}…`).toBe(true);
  });
});
