import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { call, tokenFor, unique, useStack } from '../support/api.ts';
import { agentSite, claim, fault, finish, GiB, ironic, mac, manageable, registerIpmiNode, states } from '../support/ironic-agent.ts';
import { blazarIn } from '../support/fixtures.ts';
import { startOwnStack } from '../support/own-stack.ts';
import { explain, runCommand } from '../contract/clients.ts';

/**
 * Ironic cleaning over HTTP: manual cleaning (`clean` with `clean_steps`) and automated cleaning
 * on `provide`. The site's "agent" is the test itself, speaking the real agent API with an agent
 * token of the node's site: it claims the `clean` job, checks what the job carries and posts what
 * a ramdisk that erased the disks would have reported (or its failure).
 */
const ERASE = [{ interface: 'deploy', step: 'erase_devices' }];

/** A site, and a node of it with an IPMI BMC (password sealed). */
const site = () => agentSite('cln');
const register = (at: { name: string }, opts: { name?: string; ports?: string[]; automated_clean?: boolean } = {}) =>
  registerIpmiNode(at, { address: '10.9.0.8', password: 'wipe-pw' }, { ...opts, name: opts.name ?? unique('cl') });

const provision = (ident: string, target: string, extra: Record<string, unknown> = {}, token?: string) =>
  ironic('PUT', `/v1/nodes/${ident}/states/provision`, { target, ...extra }, token);
const clean = (ident: string, clean_steps: unknown = ERASE, token?: string) => provision(ident, 'clean', { clean_steps }, token);
const node = async (ident: string) => (await ironic('GET', `/v1/nodes/${ident}`)).body;

/** What a ramdisk that erased two disks reports. */
const erased = (boot_mac: string | null = null) => ({
  disks: [
    { name: '/dev/sda', size: 120 * GiB, method: 'discard', verified_bytes: 64 * 1024 * 1024 },
    { name: '/dev/sdb', size: 960 * GiB, method: 'zero', verified_bytes: 960 * GiB },
  ],
  boot_mac,
});

/** The clean job of the node, claimed by the test as the site's agent; it has the inspect payload. */
async function cleanJob(at: { token: string }, uuid: string, macs: string[] = []) {
  const jobs = await claim(at.token, 5);
  expect(jobs).toHaveLength(1);
  expect(jobs[0]).toMatchObject({ kind: 'clean', node_id: uuid });
  expect(jobs[0].payload).toEqual({
    driver: 'ipmi',
    driver_info: { ipmi_address: '10.9.0.8', ipmi_username: 'admin', ipmi_password: 'wipe-pw' },
    node_id: uuid,
    macs,
    timeout_seconds: 3600,
  });
  return jobs[0];
}

