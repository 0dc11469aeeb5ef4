import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminToken, apiUrl, call, tokenFor } from '../support/api.ts';
import { startOwnStack } from '../support/own-stack.ts';
import { explain, jsonFrom, runCommand, runPython } from '../contract/clients.ts';

/**
 * Ironic's node list over HTTP: filters, sort_key/sort_dir, fields, limit/marker pages with the
 * `next` link, and the real clients walking those pages. The stack is this file's own, with an
 * `[api]max_limit` of 3 (SLIPWAY_IRONIC_MAX_LIMIT) so that a page fills at a handful of nodes,
 * and with no other file's nodes in it, so every list can be compared whole.
 */
const MAX = 3;
let stop: (() => Promise<void>) | undefined;

const V = { 'X-OpenStack-Ironic-API-Version': '1.78' };
const ironic = (method: string, path: string, body?: unknown, token?: string) => call(method, path, { body, headers: V, ...(token ? { token } : {}) });
const fault = (res: { body: any }) => JSON.parse(res.body.error_message);
const names = (res: { body: any }) => res.body.nodes.map((n: any) => n.name);

/** Seven nodes, enrolled in this order: two sites, both drivers, one in maintenance. */
const NODES = [
  { name: 'n-e', driver: 'ipmi', site: 'Rack-A' },
  { name: 'n-c', driver: 'redfish', site: 'rack-a' },
  { name: 'n-g', driver: 'ipmi', site: 'rack-b' },
  { name: 'n-a', driver: 'redfish', site: 'rack-b' },
  { name: 'n-f', driver: 'ipmi', site: 'rack-a' },
  { name: 'n-b', driver: 'redfish', site: 'rack-b' },
  { name: 'n-d', driver: 'ipmi', site: 'rack-a' },
];
const ENROLLED = NODES.map((n) => n.name);
const uuids = new Map<string, string>();

beforeAll(async () => {
  ({ stop } = await startOwnStack('ironic-list', { env: { SLIPWAY_IRONIC_MAX_LIMIT: String(MAX) } }));
  for (const [i, n] of NODES.entries()) {
    const driver_info =
      n.driver === 'ipmi' ? { ipmi_address: `10.1.0.${i + 1}`, ipmi_username: 'u', ipmi_password: 'p' } : { redfish_address: `https://10.1.0.${i + 1}`, redfish_username: 'u' };
    const res = await ironic('POST', '/v1/nodes', { name: n.name, driver: n.driver, conductor_group: n.site, driver_info });
    expect(res.status, res.text).toBe(201);
    uuids.set(n.name, res.body.uuid);
    // created_at has millisecond resolution: keep the enrolment order unambiguous.
    await new Promise((r) => setTimeout(r, 5));
  }
  const m = await ironic('PATCH', '/v1/nodes/n-g', [{ op: 'replace', path: '/maintenance', value: true }]);
  expect(m.status, m.text).toBe(200);
}, 120_000);
afterAll(async () => {
  await stop?.();
});

/** Follows `next` links from `path` the way python-ironicclient does (scheme and host dropped). */
async function walk(path: string): Promise<{ pages: string[][]; nexts: string[] }> {
  const pages: string[][] = [];
  const nexts: string[] = [];
  let url: string | undefined = path;
  while (url) {
    const res = await ironic('GET', url);
    expect(res.status, res.text).toBe(200);
    pages.push(names(res));
    url = undefined;
    if (res.body.next) {
      nexts.push(res.body.next);
      const u = new URL(res.body.next);
      url = `${u.pathname}${u.search}`;
    }
    expect(pages.length).toBeLessThan(20);
  }
  return { pages, nexts };
}

