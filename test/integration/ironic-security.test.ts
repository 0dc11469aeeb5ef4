import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Agent } from '../../agent/runner.ts';
import { type RedfishSim, startRedfishSim } from '../../agent/sim/redfish.ts';
import type { BmcInfo } from '../../layers/core/inventory/node.ts';
import { scrubBmc } from '../../layers/core/ironic/redact.ts';
import { sharedDeps, startTestAgent } from '../support/agent.ts';
import { call, tokenFor, unique } from '../support/api.ts';
import { blazarIn, hostPool, hostReservation } from '../support/fixtures.ts';
import { waitFor } from '../support/wait.ts';

/**
 * Tenants cannot harm the site through the Ironic API (the security issue): a project leasing
 * nodes operates them — power, boot device — but never reaches their BMCs otherwise (vendor
 * passthru is for administrators), never learns the BMCs' addresses or accounts, and its
 * readers never make the agent touch a BMC. Clients cannot submit sealed blobs, names follow one
 * rule at create and patch, and free-form fields are bounded before anything is written.
 *
 * One lease of three nodes: `ra` (Redfish, a site with a running agent), `ii` (IPMI) and `ri`
 * (Redfish) on a site without an agent, where any job queued would stay visible in the queue.
 */
const V = { 'X-OpenStack-Ironic-API-Version': '1.78' };
const ironic = (method: string, path: string, body?: unknown, token?: string) => call(method, path, { body, headers: V, ...(token ? { token } : {}) });
const fault = (res: { body: any }) => JSON.parse(res.body.error_message);

const siteA = unique('sec-site');
const siteIdle = unique('sec-idle');
// BMC identifiers unique to this file, so that finding them in an answer means a leak.
const bmcUser = `opuser-${randomUUID().slice(0, 8)}`;
const bmcPassword = `pw-${randomUUID().slice(0, 8)}`;
const ipmiAddress = `10.${Math.floor(Math.random() * 200) + 20}.77.${Math.floor(Math.random() * 200) + 20}`;

let redfish: RedfishSim;
let agent: Agent;
let member: { token: string; project: string };
let reader: { token: string };
const nodes = { ra: '', ii: '', ri: '' };

/** Jobs queued for the idle site (nobody claims them, so every job ever queued there shows). */
const idleQueue = async () => sharedDeps().jobs.offered(siteIdle, new Date(Date.now() + 60_000), 100);

beforeAll(async () => {
  const pool = await hostPool(3);
  const [ra, ii, ri] = pool.hosts.map((h) => h.name) as [string, string, string];
  Object.assign(nodes, { ra, ii, ri });
  redfish = await startRedfishSim({ username: bmcUser, password: bmcPassword, systems: [{ id: ra }, { id: ri }] });
  agent = await startTestAgent(siteA);
  const register = async (name: string, body: Record<string, unknown>) => {
    const res = await ironic('POST', '/v1/nodes', { name, ...body });
    expect(res.status, res.text).toBe(201);
  };
  const redfishInfo = (system: string) => ({ redfish_address: redfish.url, redfish_system_id: system, redfish_username: bmcUser, redfish_password: bmcPassword });
  await register(ra, { driver: 'redfish', conductor_group: siteA, driver_info: redfishInfo(ra) });
  await register(ii, { driver: 'ipmi', conductor_group: siteIdle, driver_info: { ipmi_address: ipmiAddress, ipmi_username: bmcUser, ipmi_password: bmcPassword } });
  await register(ri, { driver: 'redfish', conductor_group: siteIdle, driver_info: redfishInfo(ri) });

  member = await tokenFor('member');
  reader = await tokenFor('reader', member.project);
  const lease = await call('POST', '/v1/leases', {
    token: member.token,
    body: { name: unique('lease'), start_date: 'now', end_date: blazarIn(180), reservations: [hostReservation(pool.filter, 3, 3)], events: [] },
  });
  expect(lease.status, lease.text).toBe(201);
  await waitFor('the lease to start', async () => (await call('GET', `/v1/leases/${lease.body.lease.id}`, { token: member.token })).body.lease.status === 'ACTIVE', 30_000);
}, 60_000);

