import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, tokenFor, unique } from '../support/api.ts';
import { blazarIn, hostPool, leaseBody } from '../support/fixtures.ts';
import { startOwnStack } from '../support/own-stack.ts';

/**
 * Operator limits on leases (Blazar's usage enforcement), over HTTP on a stack of its own with
 * limits set: a lease of at most one day (upstream's MaxLeaseDurationFilter, its message) and at
 * most 3 hosts held at once per project, each with an exempt project. Also here, because the
 * host-id sequence can only be watched where no other test file enrols hosts: a refused
 * enrolment takes no host id.
 */
const EXEMPT = 'p-exempt-ops';
let stop: (() => Promise<void>) | undefined;

beforeAll(async () => {
  ({ stop } = await startOwnStack('enforcement', {
    env: {
      SLIPWAY_MAX_LEASE_DURATION: '86400',
      SLIPWAY_MAX_LEASE_DURATION_EXEMPT_PROJECTS: EXEMPT,
      SLIPWAY_MAX_HOSTS_PER_PROJECT: '3',
      SLIPWAY_MAX_HOSTS_PER_PROJECT_EXEMPT_PROJECTS: EXEMPT,
      // Enough tries that the concurrency test below ends in 201s and 403s, never in a busy 409.
      SLIPWAY_ALLOCATION_ATTEMPTS: '40',
    },
  }));
}, 120_000);

afterAll(async () => {
  await stop?.();
});

const DAY = 24 * 60;
const durationMessage = (seconds: number) => `Lease duration of ${seconds} seconds must be less than or equal to the maximum lease duration of 86400 seconds.`;
const capMessage = (project: string, total: number, mine: number) =>
  `Project ${project} would hold ${total} hosts at once (${mine} in this lease), more than the maximum of 3 hosts per project.`;

const leaseIds = async (token: string) => ((await call('GET', '/v1/leases', { token })).body.leases as any[]).map((l) => l.id).sort();
const hostsOf = async (leaseId: string) => ((await call('GET', `/v1.1/admin/leases/${leaseId}`)).body.lease.reservations as any[]).flatMap((r) => r.nodes);

describe('MaxLeaseDurationFilter (max_lease_duration = 86400)', () => {
  it('accepts a lease of one day and refuses one minute more with upstream\'s message (403 on create), storing nothing', async () => {
    const { filter } = await hostPool(2);
    const { token } = await tokenFor('member');
    const start = blazarIn(60);
    const ok = await call('POST', '/v1/leases', { token, body: leaseBody(filter, { start, end: blazarIn(60 + DAY) }) });
    expect(ok.status, ok.text).toBe(201);
    const res = await call('POST', '/v1/leases', { token, body: leaseBody(filter, { start, end: blazarIn(61 + DAY) }) });
    expect(res.status).toBe(403);
    expect(res.body).toEqual({ error_code: 403, error_name: 'MAX_LEASE_DURATION_EXCEEDED', error_message: durationMessage(86460) });
    expect(await leaseIds(token)).toEqual([ok.body.lease.id]);
  });

  it('applies to admins too, and not to the exempt project', async () => {
    const { filter } = await hostPool(1);
    const admin = await call('POST', '/v1/leases', { body: leaseBody(filter, { start: blazarIn(60), end: blazarIn(60 + 30 * DAY) }) });
    expect(admin.status).toBe(403);
    expect(admin.body.error_message).toBe(durationMessage(30 * 86400));
    const exempt = await tokenFor('member', EXEMPT);
    const long = await call('POST', '/v1/leases', { token: exempt.token, body: leaseBody(filter, { start: blazarIn(60), end: blazarIn(60 + 30 * DAY) }) });
    expect(long.status, long.text).toBe(201);
  });

  it('refuses prolonging past the limit with 400 on update, leaving the lease as it was', async () => {
    const { filter } = await hostPool(1);
    const { token } = await tokenFor('member');
    const lease = (await call('POST', '/v1/leases', { token, body: leaseBody(filter, { start: blazarIn(60), end: blazarIn(120) }) })).body.lease;
    const res = await call('PUT', `/v1/leases/${lease.id}`, { token, body: { end_date: blazarIn(60 + 2 * DAY) } });
    expect(res.status).toBe(400);
    expect(res.body).toEqual({ error_code: 400, error_name: 'MAX_LEASE_DURATION_EXCEEDED', error_message: durationMessage(2 * 86400) });
    expect((await call('GET', `/v1/leases/${lease.id}`, { token })).body.lease).toEqual(lease);
    // Moving it later without lengthening it is fine.
    expect((await call('PUT', `/v1/leases/${lease.id}`, { token, body: { start_date: blazarIn(180), end_date: blazarIn(240) } })).status).toBe(200);
  });
});

