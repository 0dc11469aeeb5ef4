import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { Agent } from '../../agent/runner.ts';
import { type IpmiSim, startIpmiSim } from '../../agent/sim/ipmi-sim.ts';
import { type RedfishSim, startRedfishSim } from '../../agent/sim/redfish.ts';
import { startTestAgent } from '../support/agent.ts';
import { call, tokenFor, unique } from '../support/api.ts';
import { pythonBin } from '../contract/clients.ts';

/**
 * Ironic vendor passthru through the agent to real BMC peers, over HTTP and through the real
 * upstream clients (python-ironicclient's path form, openstacksdk's `?method=`, the
 * `baremetal` CLI). Driver-level calls go to the default site's agent.
 */
let redfish: RedfishSim;
let ipmi: IpmiSim;
let agent: Agent;

beforeAll(async () => {
  redfish = await startRedfishSim({ username: 'root', password: 'calvin', systems: [{ id: 'p1' }, { id: 'p2' }] });
  ipmi = await startIpmiSim({ username: 'admin', password: 'password' });
  agent = await startTestAgent('default');
});
afterAll(async () => {
  await agent?.stop();
  await redfish?.stop();
  await ipmi?.stop();
});

const fault = (res: { body: any }) => JSON.parse(res.body.error_message);
const probe = () => ({ address: ipmi.address, port: ipmi.port, username: 'admin', password: 'password' });

