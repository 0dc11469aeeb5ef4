import { describe, expect, inject, it } from 'vitest';
import { call, tokenFor, unique } from '../support/api.ts';
import { agentSite, claim, fault, finish, GiB, ironic, mac, manageable, registerIpmiNode, states } from '../support/ironic-agent.ts';
import { blazarIn } from '../support/fixtures.ts';
import { explain, runCommand } from '../contract/clients.ts';

/**
 * Ironic hardware inspection over HTTP against the shared local stack. The site's "agent" is the
 * test itself, speaking the real agent API with an agent token of the node's site: it claims the
 * `inspect` job, checks what the job carries and posts what a ramdisk would have found.
 */

/** A site, and a node of it with an IPMI BMC (password sealed). */
const site = () => agentSite('insp');
const register = (at: { name: string }, opts: { name?: string; ports?: string[] } = {}) =>
  registerIpmiNode(at, { address: '10.9.0.7', password: 's3cret-pw' }, { ...opts, name: opts.name ?? unique('in') });
const provision = (ident: string, target: string, token?: string) => ironic('PUT', `/v1/nodes/${ident}/states/provision`, { target }, token);

/** What a ramdisk reports: 8 CPUs, the given memory, three disks (the 120 GiB one is the root disk). */
const report = (memory_mb: number, nics: { name: string; mac_address: string }[], boot_mac: string | null) => ({
  cpus: 8,
  cpu_arch: 'x86_64',
  memory_mb,
  disks: [
    { name: '/dev/sda', size: 2 * GiB },
    { name: '/dev/sdb', size: 960 * GiB },
    { name: '/dev/sdc', size: 120 * GiB + 12_345 },
  ],
  interfaces: [{ name: 'lo', mac_address: '00:00:00:00:00:00' }, ...nics],
  boot_mac,
});

