import { beforeAll, describe, expect, it } from 'vitest';
import { sharedDeps } from '../support/agent.ts';
import { call, tokenFor, unique } from '../support/api.ts';
import { blazarIn, hostPool, hostReservation } from '../support/fixtures.ts';
import { agentSite, claim, fault, finish, ironic, mac, registerIpmiNode, type Site, states } from '../support/ironic-agent.ts';
import { waitFor } from '../support/wait.ts';

/**
 * Ironic's deploy verbs over HTTP, with the test as the site's agent: a lessee (a member of the
 * project whose active lease holds the nodes) sets instance_info and deploys, rebuilds and
 * undeploys its nodes; upstream's states on the way (deploying → wait call-back → active, or
 * deploy failed; deleting → cleaning → available), upstream's errors, and who may do what.
 * The VM test (test/agent/vm-tenant.test.ts) runs the same requests against real machines.
 */
const SHA = 'ab'.repeat(32);
let site: Site;
let member: { token: string; project: string };
let reader: { token: string };
let other: { token: string };
const nodes: { name: string; uuid: string; mac: string }[] = [];

/** Answers the next job of the site as its agent, checking its kind. */
async function answer(kind: string, body: Record<string, unknown>): Promise<any> {
  const [job] = await claim(site.token);
  expect(job, `a ${kind} job`).toMatchObject({ kind });
  expect((await finish(site.token, job, body)).status).toBe(200);
  return job;
}

beforeAll(async () => {
  site = await agentSite('deploy-site');
  const pool = await hostPool(2);
  for (const h of pool.hosts) {
    const m = mac();
    const n = await registerIpmiNode(site, { address: '10.9.9.9', password: 'secret-pw' }, { name: h.name, ports: [m] });
    nodes.push({ ...n, mac: m });
    // manage (the BMC read), then provide with automated cleaning (the erase): available.
    expect((await ironic('PUT', `/v1/nodes/${n.name}/states/provision`, { target: 'manage' })).status).toBe(202);
    await answer('power_state', { status: 'succeeded', output: { power_state: 'power off' } });
    expect((await ironic('PUT', `/v1/nodes/${n.name}/states/provision`, { target: 'provide' })).status).toBe(202);
    await answer('clean', { status: 'succeeded', output: { disks: [], boot_mac: m } });
    expect((await states(n.name)).provision_state).toBe('available');
  }
  member = await tokenFor('member');
  reader = await tokenFor('reader', member.project);
  other = await tokenFor('member');
  const lease = await call('POST', '/v1/leases', {
    token: member.token,
    body: { name: unique('lease'), start_date: 'now', end_date: blazarIn(180), reservations: [hostReservation(pool.filter, 2, 2)], events: [] },
  });
  expect(lease.status, lease.text).toBe(201);
  await waitFor('the lease to start', async () => (await call('GET', `/v1/leases/${lease.body.lease.id}`, { token: member.token })).body.lease.status === 'ACTIVE', 30_000);
}, 90_000);

