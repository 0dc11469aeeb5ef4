import { randomBytes } from 'node:crypto';
import { describe, expect, inject, it } from 'vitest';
import { call, tokenFor, unique } from '../support/api.ts';
import { explain, jsonFrom, runCommand } from '../contract/clients.ts';

/**
 * Ironic ports over HTTP against the shared local stack: a node's NICs by MAC, one port per MAC
 * (the uniqueness item is written with the port), gone with their node; and the baremetal CLI's
 * enrolment steps.
 */
const V = { 'X-OpenStack-Ironic-API-Version': '1.78' };
const ironic = (method: string, path: string, body?: unknown, token?: string) => call(method, path, { body, headers: V, ...(token ? { token } : {}) });
const fault = (res: { body: any }) => JSON.parse(res.body.error_message);
const mac = () => [...randomBytes(6)].map((b) => b.toString(16).padStart(2, '0')).join(':');

async function node() {
  const name = unique('pn');
  const res = await ironic('POST', '/v1/nodes', { name, driver: 'ipmi', driver_info: { ipmi_address: '10.2.0.1', ipmi_username: 'u' } });
  expect(res.status, res.text).toBe(201);
  return { name, uuid: res.body.uuid as string };
}

describe('Ironic ports', () => {
  it('creates a port with the MAC normalized, shows it, and lists it every way', async () => {
    const n = await node();
    const address = mac();
    const res = await ironic('POST', '/v1/ports', { address: address.toUpperCase().replaceAll(':', '-'), node_uuid: n.uuid, extra: { slot: 'eno1' } });
    expect(res.status, res.text).toBe(201);
    expect(res.headers.get('location')).toBe(`${inject('apiUrl')}/v1/ports/${res.body.uuid}`);
    expect(res.body).toEqual({
      uuid: expect.any(String),
      address,
      node_uuid: n.uuid,
      portgroup_uuid: null,
      extra: { slot: 'eno1' },
      local_link_connection: {},
      pxe_enabled: true,
      physical_network: null,
      internal_info: {},
      is_smartnic: false,
      created_at: expect.any(String),
      updated_at: null,
      links: [
        { href: `${inject('apiUrl')}/v1/ports/${res.body.uuid}`, rel: 'self' },
        { href: `${inject('apiUrl')}/ports/${res.body.uuid}`, rel: 'bookmark' },
      ],
    });
    const uuid = res.body.uuid;
    expect((await ironic('GET', `/v1/ports/${uuid}`)).body).toEqual(res.body);
    expect((await ironic('GET', `/v1/ports/${uuid}?fields=address,node_uuid`)).body).toEqual({ address, node_uuid: n.uuid, links: expect.any(Array) });

    const summary = { uuid, address, links: expect.any(Array) };
    expect((await ironic('GET', `/v1/nodes/${n.name}/ports`)).body).toEqual({ ports: [summary] });
    expect((await ironic('GET', `/v1/nodes/${n.uuid}/ports/detail`)).body.ports).toEqual([res.body]);
    expect((await ironic('GET', `/v1/ports?node=${n.name}`)).body).toEqual({ ports: [summary] });
    expect((await ironic('GET', `/v1/ports?node_uuid=${n.uuid}&detail=true`)).body.ports).toEqual([res.body]);
    expect((await ironic('GET', `/v1/ports/detail?address=${address.toUpperCase()}`)).body.ports).toEqual([res.body]);
    expect((await ironic('GET', `/v1/ports?address=${mac()}`)).body).toEqual({ ports: [] });
    expect((await ironic('GET', '/v1/ports?limit=1')).body.ports).toHaveLength(1);
  });

  it('refuses a taken MAC (409), a malformed one, an unknown node and unknown fields (400)', async () => {
    const n = await node();
    const address = mac();
    expect((await ironic('POST', '/v1/ports', { address, node_uuid: n.uuid })).status).toBe(201);
    const dup = await ironic('POST', '/v1/ports', { address: address.toUpperCase(), node_uuid: n.uuid });
    expect(dup.status).toBe(409);
    expect(fault(dup).faultstring).toBe(`A port with MAC address ${address} already exists.`);
    const badMac = await ironic('POST', '/v1/ports', { address: 'zz:zz', node_uuid: n.uuid });
    expect(badMac.status).toBe(400);
    expect(fault(badMac).faultstring).toBe('Expected a MAC address but received zz:zz.');
    const ghost = '0d6b6a52-0000-4000-8000-000000000001';
    const noNode = await ironic('POST', '/v1/ports', { address: mac(), node_uuid: ghost });
    expect(noNode.status).toBe(400);
    expect(fault(noNode).faultstring).toBe(`Node ${ghost} could not be found.`);
    // A node name does, where upstream wants the uuid.
    const byName = await ironic('POST', '/v1/ports', { address: mac(), node_uuid: n.name });
    expect(byName.status, byName.text).toBe(201);
    expect(byName.body.node_uuid).toBe(n.uuid);
    expect((await ironic('POST', '/v1/ports', { address: mac(), node_uuid: n.uuid, colour: 'red' })).status).toBe(400);
    expect((await ironic('GET', `/v1/ports/${ghost}`)).status).toBe(404);
    expect(fault(await ironic('GET', `/v1/ports/${ghost}`)).faultstring).toBe(`Port ${ghost} could not be found.`);
    expect((await ironic('GET', '/v1/ports?node=no-such-node')).status).toBe(400);
    expect((await ironic('GET', '/v1/nodes/no-such-node/ports')).status).toBe(404);
    expect((await ironic('GET', '/v1/ports?sort_key=extra')).status).toBe(400);
  });

  it('patches a port: a new MAC frees the old one, a taken MAC is 409, extra and pxe_enabled change', async () => {
    const n = await node();
    const [a, b, c] = [mac(), mac(), mac()];
    const p = (await ironic('POST', '/v1/ports', { address: a, node_uuid: n.uuid })).body;
    await ironic('POST', '/v1/ports', { address: c, node_uuid: n.uuid });
    const moved = await ironic('PATCH', `/v1/ports/${p.uuid}`, [
      { op: 'replace', path: '/address', value: b },
      { op: 'add', path: '/extra/vlan', value: '42' },
      { op: 'replace', path: '/pxe_enabled', value: false },
    ]);
    expect(moved.status, moved.text).toBe(200);
    expect(moved.body).toMatchObject({ address: b, extra: { vlan: '42' }, pxe_enabled: false, updated_at: expect.any(String) });
    // The old MAC is free again; the new one is taken.
    expect((await ironic('POST', '/v1/ports', { address: a, node_uuid: n.uuid })).status).toBe(201);
    expect((await ironic('POST', '/v1/ports', { address: b, node_uuid: n.uuid })).status).toBe(409);
    const taken = await ironic('PATCH', `/v1/ports/${p.uuid}`, [{ op: 'replace', path: '/address', value: c }]);
    expect(taken.status).toBe(409);
    expect((await ironic('GET', `/v1/ports/${p.uuid}`)).body.address).toBe(b);
    expect((await ironic('PATCH', `/v1/ports/${p.uuid}`, [{ op: 'replace', path: '/address', value: 'nope' }])).status).toBe(400);
    expect((await ironic('PATCH', `/v1/ports/${p.uuid}`, [{ op: 'replace', path: '/node_uuid', value: 'no-such-node' }])).status).toBe(400);
    const other = await node();
    const rehomed = await ironic('PATCH', `/v1/ports/${p.uuid}`, [{ op: 'replace', path: '/node_uuid', value: other.uuid }]);
    expect(rehomed.body.node_uuid).toBe(other.uuid);
    expect((await ironic('GET', `/v1/nodes/${other.name}/ports`)).body.ports.map((x: any) => x.uuid)).toEqual([p.uuid]);
    expect((await ironic('GET', `/v1/nodes/${n.name}/ports`)).body.ports.map((x: any) => x.uuid)).not.toContain(p.uuid);
    expect((await ironic('PATCH', `/v1/ports/${p.uuid}`, [{ op: 'replace', path: '/uuid', value: 'x' }])).status).toBe(400);
    expect((await ironic('PATCH', `/v1/ports/${p.uuid}`, [{ op: 'add', path: '/extra/__proto__', value: { polluted: true } }])).status).toBe(400);
  });

  it('deletes a port (its MAC free again), and a node takes its ports with it', async () => {
    const n = await node();
    const address = mac();
    const p = (await ironic('POST', '/v1/ports', { address, node_uuid: n.uuid })).body;
    expect((await ironic('DELETE', `/v1/ports/${p.uuid}`)).status).toBe(204);
    expect((await ironic('GET', `/v1/ports/${p.uuid}`)).status).toBe(404);
    const again = (await ironic('POST', '/v1/ports', { address, node_uuid: n.uuid })).body;
    expect((await ironic('DELETE', `/v1/nodes/${n.uuid}`)).status).toBe(204);
    expect((await ironic('GET', `/v1/ports/${again.uuid}`)).status).toBe(404);
    const other = await node();
    expect((await ironic('POST', '/v1/ports', { address, node_uuid: other.uuid })).status).toBe(201);
  });

  it('gives a MAC to exactly one of ten parallel creates', async () => {
    const nodes = await Promise.all(Array.from({ length: 3 }, node));
    const address = mac();
    const answers = await Promise.all(Array.from({ length: 10 }, (_, i) => ironic('POST', '/v1/ports', { address, node_uuid: nodes[i % 3]!.uuid })));
    expect(answers.map((a) => a.status).sort()).toEqual([201, ...Array(9).fill(409)]);
    expect((await ironic('GET', `/v1/ports?address=${address}`)).body.ports).toHaveLength(1);
  });

  it('shows a project only the ports of nodes its leases granted, and lets only admins write', async () => {
    const n = await node();
    const p = (await ironic('POST', '/v1/ports', { address: mac(), node_uuid: n.uuid })).body;
    const { token } = await tokenFor('member');
    expect((await ironic('GET', '/v1/ports', undefined, token)).body).toEqual({ ports: [] });
    expect((await ironic('GET', `/v1/ports/${p.uuid}`, undefined, token)).status).toBe(404);
    expect((await ironic('POST', '/v1/ports', { address: mac(), node_uuid: n.uuid }, token)).status).toBe(403);
    expect((await ironic('DELETE', `/v1/ports/${p.uuid}`, undefined, token)).status).toBe(403);
  });

  it('works from the baremetal CLI: port create, list --node, show --address, delete', async () => {
    const n = await node();
    const address = mac();
    const cli = (args: string[]) =>
      runCommand('baremetal', ['--os-auth-type', 'admin_token', '--os-endpoint', inject('apiUrl'), '--os-token', inject('adminToken'), '--os-baremetal-api-version', '1.78', ...args], {
        env: {},
        timeoutMs: 30_000,
      });
    const made = await cli(['port', 'create', address, '--node', n.uuid, '--extra', 'nic=eno2', '-f', 'json']);
    expect(made.code, explain(made)).toBe(0);
    const port = jsonFrom(made.stdout);
    expect(port).toMatchObject({ address, node_uuid: n.uuid, extra: { nic: 'eno2' } });
    const listed = await cli(['port', 'list', '--node', n.name, '-f', 'json']);
    expect(listed.code, explain(listed)).toBe(0);
    expect(jsonFrom(listed.stdout)).toEqual([{ UUID: port.uuid, Address: address }]);
    const shown = await cli(['port', 'show', '--address', address, '-f', 'json']);
    expect(shown.code, explain(shown)).toBe(0);
    expect(jsonFrom(shown.stdout)).toMatchObject({ uuid: port.uuid, node_uuid: n.uuid });
    const gone = await cli(['port', 'delete', port.uuid]);
    expect(gone.code, explain(gone)).toBe(0);
    expect((await ironic('GET', `/v1/ports/${port.uuid}`)).status).toBe(404);
  });
});