afterAll(async () => {
  await agent?.stop();
  await redfish?.stop();
});

describe('Ironic vendor passthru is for administrators', () => {
  const calls = (): [string, string, unknown][] => [
    ['POST', `/v1/nodes/${nodes.ii}/vendor_passthru/send_raw`, { raw_bytes: '0x06 0x45 0x05 0x65 0x76 0x69 0x6c' }],
    ['POST', `/v1/nodes/${nodes.ii}/vendor_passthru?method=send_raw`, { raw_bytes: '0x06 0x45 0x05 0x65 0x76 0x69 0x6c' }],
    ['POST', `/v1/nodes/${nodes.ii}/vendor_passthru/bmc_reset`, { warm: false }],
    ['POST', `/v1/nodes/${nodes.ii}/vendor_passthru?method=bmc_reset`, { warm: false }],
    ['POST', `/v1/nodes/${nodes.ri}/vendor_passthru/create_subscription`, { Destination: 'https://collector.evil.example/events' }],
    ['DELETE', `/v1/nodes/${nodes.ri}/vendor_passthru/delete_subscription`, { id: '1' }],
    ['DELETE', `/v1/nodes/${nodes.ri}/vendor_passthru?method=delete_subscription&id=1`, undefined],
    ['POST', `/v1/nodes/${nodes.ri}/vendor_passthru/eject_vmedia`, {}],
    // A harmless read still has the agent talk to the BMC with the operator's credentials.
    ['GET', `/v1/nodes/${nodes.ri}/vendor_passthru?method=get_all_subscriptions`, undefined],
    ['GET', `/v1/nodes/${nodes.ri}/vendor_passthru/get_subscription?id=1`, undefined],
    // The policy comes before the method, the verb and the arguments.
    ['PUT', `/v1/nodes/${nodes.ri}/vendor_passthru/create_subscription`, {}],
    ['POST', `/v1/nodes/${nodes.ii}/vendor_passthru?method=frobnicate`, {}],
    // Driver methods reach any BMC named in the arguments.
    ['POST', '/v1/drivers/ipmi/vendor_passthru/probe', { address: ipmiAddress, username: 'u' }],
    ['POST', '/v1/drivers/redfish/vendor_passthru?method=discover', { address: 'https://10.0.0.1', username: 'u' }],
  ];

  it('answers 403 to the lessee and its reader for every method, form and verb, and queues nothing', async () => {
    for (const who of [member, reader]) {
      for (const [method, path, body] of calls()) {
        const res = await ironic(method, path, body, who.token);
        expect(res.status, `${method} ${path}: ${res.text}`).toBe(403);
        expect(res.headers.get('content-type')).toMatch(/application\/json/);
        expect(fault(res).faultcode).toBe('Client');
      }
    }
    expect(await idleQueue()).toEqual([]);
    // Nothing was written either: no node lock taken.
    for (const n of [nodes.ii, nodes.ri]) expect((await ironic('GET', `/v1/nodes/${n}`)).body.reservation).toBeNull();
    // The lessee may still list the methods (no BMC is involved).
    expect((await ironic('GET', `/v1/nodes/${nodes.ri}/vendor_passthru/methods`, undefined, member.token)).status).toBe(200);
  });

  it('still runs passthru for administrators: async 202, sync 200', async () => {
    const sub = await ironic('POST', `/v1/nodes/${nodes.ra}/vendor_passthru/create_subscription`, { Destination: 'https://collector.example/ops', Context: 'ops' });
    expect(sub.status, sub.text).toBe(200);
    const all = await ironic('GET', `/v1/nodes/${nodes.ra}/vendor_passthru?method=get_all_subscriptions`);
    expect(all.status, all.text).toBe(200);
    expect(all.body.subscriptions.map((s: any) => s.destination)).toContain('https://collector.example/ops');
    expect((await ironic('DELETE', `/v1/nodes/${nodes.ra}/vendor_passthru/delete_subscription`, { id: sub.body.id })).status).toBe(200);

    const raw = await ironic('POST', `/v1/nodes/${nodes.ii}/vendor_passthru?method=send_raw`, { raw_bytes: '0x06 0x01' });
    expect(raw.status, raw.text).toBe(202);
    const queued = await idleQueue();
    expect(queued.map((j) => [j.kind, j.payload.method])).toEqual([['vendor', 'send_raw']]);
  });
});