describe('hosts held at once per project (SLIPWAY_MAX_HOSTS_PER_PROJECT = 3)', () => {
  it('counts the hosts of overlapping leases only, trims a greedy max to what is left, and refuses what goes over', async () => {
    const { filter } = await hostPool(10);
    const { token, project } = await tokenFor('member');
    const d1 = blazarIn(DAY / 2);
    const d2 = blazarIn(DAY / 2 + 600);
    const d3 = blazarIn(DAY / 2 + 1200);
    const a = await call('POST', '/v1/leases', { token, body: leaseBody(filter, { start: d1, end: d2, min: 2 }) });
    expect(a.status, a.text).toBe(201);

    const over = await call('POST', '/v1/leases', { token, body: leaseBody(filter, { start: d1, end: d2, min: 2 }) });
    expect(over.status).toBe(403);
    expect(over.body).toEqual({ error_code: 403, error_name: 'MAX_HOSTS_PER_PROJECT_EXCEEDED', error_message: capMessage(project, 4, 2) });
    expect(await leaseIds(token)).toEqual([a.body.lease.id]);

    // min 1, max 5: greedy allocation stops at the one host left.
    const greedy = await call('POST', '/v1/leases', { token, body: leaseBody(filter, { start: d1, end: d2, min: 1, max: 5 }) });
    expect(greedy.status, greedy.text).toBe(201);
    expect(await hostsOf(greedy.body.lease.id)).toHaveLength(1);

    // Back to back with both: all three hosts again.
    const next = await call('POST', '/v1/leases', { token, body: leaseBody(filter, { start: d2, end: d3, min: 3 }) });
    expect(next.status, next.text).toBe(201);

    // Updates that add hosts or widen a window are held to it (400), and change nothing.
    const before = (await call('GET', `/v1/leases/${greedy.body.lease.id}`, { token })).body.lease;
    const more = await call('PUT', `/v1/leases/${greedy.body.lease.id}`, { token, body: { reservations: [{ id: before.reservations[0].id, min: 2, max: 2 }] } });
    expect(more.status).toBe(400);
    expect(more.body).toEqual({ error_code: 400, error_name: 'MAX_HOSTS_PER_PROJECT_EXCEEDED', error_message: capMessage(project, 4, 2) });
    expect((await call('GET', `/v1/leases/${greedy.body.lease.id}`, { token })).body.lease).toEqual(before);
    const aBefore = (await call('GET', `/v1/leases/${a.body.lease.id}`, { token })).body.lease;
    const wider = await call('PUT', `/v1/leases/${a.body.lease.id}`, { token, body: { end_date: blazarIn(DAY / 2 + 660) } });
    expect(wider.status).toBe(400);
    expect(wider.body.error_message).toBe(capMessage(project, 5, 2));
    expect((await call('GET', `/v1/leases/${a.body.lease.id}`, { token })).body.lease).toEqual(aBefore);
    // Shrinking is always allowed; deleting frees the hosts for another lease.
    expect((await call('PUT', `/v1/leases/${a.body.lease.id}`, { token, body: { end_date: blazarIn(DAY / 2 + 300) } })).status).toBe(200);
    expect((await call('DELETE', `/v1/leases/${greedy.body.lease.id}`, { token })).status).toBe(204);
    const again = await call('POST', '/v1/leases', { token, body: leaseBody(filter, { start: d1, end: blazarIn(DAY / 2 + 60), min: 1 }) });
    expect(again.status, again.text).toBe(201);
  });

  it('is per project, and does not apply to the exempt project', async () => {
    const { filter } = await hostPool(8);
    const one = await tokenFor('member');
    const two = await tokenFor('member');
    const exempt = await tokenFor('member', EXEMPT);
    const window = { start: blazarIn(DAY / 2 + 2000), end: blazarIn(DAY / 2 + 2100) };
    expect((await call('POST', '/v1/leases', { token: one.token, body: leaseBody(filter, { ...window, min: 3 }) })).status).toBe(201);
    expect((await call('POST', '/v1/leases', { token: two.token, body: leaseBody(filter, { ...window, min: 3 }) })).status).toBe(201);
    const big = await call('POST', '/v1/leases', { token: exempt.token, body: leaseBody(filter, { ...window, min: 2 }) });
    expect(big.status, big.text).toBe(201);
  });

  it('holds exactly under concurrency: of 8 parallel one-host leases of a project, 3 are created and 5 refused', async () => {
    const { filter } = await hostPool(8);
    const { token, project } = await tokenFor('member');
    const window = { start: blazarIn(DAY / 2 + 3000), end: blazarIn(DAY / 2 + 3100) };
    const results = await Promise.all(Array.from({ length: 8 }, () => call('POST', '/v1/leases', { token, body: leaseBody(filter, { ...window, min: 1 }) })));
    const created = results.filter((r) => r.status === 201);
    const refused = results.filter((r) => r.status === 403);
    expect(results.map((r) => r.status).sort(), results.map((r) => r.text).join('\n')).toEqual([201, 201, 201, 403, 403, 403, 403, 403]);
    for (const r of refused) expect(r.body.error_name).toBe('MAX_HOSTS_PER_PROJECT_EXCEEDED');
    expect(refused[0]!.body.error_message).toBe(capMessage(project, 4, 1));
    const held = (await Promise.all(created.map((r) => hostsOf(r.body.lease.id)))).flat();
    expect(held).toHaveLength(3);
    expect(await leaseIds(token)).toEqual(created.map((r) => r.body.lease.id).sort());
  });
});

