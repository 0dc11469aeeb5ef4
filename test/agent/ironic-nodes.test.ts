import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand, ScanCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { Agent } from '../../agent/runner.ts';
import { type IpmiSim, startIpmiSim } from '../../agent/sim/ipmi-sim.ts';
import { type RedfishSim, startRedfishSim } from '../../agent/sim/redfish.ts';
import { startTestAgent } from '../support/agent.ts';
import { call, tokenFor, unique } from '../support/api.ts';
import { explain, jsonFrom, runPython } from '../contract/clients.ts';

/**
 * The Ironic node API end to end: register BMCs, ask for power and boot changes, the agent of
 * the node's site (conductor_group) carries them out against real BMC peers, and the node shows
 * what the BMC reported.
 */
let redfish: RedfishSim;
let ipmi: IpmiSim;
let agent: Agent;
const site = unique('rack');

beforeAll(async () => {
  redfish = await startRedfishSim({ username: 'root', password: 'calvin', systems: [{ id: 'n1', powerState: 'Off', powerDelayMs: 100 }] });
  ipmi = await startIpmiSim({ username: 'admin', password: 'password' });
  agent = await startTestAgent(site);
});
afterAll(async () => {
  await agent?.stop();
  await redfish?.stop();
  await ipmi?.stop();
});

const V = { 'X-OpenStack-Ironic-API-Version': '1.78' };
const ironic = (method: string, path: string, body?: unknown, token?: string) => call(method, path, { body, headers: V, ...(token ? { token } : {}) });
const fault = (res: { body: any }) => JSON.parse(res.body.error_message);

