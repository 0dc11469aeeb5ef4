import { randomUUID } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { adminToken, type ApiResponse, apiUrl, call, tokenFor, unique } from '../support/api.ts';
import { saharaLib } from './clients.ts';

/**
 * The native `/v1.1/{project_id}` surface with the Sahara v1.1 conventions (upstream-apis.md
 * §5, client-contracts.md §3, DESIGN.md §4), driven by the REAL python3-saharaclient through
 * its own `base.ResourceManager` machinery pointed at our collections, plus direct HTTP tables
 * of the exact §5.3 marker rules.
 *
 * Isolation from parallel files: our seven hosts share an `availability_zone` nobody else uses
 * (an equality filter on nodes), and our seven leases live in a fresh project.
 */
const CAP = 'contract_tag';
const HOUR = 3_600_000;
const blazarMinute = (ms: number) => new Date(ms).toISOString().slice(0, 16).replace('T', ' ');

/** Lexicographic order as the server sorts strings (names are ASCII here). */
const byName = (a: { name: string; id: string }, b: { name: string; id: string }) =>
  a.name < b.name ? -1 : a.name > b.name ? 1 : a.id < b.id ? -1 : a.id > b.id ? 1 : 0;

interface PageView {
  ids: string[];
  items: Record<string, any>[];
  prev: string | null;
  next: string | null;
}

const LETTERS = ['a', 'b', 'c', 'd', 'e', 'f', 'g'] as const;

let zone: string;
let tag: string;
/** Our nodes, in name order (n0..n6). */
let nodes: { id: string; name: string; host_id: string }[];
let member: { token: string; project: string };
/** Lease ids of our project by name a..g. */
const lease: Record<string, string> = {};

beforeAll(async () => {
  zone = unique('az');
  tag = unique('stag');
  const prefix = unique('sah');
  // Enrol in a scrambled order so that name order is neither creation nor id order.
  const order = [3, 0, 6, 1, 5, 2, 4];
  const enrolled = await Promise.all(
    order.map(async (i) => {
      const res = await call('POST', '/v1/os-hosts', {
        body: { name: `${prefix}-n${i}`, availability_zone: zone, vcpus: 8 + i, memory_mb: 1024 * (i + 1), [CAP]: tag },
      });
      expect(res.status, res.text).toBe(201);
      return { host_id: res.body.host.id as string, name: res.body.host.hypervisor_hostname as string };
    }),
  );
  // The native node id is not the Blazar host id: find ours through the zone filter.
  const listed = await call('GET', `/v1.1/admin/nodes?availability_zone=${zone}`);
  expect(listed.status, listed.text).toBe(200);
  expect(listed.body.nodes).toHaveLength(7);
  nodes = (listed.body.nodes as any[]).map((n) => ({ id: n.id, name: n.name, host_id: n.host_id })).sort(byName);
  expect(nodes.map((n) => n.name)).toEqual(enrolled.map((e) => e.name).sort());

  member = await tokenFor('member');
  const start = blazarMinute(Date.now() + 24 * HOUR);
  const end = blazarMinute(Date.now() + 48 * HOUR);
  for (const name of [...LETTERS].reverse()) {
    const res = await call('POST', '/v1/leases', {
      token: member.token,
      body: {
        name,
        start_date: start,
        end_date: end,
        reservations: [
          { resource_type: 'physical:host', min: 1, max: 1, hypervisor_properties: '', resource_properties: JSON.stringify(['==', `$${CAP}`, tag]) },
        ],
        events: [],
      },
    });
    expect(res.status, res.text).toBe(201);
    lease[name] = res.body.lease.id;
  }
});

const sahara = (body: string, args: unknown, token = adminToken(), project = 'admin') =>
  saharaLib(body, { apiUrl: apiUrl(), token, project, args });

