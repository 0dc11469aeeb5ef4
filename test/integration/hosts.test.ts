import { describe, expect, it } from 'vitest';
import { call, tokenFor, unique } from '../support/api.ts';
import { hostPool, leaseBody } from '../support/fixtures.ts';

describe('Blazar os-hosts', () => {
  it('enrols a new node from the facts in the body, extras as strings, with an all-digits id', async () => {
    const name = unique('bm');
    const res = await call('POST', '/v1/os-hosts', { body: { name, vcpus: '64', memory_mb: 262144, gpu: 'a100', slots: 8, nested: { a: 1 } } });
    expect(res.status).toBe(201);
    const host = res.body.host;
    expect(host.id).toMatch(/^\d+$/);
    expect(host).toMatchObject({ hypervisor_hostname: name, vcpus: 64, memory_mb: 262144, gpu: 'a100', slots: '8', nested: '{"a":1}', reservable: true });
    expect(host.created_at).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/);

    const shown = await call('GET', `/v1/os-hosts/${host.id}`);
    expect(shown.body.host).toEqual(host);
    const listed = await call('GET', '/v1/os-hosts');
    expect(listed.body.hosts.map((h: any) => h.id)).toContain(host.id);
    const node = await call('GET', `/v1.1/admin/nodes/${name}`);
    expect(node.status).toBe(200);
    expect(node.body.node).toMatchObject({ name, host_id: host.id, vcpus: 64, extra_capabilities: { gpu: 'a100' } });
  });

  it('refuses a second enrolment, a missing name, bad facts and over-long keys', async () => {
    const name = unique('bm');
    expect((await call('POST', '/v1/os-hosts', { body: { name } })).status).toBe(201);
    const dup = await call('POST', '/v1/os-hosts', { body: { name } });
    expect(dup.status).toBe(409);
    expect(dup.body).toMatchObject({ error_code: 409, error_name: 'HOST_EXISTS' });
    expect((await call('POST', '/v1/os-hosts', { body: { vcpus: 2 } })).body.error_message).toBe('Missing parameter name');
    expect((await call('POST', '/v1/os-hosts', { body: { name: unique('bm'), vcpus: 'many' } })).status).toBe(400);
    const long = await call('POST', '/v1/os-hosts', { body: { name: unique('bm'), ['k'.repeat(65)]: 'v' } });
    expect(long.status).toBe(400);
    expect(long.body.error_message).toMatch(/Extra capability key too long/);
  });

  it('enrols concurrently created names exactly once', async () => {
    const name = unique('race');
    const results = await Promise.all(Array.from({ length: 8 }, () => call('POST', '/v1/os-hosts', { body: { name } })));
    expect(results.filter((r) => r.status === 201)).toHaveLength(1);
    expect(results.filter((r) => r.status === 409)).toHaveLength(7);
  });

  it('updates capabilities from flat and {"values": {...}} bodies and answers {"host": ...}', async () => {
    const { hosts } = await hostPool(1);
    const id = hosts[0]!.id;
    const flat = await call('PUT', `/v1/os-hosts/${id}`, { body: { rack: 'r1' } });
    expect(flat.status).toBe(200);
    expect(flat.body.host.rack).toBe('r1');
    const wrapped = await call('PUT', `/v1/os-hosts/${id}`, { body: { values: { rack: 'r2', vcpus: 32 } } });
    expect(wrapped.body.host).toMatchObject({ rack: 'r2', vcpus: 32 });
    expect((await call('PUT', `/v1/os-hosts/${id}`, { body: {} })).body.error_message).toBe('No data to update');
    const readOnly = await call('PUT', `/v1/os-hosts/${id}`, { body: { id: '7' } });
    expect(readOnly.status).toBe(400);
    expect(readOnly.body.error_message).toBe('id is read-only and cannot be set');
    expect((await call('PUT', '/v1/os-hosts/999999999', { body: { a: 'b' } })).status).toBe(404);
  });

  it('refuses to change a capability a future reservation depends on, but allows others', async () => {
    const { hosts, filter } = await hostPool(1);
    const lease = await call('POST', '/v1/leases', { body: leaseBody(filter) });
    expect(lease.status).toBe(201);
    const pinned = await call('PUT', `/v1/os-hosts/${hosts[0]!.id}`, { body: { pool: 'other' } });
    expect(pinned.status).toBe(409);
    expect(pinned.body.error_message).toMatch(/depends on it/);
    expect((await call('PUT', `/v1/os-hosts/${hosts[0]!.id}`, { body: { colour: 'blue' } })).status).toBe(200);
  });

  it('deletes a free host (409 while allocated) and re-enrols the same inventory node', async () => {
    const { hosts, filter } = await hostPool(1);
    const host = hosts[0]!;
    const before = await call('GET', `/v1.1/admin/nodes/${host.name}`);
    const lease = await call('POST', '/v1/leases', { body: leaseBody(filter) });
    const busy = await call('DELETE', `/v1/os-hosts/${host.id}`);
    expect(busy.status).toBe(409);
    expect(busy.body.error_message).toBe(`Can't delete host ${host.id}. The host is reserved.`);
    expect((await call('DELETE', `/v1/leases/${lease.body.lease.id}`)).status).toBe(204);
    expect((await call('DELETE', `/v1/os-hosts/${host.id}`)).status).toBe(204);
    expect((await call('GET', `/v1/os-hosts/${host.id}`)).status).toBe(404);
    const again = await call('POST', '/v1/os-hosts', { body: { name: host.name } });
    expect(again.status).toBe(201);
    expect(again.body.host.id).not.toBe(host.id);
    const after = await call('GET', `/v1.1/admin/nodes/${host.name}`);
    expect(after.body.node.id).toBe(before.body.node.id);
  });

  it('lists allocations of every host and of one host, filtered by lease', async () => {
    const { hosts, filter } = await hostPool(2);
    const lease = await call('POST', '/v1/leases', { body: leaseBody(filter, { min: 2 }) });
    const leaseId = lease.body.lease.id;
    const all = await call('GET', `/v1/os-hosts/allocations?lease_id=${leaseId}`);
    expect(all.status).toBe(200);
    const mine = all.body.allocations.filter((a: any) => hosts.some((h) => h.id === a.resource_id));
    expect(mine).toHaveLength(2);
    for (const a of mine) {
      expect(a.reservations).toHaveLength(1);
      expect(a.reservations[0]).toMatchObject({ lease_id: leaseId, id: lease.body.lease.reservations[0].id });
      expect(a.reservations[0].start_date).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}$/);
    }
    const one = await call('GET', `/v1/os-hosts/${hosts[0]!.id}/allocation`);
    expect(one.body.allocation.resource_id).toBe(hosts[0]!.id);
    expect(one.body.allocation.reservations).toHaveLength(1);
    const none = await call('GET', `/v1/os-hosts/${hosts[0]!.id}/allocation?lease_id=00000000-0000-0000-0000-000000000000`);
    expect(none.body.allocation.reservations).toEqual([]);
  });

  it('lists resource properties, with values in detail, and hides private ones', async () => {
    const key = unique('prop').replace(/-/g, '_');
    await call('POST', '/v1/os-hosts', { body: { name: unique('bm'), [key]: 'x' } });
    await call('POST', '/v1/os-hosts', { body: { name: unique('bm'), [key]: 'y' } });
    const list = await call('GET', '/v1/os-hosts/properties');
    expect(list.body.resource_properties).toContainEqual({ property: key });
    const detail = await call('GET', '/v1/os-hosts/properties?detail=true');
    expect(detail.body.resource_properties).toContainEqual({ property: key, private: false, values: ['x', 'y'] });
    const patched = await call('PATCH', `/v1/os-hosts/properties/${key}`, { body: { private: true } });
    expect(patched.status).toBe(200);
    expect(patched.body.resource_property).toMatchObject({ property_name: key, private: true, resource_type: 'physical:host' });
    const hidden = await call('GET', '/v1/os-hosts/properties');
    expect(hidden.body.resource_properties).not.toContainEqual({ property: key });
    const shown = await call('GET', '/v1/os-hosts/properties?all=true');
    expect(shown.body.resource_properties).toContainEqual({ property: key });
    expect((await call('PATCH', '/v1/os-hosts/properties/nope-not-here', { body: { private: true } })).status).toBe(404);
    expect((await call('PATCH', `/v1/os-hosts/properties/${key}`, { body: { private: 'yes' } })).status).toBe(400);
  });

  it('keeps os-hosts for admins', async () => {
    const { token } = await tokenFor('member');
    const res = await call('POST', '/v1/os-hosts', { token, body: { name: unique('bm') } });
    expect(res.status).toBe(403);
    expect(res.body).toMatchObject({ error_code: 403, error_name: 'FORBIDDEN' });
    expect((await call('GET', '/v1/os-hosts', { token })).status).toBe(403);
  });
});