describe('Ironic node list: pages', () => {
  it('holds at most max_limit nodes a page, in enrolment order, with a next link while pages are full', async () => {
    const { pages, nexts } = await walk('/v1/nodes');
    expect(pages).toEqual([ENROLLED.slice(0, 3), ENROLLED.slice(3, 6), ENROLLED.slice(6)]);
    expect(nexts).toEqual([`${apiUrl()}/v1/nodes?limit=3&marker=${uuids.get('n-g')}`, `${apiUrl()}/v1/nodes?limit=3&marker=${uuids.get('n-b')}`]);
  });

  it('caps limit at max_limit, ends with an empty page when the last one was exactly full, and keeps the other parameters in next', async () => {
    const big = await ironic('GET', '/v1/nodes?limit=500');
    expect(names(big)).toEqual(ENROLLED.slice(0, 3));
    expect(big.body.next).toMatch(/[?&]limit=3&marker=/);

    const { pages, nexts } = await walk('/v1/nodes?conductor_group=rack-b&sort_key=name&limit=3');
    expect(pages).toEqual([['n-a', 'n-b', 'n-g'], []]);
    expect(nexts).toEqual([`${apiUrl()}/v1/nodes?sort_key=name&conductor_group=rack-b&limit=3&marker=${uuids.get('n-g')}`]);
  });

  it('pages the detail route too, with its own path in next', async () => {
    const { pages, nexts } = await walk('/v1/nodes/detail?limit=2&sort_key=name&sort_dir=desc');
    expect(pages.flat()).toEqual([...ENROLLED].sort().reverse());
    expect(pages.map((p) => p.length)).toEqual([2, 2, 2, 1]);
    expect(nexts[0]).toBe(`${apiUrl()}/v1/nodes/detail?sort_key=name&sort_dir=desc&limit=2&marker=${uuids.get('n-f')}`);
    const detail = await ironic('GET', '/v1/nodes/detail?limit=1');
    expect(detail.body.nodes[0]).toMatchObject({ name: 'n-e', driver: 'ipmi', conductor_group: 'Rack-A', driver_info: { ipmi_password: '******' } });
  });

  it('continues after a marker by its sort values, even when a filter leaves the marker out', async () => {
    const after = await ironic('GET', `/v1/nodes?sort_key=name&driver=redfish&marker=${uuids.get('n-b')}`);
    expect(after.status, after.text).toBe(200);
    expect(names(after)).toEqual(['n-c']);
    // n-d is an ipmi node: the redfish nodes after it by name.
    const past = await ironic('GET', `/v1/nodes?sort_key=name&driver=redfish&marker=${uuids.get('n-d')}`);
    expect(names(past)).toEqual([]);
    const fromD = await ironic('GET', `/v1/nodes?sort_key=name&marker=${uuids.get('n-d')}`);
    expect(names(fromD)).toEqual(['n-e', 'n-f', 'n-g']);
  });
});

describe('Ironic node list: filters, sorting and fields', () => {
  it('filters by driver, conductor_group (any case), maintenance, provision_state and associated', async () => {
    expect(names(await ironic('GET', '/v1/nodes?driver=redfish&sort_key=name'))).toEqual(['n-a', 'n-b', 'n-c']);
    expect(names(await ironic('GET', '/v1/nodes?conductor_group=RACK-A&sort_key=name'))).toEqual(['n-c', 'n-d', 'n-e']);
    expect(names(await ironic('GET', '/v1/nodes?maintenance=true'))).toEqual(['n-g']);
    expect(names(await ironic('GET', '/v1/nodes?maintenance=False&driver=ipmi&sort_key=name'))).toEqual(['n-d', 'n-e', 'n-f']);
    expect(names(await ironic('GET', '/v1/nodes?provision_state=enroll&conductor_group=rack-b&sort_key=name'))).toEqual(['n-a', 'n-b', 'n-g']);
    expect(names(await ironic('GET', '/v1/nodes?provision_state=active'))).toEqual([]);
    // There is no Nova here: no node has an instance.
    expect(names(await ironic('GET', '/v1/nodes?associated=true'))).toEqual([]);
    expect(names(await ironic('GET', '/v1/nodes?associated=false&sort_key=name&sort_dir=desc&limit=2'))).toEqual(['n-g', 'n-f']);
  });

  it('sorts by any plain field, with uuid breaking ties', async () => {
    const byDriver = await ironic('GET', '/v1/nodes?sort_key=driver&limit=3');
    const ipmi = NODES.filter((n) => n.driver === 'ipmi').map((n) => uuids.get(n.name)!).sort();
    expect(byDriver.body.nodes.map((n: any) => n.uuid)).toEqual(ipmi.slice(0, 3));
    const byUuid = await ironic('GET', '/v1/nodes?sort_key=uuid&sort_dir=desc');
    expect(byUuid.body.nodes.map((n: any) => n.uuid)).toEqual([...uuids.values()].sort().reverse().slice(0, 3));
    const byMaintenance = await ironic('GET', '/v1/nodes?sort_key=maintenance&sort_dir=desc&limit=1');
    expect(names(byMaintenance)).toEqual(['n-g']);
  });

  it('returns just the fields asked for, and the links', async () => {
    const res = await ironic('GET', '/v1/nodes?fields=name,driver,conductor_group&sort_key=name&limit=1');
    expect(res.status, res.text).toBe(200);
    expect(res.body.nodes).toEqual([{ name: 'n-a', driver: 'redfish', conductor_group: 'rack-b', links: expect.any(Array) }]);
    expect(res.body.next).toContain('fields=name%2Cdriver%2Cconductor_group&');
    const detail = await ironic('GET', '/v1/nodes?detail=true&limit=1');
    expect(detail.body.nodes[0]).toHaveProperty('driver_info');
    const summary = await ironic('GET', '/v1/nodes?limit=1');
    expect(Object.keys(summary.body.nodes[0]).sort()).toEqual(['instance_uuid', 'links', 'maintenance', 'name', 'power_state', 'provision_state', 'uuid']);
  });

  it('shows a project only the nodes its leases granted', async () => {
    const { token } = await tokenFor('member');
    const res = await ironic('GET', '/v1/nodes', undefined, token);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ nodes: [] });
    expect((await ironic('GET', `/v1/nodes?marker=${uuids.get('n-a')}`, undefined, token)).status).toBe(404);
  });
});