describe('saharaclient over /v1.1/{project}/nodes', () => {
  it('pages our nodes with limit=3 and sort_by=name exactly as §5.3 (a..g worked example)', async () => {
    const out = await sahara(
      `
opts = {'availability_zone': ARGS['zone']}
pages = []
page = nodes.list(search_opts=opts, limit=3, sort_by='name')
pages.append(page_view(page))
while page.next is not None and len(pages) < 10:
    page = nodes.list(search_opts=opts, limit=3, marker=page.next, sort_by='name')
    pages.append(page_view(page))
rev = nodes.list(search_opts=opts, limit=3, sort_by='name', reverse=True)
everything = nodes.list(search_opts=opts)
emit({'pages': pages, 'reversed': page_view(rev), 'all': page_view(everything)})
`,
      { zone },
    );
    const id = (i: number) => nodes[i]!.id;
    const pages = out.pages as PageView[];
    expect(pages.map((p) => p.ids)).toEqual([
      [id(0), id(1), id(2)],
      [id(3), id(4), id(5)],
      [id(6)],
    ]);
    expect(pages.map((p) => [p.prev, p.next])).toEqual([
      [null, id(2)], // page 1: next = last id of the page
      [null, id(5)], // prev is null: the previous page is the first one (no marker)
      [id(2), null], // prev = the marker that fetches page 2
    ]);
    expect(pages[0]!.items[0]).toMatchObject({ id: id(0), name: nodes[0]!.name, availability_zone: zone });

    // sort_by=-name (saharaclient's reverse=True) reverses the order.
    expect(out.reversed.ids).toEqual([id(6), id(5), id(4)]);
    expect(out.reversed.next).toBe(id(4));
    // No limit: everything, default order id ascending, and no markers at all.
    expect(out.all.ids).toEqual([...nodes.map((n) => n.id)].sort());
    expect([out.all.prev, out.all.next]).toEqual([null, null]);
  });

  it('walks the whole admin node list in pages of 3 with no duplicates and nothing missing', async () => {
    const before = await call('GET', '/v1.1/admin/nodes');
    expect(before.status).toBe(200);
    expect(before.body.markers).toBeUndefined();
    const out = await sahara(
      `
pages = []
page = nodes.list(limit=3, sort_by='name')
pages.append(page_view(page))
while page.next is not None and len(pages) < 2000:
    page = nodes.list(limit=3, marker=page.next, sort_by='name')
    pages.append(page_view(page))
emit(pages)
`,
      {},
    );
    const after = await call('GET', '/v1.1/admin/nodes');
    const pages = out as PageView[];
    const walked = pages.flatMap((p) => p.items) as { id: string; name: string }[];
    const ids = walked.map((n) => n.id);

    expect(new Set(ids).size, 'no node twice').toBe(ids.length);
    expect([...walked].sort(byName).map((n) => n.id), 'pages continue each other in name order').toEqual(ids);
    // Other files may enrol nodes meanwhile (never delete them): before ⊆ walked ⊆ after.
    for (const n of before.body.nodes as any[]) expect(ids).toContain(n.id);
    const afterIds = new Set((after.body.nodes as any[]).map((n) => n.id));
    for (const id of ids) expect(afterIds.has(id)).toBe(true);
    for (const n of nodes) expect(ids).toContain(n.id);

    // Marker chain: every full page names its last item as next, which starts the next page.
    for (let i = 0; i < pages.length; i++) {
      const p = pages[i]!;
      if (i < pages.length - 1) {
        expect(p.ids).toHaveLength(3);
        expect(p.next).toBe(p.ids[2]);
      } else {
        expect(p.next).toBeNull();
      }
      // prev names an item of an earlier page (its exact index is pinned down on our isolated
      // sets below; here other files may insert nodes between two requests).
      if (i < 2) expect(p.prev).toBeNull();
      else expect(pages.slice(0, i - 1).flatMap((q) => q.ids)).toContain(p.prev);
    }
  });

  it('gets one node with _get("/nodes/<id>", "node")', async () => {
    const out = await sahara(`emit(nodes.get(ARGS['id']).to_dict())`, { id: nodes[4]!.id });
    expect(out).toMatchObject({
      id: nodes[4]!.id,
      name: nodes[4]!.name,
      host_id: nodes[4]!.host_id,
      availability_zone: zone,
      reservable: true,
      extra_capabilities: { [CAP]: tag },
    });
  });

  it('raises APIException with the Sahara error fields', async () => {
    const missing = randomUUID();
    const out = await sahara(
      `
def attempt(fn):
    try:
        fn()
        return None
    except base.APIException as e:
        return api_error(e)
opts = {'availability_zone': ARGS['zone']}
emit({
  'marker': attempt(lambda: nodes.list(search_opts=opts, limit=3, marker=ARGS['missing'])),
  'marker_nolimit': attempt(lambda: nodes.list(marker=ARGS['missing'])),
  'limit0': attempt(lambda: nodes.list(limit=0)),
  'limit_neg': attempt(lambda: nodes.list(limit=-2)),
  'limit_abc': attempt(lambda: nodes.list(limit='abc')),
  'sort': attempt(lambda: nodes.list(sort_by='bogus')),
  'sort_rev': attempt(lambda: nodes.list(sort_by='bogus', reverse=True)),
  'filter': attempt(lambda: nodes.list(search_opts={'no_such_field': 'x'})),
  'get': attempt(lambda: nodes.get(ARGS['missing'])),
})
`,
      { zone, missing },
    );
    const notFound = { error_code: 404, error_name: 'NOT_FOUND', error_message: `Object with {'id': '${missing}'} not found`, type: 'APIException' };
    expect(out.marker).toEqual(notFound);
    expect(out.marker_nolimit).toEqual(notFound);
    const badLimit = { error_code: 400, error_name: 400, error_message: "'limit' must be positive integer", type: 'APIException' };
    expect(out.limit0).toEqual(badLimit);
    expect(out.limit_neg).toEqual(badLimit);
    expect(out.limit_abc).toEqual(badLimit);
    expect(out.sort).toEqual({ error_code: 400, error_name: 400, error_message: 'Unknown field for sorting bogus', type: 'APIException' });
    expect(out.sort_rev).toEqual(out.sort);
    expect(out.filter).toMatchObject({ error_code: 400, error_name: 'INVALID_PARAMS_ON_REQUEST' });
    expect(out.get).toMatchObject({ error_code: 404, error_name: 'NOT_FOUND' });
  });

  it('scopes a member: no nodes granted yet, own leases only, other project in the path is 401', async () => {
    const other = randomUUID();
    const out = await sahara(
      `
got_nodes = page_view(nodes.list())
got_leases = page_view(leases.list(sort_by='name'))
try:
    nodes.get(ARGS['node'])
    node_err = None
except base.APIException as e:
    node_err = api_error(e)
emit({'nodes': got_nodes, 'leases': got_leases, 'node_err': node_err})
`,
      { node: nodes[0]!.id },
      member.token,
      member.project,
    );
    expect(out.nodes.ids).toEqual([]);
    expect(out.leases.items.map((l: any) => l.name)).toEqual([...LETTERS]);
    expect(out.leases.items.map((l: any) => l.project_id)).toEqual(LETTERS.map(() => member.project));
    expect(out.node_err).toMatchObject({ error_code: 404, error_name: 'NOT_FOUND' });

    // The token's project must be the path's (Sahara's guard, DESIGN.md §10).
    const mismatch = await sahara(
      `
try:
    leases.list()
    emit(None)
except base.APIException as e:
    emit(api_error(e))
`,
      {},
      member.token,
      other,
    );
    expect(mismatch).toMatchObject({ error_code: 401, error_message: 'Token tenant != requested tenant' });
  });
});