describe('a lessee operates its nodes; its reader only reads', () => {
  it('lets the member power its node, set and read its boot device through the agent', async () => {
    const on = await ironic('PUT', `/v1/nodes/${nodes.ra}/states/power`, { target: 'power on' }, member.token);
    expect(on.status, on.text).toBe(202);
    await waitFor('power on', async () => redfish.state(nodes.ra).PowerState === 'On');
    await waitFor('power state recorded', async () => (await ironic('GET', `/v1/nodes/${nodes.ra}/states`, undefined, member.token)).body.target_power_state === null);
    const set = await ironic('PUT', `/v1/nodes/${nodes.ra}/management/boot_device`, { boot_device: 'pxe', persistent: true }, member.token);
    expect(set.status, set.text).toBe(204);
    const got = await ironic('GET', `/v1/nodes/${nodes.ra}/management/boot_device`, undefined, member.token);
    expect(got.status, got.text).toBe(200);
    expect(got.body).toEqual({ boot_device: 'pxe', persistent: true });
  });

  it('refuses a reader at once on every route that would queue a BMC job, and queues none', async () => {
    const started = Date.now();
    for (const n of [nodes.ri, nodes.ra]) {
      const read = await ironic('GET', `/v1/nodes/${n}/management/boot_device`, undefined, reader.token);
      expect(read.status, read.text).toBe(403);
      expect(fault(read).faultstring).toMatch(/baremetal:node:get_boot_device/);
    }
    expect(Date.now() - started).toBeLessThan(5_000);
    expect((await ironic('PUT', `/v1/nodes/${nodes.ri}/states/power`, { target: 'power on' }, reader.token)).status).toBe(403);
    expect((await ironic('PUT', `/v1/nodes/${nodes.ri}/management/boot_device`, { boot_device: 'pxe' }, reader.token)).status).toBe(403);
    expect((await ironic('PUT', `/v1/nodes/${nodes.ri}/states/provision`, { target: 'manage' }, reader.token)).status).toBe(403);
    // What needs no BMC still answers.
    expect((await ironic('GET', `/v1/nodes/${nodes.ri}/states`, undefined, reader.token)).status).toBe(200);
    expect((await ironic('GET', `/v1/nodes/${nodes.ri}/validate`, undefined, reader.token)).status).toBe(200);
    expect((await ironic('GET', `/v1/nodes/${nodes.ri}/management/boot_device/supported`, undefined, reader.token)).status).toBe(200);
    // Only the administrator's send_raw of the test before is queued there.
    expect((await idleQueue()).map((j) => j.kind)).toEqual(['vendor']);
  });
});