async function settled(ident: string, ms = 20_000) {
  const end = Date.now() + ms;
  for (;;) {
    const s = await ironic('GET', `/v1/nodes/${ident}/states`);
    if (s.body.target_power_state === null) return s.body;
    if (Date.now() > end) throw new Error(`node ${ident} still ${JSON.stringify(s.body)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('Ironic discovery', () => {
  it('answers / and /v1 without a token, with version headers and links', async () => {
    const root = await call('GET', '/', { token: null, headers: { Accept: 'application/json' } });
    expect(root.status).toBe(200);
    expect(root.body.versions[0]).toMatchObject({ id: 'v1', status: 'CURRENT', links: [{ rel: 'self', href: expect.stringMatching(/\/v1\/$/) }] });
    const v1 = await call('GET', '/v1', { token: null });
    expect(v1.status).toBe(200);
    expect(v1.headers.get('x-openstack-ironic-api-minimum-version')).toBe('1.1');
    expect(v1.headers.get('x-openstack-ironic-api-maximum-version')).toBe('1.78');
    expect(v1.headers.get('content-type')).toMatch(/application\/json/);
  });

  it('negotiates microversions: 406 out of range (with the range headers), 400 malformed', async () => {
    const high = await call('GET', '/v1/nodes', { headers: { 'X-OpenStack-Ironic-API-Version': '1.99' } });
    expect(high.status).toBe(406);
    expect(high.headers.get('x-openstack-ironic-api-maximum-version')).toBe('1.78');
    expect(fault(high)).toMatchObject({ faultcode: 'Client', faultstring: expect.stringContaining('1.99') });
    expect((await call('GET', '/v1/nodes', { headers: { 'X-OpenStack-Ironic-API-Version': 'one' } })).status).toBe(400);
    const std = await call('GET', '/v1/nodes', { headers: { 'OpenStack-API-Version': 'baremetal 1.31' } });
    expect(std.headers.get('x-openstack-ironic-api-version')).toBe('1.31');
  });
});

describe('Ironic nodes', () => {
  it('registers BMCs with masked, sealed passwords and validates driver_info', async () => {
    const name = unique('bm');
    const res = await ironic('POST', '/v1/nodes', {
      name,
      driver: 'redfish',
      conductor_group: site,
      driver_info: { redfish_address: redfish.url, redfish_system_id: 'n1', redfish_username: 'root', redfish_password: 'calvin' },
    });
    expect(res.status, res.text).toBe(201);
    expect(res.body).toMatchObject({ name, driver: 'redfish', provision_state: 'enroll', power_state: null, driver_info: { redfish_password: '******' } });
    expect(res.text).not.toContain('calvin');
    // At rest the password is sealed, not stored in plain text.
    const doc = DynamoDBDocumentClient.from(new DynamoDBClient({ endpoint: inject('dynamoEndpoint'), region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'x' } }));
    const raw = await doc.send(new GetCommand({ TableName: 'slipway', Key: { PK: `NODE#${res.body.uuid}`, SK: 'META' } }));
    expect(JSON.stringify(raw.Item)).not.toContain('calvin');

    expect((await ironic('GET', `/v1/nodes/${name}`)).body.uuid).toBe(res.body.uuid);
    const list = await ironic('GET', '/v1/nodes');
    expect(list.body.nodes.find((n: any) => n.uuid === res.body.uuid)).toEqual({
      uuid: res.body.uuid, name, instance_uuid: null, power_state: null, provision_state: 'enroll', maintenance: false, links: expect.any(Array),
    });
    expect((await ironic('POST', '/v1/nodes', { name, driver: 'redfish', driver_info: { redfish_address: 'x', redfish_username: 'u' } })).status).toBe(409);
    const bad = await ironic('POST', '/v1/nodes', { name: unique('bm'), driver: 'ipmi', driver_info: { ipmi_address: '10.0.0.1', ipmi_username: 'u', ipmi_colour: 'red' } });
    expect(bad.status).toBe(400);
    expect(fault(bad).faultstring).toMatch(/ipmi_colour/);
    expect((await ironic('POST', '/v1/nodes', { name: unique('bm'), driver: 'idrac', driver_info: {} })).status).toBe(400);
    // The baremetal CLI sends `redfish_system_id=1` as a number; it is kept as a string.
    const numeric = await ironic('POST', '/v1/nodes', { name: unique('bm'), driver: 'redfish', driver_info: { redfish_address: redfish.url, redfish_system_id: 1, redfish_username: 'root' } });
    expect(numeric.status, numeric.text).toBe(201);
    expect(numeric.body.driver_info.redfish_system_id).toBe('1');
    expect((await ironic('GET', '/v1/nodes/no-such-node')).status).toBe(404);
  });

  it('powers a Redfish node on through the agent and reports the BMC state; one power action at a time', async () => {
    const name = unique('bm');
    await ironic('POST', '/v1/nodes', {
      name,
      driver: 'redfish',
      conductor_group: site,
      driver_info: { redfish_address: redfish.url, redfish_system_id: 'n1', redfish_username: 'root', redfish_password: 'calvin' },
    });
    const put = await ironic('PUT', `/v1/nodes/${name}/states/power`, { target: 'power on' });
    expect(put.status).toBe(202);
    expect(put.text).toBe('');
    // No JSON type on an empty answer: ironicclient logs an error trying to decode it.
    expect(put.headers.get('content-type')).toBeNull();
    const states = await settled(name);
    expect(states).toMatchObject({ power_state: 'power on', last_error: null });
    expect(redfish.state('n1').PowerState).toBe('On');
    const boot = await ironic('PUT', `/v1/nodes/${name}/management/boot_device`, { boot_device: 'pxe', persistent: true });
    expect(boot.status).toBe(204);
    expect(redfish.state('n1')).toMatchObject({ BootSourceOverrideTarget: 'Pxe', BootSourceOverrideEnabled: 'Continuous' });
    expect((await ironic('PUT', `/v1/nodes/${name}/states/power`, { target: 'explode' })).status).toBe(400);
  });

  it('accepts exactly one of 10 parallel power requests while one is in progress', async () => {
    const name = unique('bm');
    // A site with no agent: the first request stays in progress.
    await ironic('POST', '/v1/nodes', { name, driver: 'ipmi', conductor_group: unique('idle'), driver_info: { ipmi_address: '10.0.0.13', ipmi_username: 'u' } });
    const results = await Promise.all(Array.from({ length: 10 }, () => ironic('PUT', `/v1/nodes/${name}/states/power`, { target: 'power on' })));
    expect(results.filter((r) => r.status === 202)).toHaveLength(1);
    const refused = results.filter((r) => r.status === 409);
    expect(refused).toHaveLength(9);
    expect(fault(refused[0]!).faultstring).toMatch(/locked by a power action in progress/);
    expect((await ironic('GET', `/v1/nodes/${name}/states`)).body.target_power_state).toBe('power on');
  });

  it('powers an IPMI node off and on against ipmi_sim', async () => {
    const name = unique('bm');
    const reg = await ironic('POST', '/v1/nodes', {
      name,
      driver: 'ipmi',
      conductor_group: site,
      driver_info: { ipmi_address: ipmi.address, ipmi_port: ipmi.port, ipmi_username: 'admin', ipmi_password: 'password' },
    });
    expect(reg.status, reg.text).toBe(201);
    expect((await ironic('PUT', `/v1/nodes/${name}/states/power`, { target: 'power on' })).status).toBe(202);
    expect((await settled(name)).power_state).toBe('power on');
    expect(ipmi.state().power).toBe('on');
    expect((await ironic('PUT', `/v1/nodes/${name}/states/power`, { target: 'power off' })).status).toBe(202);
    expect((await settled(name)).power_state).toBe('power off');
    expect(ipmi.state().power).toBe('off');
    expect((await ironic('PUT', `/v1/nodes/${name}/management/boot_device`, { boot_device: 'pxe', persistent: false })).status).toBe(204);
    expect(ipmi.state().boot).toMatch(/pxe/);
    // Power actions leave the provision state alone, as upstream's do: `manage` verifies a node.
    expect((await ironic('GET', `/v1/nodes/${name}`)).body.provision_state).toBe('enroll');
  });

  it('records the BMC error as last_error', async () => {
    const name = unique('bm');
    await ironic('POST', '/v1/nodes', {
      name,
      driver: 'redfish',
      conductor_group: site,
      driver_info: { redfish_address: redfish.url, redfish_system_id: 'n1', redfish_username: 'root', redfish_password: 'wrong-secret' },
    });
    await ironic('PUT', `/v1/nodes/${name}/states/power`, { target: 'power on' });
    const states = await settled(name);
    expect(states.last_error).toMatch(/^auth: /);
    expect(states.last_error).not.toContain('wrong-secret');
  });

  it('patches driver_info, deletes nodes, and keeps Blazar hosts in the inventory', async () => {
    const name = unique('bm');
    await ironic('POST', '/v1/nodes', { name, driver: 'ipmi', driver_info: { ipmi_address: '10.0.0.9', ipmi_username: 'u', ipmi_password: 'p' } });
    const patched = await ironic('PATCH', `/v1/nodes/${name}`, [{ op: 'replace', path: '/driver_info/ipmi_address', value: '10.0.0.10' }, { op: 'add', path: '/extra/rack', value: 'r7' }]);
    expect(patched.status, patched.text).toBe(200);
    expect(patched.body).toMatchObject({ driver_info: { ipmi_address: '10.0.0.10', ipmi_password: '******' }, extra: { rack: 'r7' } });
    expect((await ironic('PATCH', `/v1/nodes/${name}`, [{ op: 'replace', path: '/driver_info/ipmi_port', value: 'x' }])).status).toBe(400);
    expect((await ironic('DELETE', `/v1/nodes/${name}`)).status).toBe(204);
    expect((await ironic('GET', `/v1/nodes/${name}`)).status).toBe(404);

    const host = unique('host');
    expect((await call('POST', '/v1/os-hosts', { body: { name: host } })).status).toBe(201);
    const reg = await ironic('POST', '/v1/nodes', { name: host, driver: 'ipmi', driver_info: { ipmi_address: '10.0.0.11', ipmi_username: 'u' } });
    expect(reg.status, reg.text).toBe(201);
    expect((await ironic('DELETE', `/v1/nodes/${host}`)).status).toBe(204);
    const node = await call('GET', `/v1.1/admin/nodes/${host}`);
    expect(node.status).toBe(200);
    expect((await ironic('GET', `/v1/nodes/${host}`)).body.driver).toBeNull();
  });

  it('keeps resource_class as its own field: set at create, patched, filtered on, not in extra', async () => {
    const name = unique('bm');
    const rc = unique('baremetal.gpu');
    const made = await ironic('POST', '/v1/nodes', { name, driver: 'ipmi', resource_class: rc, extra: { rack: 'r9' }, driver_info: { ipmi_address: '10.0.0.13', ipmi_username: 'u' } });
    expect(made.status, made.text).toBe(201);
    expect(made.body).toMatchObject({ resource_class: rc, extra: { rack: 'r9' } });
    expect(made.body.extra).not.toHaveProperty('resource_class');
    expect((await ironic('GET', `/v1/nodes?resource_class=${rc}&fields=name`)).body.nodes).toEqual([{ name, links: expect.any(Array) }]);
    const moved = await ironic('PATCH', `/v1/nodes/${name}`, [{ op: 'replace', path: '/resource_class', value: `${rc}-2` }]);
    expect(moved.status, moved.text).toBe(200);
    expect(moved.body.resource_class).toBe(`${rc}-2`);
    expect((await ironic('GET', `/v1/nodes?resource_class=${rc}`)).body.nodes).toEqual([]);
    expect((await ironic('PATCH', `/v1/nodes/${name}`, [{ op: 'remove', path: '/resource_class' }])).body.resource_class).toBeNull();
  });

  it('hides nodes from projects without a grant', async () => {
    const { token } = await tokenFor('member');
    const name = unique('bm');
    await ironic('POST', '/v1/nodes', { name, driver: 'ipmi', driver_info: { ipmi_address: '10.0.0.12', ipmi_username: 'u' } });
    expect((await ironic('GET', `/v1/nodes/${name}`, undefined, token)).status).toBe(404);
    expect((await ironic('PUT', `/v1/nodes/${name}/states/power`, { target: 'power on' }, token)).status).toBe(404);
    expect((await ironic('POST', '/v1/nodes', { name: unique('bm'), driver: 'ipmi', driver_info: {} }, token)).status).toBe(403);
  });
});