describe('Ironic node list: bad queries', () => {
  it.each([
    ['limit=0', 400, /Limit must be positive/],
    ['limit=-2', 400, /Limit must be positive/],
    ['limit=ten', 400, /limit/],
    ['sort_dir=up', 400, /Invalid sort direction: up. Acceptable values are 'asc' or 'desc'/],
    ['sort_key=properties', 400, /The sort_key value "properties" is an invalid field for sorting/],
    ['sort_key=colour', 400, /The sort_key value "colour" is an invalid field for sorting/],
    ['maintenance=perhaps', 400, /maintenance/],
    ['fields=name,colour', 400, /Field\(s\) "colour" are not valid/],
    ['fields=name&detail=true', 400, /Can't fetch a subset of fields with 'detail' set/],
    ['marker=0b7a2d16-0000-4000-8000-000000000000', 404, /Node 0b7a2d16-0000-4000-8000-000000000000 could not be found/],
  ])('%s → %i', async (query, status, message) => {
    const res = await ironic('GET', `/v1/nodes?${query}`);
    expect(res.status, res.text).toBe(status);
    expect(fault(res)).toMatchObject({ faultcode: 'Client', faultstring: expect.stringMatching(message), debuginfo: null });
  });

  it('refuses fields on the detail route', async () => {
    const res = await ironic('GET', '/v1/nodes/detail?fields=name');
    expect(res.status).toBe(400);
    expect(fault(res).faultstring).toMatch(/Can't fetch a subset of fields/);
  });
});

describe('Ironic node list through the real clients', () => {
  it('python-ironicclient gets every node across the pages (limit=0), and stops at its own limit', async () => {
    const r = await runPython(
      `
import json, os
from ironicclient import client
ic = client.get_client(1, endpoint=os.environ['SLIPWAY_URL'], token=os.environ['SLIPWAY_TOKEN'], os_ironic_api_version='1.78')
every = [n.name for n in ic.node.list(limit=0)]
some = [n.name for n in ic.node.list(limit=5, sort_key='name', detail=True)]
rack_a = [n.name for n in ic.node.list(limit=0, conductor_group='rack-a', sort_key='name', sort_dir='desc')]
print(json.dumps({'every': every, 'some': some, 'rack_a': rack_a}))
`,
      { env: { SLIPWAY_URL: apiUrl(), SLIPWAY_TOKEN: adminToken() } },
    );
    expect(r.code, explain(r)).toBe(0);
    expect(jsonFrom(r.stdout)).toEqual({ every: ENROLLED, some: ['n-a', 'n-b', 'n-c', 'n-d', 'n-e'], rack_a: ['n-f', 'n-e', 'n-d', 'n-c'] });
  });

  it('the baremetal CLI lists every node with --limit 0 and filters by driver', async () => {
    const cli = (args: string[]) =>
      runCommand('baremetal', ['--os-auth-type', 'admin_token', '--os-endpoint', apiUrl(), '--os-token', adminToken(), '--os-baremetal-api-version', '1.78', ...args], {
        env: {},
        timeoutMs: 30_000,
      });
    const all = await cli(['node', 'list', '--limit', '0', '-f', 'json']);
    expect(all.code, explain(all)).toBe(0);
    expect(jsonFrom(all.stdout).map((n: any) => n.Name)).toEqual(ENROLLED);
    const redfish = await cli(['node', 'list', '--driver', 'redfish', '--sort', 'name:desc', '-f', 'json']);
    expect(redfish.code, explain(redfish)).toBe(0);
    expect(jsonFrom(redfish.stdout).map((n: any) => n.Name)).toEqual(['n-c', 'n-b', 'n-a']);
  });
});
