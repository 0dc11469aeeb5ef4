import { randomUUID } from 'node:crypto';
import { get as httpGet } from 'node:http';
import { gunzipSync } from 'node:zlib';
import { beforeAll, describe, expect, it } from 'vitest';
import { adminToken, type ApiResponse, apiUrl, call, tokenFor, unique } from '../support/api.ts';
import { blazarCli, blazarLib, explain, jsonFrom, type ProcResult } from './clients.ts';

/**
 * Blazar `/v1` driven by the REAL python3-blazarclient (client-contracts.md §1): the `blazar`
 * CLI as operators run it and the library form, plus request → expected tables over plain HTTP
 * (upstream-apis.md §4, DESIGN.md §4). Every test enrols its own hosts with its own capability
 * value, so parallel files cannot take each other's hosts.
 */

/** The extra capability every host of this file carries; each test uses its own value. */
const CAP = 'contract_tag';
const BLAZAR_DATE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

/** Blazar's `%Y-%m-%dT%H:%M:%S.%f` (naive UTC) as epoch ms. */
const blazarMs = (s: string) => Date.parse(`${s.slice(0, 23)}Z`);
const floorMinute = (ms: number) => Math.floor(ms / MINUTE) * MINUTE;
const filterFor = (value: string) => JSON.stringify(['==', `$${CAP}`, value]);

async function enrol(name: string, extra: Record<string, unknown> = {}) {
  const res = await call('POST', '/v1/os-hosts', { body: { name, ...extra } });
  expect(res.status, res.text).toBe(201);
  return res.body.host as Record<string, any>;
}

async function cli(token: string, ...args: string[]): Promise<ProcResult> {
  return blazarCli(apiUrl(), token, args);
}

/** A CLI run that must succeed; returns it. */
async function cliOk(token: string, ...args: string[]): Promise<ProcResult> {
  const r = await cli(token, ...args);
  expect(r.code, `blazar ${args.join(' ')}\n${explain(r)}`).toBe(0);
  return r;
}

/** A CLI run that must fail with `ERROR: <message>` from the server. */
async function cliError(token: string, ...args: string[]): Promise<ProcResult> {
  const r = await cli(token, ...args);
  expect(r.code, `blazar ${args.join(' ')} should fail\n${explain(r)}`).not.toBe(0);
  expect(r.code).not.toBeNull();
  return r;
}

function expectBlazarError(res: ApiResponse, status: number, name?: string) {
  expect(res.status, res.text).toBe(status);
  expect(res.headers.get('content-type')).toMatch(/application\/json/);
  expect(Object.keys(res.body ?? {}).sort(), res.text).toEqual(['error_code', 'error_message', 'error_name']);
  expect(res.body.error_code).toBe(status);
  expect(typeof res.body.error_message).toBe('string');
  expect(res.body.error_message.length).toBeGreaterThan(0);
  if (name !== undefined) expect(res.body.error_name).toBe(name);
}