describe('Ironic deploy for lessees', () => {
  it('a lessee sets instance_info and deploys with a config drive: deploying → wait call-back → active; the config drive is sealed at rest', async () => {
    const n = nodes[0]!;
    const set = await ironic('PATCH', `/v1/nodes/${n.name}`, [{ op: 'add', path: '/instance_info/image_source', value: 'debian-12' }], member.token);
    expect(set.status, set.text).toBe(200);
    expect(set.body.instance_info).toEqual({ image_source: 'debian-12' });
    const configdrive = { meta_data: { hostname: 'web1', public_keys: { k: 'ssh-ed25519 AAAAC3Nz lessee@a' } }, user_data: '#!/bin/sh\necho secret-token-123 > /root/marker\n' };
    const res = await ironic('PUT', `/v1/nodes/${n.name}/states/provision`, { target: 'active', configdrive }, member.token);
    expect(res.status, res.text).toBe(202);
    expect(await states(n.name)).toMatchObject({ provision_state: 'deploying', target_provision_state: 'active' });
    // At rest the job holds the config drive sealed: the user data is nowhere in plain text.
    const queued = await sharedDeps().jobs.offered(site.name, new Date(Date.now() + 60_000), 10);
    const stored = queued.find((j) => j.kind === 'deploy_node' && j.node_id === n.uuid)!;
    expect(JSON.stringify(stored.payload)).not.toContain('secret-token-123');
    expect(stored.payload.configdrive).toMatchObject({ $sealed: expect.any(String) });

    const [job] = await claim(site.token);
    expect(job.payload).toMatchObject({ node_id: n.uuid, macs: [n.mac], hostname: n.name, require_image: true, image: 'debian-12', configdrive });
    expect(job.payload.image_url).toBeUndefined();
    // The agent took it: the node waits for its ramdisk's call-back.
    expect((await states(n.name)).provision_state).toBe('wait call-back');
    expect((await finish(site.token, job, { status: 'succeeded', output: { method: 'image', image: 'debian-12', image_sha256: SHA } })).status).toBe(200);
    expect(await states(n.name)).toMatchObject({ provision_state: 'active', target_provision_state: null, last_error: null });
  });

  it('rebuild redeploys; undeploy goes deleting → cleaning → available through the erase', async () => {
    const n = nodes[0]!;
    expect((await ironic('PUT', `/v1/nodes/${n.name}/states/provision`, { target: 'rebuild' }, member.token)).status).toBe(202);
    await answer('deploy_node', { status: 'succeeded', output: { method: 'image' } });
    expect((await states(n.name)).provision_state).toBe('active');
    expect((await ironic('PUT', `/v1/nodes/${n.name}/states/provision`, { target: 'deleted' }, member.token)).status).toBe(202);
    expect(await states(n.name)).toMatchObject({ provision_state: 'cleaning', target_provision_state: 'available' });
    const job = await answer('clean', { status: 'succeeded', output: { disks: [{ name: '/dev/vda', size: 1, method: 'zero', verified_bytes: 1 }], boot_mac: n.mac } });
    expect(job.payload.macs).toEqual([n.mac]);
    expect((await states(n.name)).provision_state).toBe('available');
  });

  it('a failed deploy is deploy failed with the reason; an image URL needs its sha256; rebuild then succeeds', async () => {
    const n = nodes[1]!;
    const url = 'https://images.example.com/debian-12.raw';
    expect((await ironic('PATCH', `/v1/nodes/${n.name}`, [{ op: 'add', path: '/instance_info', value: { image_source: url } }], member.token)).status).toBe(200);
    const noSum = await ironic('PUT', `/v1/nodes/${n.name}/states/provision`, { target: 'active' }, member.token);
    expect(noSum.status).toBe(400);
    expect(fault(noSum).faultstring).toMatch(/^An image URL needs its sha256: set instance_info image_checksum/);
    expect((await states(n.name)).provision_state).toBe('available');
    expect((await ironic('PATCH', `/v1/nodes/${n.name}`, [{ op: 'add', path: '/instance_info/image_checksum', value: SHA.toUpperCase() }], member.token)).status).toBe(200);
    expect((await ironic('PUT', `/v1/nodes/${n.name}/states/provision`, { target: 'active' }, member.token)).status).toBe(202);
    const [job] = await claim(site.token);
    expect(job.payload).toMatchObject({ image_url: url, image_sha256: SHA, require_image: true });
    expect((await finish(site.token, job, { status: 'failed', error: 'image "x": sha256 mismatch' })).status).toBe(200);
    expect(await states(n.name)).toMatchObject({ provision_state: 'deploy failed', last_error: 'Failed to deploy: image "x": sha256 mismatch' });
    expect((await ironic('PUT', `/v1/nodes/${n.name}/states/provision`, { target: 'rebuild' }, member.token)).status).toBe(202);
    await answer('deploy_node', { status: 'succeeded', output: {} });
    expect(await states(n.name)).toMatchObject({ provision_state: 'active', last_error: null });
  });

  it("answers upstream's errors: no image_source, the wrong state, maintenance, an ISO config drive; nothing is queued", async () => {
    const n = nodes[1]!;
    const before = (await sharedDeps().jobs.offered(site.name, new Date(Date.now() + 60_000), 50)).length;
    const wrongState = await ironic('PUT', `/v1/nodes/${n.name}/states/provision`, { target: 'active' }, member.token);
    expect(wrongState.status).toBe(400);
    expect(fault(wrongState).faultstring).toBe(`The requested action "active" can not be performed on node "${n.uuid}" while it is in state "active".`);
    const iso = await ironic('PUT', `/v1/nodes/${n.name}/states/provision`, { target: 'rebuild', configdrive: 'H4sIAAAAAAAA' }, member.token);
    expect(iso.status).toBe(400);
    expect(fault(iso).faultstring).toMatch(/^A config drive given as an ISO image .* is not supported here: give it as JSON/);
    expect((await ironic('PATCH', `/v1/nodes/${n.name}`, [{ op: 'remove', path: '/instance_info' }], member.token)).status).toBe(200);
    const missing = await ironic('PUT', `/v1/nodes/${n.name}/states/provision`, { target: 'rebuild' }, member.token);
    expect(missing.status).toBe(400);
    expect(fault(missing).faultstring).toBe(
      `Cannot validate image information for node ${n.uuid} because one or more parameters are missing from its instance_info and insufficent information is present to boot from a remote volume. Missing are: ['image_source']`,
    );
    expect((await ironic('PUT', `/v1/nodes/${n.name}/maintenance`, { reason: 'disk noise' })).status).toBe(202);
    expect((await ironic('PATCH', `/v1/nodes/${n.name}`, [{ op: 'add', path: '/instance_info/image_source', value: 'debian-12' }], member.token)).status).toBe(200);
    const maint = await ironic('PUT', `/v1/nodes/${n.name}/states/provision`, { target: 'rebuild' }, member.token);
    expect(maint.status).toBe(400);
    expect(fault(maint).faultstring).toBe(`The deploy operation can't be performed on node ${n.uuid} because it's in maintenance mode.`);
    expect((await ironic('DELETE', `/v1/nodes/${n.name}/maintenance`)).status).toBe(202);
    expect((await states(n.name)).provision_state).toBe('active');
    expect((await sharedDeps().jobs.offered(site.name, new Date(Date.now() + 60_000), 50)).length).toBe(before);
  });

  it('who: another project sees nothing (404), a reader and a lessee outside instance_info and the deploy verbs get 403', async () => {
    const n = nodes[1]!;
    for (const [method, path, body] of [
      ['PATCH', `/v1/nodes/${n.name}`, [{ op: 'add', path: '/instance_info/image_source', value: 'x' }]],
      ['PUT', `/v1/nodes/${n.name}/states/provision`, { target: 'rebuild' }],
    ] as const) {
      expect((await ironic(method, path, body, other.token)).status, `${method} ${path} as another project`).toBe(404);
      const r = await ironic(method, path, body, reader.token);
      expect(r.status, `${method} ${path} as the lessee's reader`).toBe(403);
      expect(fault(r).faultcode).toBe('Client');
    }
    const extra = await ironic('PATCH', `/v1/nodes/${n.name}`, [{ op: 'add', path: '/extra/x', value: 'y' }], member.token);
    expect(extra.status).toBe(403);
    expect(fault(extra).faultstring).toBe('Access was denied to the following resource: baremetal:node:update (the lessee of a node may change its instance_info only)');
    for (const target of ['manage', 'clean', 'inspect', 'provide']) {
      const r = await ironic('PUT', `/v1/nodes/${n.name}/states/provision`, { target }, member.token);
      expect(r.status, target).toBe(403);
    }
    expect((await states(n.name)).provision_state).toBe('active');
  });
});