describe('Ironic maintenance, validation and boot devices', () => {
  const register = async (conductor_group: string) => {
    const name = unique('bm');
    const res = await ironic('POST', '/v1/nodes', {
      name,
      driver: 'redfish',
      conductor_group,
      driver_info: { redfish_address: redfish.url, redfish_system_id: 'n1', redfish_username: 'root', redfish_password: 'calvin' },
    });
    expect(res.status, res.text).toBe(201);
    return { name, uuid: res.body.uuid as string };
  };

  it('puts a node in maintenance with a reason, refuses power requests then, and takes it out again', async () => {
    const { name, uuid } = await register(site);
    const on = await ironic('PUT', `/v1/nodes/${name}/maintenance`, { reason: 'fan replacement' });
    expect(on.status, on.text).toBe(202);
    expect(on.text).toBe('');
    expect((await ironic('GET', `/v1/nodes/${uuid}`)).body).toMatchObject({ maintenance: true, maintenance_reason: 'fan replacement' });
    const power = await ironic('PUT', `/v1/nodes/${name}/states/power`, { target: 'power on' });
    expect(power.status).toBe(400);
    expect(fault(power).faultstring).toMatch(/in maintenance mode/);
    const inMaintenance = await ironic('GET', `/v1/nodes?maintenance=true&fields=uuid,maintenance_reason`);
    expect(inMaintenance.body.nodes).toContainEqual({ uuid, maintenance_reason: 'fan replacement', links: expect.any(Array) });

    const off = await ironic('DELETE', `/v1/nodes/${name}/maintenance`);
    expect(off.status, off.text).toBe(202);
    expect((await ironic('GET', `/v1/nodes/${uuid}`)).body).toMatchObject({ maintenance: false, maintenance_reason: null });
    // python-ironicclient sends {"reason": null} without --reason.
    expect((await ironic('PUT', `/v1/nodes/${uuid}/maintenance`, { reason: null })).status).toBe(202);
    expect((await ironic('GET', `/v1/nodes/${uuid}`)).body).toMatchObject({ maintenance: true, maintenance_reason: null });
    expect((await ironic('PUT', `/v1/nodes/${uuid}/maintenance`, { reason: 'x', colour: 'red' })).status).toBe(400);
    expect((await ironic('PUT', '/v1/nodes/no-such-node/maintenance', { reason: 'x' })).status).toBe(404);
    const { token } = await tokenFor('member');
    expect((await ironic('PUT', `/v1/nodes/${uuid}/maintenance`, { reason: 'x' }, token)).status).toBe(403);
  });

  it('validates power and management: usable with a connected agent, not in maintenance or without one', async () => {
    const { name } = await register(site);
    const ok = await ironic('GET', `/v1/nodes/${name}/validate`);
    expect(ok.status, ok.text).toBe(200);
    expect(ok.body.power).toEqual({ result: true, reason: null });
    expect(ok.body.management).toEqual({ result: true, reason: null });
    expect(ok.body.deploy).toEqual({ result: null, reason: 'not supported' });
    expect(Object.keys(ok.body).sort()).toEqual(['bios', 'boot', 'console', 'deploy', 'inspect', 'management', 'network', 'power', 'raid', 'rescue', 'storage']);

    await ironic('PUT', `/v1/nodes/${name}/maintenance`, { reason: 'disk swap' });
    expect((await ironic('GET', `/v1/nodes/${name}/validate`)).body.power).toEqual({ result: false, reason: `Node ${name} is in maintenance mode: disk swap` });

    const lonely = unique('lonely');
    const orphan = await register(lonely);
    expect((await ironic('GET', `/v1/nodes/${orphan.name}/validate`)).body.power).toEqual({
      result: false,
      reason: `Site ${lonely}: no agent connected; start one with an agent token of project ${lonely}`,
    });
  });

  it('lists the supported boot devices, and shows just the fields asked for', async () => {
    const { name, uuid } = await register(site);
    const supported = await ironic('GET', `/v1/nodes/${name}/management/boot_device/supported`);
    expect(supported.status, supported.text).toBe(200);
    expect(supported.body).toEqual({ supported_boot_devices: ['pxe', 'disk'] });
    const some = await ironic('GET', `/v1/nodes/${name}?fields=uuid,driver,maintenance`);
    expect(some.body).toEqual({ uuid, driver: 'redfish', maintenance: false, links: expect.any(Array) });
    // The boot device as the BMC reports it, read through the site's agent.
    expect((await ironic('PUT', `/v1/nodes/${name}/management/boot_device`, { boot_device: 'pxe', persistent: true })).status).toBe(204);
    const pxe = await ironic('GET', `/v1/nodes/${name}/management/boot_device`);
    expect(pxe.status, pxe.text).toBe(200);
    expect(pxe.body).toEqual({ boot_device: 'pxe', persistent: true });
    expect((await ironic('PUT', `/v1/nodes/${name}/management/boot_device`, { boot_device: 'disk', persistent: false })).status).toBe(204);
    expect((await ironic('GET', `/v1/nodes/${name}/management/boot_device`)).body).toEqual({ boot_device: 'disk', persistent: false });
    const props = await ironic('GET', '/v1/drivers/redfish/properties');
    expect(props.status, props.text).toBe(200);
    expect(props.body.redfish_address).toMatch(/Required\.$/);
    expect((await ironic('GET', '/v1/drivers/idrac/properties')).status).toBe(404);
    const bad = await ironic('GET', `/v1/nodes/${name}?fields=uuid,colour`);
    expect(bad.status).toBe(400);
    expect(fault(bad).faultstring).toBe('Field(s) "colour" are not valid');
  });

  it('works from python-ironicclient: maintenance on and off, validate, boot devices, fields', async () => {
    const { uuid } = await register(site);
    const r = await runPython(
      `
import json, os
from ironicclient import client
ic = client.get_client(1, endpoint=os.environ['SLIPWAY_URL'], token=os.environ['SLIPWAY_TOKEN'], os_ironic_api_version='1.78')
uuid = os.environ['NODE']
ic.node.set_maintenance(uuid, 'true', maint_reason='bios update')
during = ic.node.get(uuid, fields=['maintenance', 'maintenance_reason']).to_dict()
v = ic.node.validate(uuid).to_dict()
ic.node.set_maintenance(uuid, False)
after = ic.node.get(uuid).maintenance
ic.node.set_boot_device(uuid, 'pxe', persistent=False)
print(json.dumps({'during': during, 'power': v['power'], 'after': after, 'boot': ic.node.get_supported_boot_devices(uuid), 'device': ic.node.get_boot_device(uuid)}))
`,
      { env: { SLIPWAY_URL: inject('apiUrl'), SLIPWAY_TOKEN: inject('adminToken'), NODE: uuid } },
    );
    expect(r.code, explain(r)).toBe(0);
    const out = jsonFrom(r.stdout);
    expect(out.during).toMatchObject({ maintenance: true, maintenance_reason: 'bios update' });
    expect(out.power).toEqual({ result: false, reason: expect.stringContaining('maintenance mode: bios update') });
    expect(out.after).toBe(false);
    expect(out.boot).toEqual({ supported_boot_devices: ['pxe', 'disk'] });
    expect(out.device).toEqual({ boot_device: 'pxe', persistent: false });
  });
});