describe('os-hosts: a refused enrolment takes no host id', () => {
  const enrol = (body: unknown) => call('POST', '/v1/os-hosts', typeof body === 'string' ? { rawBody: body, headers: { 'Content-Type': 'application/json' } } : { body });

  it('takes the next id only for an enrolment whose body was accepted', async () => {
    const first = await enrol({ name: unique('seq') });
    expect(first.status).toBe(201);
    const n = Number(first.body.host.id);

    const refused: unknown[] = [
      { name: `${unique('seq')}\u0000` },
      { name: `../${unique('seq')}` },
      { name: 'n'.repeat(3000) },
      { name: unique('seq'), constructor: 'x' },
      `{"name": "${unique('seq')}", "__proto__": {"x": 1}}`,
      { name: unique('seq'), deep: JSON.parse(`${'{"a":'.repeat(40)}1${'}'.repeat(40)}`) },
      { name: unique('seq'), big: 'x'.repeat(70 * 1024) },
      { name: unique('seq'), vcpus: 'many' },
    ];
    for (const body of refused) expect((await enrol(body)).status, JSON.stringify(body).slice(0, 60)).toBe(400);
    const second = await enrol({ name: unique('seq') });
    expect(Number(second.body.host.id)).toBe(n + 1);

    // Eight enrolments of one name: one host; six different names at once: six distinct ids.
    const name = unique('seq-race');
    const race = await Promise.all(Array.from({ length: 8 }, () => enrol({ name })));
    expect(race.map((r) => r.status).sort()).toEqual([201, 409, 409, 409, 409, 409, 409, 409]);
    const parallel = await Promise.all(Array.from({ length: 6 }, () => enrol({ name: unique('seq-par') })));
    expect(parallel.map((r) => r.status)).toEqual(Array(6).fill(201));
    expect(new Set(parallel.map((r) => r.body.host.id)).size).toBe(6);
  });
});