describe('Ironic manual cleaning', () => {
  it('erases a manageable node through its site agent: cleaning → manageable', async () => {
    const at = await site();
    const nic = mac();
    const { name, uuid } = await register(at, { ports: [nic] });
    await manageable(at, name);

    const res = await clean(name);
    expect(res.status, res.text).toBe(202);
    expect(res.headers.get('location')).toBe(`${inject('apiUrl')}/v1/nodes/${uuid}/states`);
    expect(await states(name)).toMatchObject({ provision_state: 'cleaning', target_provision_state: 'manageable', last_error: null });

    const job = await cleanJob(at, uuid, [nic]);
    const done = await finish(at.token, job, { status: 'succeeded', output: erased(nic) });
    expect(done.status, done.text).toBe(200);
    expect(await node(name)).toMatchObject({ provision_state: 'manageable', target_provision_state: null, last_error: null, maintenance: false, maintenance_reason: null });

    // Nothing left for the agent; the result cannot be posted twice, and the node stays.
    expect(await claim(at.token)).toEqual([]);
    expect((await finish(at.token, job, { status: 'failed', error: 'again' })).status).toBe(409);
    expect((await states(name)).provision_state).toBe('manageable');

    // erase_devices_metadata is run as the same full erase.
    expect((await clean(name, [{ interface: 'deploy', step: 'erase_devices_metadata' }])).status).toBe(202);
    const again = await cleanJob(at, uuid, [nic]);
    expect((await finish(at.token, again, { status: 'succeeded', output: erased() })).status).toBe(200);
    expect((await states(name)).provision_state).toBe('manageable');
  });

  it('fails a clean with the agent error: clean failed, maintenance on with the reason; manage takes it back', async () => {
    const at = await site();
    const { name, uuid } = await register(at);
    await manageable(at, name);
    expect((await clean(name)).status).toBe(202);
    const job = await cleanJob(at, uuid);
    expect((await finish(at.token, job, { status: 'failed', error: '/dev/sdb: write error at sector 12345' })).status).toBe(200);
    const reason = `Node ${uuid} failed step deploy.erase_devices: /dev/sdb: write error at sector 12345`;
    expect(await node(name)).toMatchObject({
      provision_state: 'clean failed',
      target_provision_state: null,
      last_error: reason,
      maintenance: true,
      maintenance_reason: reason,
    });
    expect((await ironic('GET', `/v1/nodes?provision_state=clean%20failed&maintenance=true&fields=uuid`)).body.nodes).toContainEqual({ uuid, links: expect.any(Array) });

    // clean failed → manage → manageable; maintenance stays until an admin clears it.
    const wrong = await clean(name);
    expect(wrong.status).toBe(400);
    expect(fault(wrong).faultstring).toBe(`The requested action "clean" can not be performed on node "${uuid}" while it is in state "clean failed".`);
    expect((await provision(name, 'manage')).status).toBe(202);
    expect(await node(name)).toMatchObject({ provision_state: 'manageable', maintenance: true, maintenance_reason: reason });
    const maint = await clean(name);
    expect(maint.status).toBe(400);
    expect(fault(maint).faultstring).toBe(`The cleaning operation can't be performed on node ${uuid} because it's in maintenance mode.`);
    expect(await claim(at.token)).toEqual([]);

    expect((await ironic('DELETE', `/v1/nodes/${name}/maintenance`)).status).toBe(202);
    expect((await clean(name)).status).toBe(202);
    const retry = await cleanJob(at, uuid);
    expect((await finish(at.token, retry, { status: 'succeeded', output: erased() })).status).toBe(200);
    expect(await node(name)).toMatchObject({ provision_state: 'manageable', last_error: null, maintenance: false });
  });

  it('fails the clean when the agent output is malformed', async () => {
    const at = await site();
    const { name, uuid } = await register(at);
    await manageable(at, name);
    expect((await clean(name)).status).toBe(202);
    const job = await cleanJob(at, uuid);
    const bad = { disks: [{ name: '/dev/sda', size: 'big', method: 'shred', verified_bytes: 0 }], boot_mac: null };
    expect((await finish(at.token, job, { status: 'succeeded', output: bad })).status).toBe(200);
    const n = await node(name);
    expect(n).toMatchObject({ provision_state: 'clean failed', maintenance: true });
    expect(n.last_error).toMatch(new RegExp(`^Node ${uuid} failed step deploy.erase_devices: the agent's cleaning report is malformed \\(disks.0.size: .*; disks.0.method: `));
    expect(n.maintenance_reason).toBe(n.last_error);
  });

  it('requires clean_steps, refuses steps other than erasing, the wrong states and non-admins; queues nothing then', async () => {
    const at = await site();
    const { name, uuid } = await register(at);

    const early = await clean(name);
    expect(early.status).toBe(400);
    expect(fault(early).faultstring).toBe(`The requested action "clean" can not be performed on node "${uuid}" while it is in state "enroll".`);
    await manageable(at, name);

    for (const body of [{ target: 'clean' }, { target: 'clean', clean_steps: [] }, { target: 'clean', clean_steps: null }]) {
      const res = await ironic('PUT', `/v1/nodes/${name}/states/provision`, body);
      expect(res.status).toBe(400);
      expect(fault(res).faultstring).toBe('"clean_steps" is required when setting target provision state to clean');
    }
    const unknown = await clean(name, [{ interface: 'deploy', step: 'erase_devices' }, { interface: 'raid', step: 'delete_configuration' }]);
    expect(unknown.status).toBe(400);
    expect(fault(unknown).faultstring).toBe("node does not support this clean step: {'interface': 'raid', 'step': 'delete_configuration'}");
    const shape = await clean(name, [{ interface: 'disk', step: 'erase_devices' }]);
    expect(shape.status).toBe(400);
    expect(fault(shape).faultstring).toMatch(/^Invalid clean_steps: 0.interface: /);
    expect((await clean(name, [{ step: 'erase_devices' }])).status).toBe(400);
    expect((await clean(name, 'erase_devices')).status).toBe(400);
    const misplaced = await provision(name, 'provide', { clean_steps: ERASE });
    expect(misplaced.status).toBe(400);
    expect(fault(misplaced).faultstring).toBe('"clean_steps" is only valid when setting target provision state to clean or service');

    const { token } = await tokenFor('member');
    expect((await clean(name, ERASE, token)).status).toBe(403);
    expect(await claim(at.token)).toEqual([]);
    expect(await states(name)).toMatchObject({ provision_state: 'manageable', last_error: null });
  });

  it('moves a node once when ten clean requests race: one 202, nine 400, one job', async () => {
    const at = await site();
    const { name } = await register(at);
    await manageable(at, name);
    const answers = await Promise.all(Array.from({ length: 10 }, () => clean(name)));
    expect(answers.map((r) => r.status).sort()).toEqual([202, ...Array(9).fill(400)]);
    for (const r of answers.filter((x) => x.status === 400)) expect(fault(r).faultstring).toMatch(/while it is in state "cleaning"/);
    expect(await claim(at.token, 32)).toHaveLength(1);
  });
});