describe('non-admin node views carry no BMC address or account', () => {
  const leaks = (text: string) => [bmcUser, bmcPassword, ipmiAddress, redfish.url, new URL(redfish.url).host].filter((s) => text.includes(s));

  it('redacts driver_info in show, lists, fields, states and validate for the member and the reader', async () => {
    for (const who of [member, reader]) {
      const answers = [
        await ironic('GET', `/v1/nodes/${nodes.ra}`, undefined, who.token),
        await ironic('GET', `/v1/nodes/${nodes.ii}`, undefined, who.token),
        await ironic('GET', `/v1/nodes/${nodes.ii}?fields=uuid,driver_info,last_error`, undefined, who.token),
        await ironic('GET', '/v1/nodes?detail=true', undefined, who.token),
        await ironic('GET', '/v1/nodes/detail', undefined, who.token),
        await ironic('GET', '/v1/nodes?fields=name,driver_info', undefined, who.token),
        await ironic('GET', `/v1/nodes/${nodes.ra}/states`, undefined, who.token),
        await ironic('GET', `/v1/nodes/${nodes.ri}/validate`, undefined, who.token),
      ];
      for (const res of answers) {
        expect(res.status, res.text).toBe(200);
        expect(leaks(res.text), res.text).toEqual([]);
        expect(res.text).not.toMatch(/ipmi_address|ipmi_username|redfish_address|redfish_username|_password/);
      }
      expect(answers[0]!.body.driver_info).toEqual({ content: '** Redacted - requires baremetal:node:get:driver_info permission. **' });
      expect(answers[3]!.body.nodes.map((n: any) => n.name).sort()).toEqual([nodes.ra, nodes.ii, nodes.ri].sort());
    }
    // The administrator still sees the BMC (the password masked).
    const admin = await ironic('GET', `/v1/nodes/${nodes.ii}`);
    expect(admin.body.driver_info).toEqual({ ipmi_address: ipmiAddress, ipmi_username: bmcUser, ipmi_password: '******' });
  });

  it('masks the BMC identifiers in error texts a non-admin reads', () => {
    const bmc = { driver: 'redfish', driver_info: { redfish_address: 'https://bmc7.lab.example:8443', redfish_username: 'opsroot', redfish_password: { $sealed: 'x' } } } as unknown as BmcInfo;
    expect(scrubBmc('unreachable: connect ECONNREFUSED bmc7.lab.example:8443 (https://bmc7.lab.example:8443/redfish/v1)', bmc)).toBe(
      'unreachable: connect ECONNREFUSED ****** (******/redfish/v1)',
    );
    expect(scrubBmc('auth: user opsroot refused; opsrooted stays', bmc)).toBe('auth: user ****** refused; opsrooted stays');
  });
});