describe('§5.3 marker rules over HTTP (leases a..g of one project, sort_by=name)', () => {
  const get = (query: string, token = member.token, project = member.project) =>
    call('GET', `/v1.1/${project}/leases${query}`, { token });
  const names = (res: ApiResponse) => (res.body.leases as any[]).map((l) => l.name);

  it('reproduces the worked example and the markers presence rule', async () => {
    const id = (n: string) => lease[n]!;
    type Row = { q: () => string; names: string[]; markers: { prev: string | null; next: string | null } | 'absent' };
    const table: Row[] = [
      // No limit: everything, no markers key.
      { q: () => '?sort_by=name', names: [...LETTERS], markers: 'absent' },
      { q: () => '', names: [...LETTERS].sort((a, b) => (id(a) < id(b) ? -1 : 1)), markers: 'absent' },
      // The worked example.
      { q: () => '?limit=3&sort_by=name', names: ['a', 'b', 'c'], markers: { prev: null, next: id('c') } },
      { q: () => `?limit=3&sort_by=name&marker=${id('c')}`, names: ['d', 'e', 'f'], markers: { prev: null, next: id('f') } },
      { q: () => `?limit=3&sort_by=name&marker=${id('f')}`, names: ['g'], markers: { prev: id('c'), next: null } },
      // marker at index p: prev = item p-L, next = item p+L while p+L < n (so the last full page still names g).
      { q: () => `?limit=3&sort_by=name&marker=${id('d')}`, names: ['e', 'f', 'g'], markers: { prev: id('a'), next: id('g') } },
      { q: () => `?limit=3&sort_by=name&marker=${id('g')}`, names: [], markers: { prev: id('d'), next: null } },
      { q: () => `?limit=2&sort_by=name&marker=${id('a')}`, names: ['b', 'c'], markers: { prev: null, next: id('c') } },
      // A marker without a limit: the rest, and markers {null, null} because a marker was sent.
      { q: () => `?sort_by=name&marker=${id('c')}`, names: ['d', 'e', 'f', 'g'], markers: { prev: null, next: null } },
      // A single page with a limit: no markers key (prev and next both null, no marker sent).
      { q: () => '?limit=7&sort_by=name', names: [...LETTERS], markers: 'absent' },
      { q: () => '?limit=50&sort_by=name', names: [...LETTERS], markers: 'absent' },
      { q: () => '?limit=6&sort_by=name', names: ['a', 'b', 'c', 'd', 'e', 'f'], markers: { prev: null, next: id('f') } },
      // Descending.
      { q: () => '?limit=3&sort_by=-name', names: ['g', 'f', 'e'], markers: { prev: null, next: id('e') } },
      { q: () => `?limit=3&sort_by=-name&marker=${id('e')}`, names: ['d', 'c', 'b'], markers: { prev: null, next: id('b') } },
      { q: () => `?limit=3&sort_by=-name&marker=${id('b')}`, names: ['a'], markers: { prev: id('e'), next: null } },
      // Equality filters combine with paging.
      { q: () => '?name=e', names: ['e'], markers: 'absent' },
      { q: () => `?name=e&project_id=${member.project}&limit=1`, names: ['e'], markers: 'absent' },
      { q: () => '?name=zz', names: [], markers: 'absent' },
    ];
    for (const row of table) {
      const q = row.q();
      const res = await get(q);
      expect(res.status, `${q}: ${res.text}`).toBe(200);
      expect(names(res), q).toEqual(row.names);
      if (row.markers === 'absent') expect('markers' in res.body, `${q}: ${res.text}`).toBe(false);
      else expect(res.body.markers, q).toEqual(row.markers);
    }
  });

  it('answers bad paging parameters and foreign paths in the Sahara error shape', async () => {
    const missing = randomUUID();
    const table: { path: () => string; token?: string; status: number; name: string | number; message?: string }[] = [
      { path: () => `/v1.1/${member.project}/leases?marker=${missing}&limit=3`, status: 404, name: 'NOT_FOUND', message: `Object with {'id': '${missing}'} not found` },
      { path: () => `/v1.1/${member.project}/leases?limit=0`, status: 400, name: 400, message: "'limit' must be positive integer" },
      { path: () => `/v1.1/${member.project}/leases?limit=-1`, status: 400, name: 400, message: "'limit' must be positive integer" },
      { path: () => `/v1.1/${member.project}/leases?limit=two`, status: 400, name: 400, message: "'limit' must be positive integer" },
      { path: () => `/v1.1/${member.project}/leases?limit=1.5`, status: 400, name: 400, message: "'limit' must be positive integer" },
      { path: () => `/v1.1/${member.project}/leases?sort_by=colour`, status: 400, name: 400, message: 'Unknown field for sorting colour' },
      { path: () => `/v1.1/${member.project}/leases?sort_by=-colour`, status: 400, name: 400, message: 'Unknown field for sorting colour' },
      { path: () => `/v1.1/${member.project}/leases?colour=red`, status: 400, name: 'INVALID_PARAMS_ON_REQUEST' },
      { path: () => `/v1.1/${member.project}/leases/${missing}`, status: 404, name: 'NOT_FOUND' },
      // The path project must be the token's: a UUID-looking one (upstream's check) and any other (ours).
      { path: () => `/v1.1/${randomUUID()}/leases`, status: 401, name: 'UNAUTHORIZED', message: 'Token tenant != requested tenant' },
      { path: () => `/v1.1/${randomUUID().replace(/-/g, '')}/nodes`, status: 401, name: 'UNAUTHORIZED', message: 'Token tenant != requested tenant' },
      { path: () => '/v1.1/admin/leases', status: 401, name: 'UNAUTHORIZED', message: 'Token tenant != requested tenant' },
      { path: () => `/v1.1/admin/leases/${lease.a}`, status: 401, name: 'UNAUTHORIZED', message: 'Token tenant != requested tenant' },
      // The admin's path project is its own ("admin"), whatever the other project.
      { path: () => `/v1.1/${member.project}/leases`, token: adminToken(), status: 401, name: 'UNAUTHORIZED' },
      { path: () => `/v1.1/${member.project}/leases`, token: 'slp_no-such-token', status: 401, name: 'UNAUTHORIZED' },
    ];
    for (const row of table) {
      const path = row.path();
      const res = await call('GET', path, { token: row.token ?? member.token });
      expect(res.status, `${path}: ${res.text}`).toBe(row.status);
      expect(Object.keys(res.body ?? {}).sort(), `${path}: ${res.text}`).toEqual(['error_code', 'error_message', 'error_name']);
      expect(res.body.error_code).toBe(row.status);
      expect(res.body.error_name, path).toBe(row.name);
      if (row.message !== undefined) expect(res.body.error_message, path).toBe(row.message);
    }
  });

  it('answers with the .json suffix and shows single objects enveloped', async () => {
    const list = await get('.json?limit=3&sort_by=name');
    expect(list.status, list.text).toBe(200);
    expect(names(list)).toEqual(['a', 'b', 'c']);
    expect(list.body.markers).toEqual({ prev: null, next: lease.c });

    for (const path of [`/v1.1/${member.project}/leases/${lease.b}`, `/v1.1/${member.project}/leases/${lease.b}.json`]) {
      const one = await call('GET', path, { token: member.token });
      expect(one.status, one.text).toBe(200);
      expect(one.body.lease).toMatchObject({ id: lease.b, name: 'b', project_id: member.project });
    }
    // The admin sees any lease through its own path project.
    const admin = await call('GET', `/v1.1/admin/leases/${lease.b}`);
    expect(admin.status).toBe(200);
    expect(admin.body.lease.id).toBe(lease.b);
    const node = await call('GET', `/v1.1/admin/nodes/${nodes[0]!.id}.json`);
    expect(node.status).toBe(200);
    expect(node.body.node).toMatchObject({ id: nodes[0]!.id, name: nodes[0]!.name });
  });
});