describe('Ironic provision states', () => {
  const register = async (password = 'calvin', conductor_group = site) => {
    const name = unique('bm');
    const res = await ironic('POST', '/v1/nodes', {
      name,
      driver: 'redfish',
      conductor_group,
      driver_info: { redfish_address: redfish.url, redfish_system_id: 'n1', redfish_username: 'root', redfish_password: password },
      // These tests are about the provision verbs, not disk cleaning (ironic-clean.test.ts):
      // the node opts out of automated cleaning, as upstream's per-node automated_clean allows.
      automated_clean: false,
    });
    expect(res.status, res.text).toBe(201);
    return { name, uuid: res.body.uuid as string };
  };
  const provision = (ident: string, target: string, token?: string) => ironic('PUT', `/v1/nodes/${ident}/states/provision`, { target }, token);
  async function reaches(ident: string, state: string) {
    const end = Date.now() + 20_000;
    for (;;) {
      const s = (await ironic('GET', `/v1/nodes/${ident}/states`)).body;
      if (s.provision_state === state) return s;
      if (Date.now() > end) throw new Error(`node ${ident} still ${JSON.stringify(s)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  it('manage verifies the BMC through the agent (enroll → verifying → manageable), then provide, manage and adopt move it on', async () => {
    const { name, uuid } = await register();
    const res = await provision(name, 'manage');
    expect(res.status, res.text).toBe(202);
    expect(res.headers.get('location')).toBe(`${inject('apiUrl')}/v1/nodes/${uuid}/states`);
    const managed = await reaches(name, 'manageable');
    expect(managed).toMatchObject({ target_provision_state: null, last_error: null, power_state: expect.stringMatching(/^power (on|off)$/) });
    expect(Date.parse(managed.provision_updated_at)).toBeGreaterThan(Date.now() - 60_000);

    expect((await provision(name, 'provide')).status).toBe(202);
    expect((await ironic('GET', `/v1/nodes/${name}`)).body).toMatchObject({ provision_state: 'available', target_provision_state: null });
    expect((await provision(name, 'manage')).status).toBe(202);
    expect((await ironic('GET', `/v1/nodes/${name}`)).body.provision_state).toBe('manageable');
    expect((await provision(name, 'adopt')).status).toBe(202);
    expect((await ironic('GET', `/v1/nodes/${name}`)).body.provision_state).toBe('active');

    const wrong = await provision(name, 'provide');
    expect(wrong.status).toBe(400);
    expect(fault(wrong).faultstring).toBe(`The requested action "provide" can not be performed on node "${uuid}" while it is in state "active".`);
    expect((await ironic('GET', `/v1/nodes?provision_state=active&fields=uuid`)).body.nodes).toContainEqual({ uuid, links: expect.any(Array) });
  });

  it('returns a node whose BMC refuses the credentials to enroll, with the reason', async () => {
    const { name } = await register('wrong-secret');
    expect((await provision(name, 'manage')).status).toBe(202);
    const back = await reaches(name, 'enroll');
    expect(back.target_provision_state).toBeNull();
    expect(back.last_error).toMatch(/^Failed to verify node redfish BMC credentials: auth: /);
    expect(back.last_error).not.toContain('wrong-secret');
  });

  it('aborts a verification that no agent takes, and says where deploying lives', async () => {
    const { name } = await register('calvin', unique('no-agent'));
    expect((await provision(name, 'manage')).status).toBe(202);
    expect((await ironic('GET', `/v1/nodes/${name}/states`)).body).toMatchObject({ provision_state: 'verifying', target_provision_state: 'manageable' });
    expect((await provision(name, 'manage')).status).toBe(400);
    expect((await provision(name, 'abort')).status).toBe(202);
    expect((await ironic('GET', `/v1/nodes/${name}/states`)).body).toMatchObject({ provision_state: 'enroll', target_provision_state: null });

    // Deploying starts from available (test/integration/ironic-deploy.test.ts has the verbs).
    const deploy = await provision(name, 'active');
    expect(deploy.status).toBe(400);
    expect(fault(deploy).faultstring).toBe(`The requested action "active" can not be performed on node "${(await ironic('GET', `/v1/nodes/${name}`)).body.uuid}" while it is in state "enroll".`);
    const rescue = await provision(name, 'rescue');
    expect(fault(rescue).faultstring).toBe('The provision action "rescue" is not supported: there is no rescue ramdisk here');
    const unknown = await provision(name, 'launch');
    expect(unknown.status).toBe(400);
    expect(fault(unknown).faultstring).toMatch(/^Invalid provision target "launch"; one of: manage, provide, adopt, abort, /);
    expect(fault(await provision(name, 'toString')).faultstring).toMatch(/^Invalid provision target "toString"/);
    expect((await ironic('PUT', `/v1/nodes/${name}/states/provision`, { target: 'manage', colour: 'red' })).status).toBe(400);
    const { token } = await tokenFor('member');
    expect((await provision(name, 'manage', token)).status).toBe(403);
  });

  it('moves a node once when ten manage requests race: one 202, nine 400, one verification', async () => {
    const { name } = await register();
    const answers = await Promise.all(Array.from({ length: 10 }, () => provision(name, 'manage')));
    expect(answers.map((a) => a.status).sort()).toEqual([202, ...Array(9).fill(400)]);
    for (const a of answers.filter((x) => x.status === 400)) expect(fault(a).faultstring).toMatch(/while it is in state "(verifying|manageable)"/);
    const managed = await reaches(name, 'manageable');
    // One BMC read was queued for the node, not ten.
    const doc = DynamoDBDocumentClient.from(new DynamoDBClient({ endpoint: inject('dynamoEndpoint'), region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'x' } }));
    const uuid = (await ironic('GET', `/v1/nodes/${name}`)).body.uuid;
    const kinds: string[] = [];
    let start: Record<string, unknown> | undefined;
    do {
      const page = await doc.send(
        new ScanCommand({ TableName: 'slipway', FilterExpression: 'entity = :e AND node_id = :n', ExpressionAttributeValues: { ':e': 'job', ':n': uuid }, ExclusiveStartKey: start }),
      );
      kinds.push(...(page.Items ?? []).map((j) => j.kind as string));
      start = page.LastEvaluatedKey;
    } while (start);
    expect(kinds).toEqual(['power_state']);
    expect(managed.last_error).toBeNull();
  });

  it('works from python-ironicclient, waiting for each state as operators do', async () => {
    const { uuid } = await register();
    const r = await runPython(
      `
import json, os
from ironicclient import client
ic = client.get_client(1, endpoint=os.environ['SLIPWAY_URL'], token=os.environ['SLIPWAY_TOKEN'], os_ironic_api_version='1.78')
uuid = os.environ['NODE']
seen = []
ic.node.set_provision_state(uuid, 'manage')
ic.node.wait_for_provision_state(uuid, 'manageable', timeout=30)
seen.append(ic.node.get(uuid).provision_state)
ic.node.set_provision_state(uuid, 'provide')
ic.node.wait_for_provision_state(uuid, 'available', timeout=30)
seen.append(ic.node.get(uuid).provision_state)
print(json.dumps(seen))
`,
      { env: { SLIPWAY_URL: inject('apiUrl'), SLIPWAY_TOKEN: inject('adminToken'), NODE: uuid } },
    );
    expect(r.code, explain(r)).toBe(0);
    expect(jsonFrom(r.stdout)).toEqual(['manageable', 'available']);
  });
});