describe('Ironic drivers and vendor passthru over HTTP', () => {
  it('lists drivers and their methods', async () => {
    const drivers = await call('GET', '/v1/drivers');
    expect(drivers.body.drivers.map((d: any) => d.name).sort()).toEqual(['ipmi', 'redfish']);
    expect((await call('GET', '/v1/drivers/ipmi')).body.name).toBe('ipmi');
    expect((await call('GET', '/v1/drivers/idrac')).status).toBe(404);
    const methods = await call('GET', '/v1/drivers/ipmi/vendor_passthru/methods');
    expect(methods.body).toEqual({ probe: { http_methods: ['POST'], async: false, attach: false, description: expect.any(String) } });
    expect(Object.keys((await call('GET', '/v1/drivers/redfish/vendor_passthru/methods')).body)).toEqual(['discover']);
  });

  it('calls probe synchronously in both forms and answers the BMC chassis status', async () => {
    for (const path of ['/v1/drivers/ipmi/vendor_passthru/probe', '/v1/drivers/ipmi/vendor_passthru?method=probe']) {
      const res = await call('POST', path, { body: probe() });
      expect(res.status, res.text).toBe(200);
      expect(res.body).toMatchObject({ system_power: expect.stringMatching(/^(on|off)$/) });
    }
    const discover = await call('POST', '/v1/drivers/redfish/vendor_passthru/discover', { body: { address: redfish.url, username: 'root', password: 'calvin' } });
    expect(discover.status, discover.text).toBe(200);
    expect(discover.body.systems.map((s: any) => s.id).sort()).toEqual(['p1', 'p2']);
  });

  it.each([
    ['POST', '/v1/drivers/ipmi/vendor_passthru', {}, 400, 'Method not specified'],
    ['POST', '/v1/drivers/ipmi/vendor_passthru/frobnicate', {}, 400, 'No handler for method frobnicate'],
    ['GET', '/v1/drivers/ipmi/vendor_passthru/probe', undefined, 400, 'does not support HTTP GET'],
    ['POST', '/v1/drivers/ipmi/vendor_passthru/probe', { port: 623, username: 'u' }, 400, "'address'"],
    ['POST', '/v1/drivers/ipmi/vendor_passthru/probe', { address: 'a', username: 'u', colour: 'red' }, 400, 'unexpected argument(s) colour'],
    ['POST', '/v1/drivers/idrac/vendor_passthru/probe', {}, 404, 'Driver idrac could not be found.'],
    // Names of Object.prototype's own keys are just unknown drivers.
    ['GET', '/v1/drivers/constructor/vendor_passthru/methods', undefined, 404, 'Driver constructor could not be found.'],
    ['POST', '/v1/drivers/__proto__/vendor_passthru/probe', {}, 404, 'Driver __proto__ could not be found.'],
    ['GET', '/v1/drivers/toString/properties', undefined, 404, 'Driver toString could not be found.'],
    ['POST', '/v1/nodes/no-such-node/vendor_passthru/send_raw', {}, 404, 'could not be found'],
  ])('%s %s → %s', async (method, path, body, status, message) => {
    const res = await call(method, path, body === undefined ? {} : { body });
    expect(res.status, res.text).toBe(status);
    expect(res.headers.get('content-type')).toMatch(/application\/json/);
    expect(fault(res).faultstring).toContain(message);
  });

  it('rejects bad JSON with 400 in the Ironic shape', async () => {
    const res = await call('POST', '/v1/drivers/ipmi/vendor_passthru/probe', { rawBody: '{not json', headers: { 'Content-Type': 'application/json' } });
    expect(res.status).toBe(400);
    expect(fault(res).faultcode).toBe('Client');
  });

  it('answers a BMC failure of a sync call with the reason, and no password', async () => {
    const res = await call('POST', '/v1/drivers/ipmi/vendor_passthru/probe', { body: { ...probe(), password: 'not-the-password' } });
    expect(res.status).toBe(502);
    expect(fault(res).faultstring).toMatch(/probe failed: auth: /);
    expect(res.text).not.toContain('not-the-password');
  });

  it('runs node methods: async ones answer 202 empty and hold the node lock until done', async () => {
    const name = unique('pt');
    const reg = await call('POST', '/v1/nodes', { body: { name, driver: 'redfish', driver_info: { redfish_address: redfish.url, redfish_system_id: 'p1', redfish_username: 'root', redfish_password: 'calvin' } } });
    expect(reg.status, reg.text).toBe(201);
    const methods = await call('GET', `/v1/nodes/${name}/vendor_passthru/methods`);
    expect(methods.body.eject_vmedia).toMatchObject({ http_methods: ['POST'], async: true, require_exclusive_lock: true });
    expect(methods.body.get_all_subscriptions).toMatchObject({ http_methods: ['GET'], async: false, require_exclusive_lock: false });

    const sub = await call('POST', `/v1/nodes/${name}/vendor_passthru/create_subscription`, { body: { Destination: 'https://collector.example/events', Context: 'slipway' } });
    expect(sub.status, sub.text).toBe(200);
    const all = await call('GET', `/v1/nodes/${name}/vendor_passthru?method=get_all_subscriptions`);
    expect(all.body.subscriptions.map((x: any) => x.destination)).toContain('https://collector.example/events');
    const one = await call('GET', `/v1/nodes/${name}/vendor_passthru/get_subscription?id=${sub.body.id}`);
    expect(one.body).toMatchObject({ id: sub.body.id, destination: 'https://collector.example/events' });
    expect((await call('DELETE', `/v1/nodes/${name}/vendor_passthru/delete_subscription`, { body: { id: sub.body.id } })).status).toBe(200);
    const gone = await call('GET', `/v1/nodes/${name}/vendor_passthru?method=get_subscription&id=${sub.body.id}`);
    expect(gone.status).toBe(502);

    const eject = await call('POST', `/v1/nodes/${name}/vendor_passthru/eject_vmedia`, { body: {} });
    expect(eject.status).toBe(202);
    expect(eject.text).toBe('');
    // While it holds the lock, exclusive calls and power actions get 409 (unless it already ended).
    const second = await call('POST', `/v1/nodes/${name}/vendor_passthru/eject_vmedia`, { body: {} });
    expect([202, 409]).toContain(second.status);
    const end = Date.now() + 10_000;
    while ((await call('GET', `/v1/nodes/${name}`)).body.reservation !== null && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
    expect((await call('PUT', `/v1/nodes/${name}/states/power`, { body: { target: 'power on' } })).status).toBe(202);
  });

  it('holds the exclusive lock: one of 8 parallel exclusive calls on an idle site wins', async () => {
    const name = unique('pt');
    await call('POST', '/v1/nodes', { body: { name, driver: 'ipmi', conductor_group: unique('idle'), driver_info: { ipmi_address: '10.0.0.20', ipmi_username: 'u' } } });
    const results = await Promise.all(Array.from({ length: 8 }, () => call('POST', `/v1/nodes/${name}/vendor_passthru/bmc_reset`, { body: { warm: false } })));
    expect(results.filter((r) => r.status === 202)).toHaveLength(1);
    expect(results.filter((r) => r.status === 409)).toHaveLength(7);
    expect((await call('GET', `/v1/nodes/${name}`)).body.reservation).toBe('vendor_passthru bmc_reset');
  });
});

/**
 * Runs a command asynchronously: the agent runs in this process, so a synchronous spawn would
 * freeze it and the job could never finish.
 */
function run(cmd: string, args: string[], env: Record<string, string>): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { env: { PATH: '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp', XDG_CACHE_HOME: '/tmp/slipway-py-cache', ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b) => (stdout += b));
    child.stderr.on('data', (b) => (stderr += b));
    const t = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('close', (status) => {
      clearTimeout(t);
      resolve({ status, stdout, stderr });
    });
  });
}