describe('Ironic inspection', () => {
  it('inspects a manageable node through its site agent: properties, ports, host facts a lease filter uses', async () => {
    const at = await site();
    const tag = unique('tag');
    const name = unique('in');
    // The node is a Blazar host too (enrolled without facts), beside a host that is not inspected.
    const host = await call('POST', '/v1/os-hosts', { body: { name, tag } });
    expect(host.status, host.text).toBe(201);
    expect((await call('POST', '/v1/os-hosts', { body: { name: unique('other'), tag, memory_mb: 1024 } })).status).toBe(201);
    const [a, b, c] = [mac(), mac(), mac()];
    const { uuid } = await register(at, { name, ports: [a] });
    await manageable(at, name);

    const res = await provision(name, 'inspect');
    expect(res.status, res.text).toBe(202);
    expect(res.headers.get('location')).toBe(`${inject('apiUrl')}/v1/nodes/${uuid}/states`);
    expect(await states(name)).toMatchObject({ provision_state: 'inspecting', target_provision_state: 'manageable', last_error: null });

    const jobs = await claim(at.token, 5);
    expect(jobs).toHaveLength(1);
    const job = jobs[0];
    expect(job).toMatchObject({ kind: 'inspect', node_id: uuid });
    // The BMC password, sealed at rest, is opened for the agent in the claimed job only.
    expect(job.payload).toEqual({
      driver: 'ipmi',
      driver_info: { ipmi_address: '10.9.0.7', ipmi_username: 'admin', ipmi_password: 's3cret-pw' },
      node_id: uuid,
      macs: [a],
      timeout_seconds: 600,
    });

    const memory = 300_000 + Math.floor(Math.random() * 100_000);
    const done = await finish(at.token, job, {
      status: 'succeeded',
      output: report(memory, [{ name: 'eth0', mac_address: a }, { name: 'eth1', mac_address: b.toUpperCase() }, { name: 'eth2', mac_address: c }], b.toUpperCase()),
    });
    expect(done.status, done.text).toBe(200);

    const node = (await ironic('GET', `/v1/nodes/${name}`)).body;
    expect(node).toMatchObject({ provision_state: 'manageable', target_provision_state: null, last_error: null });
    // local_gb: the smallest disk of at least 4 GiB (120 GiB), less 1 GiB for partitioning.
    expect(node.properties).toEqual({ cpus: 8, cpu_arch: 'x86_64', memory_mb: memory, local_gb: 119 });
    const ports = (await ironic('GET', `/v1/nodes/${uuid}/ports/detail`)).body.ports;
    expect(Object.fromEntries(ports.map((p: any) => [p.address, p.pxe_enabled]))).toEqual({ [a]: true, [b]: true, [c]: false });

    const facts = (await call('GET', `/v1/os-hosts/${host.body.host.id}`)).body.host;
    expect(facts).toMatchObject({ vcpus: 8, memory_mb: memory, local_gb: 119, cpu_info: 'x86_64' });
    const lease = await call('POST', '/v1/leases', {
      body: {
        name: unique('lease'),
        start_date: blazarIn(3000),
        end_date: blazarIn(3100),
        reservations: [
          { resource_type: 'physical:host', min: 1, max: 2, hypervisor_properties: JSON.stringify(['>=', '$memory_mb', String(memory)]), resource_properties: JSON.stringify(['==', '$tag', tag]) },
        ],
      },
    });
    expect(lease.status, lease.text).toBe(201);
    const held = (await call('GET', `/v1.1/admin/leases/${lease.body.lease.id}`)).body.lease.reservations[0].nodes;
    expect(held).toEqual([uuid]);
    expect((await call('DELETE', `/v1/leases/${lease.body.lease.id}`)).status).toBe(204);

    // Nothing left for the agent; the job's result cannot be posted twice.
    expect(await claim(at.token)).toEqual([]);
    expect((await finish(at.token, job, { status: 'failed', error: 'again' })).status).toBe(409);
    expect((await states(name)).provision_state).toBe('manageable');
  });

  it('fails an inspection with the agent error (inspect failed), and inspects again from there', async () => {
    const at = await site();
    const { name } = await register(at);
    await manageable(at, name);
    expect((await provision(name, 'inspect')).status).toBe(202);
    const [job] = await claim(at.token);
    expect(job.payload.macs).toEqual([]);
    expect((await finish(at.token, job, { status: 'failed', error: 'the node did not boot the ramdisk within 600 s' })).status).toBe(200);
    expect(await states(name)).toMatchObject({
      provision_state: 'inspect failed',
      target_provision_state: null,
      last_error: 'Failed to inspect hardware. Reason: the node did not boot the ramdisk within 600 s',
    });

    expect((await provision(name, 'inspect')).status).toBe(202);
    expect(await states(name)).toMatchObject({ provision_state: 'inspecting', target_provision_state: 'manageable', last_error: null });
    const [again] = await claim(at.token);
    expect(again.id).not.toBe(job.id);
    const nic = mac();
    expect((await finish(at.token, again, { status: 'succeeded', output: report(4096, [{ name: 'eno1', mac_address: nic }], null) })).status).toBe(200);
    expect(await states(name)).toMatchObject({ provision_state: 'manageable', last_error: null });
    // Without a boot MAC no port is the PXE one.
    expect((await ironic('GET', `/v1/ports/detail?address=${nic}`)).body.ports).toEqual([expect.objectContaining({ pxe_enabled: false })]);
  });

  it('fails the inspection when the agent output is malformed', async () => {
    const at = await site();
    const { name } = await register(at);
    await manageable(at, name);
    expect((await provision(name, 'inspect')).status).toBe(202);
    const [job] = await claim(at.token);
    const bad = { ...report(4096, [], null), cpus: 'eight', disks: 'none' };
    expect((await finish(at.token, job, { status: 'succeeded', output: bad })).status).toBe(200);
    const s = await states(name);
    expect(s.provision_state).toBe('inspect failed');
    expect(s.last_error).toMatch(/^Failed to inspect hardware. Reason: the agent's inspection report is malformed \(cpus: .*; disks: /);
    expect((await ironic('GET', `/v1/nodes/${name}`)).body.properties).toEqual({});
  });

  it('refuses a node in the wrong state, in maintenance or without a BMC, and non-admins; queues nothing then', async () => {
    const at = await site();
    const { name, uuid } = await register(at);
    const early = await provision(name, 'inspect');
    expect(early.status).toBe(400);
    expect(fault(early).faultstring).toBe(`The requested action "inspect" can not be performed on node "${uuid}" while it is in state "enroll".`);

    await manageable(at, name);
    expect((await ironic('PUT', `/v1/nodes/${name}/maintenance`, { reason: 'fan swap' })).status).toBe(202);
    const maint = await provision(name, 'inspect');
    expect(maint.status).toBe(400);
    expect(fault(maint).faultstring).toBe(`The inspection operation can't be performed on node ${uuid} because it's in maintenance mode.`);
    expect((await ironic('DELETE', `/v1/nodes/${name}/maintenance`)).status).toBe(202);

    const { token } = await tokenFor('member');
    expect((await provision(name, 'inspect', token)).status).toBe(403);
    // A Blazar host without a BMC.
    const bare = unique('bare');
    expect((await call('POST', '/v1/os-hosts', { body: { name: bare } })).status).toBe(201);
    const noBmc = await provision(bare, 'inspect');
    expect(noBmc.status).toBe(400);
    expect(fault(noBmc).faultstring).toMatch(/has no BMC registered/);
    expect(await claim(at.token)).toEqual([]);

    // provide cleans the node first (automated cleaning is on): the test erases it as the agent.
    expect((await provision(name, 'provide')).status).toBe(202);
    const [wipe] = await claim(at.token);
    expect(wipe).toMatchObject({ kind: 'clean', node_id: uuid });
    expect((await finish(at.token, wipe, { status: 'succeeded', output: { disks: [], boot_mac: null } })).status).toBe(200);
    const avail = await provision(name, 'inspect');
    expect(avail.status).toBe(400);
    expect(fault(avail).faultstring).toMatch(/while it is in state "available"/);
    expect(await states(name)).toMatchObject({ provision_state: 'available' });
  });

  it('moves a node once when ten inspect requests race: one 202, nine 400, one job', async () => {
    const at = await site();
    const { name } = await register(at);
    await manageable(at, name);
    const answers = await Promise.all(Array.from({ length: 10 }, () => provision(name, 'inspect')));
    expect(answers.map((r) => r.status).sort()).toEqual([202, ...Array(9).fill(400)]);
    for (const r of answers.filter((x) => x.status === 400)) expect(fault(r).faultstring).toMatch(/while it is in state "inspecting"/);
    expect(await claim(at.token, 32)).toHaveLength(1);
  });

  it('does not take a MAC that is another node port; the inspection still succeeds and says so', async () => {
    const at = await site();
    const [theirs, mine] = [mac(), mac()];
    const other = await register(at, { ports: [theirs] });
    const { name, uuid } = await register(at);
    await manageable(at, name);
    expect((await provision(name, 'inspect')).status).toBe(202);
    const [job] = await claim(at.token);
    const out = report(8192, [{ name: 'eth0', mac_address: theirs }, { name: 'eth1', mac_address: mine }, { name: 'eth2', mac_address: 'not-a-mac' }], mine);
    expect((await finish(at.token, job, { status: 'succeeded', output: out })).status).toBe(200);
    const s = await states(name);
    expect(s.provision_state).toBe('manageable');
    expect(s.last_error).toContain(`MAC ${theirs} is a port of node ${other.uuid}; not added`);
    expect(s.last_error).toContain('interface eth2 has no valid MAC address');
    expect((await ironic('GET', `/v1/ports/detail?address=${theirs}`)).body.ports).toEqual([expect.objectContaining({ node_uuid: other.uuid })]);
    expect((await ironic('GET', `/v1/nodes/${uuid}/ports/detail`)).body.ports.map((p: any) => [p.address, p.pxe_enabled])).toEqual([[mine, true]]);
  });

  it('works from the baremetal CLI: node inspect --wait returns once the agent reported', async () => {
    const at = await site();
    const { name, uuid } = await register(at);
    await manageable(at, name);
    const cli = runCommand(
      'baremetal',
      ['--os-auth-type', 'admin_token', '--os-endpoint', inject('apiUrl'), '--os-token', inject('adminToken'), '--os-baremetal-api-version', '1.78', 'node', 'inspect', uuid, '--wait', '30'],
      { env: {}, timeoutMs: 45_000 },
    );
    let job: any;
    for (let i = 0; i < 20 && !job; i++) [job] = await claim(at.token);
    expect(job).toMatchObject({ kind: 'inspect', node_id: uuid });
    expect((await finish(at.token, job, { status: 'succeeded', output: report(16384, [{ name: 'eth0', mac_address: mac() }], null) })).status).toBe(200);
    const r = await cli;
    expect(r.code, explain(r)).toBe(0);
    expect((await ironic('GET', `/v1/nodes/${uuid}`)).body).toMatchObject({ provision_state: 'manageable', properties: { memory_mb: 16384, local_gb: 119 } });
  });
});