describe('Ironic cleaning from the baremetal CLI', () => {
  it('node clean --clean-steps … --wait returns once the agent reported', async () => {
    const at = await site();
    const { name, uuid } = await register(at);
    await manageable(at, name);
    const cli = runCommand(
      'baremetal',
      [
        '--os-auth-type', 'admin_token', '--os-endpoint', inject('apiUrl'), '--os-token', inject('adminToken'), '--os-baremetal-api-version', '1.78',
        'node', 'clean', uuid, '--clean-steps', JSON.stringify(ERASE), '--wait', '30',
      ],
      { env: {}, timeoutMs: 45_000 },
    );
    let job: any;
    for (let i = 0; i < 20 && !job; i++) [job] = await claim(at.token);
    expect(job).toMatchObject({ kind: 'clean', node_id: uuid });
    expect((await finish(at.token, job, { status: 'succeeded', output: erased() })).status).toBe(200);
    const r = await cli;
    expect(r.code, explain(r)).toBe(0);
    expect((await states(uuid)).provision_state).toBe('manageable');
  });
});

describe('Ironic automated cleaning (on by default)', () => {
  it('provide cleans first: manageable → cleaning (target available) → available after the job', async () => {
    const at = await site();
    const { name, uuid } = await register(at);
    await manageable(at, name);
    expect((await provision(name, 'provide')).status).toBe(202);
    expect(await states(name)).toMatchObject({ provision_state: 'cleaning', target_provision_state: 'available', last_error: null });
    // A cleaning node is not provided twice.
    expect((await provision(name, 'provide')).status).toBe(400);
    const job = await cleanJob(at, uuid);
    expect((await finish(at.token, job, { status: 'succeeded', output: erased() })).status).toBe(200);
    expect(await node(name)).toMatchObject({ provision_state: 'available', target_provision_state: null, last_error: null, maintenance: false });
  });

  it('a failed automated clean is clean failed with maintenance on', async () => {
    const at = await site();
    const { name, uuid } = await register(at);
    await manageable(at, name);
    expect((await provision(name, 'provide')).status).toBe(202);
    const job = await cleanJob(at, uuid);
    expect((await finish(at.token, job, { status: 'failed', error: 'the node did not boot the ramdisk within 3600 s' })).status).toBe(200);
    expect(await node(name)).toMatchObject({
      provision_state: 'clean failed',
      maintenance: true,
      last_error: `Node ${uuid} failed step deploy.erase_devices: the node did not boot the ramdisk within 3600 s`,
    });
  });

  it("a node's automated_clean false skips it (upstream's per-node override); PATCH sets it", async () => {
    const at = await site();
    const { name } = await register(at, { automated_clean: false });
    expect((await node(name)).automated_clean).toBe(false);
    await manageable(at, name);
    expect((await provision(name, 'provide')).status).toBe(202);
    expect(await states(name)).toMatchObject({ provision_state: 'available', target_provision_state: null });
    expect(await claim(at.token)).toEqual([]);
    const patched = await ironic('PATCH', `/v1/nodes/${name}`, [{ op: 'replace', path: '/automated_clean', value: null }]);
    expect(patched.status, patched.text).toBe(200);
    expect(patched.body.automated_clean).toBeNull();
    expect((await ironic('PATCH', `/v1/nodes/${name}`, [{ op: 'replace', path: '/automated_clean', value: 'sometimes' }])).status).toBe(400);
  });

  it('never allocates a clean failed node, nor one in maintenance, to a lease', async () => {
    const at = await site();
    const tag = unique('tag');
    const name = unique('cl');
    // The node is the only Blazar host with the tag.
    expect((await call('POST', '/v1/os-hosts', { body: { name, tag } })).status).toBe(201);
    const { uuid } = await register(at, { name });
    await manageable(at, name);
    expect((await clean(name)).status).toBe(202);
    const job = await cleanJob(at, uuid);
    expect((await finish(at.token, job, { status: 'failed', error: 'secure erase refused' })).status).toBe(200);
    expect((await states(name)).provision_state).toBe('clean failed');

    const lease = () =>
      call('POST', '/v1/leases', {
        body: {
          name: unique('lease'),
          start_date: blazarIn(4000),
          end_date: blazarIn(4100),
          reservations: [{ resource_type: 'physical:host', min: 1, max: 1, hypervisor_properties: '', resource_properties: JSON.stringify(['==', '$tag', tag]) }],
        },
      });
    const failed = await lease();
    expect(failed.status, failed.text).toBe(409);
    expect(failed.body).toMatchObject({ error_code: 409, error_name: 'NOT_ENOUGH_HOSTS_AVAILABLE' });

    // Managed again but still in maintenance: still not allocated.
    expect((await provision(name, 'manage')).status).toBe(202);
    expect((await lease()).status).toBe(409);
    // Out of maintenance and cleaned: the lease gets it.
    expect((await ironic('DELETE', `/v1/nodes/${name}/maintenance`)).status).toBe(202);
    expect((await provision(name, 'provide')).status).toBe(202);
    const again = await cleanJob(at, uuid);
    expect((await finish(at.token, again, { status: 'succeeded', output: erased() })).status).toBe(200);
    expect((await states(name)).provision_state).toBe('available');
    const ok = await lease();
    expect(ok.status, ok.text).toBe(201);
    expect((await call('GET', `/v1.1/admin/leases/${ok.body.lease.id}`)).body.lease.reservations[0].nodes).toEqual([uuid]);
    expect((await call('DELETE', `/v1/leases/${ok.body.lease.id}`)).status).toBe(204);
  });
});