describe('blazar CLI: os-hosts', () => {
  it('creates a host with --extra, lists, shows by id and name, updates --extra, deletes', async () => {
    const admin = adminToken();
    const name = unique('ct-host');
    const tag = unique('tag');

    const created = await cliOk(admin, 'host-create', '--extra', `${CAP}=${tag}`, '--extra', 'gpus=4', '-f', 'json', name);
    const host = jsonFrom(created.stdout);
    expect(host.hypervisor_hostname).toBe(name);
    expect(host.id).toMatch(/^\d+$/);
    expect(host[CAP]).toBe(tag);
    expect(host.gpus).toBe('4'); // extras travel as strings (the client sends {"gpus": "4"})
    const id = String(host.id);

    // The wire shape behind the CLI: `{"host": {...}}`, extras flat on the host object.
    const http = await call('GET', `/v1/os-hosts/${id}`);
    expect(http.status).toBe(200);
    expect(http.body.host).toMatchObject({ id, hypervisor_hostname: name, [CAP]: tag, gpus: '4' });

    const list = jsonFrom((await cliOk(admin, 'host-list', '-f', 'json')).stdout) as any[];
    expect(list).toContainEqual(expect.objectContaining({ id, hypervisor_hostname: name }));

    const byId = jsonFrom((await cliOk(admin, 'host-show', '-f', 'json', id)).stdout);
    expect(byId).toMatchObject({ id, hypervisor_hostname: name, [CAP]: tag });
    // A non-numeric argument is a name: the client lists hosts and matches hypervisor_hostname.
    const byName = jsonFrom((await cliOk(admin, 'host-show', '-f', 'json', name)).stdout);
    expect(byName.id).toBe(id);

    // host-update sends the extras flat: {"contract_tag": "...", "zone": "..."}.
    const tag2 = unique('tag');
    const upd = await cliOk(admin, 'host-update', '--extra', `${CAP}=${tag2}`, '--extra', 'zone=z9', id);
    expect(upd.stdout).toContain(`Updated host: ${id}`);
    const after = jsonFrom((await cliOk(admin, 'host-show', '-f', 'json', id)).stdout);
    expect(after).toMatchObject({ [CAP]: tag2, zone: 'z9', gpus: '4' });
    // ... and by name.
    await cliOk(admin, 'host-update', '--extra', 'zone=z10', name);
    expect((await call('GET', `/v1/os-hosts/${id}`)).body.host.zone).toBe('z10');

    const del = await cliOk(admin, 'host-delete', id);
    expect(del.stdout).toContain(`Deleted host: ${id}`);
    const gone = await cliError(admin, 'host-show', id);
    expect(gone.stderr).toContain(`ERROR: Object with {'host_id': '${id}'} not found`);
    expect((await call('GET', `/v1/os-hosts/${id}`)).status).toBe(404);
  });
});

describe('large answers', () => {
  it('come gzipped to clients that accept it, and the blazar CLI reads them', async () => {
    // 20 hosts with a 1 KiB capability each: the list is well over the 16 KiB threshold.
    const names = Array.from({ length: 20 }, () => unique('gz'));
    for (const name of names) await enrol(name, { notes: 'n'.repeat(1024) });
    const gz = await rawGet('/v1/os-hosts', { 'Accept-Encoding': 'gzip, deflate', 'X-Auth-Token': adminToken() });
    expect(gz.status).toBe(200);
    expect(gz.headers['content-encoding']).toBe('gzip');
    const hosts = JSON.parse(gunzipSync(gz.body).toString('utf8')).hosts.map((h: any) => h.hypervisor_hostname);
    expect(hosts).toEqual(expect.arrayContaining(names));
    const plain = await rawGet('/v1/os-hosts', { 'X-Auth-Token': adminToken() });
    expect(plain.headers['content-encoding']).toBeUndefined();
    expect(JSON.parse(plain.body.toString('utf8')).hosts.length).toBe(hosts.length);
    expect(gz.body.length).toBeLessThan(plain.body.length / 4);

    const listed = jsonFrom((await cliOk(adminToken(), 'host-list', '-f', 'json')).stdout).map((h: any) => h.hypervisor_hostname);
    expect(listed).toEqual(expect.arrayContaining(names));
  });
});