/** Python with Debian's clients (the pyenv python on PATH cannot import them). */
const py = (script: string) =>
  run(pythonBin(), ['-c', script], { SLIPWAY_URL: inject('apiUrl'), SLIPWAY_TOKEN: inject('adminToken'), PROBE: JSON.stringify(probe()) });

describe('vendor passthru through the upstream clients', () => {
  it('python-ironicclient lists the methods and calls probe in the path form', async () => {
    const r = await py(`
import json, os
from ironicclient import client
ic = client.get_client(1, endpoint=os.environ['SLIPWAY_URL'], token=os.environ['SLIPWAY_TOKEN'], os_ironic_api_version='latest')
methods = ic.driver.get_vendor_passthru_methods('ipmi')
res = ic.driver.vendor_passthru('ipmi', 'probe', args=json.loads(os.environ['PROBE']), http_method='POST')
print(json.dumps({'methods': sorted(methods), 'result': res.to_dict() if hasattr(res, 'to_dict') else res}))
`);
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
    expect(out.methods).toEqual(['probe']);
    expect(out.result.system_power).toMatch(/^(on|off)$/);
  });

  it('openstacksdk discovers the API and calls probe with ?method=', async () => {
    const r = await py(`
import json, os, openstack
conn = openstack.connect(auth_type='admin_token', auth={'endpoint': os.environ['SLIPWAY_URL'], 'token': os.environ['SLIPWAY_TOKEN']},
                         baremetal_endpoint_override=os.environ['SLIPWAY_URL'], load_yaml_config=False, load_envvars=False)
methods = conn.baremetal.list_driver_vendor_passthru('ipmi')
res = conn.baremetal.call_driver_vendor_passthru('ipmi', 'POST', 'probe', json.loads(os.environ['PROBE']))
print(json.dumps({'methods': sorted(methods), 'result': res if isinstance(res, (dict, list)) else res.json()}))
`);
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
    expect(out.methods).toEqual(['probe']);
    expect(out.result.system_power).toMatch(/^(on|off)$/);
  });

  it('the baremetal CLI lists the driver methods', async () => {
    const r = await run('baremetal', ['--os-auth-type', 'admin_token', '--os-endpoint', inject('apiUrl'), '--os-token', inject('adminToken'), 'driver', 'passthru', 'list', 'ipmi', '-f', 'json'], {});
    expect(r.status, r.stderr).toBe(0);
    const rows = JSON.parse(r.stdout) as { Name: string; 'Supported HTTP methods': string; Async: boolean }[];
    expect(rows.map((x) => x.Name)).toEqual(['probe']);
  });
});