describe('Ironic input rules', () => {
  const register = async () => {
    const name = unique('sec');
    const res = await ironic('POST', '/v1/nodes', { name, driver: 'ipmi', conductor_group: siteIdle, extra: { rack: 'r1' }, driver_info: { ipmi_address: '10.0.0.50', ipmi_username: 'u', ipmi_password: 'p' } });
    expect(res.status, res.text).toBe(201);
    return res.body as { uuid: string; name: string };
  };
  const stored = async (uuid: string) => (await sharedDeps().nodes.get(uuid))!;

  it('refuses sealed blobs from clients anywhere in a node or a port, and writes nothing', async () => {
    const { uuid } = await register();
    const before = await stored(uuid);
    const blob = { $sealed: 'v1:AAAA:BBBB:CCCC' };
    for (const [path, value] of [
      ['/driver_info/ipmi_username', blob],
      ['/driver_info/ipmi_password', blob],
      ['/driver_info/ipmi_address', { nested: [blob] }],
      ['/extra/creds', blob],
      ['/properties/deep', { a: { b: blob } }],
    ] as const) {
      const res = await ironic('PATCH', `/v1/nodes/${uuid}`, [{ op: 'add', path, value }]);
      expect(res.status, `${path}: ${res.text}`).toBe(400);
      expect(fault(res).faultstring).toMatch(/\$sealed/);
    }
    expect((await stored(uuid)).version).toBe(before.version);
    const created = await ironic('POST', '/v1/nodes', { name: unique('sec'), driver: 'ipmi', extra: { x: blob }, driver_info: { ipmi_address: '10.0.0.51', ipmi_username: 'u' } });
    expect(created.status).toBe(400);
    const inInfo = await ironic('POST', '/v1/nodes', { name: unique('sec'), driver: 'ipmi', driver_info: { ipmi_address: '10.0.0.51', ipmi_username: blob } });
    expect(inInfo.status).toBe(400);

    const mac = `52:54:00:${randomUUID().slice(0, 2)}:${randomUUID().slice(0, 2)}:${randomUUID().slice(0, 2)}`;
    expect((await ironic('POST', '/v1/ports', { address: mac, node_uuid: uuid, extra: { k: blob } })).status).toBe(400);
    const port = await ironic('POST', '/v1/ports', { address: mac, node_uuid: uuid });
    expect(port.status, port.text).toBe(201);
    expect((await ironic('PATCH', `/v1/ports/${port.body.uuid}`, [{ op: 'add', path: '/local_link_connection/switch_id', value: blob }])).status).toBe(400);
    expect((await ironic('GET', `/v1/ports/${port.body.uuid}`)).body.local_link_connection).toEqual({});
  });

  it('holds PATCH /name to the create rules; null clears the name', async () => {
    const { uuid, name } = await register();
    for (const bad of ['', 'x/../y', '..', ' padded', 'a'.repeat(256), randomUUID(), 42]) {
      const res = await ironic('PATCH', `/v1/nodes/${uuid}`, [{ op: 'replace', path: '/name', value: bad }]);
      expect(res.status, `${JSON.stringify(bad)}: ${res.text}`).toBe(400);
      const create = await ironic('POST', '/v1/nodes', { name: bad, driver: 'ipmi', driver_info: { ipmi_address: '10.0.0.52', ipmi_username: 'u' } });
      expect(create.status, `create ${JSON.stringify(bad)}: ${create.text}`).toBe(400);
    }
    expect((await ironic('GET', `/v1/nodes/${uuid}`)).body.name).toBe(name);
    const renamed = `${name}-2`;
    expect((await ironic('PATCH', `/v1/nodes/${uuid}`, [{ op: 'replace', path: '/name', value: renamed }])).body.name).toBe(renamed);
    const cleared = await ironic('PATCH', `/v1/nodes/${uuid}`, [{ op: 'replace', path: '/name', value: null }]);
    expect(cleared.status, cleared.text).toBe(200);
    expect(cleared.body.name).toBeNull();
    expect((await ironic('GET', `/v1/nodes/${uuid}`)).body).toMatchObject({ uuid, name: null });
    expect((await ironic('GET', `/v1/nodes/${renamed}`)).status).toBe(404);
    expect((await ironic('PATCH', `/v1/nodes/${uuid}`, [{ op: 'add', path: '/name', value: name }])).body.name).toBe(name);
  });

  it('refuses extra and properties with a constructor key, 40 levels or 100 KB, and leaves the node as it was', async () => {
    const { uuid } = await register();
    const before = await stored(uuid);
    let deep: unknown = 'bottom';
    for (let i = 0; i < 40; i++) deep = { d: deep };
    const big = 'x'.repeat(100 * 1024);
    for (const [path, value] of [
      ['/extra/obj', JSON.parse('{"constructor": {"prototype": 1}}')],
      ['/extra/obj', deep],
      ['/extra/blob', big],
      ['/properties/blob', big],
    ] as const) {
      const res = await ironic('PATCH', `/v1/nodes/${uuid}`, [{ op: 'add', path, value }]);
      expect(res.status, `${path}: ${res.text.slice(0, 300)}`).toBe(400);
    }
    // 100 KB made of small values that are each fine.
    const many = Array.from({ length: 20 }, (_, i) => ({ op: 'add', path: `/extra/k${i}`, value: 'y'.repeat(5 * 1024) }));
    expect((await ironic('PATCH', `/v1/nodes/${uuid}`, many)).status).toBe(400);
    const after = await stored(uuid);
    expect(after.version).toBe(before.version);
    expect(after.bmc!.extra).toEqual({ rack: 'r1' });

    for (const extra of [JSON.parse('{"constructor": 1}'), deep, { blob: big }]) {
      expect((await ironic('POST', '/v1/nodes', { name: unique('sec'), driver: 'ipmi', extra, driver_info: { ipmi_address: '10.0.0.53', ipmi_username: 'u' } })).status).toBe(400);
      expect((await ironic('POST', '/v1/nodes', { name: unique('sec'), driver: 'ipmi', properties: extra, driver_info: { ipmi_address: '10.0.0.53', ipmi_username: 'u' } })).status).toBe(400);
      const mac = `52:54:01:${randomUUID().slice(0, 2)}:${randomUUID().slice(0, 2)}:${randomUUID().slice(0, 2)}`;
      expect((await ironic('POST', '/v1/ports', { address: mac, node_uuid: uuid, extra })).status).toBe(400);
    }
    const mac = `52:54:02:${randomUUID().slice(0, 2)}:${randomUUID().slice(0, 2)}:${randomUUID().slice(0, 2)}`;
    const port = await ironic('POST', '/v1/ports', { address: mac, node_uuid: uuid, extra: { a: 1 } });
    expect(port.status, port.text).toBe(201);
    expect((await ironic('PATCH', `/v1/ports/${port.body.uuid}`, [{ op: 'add', path: '/extra/blob', value: big }])).status).toBe(400);
    expect((await ironic('GET', `/v1/ports/${port.body.uuid}`)).body.extra).toEqual({ a: 1 });
  });

  it('refuses over-long identifiers in bodies with 400, without echoing them', async () => {
    const long = 'z'.repeat(300);
    const info = { ipmi_address: '10.0.0.54', ipmi_username: 'u' };
    for (const body of [
      { name: long, driver: 'ipmi', driver_info: info },
      { name: unique('sec'), driver: 'ipmi', uuid: long, driver_info: info },
      { name: unique('sec'), driver: long, driver_info: info },
      { name: unique('sec'), driver: 'ipmi', conductor_group: long, driver_info: info },
      { name: unique('sec'), driver: 'ipmi', resource_class: long, driver_info: info },
      { name: unique('sec'), driver: 'ipmi', driver_info: { ...info, ipmi_address: long } },
      { name: unique('sec'), driver: 'ipmi', driver_info: { ...info, ipmi_username: long } },
      { name: unique('sec'), driver: 'ipmi', driver_info: { ...info, credential_ref: long } },
      { name: unique('sec'), driver: 'ipmi', driver_info: { ...info, ipmi_password: 'p'.repeat(2000) } },
    ]) {
      const res = await ironic('POST', '/v1/nodes', body);
      expect(res.status, res.text.slice(0, 300)).toBe(400);
      expect(res.text).not.toContain(long);
    }
    const { uuid } = await register();
    for (const path of ['/conductor_group', '/resource_class', '/driver_info/ipmi_address']) {
      const res = await ironic('PATCH', `/v1/nodes/${uuid}`, [{ op: 'replace', path, value: long }]);
      expect(res.status, `${path}: ${res.text.slice(0, 300)}`).toBe(400);
    }
    for (const body of [{ address: long, node_uuid: uuid }, { address: '52:54:00:00:00:01', node_uuid: long }]) {
      const res = await ironic('POST', '/v1/ports', body);
      expect(res.status, res.text.slice(0, 300)).toBe(400);
      expect(res.text).not.toContain(long);
    }
    const passthru = await ironic('POST', '/v1/drivers/ipmi/vendor_passthru/probe', { address: long, username: 'u' });
    expect(passthru.status).toBe(400);
    const key = await ironic('PATCH', `/v1/nodes/${uuid}`, [{ op: 'add', path: `/extra/${'k'.repeat(600)}`, value: 1 }]);
    expect(key.status).toBe(400);
  });
});