/** A GET with exactly these headers (fetch would add Accept-Encoding and decode on its own). */
function rawGet(path: string, headers: Record<string, string>): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = httpGet(`${apiUrl()}${path}`, { headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

describe('blazar CLI: leases', () => {
  it('creates a lease starting now, lists, shows by id and name, renames, prolongs by 1h, deletes', async () => {
    const tag = unique('tag');
    const host = await enrol(unique('ct-lh'), { [CAP]: tag });
    const member = await tokenFor('member');
    const name = unique('lease');
    const filter = filterFor(tag);

    const before = Date.now();
    const created = await cliOk(
      member.token,
      'lease-create',
      '--physical-reservation',
      `min=1,max=1,resource_properties=${filter}`,
      '-f',
      'json',
      name,
    );
    const afterCreate = Date.now();
    const lease = jsonFrom(created.stdout);
    expect(lease.id).toMatch(UUID);
    expect(lease.name).toBe(name);
    expect(lease.project_id).toBe(member.project);
    expect(lease.start_date).toMatch(BLAZAR_DATE);
    expect(lease.end_date).toMatch(BLAZAR_DATE);
    // No --start-date: the client sends "now", the server truncates to the minute.
    const start = blazarMs(lease.start_date);
    expect(start).toBeGreaterThanOrEqual(floorMinute(before));
    expect(start).toBeLessThanOrEqual(floorMinute(afterCreate));
    // The client's default end is its own now + 24 h, to the minute.
    const end = blazarMs(lease.end_date);
    expect(Math.abs(end - start - 24 * HOUR)).toBeLessThanOrEqual(MINUTE);

    // What the server stored from the client's request.
    const stored = await call('GET', `/v1/leases/${lease.id}`, { token: member.token });
    expect(stored.status).toBe(200);
    expect(stored.body.lease.reservations).toHaveLength(1);
    expect(stored.body.lease.reservations[0]).toMatchObject({
      resource_type: 'physical:host',
      min: 1,
      max: 1,
      hypervisor_properties: '',
      resource_properties: filter,
    });
    // ... and the host it got is ours.
    const alloc = await call('GET', `/v1/os-hosts/allocations?lease_id=${lease.id}`);
    expect(alloc.status).toBe(200);
    const holding = (alloc.body.allocations as any[]).filter((a) => a.reservations.length > 0).map((a) => a.resource_id);
    expect(holding).toEqual([host.id]);

    // A fresh project sees exactly its own lease.
    const list = jsonFrom((await cliOk(member.token, 'lease-list', '-f', 'json')).stdout) as any[];
    expect(list).toEqual([{ id: lease.id, name, start_date: lease.start_date, end_date: lease.end_date }]);

    const byId = jsonFrom((await cliOk(member.token, 'lease-show', '-f', 'json', lease.id)).stdout);
    expect(byId).toMatchObject({ id: lease.id, name });
    const byName = jsonFrom((await cliOk(member.token, 'lease-show', '-f', 'json', name)).stdout);
    expect(byName.id).toBe(lease.id);

    // Rename: PUT {"name": ...}.
    const renamed = unique('renamed');
    const ren = await cliOk(member.token, 'lease-update', '--name', renamed, lease.id);
    expect(ren.stdout).toContain('Updated lease');
    expect(jsonFrom((await cliOk(member.token, 'lease-show', '-f', 'json', renamed)).stdout).id).toBe(lease.id);
    const oldName = await cliError(member.token, 'lease-show', name);
    expect(oldName.stderr).toContain(`Unable to find resource with name '${name}'`);

    // Prolong: the client GETs the lease, parses end_date with %Y-%m-%dT%H:%M:%S.%f, adds an
    // hour and PUTs {"end_date": "YYYY-MM-DD HH:MM"}.
    await cliOk(member.token, 'lease-update', '--prolong-for', '1h', renamed);
    const prolonged = jsonFrom((await cliOk(member.token, 'lease-show', '-f', 'json', lease.id)).stdout);
    expect(prolonged.end_date).toMatch(BLAZAR_DATE);
    expect(blazarMs(prolonged.end_date) - end).toBe(HOUR);
    expect(prolonged.start_date).toBe(lease.start_date);
    expect(prolonged.name).toBe(renamed);

    const del = await cliOk(member.token, 'lease-delete', renamed);
    expect(del.stdout).toContain(`Deleted lease: ${renamed}`);
    expect(jsonFrom((await cliOk(member.token, 'lease-list', '-f', 'json')).stdout)).toEqual([]);
    expect((await call('GET', `/v1/leases/${lease.id}`, { token: member.token })).status).toBe(404);
    // The host was released with the lease: it can be deleted now.
    expect((await call('DELETE', `/v1/os-hosts/${host.id}`)).status).toBe(204);
  });

  it('moves a future lease with --defer-by, --advance-by, --reduce-by and --end-date', async () => {
    const tag = unique('tag');
    await enrol(unique('ct-fut'), { [CAP]: tag });
    const member = await tokenFor('member');
    const day = floorMinute(Date.now()) + 48 * HOUR;
    const fmt = (ms: number) => new Date(ms).toISOString().slice(0, 16).replace('T', ' ');
    const name = unique('future');
    const created = jsonFrom(
      (
        await cliOk(
          member.token,
          'lease-create',
          '--start-date',
          fmt(day),
          '--end-date',
          fmt(day + 5 * HOUR),
          '--before-end-date',
          fmt(day + 4 * HOUR),
          '--physical-reservation',
          `min=1,max=1,resource_properties=${filterFor(tag)}`,
          '-f',
          'json',
          name,
        )
      ).stdout,
    );
    expect([blazarMs(created.start_date), blazarMs(created.end_date)]).toEqual([day, day + 5 * HOUR]);
    const events = (await call('GET', `/v1/leases/${created.id}`, { token: member.token })).body.lease.events as any[];
    expect(Object.fromEntries(events.map((e) => [e.event_type, blazarMs(e.time)]))).toEqual({
      start_lease: day,
      end_lease: day + 5 * HOUR,
      before_end_lease: day + 4 * HOUR,
    });

    const show = async () => jsonFrom((await cliOk(member.token, 'lease-show', '-f', 'json', created.id)).stdout);
    await cliOk(member.token, 'lease-update', '--defer-by', '2h', name);
    let now = await show();
    expect([blazarMs(now.start_date), blazarMs(now.end_date)]).toEqual([day + 2 * HOUR, day + 5 * HOUR]);
    await cliOk(member.token, 'lease-update', '--advance-by', '1h', '--reduce-by', '30m', created.id);
    now = await show();
    expect([blazarMs(now.start_date), blazarMs(now.end_date)]).toEqual([day + HOUR, day + 4.5 * HOUR]);
    await cliOk(member.token, 'lease-update', '--end-date', fmt(day + 10 * HOUR), created.id);
    now = await show();
    expect(blazarMs(now.end_date)).toBe(day + 10 * HOUR);

    // Rules the server enforces show up as ERROR lines.
    const past = await cliError(member.token, 'lease-update', '--start-date', '2001-01-01 00:00', created.id);
    expect(past.stderr).toContain('ERROR: Start date must be later than current date');
    const inverted = await cliError(member.token, 'lease-update', '--end-date', fmt(day), created.id);
    expect(inverted.stderr).toContain('ERROR: End date must be later than current and start date');
    await cliOk(member.token, 'lease-delete', created.id);
  });

  it('prints ERROR: <our message> and exits non-zero when a lease cannot be satisfied', async () => {
    const member = await tokenFor('member');
    const nobody = unique('nobody-has-this');
    const filter = filterFor(nobody);

    const r = await cliError(member.token, 'lease-create', '--physical-reservation', `min=1,max=1,resource_properties=${filter}`, unique('l'));
    // The same request over HTTP: the CLI shows our error_message verbatim.
    const now = new Date();
    const fmt = (d: Date) => d.toISOString().slice(0, 16).replace('T', ' ');
    const http = await call('POST', '/v1/leases', {
      token: member.token,
      body: {
        name: unique('l'),
        start_date: 'now',
        end_date: fmt(new Date(now.getTime() + 24 * HOUR)),
        reservations: [{ resource_type: 'physical:host', min: 1, max: 1, hypervisor_properties: '', resource_properties: filter }],
        events: [],
        before_end_date: null,
      },
    });
    expectBlazarError(http, 409, 'NOT_ENOUGH_HOSTS_AVAILABLE');
    expect(r.stderr).toContain(`ERROR: ${http.body.error_message}`);
    expect(r.stdout).not.toContain('Created a new lease');
    expect(jsonFrom((await cliOk(member.token, 'lease-list', '-f', 'json')).stdout)).toEqual([]);

    // A malformed filter is the client's mistake: 400 and the CLI says why.
    const bad = await cliError(member.token, 'lease-create', '--physical-reservation', 'min=1,max=1,resource_properties=["~~","$x"]', unique('l'));
    expect(bad.stderr).toMatch(/^ERROR: Malformed requirements/m);
  });

  it('refuses a second overlapping lease on the only matching host and host-delete while reserved (409)', async () => {
    const admin = adminToken();
    const tag = unique('tag');
    const host = await enrol(unique('ct-busy'), { [CAP]: tag });
    const filter = filterFor(tag);
    const first = jsonFrom(
      (await cliOk(admin, 'lease-create', '--physical-reservation', `min=1,max=1,resource_properties=${filter}`, '-f', 'json', unique('l1'))).stdout,
    );

    const second = await cliError(admin, 'lease-create', '--physical-reservation', `min=1,max=1,resource_properties=${filter}`, unique('l2'));
    expect(second.stderr).toMatch(/^ERROR: Not enough hosts available/m);

    const busy = await cliError(admin, 'host-delete', String(host.id));
    expect(busy.stderr).toContain(`ERROR: Can't delete host ${host.id}. The host is reserved.`);
    const http = await call('DELETE', `/v1/os-hosts/${host.id}`);
    expectBlazarError(http, 409);
    expect(http.body.error_message).toBe(`Can't delete host ${host.id}. The host is reserved.`);
    expect((await call('GET', `/v1/os-hosts/${host.id}`)).status).toBe(200);

    await cliOk(admin, 'lease-delete', first.id);
    await cliOk(admin, 'host-delete', String(host.id));
    expect((await call('GET', `/v1/os-hosts/${host.id}`)).status).toBe(404);
  });
});

describe('blazarclient library (keystoneauth session + Token)', () => {
  it('drives hosts and leases through blazarclient.client.Client("1")', async () => {
    const tag = unique('tag');
    const hostName = unique('ct-lib');
    const leaseName = unique('lib-lease');
    const out = await blazarLib(
      `
from datetime import datetime, timedelta
a = ARGS
h = c.host.create(a['host'], **{a['cap']: a['tag'], 'rack': 'r1'})
shown = c.host.get(h['id'])
listed = [x['id'] for x in c.host.list() if x['hypervisor_hostname'] == a['host']]
upd = c.host.update(h['id'], {'rack': 'r2'})
end = (datetime.utcnow() + timedelta(hours=5)).strftime('%Y-%m-%d %H:%M')
res = [{'resource_type': 'physical:host', 'min': 1, 'max': 1, 'hypervisor_properties': '',
        'resource_properties': json.dumps(['==', '$' + a['cap'], a['tag']])}]
l = c.lease.create(a['lease'], 'now', end, res, [])
got = c.lease.get(l['id'])
names = [x['name'] for x in c.lease.list() if x['id'] == l['id']]
renamed = c.lease.update(l['id'], name=a['lease'] + '-x')
prolonged = c.lease.update(l['id'], prolong_for='2h')
try:
    c.lease.create(a['lease'] + '-2', 'now', end, res, [])
    conflict = None
except blazar_exception.BlazarClientException as e:
    conflict = blazar_error(e)
try:
    c.host.delete(h['id'])
    reserved = None
except blazar_exception.BlazarClientException as e:
    reserved = blazar_error(e)
c.lease.delete(l['id'])
try:
    c.lease.get(l['id'])
    missing = None
except blazar_exception.BlazarClientException as e:
    missing = blazar_error(e)
c.host.delete(h['id'])
emit({'host': h, 'shown': shown, 'listed': listed, 'updated': upd, 'lease': l, 'got': got, 'names': names,
      'renamed': renamed, 'prolonged': prolonged, 'conflict': conflict, 'reserved': reserved, 'missing': missing})
`,
      { apiUrl: apiUrl(), token: adminToken(), args: { host: hostName, lease: leaseName, cap: CAP, tag } },
    );

    expect(out.host).toMatchObject({ hypervisor_hostname: hostName, [CAP]: tag, rack: 'r1' });
    expect(out.host.id).toMatch(/^\d+$/);
    expect(out.shown).toMatchObject({ id: out.host.id, [CAP]: tag });
    expect(out.listed).toEqual([out.host.id]);
    expect(out.updated).toMatchObject({ id: out.host.id, rack: 'r2', [CAP]: tag }); // PUT answers {"host": {...}}

    expect(out.lease.id).toMatch(UUID);
    expect(out.lease.name).toBe(leaseName);
    expect(out.got.id).toBe(out.lease.id);
    expect(out.names).toEqual([leaseName]);
    expect(out.renamed).toMatchObject({ id: out.lease.id, name: `${leaseName}-x` });
    expect(blazarMs(out.prolonged.end_date) - blazarMs(out.lease.end_date)).toBe(2 * HOUR);

    expect(out.conflict).toMatchObject({ code: 409, type: 'BlazarClientException' });
    expect(out.conflict.message).toMatch(/^ERROR: Not enough hosts available/);
    expect(out.reserved).toMatchObject({ code: 409, message: `ERROR: Can't delete host ${out.host.id}. The host is reserved.` });
    expect(out.missing).toMatchObject({ code: 404, message: `ERROR: Object with {'lease_id': '${out.lease.id}'} not found` });
    expect((await call('GET', `/v1/os-hosts/${out.host.id}`)).status).toBe(404);
  });
});

describe('Blazar HTTP contract (request -> expected)', () => {
  let hostId: string;
  let leaseId: string;

  beforeAll(async () => {
    const tag = unique('tag');
    hostId = String((await enrol(unique('ct-http'), { [CAP]: tag })).id);
    const end = new Date(Date.now() + 48 * HOUR).toISOString().slice(0, 16).replace('T', ' ');
    const start = new Date(Date.now() + 24 * HOUR).toISOString().slice(0, 16).replace('T', ' ');
    const res = await call('POST', '/v1/leases', {
      body: {
        name: unique('http-lease'),
        start_date: start,
        end_date: end,
        reservations: [{ resource_type: 'physical:host', min: 1, max: 1, hypervisor_properties: '', resource_properties: filterFor(tag) }],
        events: [],
      },
    });
    expect(res.status, res.text).toBe(201);
    leaseId = res.body.lease.id;
  });

  it('answers every route with a .json suffix too', async () => {
    const table: [string, () => string, number, (b: any) => void][] = [
      ['GET', () => '/v1/leases.json', 200, (b) => expect(b.leases).toContainEqual(expect.objectContaining({ id: leaseId }))],
      ['GET', () => '/v1/os-hosts.json', 200, (b) => expect(b.hosts).toContainEqual(expect.objectContaining({ id: hostId }))],
      ['GET', () => `/v1/os-hosts/${hostId}.json`, 200, (b) => expect(b.host.id).toBe(hostId)],
      ['GET', () => `/v1/leases/${leaseId}.json`, 200, (b) => expect(b.lease.id).toBe(leaseId)],
    ];
    for (const [method, path, status, check] of table) {
      const res = await call(method, path());
      expect(res.status, `${method} ${path()}: ${res.text}`).toBe(status);
      expect(res.headers.get('content-type')).toMatch(/application\/json/);
      check(res.body);
    }
  });

  it('handles OpenStack-API-Version: reservation 1.0 / latest, rejects others', async () => {
    const table: [string | undefined, number, string | undefined][] = [
      [undefined, 200, undefined],
      ['reservation 1.0', 200, undefined],
      ['reservation latest', 200, undefined],
      ['reservation 9.9', 406, 'NOT_ACCEPTABLE'],
      ['reservation 2.0', 406, 'NOT_ACCEPTABLE'],
      ['garbage', 400, 'BAD_REQUEST'],
      ['reservation abc', 400, 'BAD_REQUEST'],
      ['compute 1.0', 400, 'BAD_REQUEST'],
    ];
    for (const [header, status, name] of table) {
      const res = await call('GET', '/v1/leases', { headers: header === undefined ? {} : { 'OpenStack-API-Version': header } });
      expect(res.status, `${header}: ${res.text}`).toBe(status);
      if (status === 200) {
        expect(res.headers.get('openstack-api-version')).toBe('reservation 1.0');
        expect(res.headers.get('vary') ?? '').toMatch(/OpenStack-API-Version/i);
      } else {
        expectBlazarError(res, status, name);
      }
    }
  });

  it('uses 201 / 200 / 204 for POST / PUT / DELETE', async () => {
    const name = unique('ct-codes');
    const post = await call('POST', '/v1/os-hosts', { body: { name, vcpus: 8, memory_mb: 4096, color: 'blue' } });
    expect(post.status).toBe(201);
    expect(post.body.host).toMatchObject({ hypervisor_hostname: name, vcpus: 8, memory_mb: 4096, color: 'blue' });
    const id = post.body.host.id;
    // Flat body (what the client sends) and the seed's {"values": {...}} both work; the answer is enveloped.
    const put = await call('PUT', `/v1/os-hosts/${id}`, { body: { color: 'red' } });
    expect(put.status).toBe(200);
    expect(put.body.host).toMatchObject({ id, color: 'red' });
    const put2 = await call('PUT', `/v1/os-hosts/${id}`, { body: { values: { color: 'green' } } });
    expect(put2.status).toBe(200);
    expect(put2.body.host).toMatchObject({ id, color: 'green' });
    const del = await call('DELETE', `/v1/os-hosts/${id}`);
    expect(del.status).toBe(204);
    expect(del.text).toBe('');
  });

  it('answers errors in the Blazar shape {error_code, error_message, error_name}', async () => {
    const member = await tokenFor('member');
    const missingLease = randomUUID();
    type Row = { req: [string, string, { token?: string | null; body?: unknown; rawBody?: string; headers?: Record<string, string> }?]; status: number; name?: string; message?: string | RegExp };
    const table: Row[] = [
      { req: ['PATCH', '/v1/leases'], status: 405, name: 'METHOD_NOT_ALLOWED' },
      { req: ['DELETE', '/v1/os-hosts'], status: 405, name: 'METHOD_NOT_ALLOWED' },
      { req: ['POST', `/v1/leases/${missingLease}`], status: 405, name: 'METHOD_NOT_ALLOWED' },
      { req: ['POST', `/v1/os-hosts/${hostId}`], status: 405, name: 'METHOD_NOT_ALLOWED' },
      { req: ['GET', `/v1/leases/${missingLease}`], status: 404, name: 'NOT_FOUND', message: `Object with {'lease_id': '${missingLease}'} not found` },
      { req: ['GET', `/v1/leases/${missingLease}.json`], status: 404, name: 'NOT_FOUND', message: `Object with {'lease_id': '${missingLease}'} not found` },
      { req: ['PUT', `/v1/leases/${missingLease}`, { body: { name: 'x' } }], status: 404, name: 'NOT_FOUND' },
      { req: ['DELETE', `/v1/leases/${missingLease}`], status: 404, name: 'NOT_FOUND' },
      { req: ['GET', '/v1/os-hosts/999999999'], status: 404, name: 'NOT_FOUND', message: `Object with {'host_id': '999999999'} not found` },
      { req: ['POST', '/v1/leases', { rawBody: '{"name": ', headers: { 'Content-Type': 'application/json' } }], status: 400 },
      { req: ['POST', '/v1/os-hosts', { rawBody: 'not json', headers: { 'Content-Type': 'application/json' } }], status: 400 },
      { req: ['POST', '/v1/leases', { rawBody: '{}', headers: { 'Content-Type': 'text/plain' } }], status: 400 },
      { req: ['POST', '/v1/leases', { body: {} }], status: 400, message: /Missing parameter name/ },
      {
        req: ['POST', '/v1/leases', { body: { name: 'x', start_date: '2020-01-01 00:00', end_date: '2020-01-02 00:00', reservations: [], events: [] } }],
        status: 400,
        message: 'Start date must be later than current date',
      },
      {
        req: ['POST', '/v1/leases', { body: { name: 'x', start_date: 'tomorrow', end_date: '2099-01-02 00:00', reservations: [], events: [] } }],
        status: 400,
        message: /invalid date.*Required format: %Y-%m-%d %H:%M/,
      },
      { req: ['PUT', `/v1/os-hosts/${hostId}`, { body: {} }], status: 400, message: 'No data to update' },
      { req: ['GET', '/v1/leases', { token: null }], status: 401 },
      { req: ['GET', '/v1/leases', { token: 'slp_not-a-token' }], status: 401 },
      { req: ['GET', '/v1/os-hosts', { token: member.token }], status: 403 },
      { req: ['POST', '/v1/os-hosts', { token: member.token, body: { name: unique('nope') } }], status: 403 },
      // Another project's lease is invisible (404, not 403).
      { req: ['GET', '/v1/leases/LEASE', { token: member.token }], status: 404, name: 'NOT_FOUND' },
    ];
    for (const row of table) {
      const [method, rawPath, opts] = row.req;
      const path = rawPath.replace('LEASE', leaseId);
      const res = await call(method, path, opts ?? {});
      expectBlazarError(res, row.status, row.name);
      if (typeof row.message === 'string') expect(res.body.error_message, `${method} ${path}`).toBe(row.message);
      else if (row.message) expect(res.body.error_message, `${method} ${path}`).toMatch(row.message);
      if (row.status === 405) expect(res.headers.get('allow') ?? '', `${method} ${path}`).not.toBe('');
    }
  });
});