describe('Blazar os-hosts: hostile input', () => {
  const hostNames = async () => new Set(((await call('GET', '/v1/os-hosts')).body.hosts as any[]).map((h) => h.hypervisor_hostname));
  const nested = (levels: number): unknown => {
    let v: unknown = 'x';
    for (let i = 0; i < levels; i++) v = { a: v };
    return v;
  };

  it('refuses names with NUL, other control characters, ../ segments, blanks around them or 3000 characters, with 400 and no trace', async () => {
    const base = unique('bad');
    const names = [`${base}\u0000x`, `${base}\nx`, `../${base}`, `${base}/../etc`, ` ${base}`, `${base} `, `${base}-${'n'.repeat(3000)}`, `${base}/./x`];
    for (const name of names) {
      const res = await call('POST', '/v1/os-hosts', { body: { name } });
      expect(res.status, JSON.stringify(name.slice(0, 40))).toBe(400);
      expect(res.body).toMatchObject({ error_code: 400, error_name: 'INVALID_HOST' });
      expect(res.body.error_message).toMatch(/^Malformed parameter name: the host name /);
    }
    expect((await call('POST', '/v1/os-hosts', { body: { name: 42 } })).status).toBe(400);
    const after = await hostNames();
    for (const name of names) expect(after.has(name)).toBe(false);
  });

  it('refuses reserved capability keys, deep or over-large capabilities on create and update, and leaves the host as it was', async () => {
    const { hosts } = await hostPool(1);
    const id = hosts[0]!.id;
    const before = (await call('GET', `/v1/os-hosts/${id}`)).body.host;
    const bodies: [string, string][] = [
      ['{"constructor": "x"}', 'reserved'],
      ['{"prototype": "x"}', 'reserved'],
      ['{"__proto__": {"polluted": "yes"}}', 'reserved'],
      ['{"values": {"constructor": "x"}}', 'reserved'],
      ['{"nested": {"constructor": 1}}', 'reserved'],
      [JSON.stringify({ deep: nested(40) }), 'nested deeper than 32 levels'],
      [JSON.stringify({ big: 'x'.repeat(70 * 1024) }), 'more than 65536'],
      [JSON.stringify({ 'bad\u0000key': 'x' }), 'Malformed extra capability key'],
    ];
    for (const [raw, why] of bodies) {
      const put = await call('PUT', `/v1/os-hosts/${id}`, { rawBody: raw, headers: { 'Content-Type': 'application/json' } });
      expect(put.status, raw.slice(0, 60)).toBe(400);
      expect(put.body.error_code).toBe(400);
      expect(put.body.error_message, raw.slice(0, 60)).toContain(why);
      const name = unique('bad-cap');
      const post = await call('POST', '/v1/os-hosts', { rawBody: raw.replace(/^\{/, `{"name": "${name}", `), headers: { 'Content-Type': 'application/json' } });
      expect(post.status, raw.slice(0, 60)).toBe(400);
      expect((await call('GET', `/v1.1/admin/nodes/${name}`)).status).toBe(404);
    }
    // Many small capabilities that only together pass the bound.
    const many = Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`cap${i}`, 'v'.repeat(2000)]));
    expect((await call('PUT', `/v1/os-hosts/${id}`, { body: many })).status).toBe(400);
    expect((await call('GET', `/v1/os-hosts/${id}`)).body.host).toEqual(before);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('answers 404 for host ids that are not all digits or longer than any id, 400 for ids no path may hold', async () => {
    for (const id of ['abc', '12a', '1'.repeat(21), '0x10']) {
      const res = await call('GET', `/v1/os-hosts/${id}`);
      expect(res.status, id).toBe(404);
      expect(res.body).toMatchObject({ error_code: 404, error_name: 'NOT_FOUND' });
      expect(res.body.error_message.length).toBeLessThan(200);
      expect((await call('PUT', `/v1/os-hosts/${id}`, { body: { a: 'b' } })).status).toBe(404);
      expect((await call('DELETE', `/v1/os-hosts/${id}`)).status).toBe(404);
      expect((await call('GET', `/v1/os-hosts/${id}/allocation`)).status).toBe(404);
    }
    const huge = await call('GET', `/v1/os-hosts/${'9'.repeat(3000)}`);
    expect(huge.status).toBe(400);
    expect(huge.body.error_code).toBe(400);
  });

  it('answers a constructor-named lease filter with no host, whatever the operator', async () => {
    const { filter } = await hostPool(1);
    for (const term of [['!=', '$constructor', 'zzz'], ['!=', '$toString', 'zzz'], ['==', '$hasOwnProperty', 'x']]) {
      const res = await call('POST', '/v1/leases', { body: leaseBody(JSON.stringify(['and', JSON.parse(filter), term])) });
      expect(res.status, JSON.stringify(term)).toBe(409);
      expect(res.body.error_name).toBe('NOT_ENOUGH_HOSTS_AVAILABLE');
    }
    const proto = await call('POST', '/v1/leases', { body: leaseBody(JSON.stringify(['==', '$__proto__', 'x'])) });
    expect(proto.status).toBe(400);
    expect(proto.body.error_name).toBe('MALFORMED_REQUIREMENTS');
  });
});
