import { describe, expect, it } from 'vitest';
import { call, tokenFor, unique } from '../support/api.ts';
import { blazarIn, hostPool, hostReservation, leaseBody } from '../support/fixtures.ts';

const BLAZAR_DATE = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Polls a lease until it has `status` (leases starting "now" start within a second or so). */
async function untilStatus(id: string, status: string, token?: string): Promise<any> {
  const end = Date.now() + 15_000;
  for (;;) {
    const lease = (await call('GET', `/v1/leases/${id}`, token ? { token } : {})).body.lease;
    if (lease.status === status) return lease;
    if (Date.now() > end) throw new Error(`lease ${id} is ${lease.status}, not ${status}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('Blazar leases: create', () => {
  it('creates a lease starting now with its reservation, allocation and three UNDONE events, and starts it', async () => {
    const { filter, hosts } = await hostPool(1);
    const { token, project } = await tokenFor('member');
    const body = leaseBody(filter, { start: 'now', end: blazarIn(180) });
    const res = await call('POST', '/v1/leases', { token, body });
    expect(res.status, res.text).toBe(201);
    const lease = res.body.lease;
    expect(lease.id).toMatch(UUID);
    expect(lease).toMatchObject({ name: body.name, project_id: project, status: 'PENDING', degraded: false, trust_id: null });
    expect(lease.start_date).toMatch(BLAZAR_DATE);
    const start = Date.parse(`${lease.start_date.slice(0, 23)}Z`);
    expect(start % 60_000).toBe(0); // "now" is truncated to the minute
    expect(Math.abs(Date.now() - start)).toBeLessThan(120_000);
    expect(lease.reservations).toHaveLength(1);
    expect(lease.reservations[0]).toMatchObject({
      resource_type: 'physical:host', status: 'pending', min: 1, max: 1, resource_properties: filter, hypervisor_properties: '', before_end: 'default',
    });
    const types = lease.events.map((e: any) => e.event_type).sort();
    expect(types).toEqual(['before_end_lease', 'end_lease', 'start_lease']);
    expect(lease.events.every((e: any) => e.status === 'UNDONE' && BLAZAR_DATE.test(e.time))).toBe(true);
    const beforeEnd = lease.events.find((e: any) => e.event_type === 'before_end_lease');
    expect(Date.parse(`${lease.end_date.slice(0, 23)}Z`) - Date.parse(`${beforeEnd.time.slice(0, 23)}Z`)).toBe(60 * 60_000);

    const alloc = await call('GET', `/v1/os-hosts/${hosts[0]!.id}/allocation`);
    expect(alloc.body.allocation.reservations[0].lease_id).toBe(lease.id);
    // It starts at once (the lifecycle tests cover that in depth); what it was created with stays.
    const started = await untilStatus(lease.id, 'ACTIVE', token);
    const { status: _s, events: _e, reservations: _r, updated_at: _u, ...fixed } = lease;
    expect(started).toMatchObject(fixed);
    expect(started.events.find((e: any) => e.event_type === 'start_lease').status).toBe('DONE');
    expect((await call('GET', `/v1/leases/${lease.id}.json`, { token })).status).toBe(200);
  });

  it('takes up to max hosts greedily, and at least min', async () => {
    const { filter } = await hostPool(3);
    const greedy = await call('POST', '/v1/leases', { body: leaseBody(filter, { min: 1, max: 3 }) });
    expect(greedy.status).toBe(201);
    const lease = (await call('GET', `/v1.1/admin/leases/${greedy.body.lease.id}`)).body.lease;
    expect(lease.reservations[0].nodes).toHaveLength(3);
    const more = await call('POST', '/v1/leases', { body: leaseBody(filter, { min: 1, max: 1 }) });
    expect(more.status).toBe(409);
    expect(more.body).toMatchObject({ error_code: 409, error_name: 'NOT_ENOUGH_HOSTS_AVAILABLE' });
  });

  it('books back-to-back leases on one host (end == next start)', async () => {
    const { filter } = await hostPool(1);
    const a = await call('POST', '/v1/leases', { body: leaseBody(filter, { start: blazarIn(600), end: blazarIn(720) }) });
    const b = await call('POST', '/v1/leases', { body: leaseBody(filter, { start: blazarIn(720), end: blazarIn(840) }) });
    const c = await call('POST', '/v1/leases', { body: leaseBody(filter, { start: blazarIn(719), end: blazarIn(721) }) });
    expect([a.status, b.status, c.status]).toEqual([201, 201, 409]);
  });

  it('filters hosts on facts and extra capabilities, numerically and with or', async () => {
    const tag = unique('t');
    await call('POST', '/v1/os-hosts', { body: { name: `${tag}-small`, tag, vcpus: 8, slots: '9' } });
    await call('POST', '/v1/os-hosts', { body: { name: `${tag}-big`, tag, vcpus: 64, slots: '10' } });
    const make = (resource: unknown, hyp: unknown = '') =>
      call('POST', '/v1/leases', {
        body: { name: unique('f'), start_date: blazarIn(2000), end_date: blazarIn(2100), reservations: [{ resource_type: 'physical:host', min: 1, max: 2, hypervisor_properties: hyp, resource_properties: JSON.stringify(resource) }] },
      });
    const nodesOf = async (res: any) => {
      expect(res.status, res.text).toBe(201);
      const l = (await call('GET', `/v1.1/admin/leases/${res.body.lease.id}`)).body.lease;
      const names = [];
      for (const id of l.reservations[0].nodes) names.push((await call('GET', `/v1.1/admin/nodes/${id}`)).body.node.name);
      await call('DELETE', `/v1/leases/${res.body.lease.id}`);
      return names.sort();
    };
    // "10" > "9" as numbers (upstream would compare strings)
    expect(await nodesOf(await make(['and', ['==', '$tag', tag], ['>', '$slots', '9']]))).toEqual([`${tag}-big`]);
    expect(await nodesOf(await make(['==', '$tag', tag], JSON.stringify(['>=', '$vcpus', '16'])))).toEqual([`${tag}-big`]);
    expect(await nodesOf(await make(['and', ['==', '$tag', tag], ['or', ['==', '$vcpus', '8'], ['==', '$vcpus', '64']]]))).toEqual([`${tag}-big`, `${tag}-small`]);
  });

  it.each([
    [{ start_date: undefined }, 'Missing parameter start_date'],
    [{ name: undefined }, 'Missing parameter name'],
    [{ start_date: '2030/01/01 10:00' }, 'invalid date'],
    [{ start_date: '2020-01-01 10:00' }, 'Start date must be later than current date'],
    [{ end_date: 'start' }, 'invalid date'],
    [{ reservations: [{ min: 1 }] }, 'Missing parameter resource_type'],
    [{ reservations: [{ resource_type: 'virtual:banana' }] }, 'The virtual:banana resource type is not supported'],
    [{ reservations: [{ resource_type: 'physical:host', max: 1, hypervisor_properties: '', resource_properties: '' }] }, 'Missing parameter min'],
    [{ reservations: [{ resource_type: 'physical:host', min: 'x', max: 1, hypervisor_properties: '', resource_properties: '' }] }, 'Malformed parameter min'],
    [{ reservations: [{ resource_type: 'physical:host', min: 0, max: 1, hypervisor_properties: '', resource_properties: '' }] }, 'greater than or equal to 1'],
    [{ reservations: [{ resource_type: 'physical:host', min: 3, max: 2, hypervisor_properties: '', resource_properties: '' }] }, 'Invalid values for min/max'],
    [{ reservations: [{ resource_type: 'physical:host', min: 1, max: 1, resource_properties: '' }] }, 'Missing parameter hypervisor_properties'],
    [{ reservations: [{ resource_type: 'physical:host', min: 1, max: 1, hypervisor_properties: '', resource_properties: '["~", "$a", "b"]' }] }, 'Malformed requirements'],
    [{ reservations: [{ resource_type: 'physical:host', min: 1, max: 1, hypervisor_properties: '', resource_properties: '', before_end: 'explode' }] }, 'Malformed parameter before_end'],
    [{ before_end_date: '2000-01-01 00:00' }, 'out of lease limits'],
    [{ colour: 'red' }, 'Unrecognized key: "colour"'],
    [{ name: 'x'.repeat(81) }, 'name must be at most 80 characters'],
    [{ reservations: [{ resource_type: 'physical:host', min: 1, max: 1, hypervisor_properties: '', resource_properties: '', amount: 2 }] }, 'Unknown physical:host reservation parameter(s): amount'],
  ])('rejects %j with 400', async (patch, message) => {
    const body: Record<string, unknown> = { ...leaseBody('["==", "$pool", "none"]'), ...patch };
    for (const [k, v] of Object.entries(patch)) if (v === undefined) delete body[k];
    const res = await call('POST', '/v1/leases', { body });
    expect(res.status, res.text).toBe(400);
    expect(res.body.error_code).toBe(400);
    expect(res.body.error_message).toContain(message);
  });

  it('rejects an end before or equal to the start', async () => {
    const at = blazarIn(300);
    const res = await call('POST', '/v1/leases', { body: { ...leaseBody('""'), start_date: at, end_date: at } });
    expect(res.status).toBe(400);
    expect(res.body.error_message).toBe('End date must be later than start date.');
  });

  it('honours before_end_date and clamps the default before_end to the start', async () => {
    const { filter } = await hostPool(1);
    const explicit = await call('POST', '/v1/leases', { body: leaseBody(filter, { start: blazarIn(100), end: blazarIn(400), before_end_date: blazarIn(200) }) });
    expect(explicit.status).toBe(201);
    const be = explicit.body.lease.events.find((e: any) => e.event_type === 'before_end_lease');
    expect(be.time.slice(0, 16).replace('T', ' ')).toBe(blazarIn(200));
    const short = await call('POST', '/v1/leases', { body: leaseBody(filter, { start: blazarIn(500), end: blazarIn(530) }) });
    const start = short.body.lease.events.find((e: any) => e.event_type === 'start_lease');
    const clamped = short.body.lease.events.find((e: any) => e.event_type === 'before_end_lease');
    expect(clamped.time).toBe(start.time);
  });

  it('replays a POST with the same Idempotency-Key and refuses the key with another body', async () => {
    const { filter } = await hostPool(1);
    const key = unique('idem');
    const body = leaseBody(filter);
    const first = await call('POST', '/v1/leases', { body, headers: { 'Idempotency-Key': key } });
    const second = await call('POST', '/v1/leases', { body, headers: { 'Idempotency-Key': key } });
    expect(first.status).toBe(201);
    expect(second.status).toBe(201);
    expect(second.body.lease.id).toBe(first.body.lease.id);
    expect(second.headers.get('idempotent-replayed')).toBe('true');
    const other = await call('POST', '/v1/leases', { body: { ...body, name: 'changed' }, headers: { 'Idempotency-Key': key } });
    expect(other.status).toBe(422);
    const leases = (await call('GET', '/v1/leases')).body.leases.filter((l: any) => l.name === body.name);
    expect(leases).toHaveLength(1);
  });
});

describe('Blazar leases: retries', () => {
  it('creates one lease for parallel POSTs with one Idempotency-Key', async () => {
    const { filter } = await hostPool(2);
    const body = leaseBody(filter);
    const key = unique('idem');
    const results = await Promise.all(Array.from({ length: 6 }, () => call('POST', '/v1/leases', { body, headers: { 'Idempotency-Key': key } })));
    for (const r of results) expect([201, 409], r.text).toContain(r.status);
    const ids = new Set(results.filter((r) => r.status === 201).map((r) => r.body.lease.id));
    expect(ids.size).toBe(1);
    for (const r of results.filter((x) => x.status === 409)) expect(r.body.error_name).toBe('IDEMPOTENCY_KEY_IN_USE');
    const leases = (await call('GET', '/v1/leases')).body.leases.filter((l: any) => l.name === body.name);
    expect(leases).toHaveLength(1);
  });
});

describe('Blazar leases: visibility', () => {
  it('shows a project its own leases only, and admins all', async () => {
    const { filter } = await hostPool(1);
    const alice = await tokenFor('member');
    const bob = await tokenFor('member');
    const lease = (await call('POST', '/v1/leases', { token: alice.token, body: leaseBody(filter) })).body.lease;
    expect((await call('GET', `/v1/leases/${lease.id}`, { token: bob.token })).status).toBe(404);
    expect((await call('DELETE', `/v1/leases/${lease.id}`, { token: bob.token })).status).toBe(404);
    expect((await call('GET', '/v1/leases', { token: bob.token })).body.leases.map((l: any) => l.id)).not.toContain(lease.id);
    expect((await call('GET', '/v1/leases', { token: alice.token })).body.leases.map((l: any) => l.id)).toContain(lease.id);
    expect((await call('GET', '/v1/leases')).body.leases.map((l: any) => l.id)).toContain(lease.id);
    const reader = await tokenFor('reader', alice.project);
    expect((await call('GET', `/v1/leases/${lease.id}`, { token: reader.token })).status).toBe(200);
    expect((await call('DELETE', `/v1/leases/${lease.id}`, { token: reader.token })).status).toBe(403);
  });
});

describe('Blazar leases: update', () => {
  async function oneLease(opts: Parameters<typeof leaseBody>[1] = {}, hosts = 1) {
    const pool = await hostPool(hosts);
    const res = await call('POST', '/v1/leases', { body: leaseBody(pool.filter, opts) });
    expect(res.status, res.text).toBe(201);
    return { ...pool, lease: res.body.lease };
  }

  it('returns the lease unchanged for an empty body and renames in any state', async () => {
    const { lease } = await oneLease();
    const same = await call('PUT', `/v1/leases/${lease.id}`, { body: {} });
    expect(same.status).toBe(200);
    expect(same.body.lease).toEqual(lease);
    const renamed = await call('PUT', `/v1/leases/${lease.id}`, { body: { name: 'renamed' } });
    expect(renamed.body.lease.name).toBe('renamed');
    expect(renamed.body.lease.updated_at).not.toBeNull();
  });

  it('prolongs and shortens, moving the events and the allocation', async () => {
    const { lease, hosts } = await oneLease({ start: blazarIn(60), end: blazarIn(240) });
    const longer = await call('PUT', `/v1/leases/${lease.id}`, { body: { end_date: blazarIn(300) } });
    expect(longer.status, longer.text).toBe(200);
    const end = longer.body.lease.events.find((e: any) => e.event_type === 'end_lease');
    const be = longer.body.lease.events.find((e: any) => e.event_type === 'before_end_lease');
    expect(end.time).toBe(longer.body.lease.end_date);
    expect(Date.parse(`${end.time.slice(0, 23)}Z`) - Date.parse(`${be.time.slice(0, 23)}Z`)).toBe(3_600_000);
    const alloc = await call('GET', `/v1/os-hosts/${hosts[0]!.id}/allocation`);
    expect(alloc.body.allocation.reservations[0].end_date).toBe(longer.body.lease.end_date);
    const shorter = await call('PUT', `/v1/leases/${lease.id}`, { body: { end_date: blazarIn(120) } });
    expect(shorter.status).toBe(200);
    expect(shorter.body.lease.end_date.slice(0, 16).replace('T', ' ')).toBe(blazarIn(120));
  });

  it('refuses a prolongation into another lease with 409 and leaves the lease untouched', async () => {
    const { lease, filter } = await oneLease({ start: blazarIn(60), end: blazarIn(120) });
    const next = await call('POST', '/v1/leases', { body: leaseBody(filter, { start: blazarIn(180), end: blazarIn(240) }) });
    expect(next.status).toBe(201);
    const res = await call('PUT', `/v1/leases/${lease.id}`, { body: { end_date: blazarIn(200) } });
    expect(res.status).toBe(409);
    expect(res.body.error_name).toBe('NOT_ENOUGH_HOSTS_AVAILABLE');
    expect((await call('GET', `/v1/leases/${lease.id}`)).body.lease).toEqual(lease);
  });

  it('moves a pending reservation to another host when its new dates need it', async () => {
    const pool = await hostPool(2);
    const make = async (start: number, end: number) => {
      const res = await call('POST', '/v1/leases', { body: leaseBody(pool.filter, { start: blazarIn(start), end: blazarIn(end) }) });
      expect(res.status, res.text).toBe(201);
      return res.body.lease;
    };
    const nodeOf = async (id: string) => (await call('GET', `/v1.1/admin/leases/${id}`)).body.lease.reservations[0].nodes[0];
    const first = await make(60, 120);
    const second = await make(60, 120);
    const b = await make(180, 240); // both hosts are used in [60, 120]: b lands on one of them
    const nodeB = await nodeOf(b.id);
    const [x, other] = (await nodeOf(first.id)) === nodeB ? [first, second] : [second, first];
    expect(await nodeOf(x.id)).toBe(nodeB);
    expect((await call('DELETE', `/v1/leases/${other.id}`)).status).toBe(204);
    // Stretching x over b's period forces x onto the other, now free, host.
    const res = await call('PUT', `/v1/leases/${x.id}`, { body: { end_date: blazarIn(200) } });
    expect(res.status, res.text).toBe(200);
    expect(await nodeOf(x.id)).not.toBe(nodeB);
  });

  it('changes min/max and properties of a reservation', async () => {
    const { lease, filter } = await oneLease({}, 3);
    const rid = lease.reservations[0].id;
    const grown = await call('PUT', `/v1/leases/${lease.id}`, { body: { reservations: [{ id: rid, min: 3, max: 3 }] } });
    expect(grown.status, grown.text).toBe(200);
    expect(grown.body.lease.reservations[0]).toMatchObject({ min: 3, max: 3 });
    expect((await call('GET', `/v1.1/admin/leases/${lease.id}`)).body.lease.reservations[0].nodes).toHaveLength(3);
    const shrunk = await call('PUT', `/v1/leases/${lease.id}`, { body: { reservations: [{ id: rid, min: 1, max: 1, resource_properties: filter }] } });
    expect(shrunk.status).toBe(200);
    expect((await call('GET', `/v1.1/admin/leases/${lease.id}`)).body.lease.reservations[0].nodes).toHaveLength(1);
    const tooMany = await call('PUT', `/v1/leases/${lease.id}`, { body: { reservations: [{ id: rid, min: 4, max: 4 }] } });
    expect(tooMany.status).toBe(409);
  });

  it.each([
    [{ reservations: [{ min: 1 }] }, 400, 'Missing parameter reservation ID'],
    [{ reservations: [{ id: 'not-mine', min: 1 }] }, 400, 'Please enter valid reservation IDs'],
    [{ end_date: '2020-01-01 00:00' }, 400, 'End date must be later than current and start date'],
    [{ start_date: '2020-01-01 00:00' }, 400, 'Start date must be later than current date'],
    [{ before_end_date: '2000-01-01 00:00' }, 400, 'out of lease limits'],
    [{ end_date: 'tomorrow' }, 400, 'invalid date'],
    [{ colour: 'red' }, 400, 'Unrecognized key: "colour"'],
  ])('rejects update %j', async (body, status, message) => {
    const { lease } = await oneLease();
    const res = await call('PUT', `/v1/leases/${lease.id}`, { body });
    expect(res.status, res.text).toBe(status);
    expect(res.body.error_message).toContain(message);
    expect((await call('GET', `/v1/leases/${lease.id}`)).body.lease).toEqual(lease);
  });

  it('refuses to change the resource type (409) and the start of a started lease (400)', async () => {
    const { lease } = await oneLease({ start: 'now', end: blazarIn(60) });
    // While its start event runs, any update is a 409 (lease STARTING): wait until it ran.
    await untilStatus(lease.id, 'ACTIVE');
    const rid = lease.reservations[0].id;
    const type = await call('PUT', `/v1/leases/${lease.id}`, { body: { reservations: [{ id: rid, resource_type: 'virtual:instance' }] } });
    expect(type.status).toBe(409);
    const start = await call('PUT', `/v1/leases/${lease.id}`, { body: { start_date: blazarIn(30) } });
    expect(start.status).toBe(400);
    expect(start.body.error_message).toBe('Cannot modify the start date of already started leases');
  });

  it('answers 404 for an unknown lease', async () => {
    const res = await call('PUT', '/v1/leases/6f1c0b5e-0000-4000-8000-000000000000', { body: { name: 'x' } });
    expect(res.status).toBe(404);
    expect(res.body.error_message).toBe("Object with {'lease_id': '6f1c0b5e-0000-4000-8000-000000000000'} not found");
  });
});

describe('Blazar leases: delete', () => {
  it('deletes the lease and frees its hosts', async () => {
    const { filter, hosts } = await hostPool(1);
    const lease = (await call('POST', '/v1/leases', { body: leaseBody(filter) })).body.lease;
    expect((await call('POST', '/v1/leases', { body: leaseBody(filter) })).status).toBe(409);
    const del = await call('DELETE', `/v1/leases/${lease.id}`);
    expect(del.status).toBe(204);
    expect(del.text).toBe('');
    expect((await call('GET', `/v1/leases/${lease.id}`)).status).toBe(404);
    expect((await call('GET', `/v1/os-hosts/${hosts[0]!.id}/allocation`)).body.allocation.reservations).toEqual([]);
    expect((await call('POST', '/v1/leases', { body: leaseBody(filter) })).status).toBe(201);
  });

  it('supports several reservations in one lease without giving one host twice', async () => {
    const { filter } = await hostPool(2);
    const body = { ...leaseBody(filter), reservations: [hostReservation(filter, 1), hostReservation(filter, 1)] };
    const res = await call('POST', '/v1/leases', { body });
    expect(res.status, res.text).toBe(201);
    const lease = (await call('GET', `/v1.1/admin/leases/${res.body.lease.id}`)).body.lease;
    const nodes = lease.reservations.flatMap((r: any) => r.nodes);
    expect(new Set(nodes).size).toBe(2);
  });
});

describe('Blazar leases: hostile input and operator limits (default settings)', () => {
  const deepFilter = (levels: number) => `${'["and", '.repeat(levels - 1)}["==", "$gpu", "a100"]${']'.repeat(levels - 1)}`;
  const leasesOf = async (token: string) => (await call('GET', '/v1/leases', { token })).body.leases as any[];

  it('refuses filters nested 1,500 and 2,000 levels deep with 400, storing nothing', async () => {
    const { filter } = await hostPool(1);
    const { token } = await tokenFor('member');
    for (const levels of [1500, 2000]) {
      for (const raw of [deepFilter(levels), `${'['.repeat(levels)}${']'.repeat(levels)}`]) {
        for (const field of ['resource_properties', 'hypervisor_properties']) {
          const body = leaseBody(filter);
          (body.reservations[0] as Record<string, unknown>)[field] = raw;
          const res = await call('POST', '/v1/leases', { token, body });
          expect(res.status, `${field} ${levels}`).toBe(400);
          expect(res.body).toMatchObject({ error_code: 400, error_name: 'MALFORMED_REQUIREMENTS' });
          expect(res.body.error_message).toMatch(/nested deeper than 8 levels|longer than 16384 bytes/);
          expect(res.body.error_message.length).toBeLessThan(600);
        }
      }
    }
    expect(await leasesOf(token)).toEqual([]);
  });

  it('refuses a deep filter on update too, and leaves the lease as it was', async () => {
    const { filter } = await hostPool(1);
    const lease = (await call('POST', '/v1/leases', { body: leaseBody(filter) })).body.lease;
    const res = await call('PUT', `/v1/leases/${lease.id}`, { body: { reservations: [{ id: lease.reservations[0].id, resource_properties: deepFilter(2000) }] } });
    expect(res.status).toBe(400);
    expect(res.body.error_name).toBe('MALFORMED_REQUIREMENTS');
    expect((await call('GET', `/v1/leases/${lease.id}`)).body.lease).toEqual(lease);
  });

  it('refuses lease names with control characters', async () => {
    const { token } = await tokenFor('member');
    for (const name of ['a\u0000b', 'tab\there', 'line\nbreak']) {
      const res = await call('POST', '/v1/leases', { token, body: leaseBody('["==", "$pool", "none"]', { name }) });
      expect(res.status).toBe(400);
      expect(res.body.error_message).toContain('name must not contain control characters');
    }
    expect(await leasesOf(token)).toEqual([]);
  });

  it('refuses a lease ending 9999-12-31 23:59 with upstream\'s max_lease_duration message (403), and dates past year 9999 (400)', async () => {
    const { filter } = await hostPool(1);
    const { token } = await tokenFor('member');
    const start = blazarIn(60);
    const res = await call('POST', '/v1/leases', { token, body: leaseBody(filter, { start, end: '9999-12-31 23:59' }) });
    expect(res.status, res.text).toBe(403);
    const seconds = Math.trunc((Date.parse('9999-12-31T23:59:00Z') - Date.parse(`${start.replace(' ', 'T')}:00Z`)) / 1000);
    expect(res.body).toEqual({
      error_code: 403,
      error_name: 'MAX_LEASE_DURATION_EXCEEDED',
      error_message: `Lease duration of ${seconds} seconds must be less than or equal to the maximum lease duration of 604800 seconds.`,
    });
    for (const end of ['10000-01-01 00:00', '9999-13-01 00:00', '99999-12-31 23:59']) {
      const bad = await call('POST', '/v1/leases', { token, body: leaseBody(filter, { start, end }) });
      expect(bad.status, end).toBe(400);
      expect(bad.body.error_message).toContain('invalid date');
    }
    // A week exactly is fine.
    const week = await call('POST', '/v1/leases', { token, body: leaseBody(filter, { start, end: blazarIn(60 + 7 * 24 * 60) }) });
    expect(week.status, week.text).toBe(201);
    expect((await leasesOf(token)).map((l) => l.id)).toEqual([week.body.lease.id]);
  });

  it('refuses prolonging a lease past the limit with 400 and the same message, leaving it as it was; shortening is fine', async () => {
    const { filter } = await hostPool(1);
    const { token } = await tokenFor('member');
    const lease = (await call('POST', '/v1/leases', { token, body: leaseBody(filter, { start: blazarIn(60), end: blazarIn(120) }) })).body.lease;
    const res = await call('PUT', `/v1/leases/${lease.id}`, { token, body: { end_date: blazarIn(60 + 8 * 24 * 60) } });
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ error_code: 400, error_name: 'MAX_LEASE_DURATION_EXCEEDED' });
    expect(res.body.error_message).toBe(`Lease duration of ${8 * 24 * 3600} seconds must be less than or equal to the maximum lease duration of 604800 seconds.`);
    expect((await call('GET', `/v1/leases/${lease.id}`, { token })).body.lease).toEqual(lease);
    expect((await call('PUT', `/v1/leases/${lease.id}`, { token, body: { end_date: blazarIn(90) } })).status).toBe(200);
  });

  it('answers 404 for lease ids no lease can have, 400 for ids or markers no path or query may hold', async () => {
    const { token, project } = await tokenFor('member');
    const long = 'x'.repeat(200);
    const res = await call('GET', `/v1/leases/${long}`, { token });
    expect(res.status).toBe(404);
    expect(res.body.error_message.length).toBeLessThan(200);
    expect((await call('GET', `/v1/leases/${'x'.repeat(3000)}`, { token })).status).toBe(400);
    expect((await call('GET', `/v1.1/${project}/leases?marker=${'m'.repeat(3000)}`, { token })).status).toBe(400);
    const marker = await call('GET', `/v1.1/${project}/leases?marker=${'m'.repeat(600)}`, { token });
    expect(marker.status).toBe(404);
  });
});