describe('Ironic automated cleaning off (SLIPWAY_AUTOMATED_CLEAN=false, a stack of its own)', () => {
  let stop: (() => Promise<void>) | undefined;
  beforeAll(async () => {
    ({ stop } = await startOwnStack('noclean', { env: { SLIPWAY_AUTOMATED_CLEAN: 'false' } }));
  }, 120_000);
  afterAll(async () => {
    await stop?.();
    useStack(inject('apiUrl'), inject('adminToken'));
  });

  it("provide moves straight to available; a node's automated_clean true still cleans", async () => {
    const at = await site();
    const { name } = await register(at);
    await manageable(at, name);
    expect((await provision(name, 'provide')).status).toBe(202);
    expect(await states(name)).toMatchObject({ provision_state: 'available', target_provision_state: null });
    expect(await claim(at.token)).toEqual([]);

    const own = await register(at, { automated_clean: true });
    await manageable(at, own.name);
    expect((await provision(own.name, 'provide')).status).toBe(202);
    expect(await states(own.name)).toMatchObject({ provision_state: 'cleaning', target_provision_state: 'available' });
    const job = await cleanJob(at, own.uuid);
    expect((await finish(at.token, job, { status: 'succeeded', output: erased() })).status).toBe(200);
    expect((await states(own.name)).provision_state).toBe('available');
  });
});
