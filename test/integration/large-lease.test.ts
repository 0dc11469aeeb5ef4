import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { describe, expect, inject, it } from 'vitest';
import { buildDeps } from '../../layers/aws/deps.ts';
import { reconcileCalendars } from '../../layers/core/leases/reconcile.ts';
import { call } from '../support/api.ts';
import { allNodes, assertNoOverlap, blazarIn, hostPool, leaseBody } from '../support/fixtures.ts';

/**
 * Leases larger than one DynamoDB transaction (100 actions) book in steps: holds, lease, final
 * calendars (DESIGN.md §6 invariant 1). They must behave like small ones and never overlap.
 */
describe('leases larger than one transaction', () => {
  it('books, prolongs, shrinks and deletes a 100-host lease, leaving clean calendars', async () => {
    const { filter, hosts } = await hostPool(105);
    // Every window from one instant: computed again later, a minute boundary passed in between
    // would move it (the check would then compare with another time than the one sent).
    const base = Date.now();
    const names = new Set(hosts.map((h) => h.name));
    const mine = async () => (await allNodes()).filter((n) => names.has(n.name));

    const created = await call('POST', '/v1/leases', { body: leaseBody(filter, { start: blazarIn(5000, base), end: blazarIn(5060, base), min: 100 }) });
    expect(created.status, created.text).toBe(201);
    const id = created.body.lease.id;
    let nodes = await mine();
    expect(nodes.filter((n) => n.allocations.length === 1)).toHaveLength(100);
    expect(nodes.every((n) => n.allocations.length <= 1)).toBe(true);

    const longerEnd = blazarIn(5120, base);
    const longer = await call('PUT', `/v1/leases/${id}`, { body: { end_date: longerEnd } });
    expect(longer.status, longer.text).toBe(200);
    nodes = await mine();
    const held = nodes.filter((n) => n.allocations.length > 0);
    expect(held).toHaveLength(100);
    for (const n of held) {
      // exactly one entry (no hold left behind) with the new window
      expect(n.allocations).toHaveLength(1);
      expect(n.allocations[0].end.slice(0, 16).replace('T', ' ')).toBe(longerEnd);
    }

    const shorterEnd = blazarIn(5090, base);
    const shorter = await call('PUT', `/v1/leases/${id}`, { body: { end_date: shorterEnd } });
    expect(shorter.status, shorter.text).toBe(200);
    nodes = await mine();
    expect(nodes.filter((n) => n.allocations.length === 1 && n.allocations[0].end.slice(0, 16).replace('T', ' ') === shorterEnd)).toHaveLength(100);

    // A small lease can still take the 5 free hosts in that window, and nothing more.
    expect((await call('POST', '/v1/leases', { body: leaseBody(filter, { start: blazarIn(5000, base), end: blazarIn(5060, base), min: 5 }) })).status).toBe(201);
    expect((await call('POST', '/v1/leases', { body: leaseBody(filter, { start: blazarIn(5000, base), end: blazarIn(5060, base), min: 1 }) })).status).toBe(409);
    assertNoOverlap(await mine());

    expect((await call('DELETE', `/v1/leases/${id}`)).status).toBe(204);
    nodes = await mine();
    expect(nodes.filter((n) => n.allocations.length > 0)).toHaveLength(5);
  });

  it('lets one of three parallel 101-host leases (two transaction chunks each) over 150 hosts win, without overlap', async () => {
    const { filter, hosts } = await hostPool(150);
    const names = new Set(hosts.map((h) => h.name));
    const body = () => leaseBody(filter, { start: blazarIn(6000), end: blazarIn(6060), min: 101 });
    const results = await Promise.all([call('POST', '/v1/leases', { body: body() }), call('POST', '/v1/leases', { body: body() }), call('POST', '/v1/leases', { body: body() })]);
    expect(results.map((r) => r.status).sort()).toEqual([201, 409, 409]);
    const nodes = (await allNodes()).filter((n) => names.has(n.name));
    expect(nodes.filter((n) => n.allocations.length === 1)).toHaveLength(101);
    expect(nodes.every((n) => n.allocations.length <= 1)).toBe(true);
    assertNoOverlap(nodes);
  });

  it('reconciles calendars left behind by an interrupted booking', async () => {
    const { filter, hosts } = await hostPool(2);
    const lease = (await call('POST', '/v1/leases', { body: leaseBody(filter, { start: blazarIn(7000), end: blazarIn(7060), min: 1 }) })).body.lease;
    const nodesBefore = (await allNodes()).filter((n) => hosts.some((h) => h.name === n.name));
    const booked = nodesBefore.find((n) => n.allocations.length === 1)!;
    const free = nodesBefore.find((n) => n.allocations.length === 0)!;
    const a = booked.allocations[0];

    // Simulate crashes: an entry of a deleted lease, a stale hold, and a fresh hold in progress.
    const doc = DynamoDBDocumentClient.from(new DynamoDBClient({ endpoint: inject('dynamoEndpoint'), region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'x' } }));
    const old = new Date(Date.now() - 3600_000).toISOString();
    const put = (nodeId: string, key: string, value: unknown) =>
      doc.send(new UpdateCommand({ TableName: 'slipway', Key: { PK: `NODE#${nodeId}`, SK: 'META' }, UpdateExpression: 'SET allocations.#k = :v', ExpressionAttributeNames: { '#k': key }, ExpressionAttributeValues: { ':v': value } }));
    await put(free.id, 'orphan-res', { reservation_id: 'orphan-res', lease_id: '00000000-dead-4000-8000-000000000000', project_id: 'x', start: a.start, end: a.end });
    await put(booked.id, `${a.reservation_id}#hold`, { ...a, end: new Date(Date.parse(a.end) + 3600_000).toISOString(), held_at: old });
    await put(free.id, 'fresh-res', { reservation_id: 'fresh-res', lease_id: lease.id, project_id: 'x', start: a.start, end: a.end, held_at: new Date().toISOString() });

    const deps = buildDeps({ TABLE_NAME: 'slipway', DYNAMODB_ENDPOINT: inject('dynamoEndpoint') });
    const { repaired } = await reconcileCalendars(deps);
    expect(repaired).toBeGreaterThanOrEqual(2);

    const after = (await allNodes()).filter((n) => hosts.some((h) => h.name === n.name));
    const bookedAfter = after.find((n) => n.id === booked.id)!;
    expect(bookedAfter.allocations).toEqual([
      { lease_id: lease.id, reservation_id: a.reservation_id, project_id: a.project_id, start: a.start, end: a.end, granted_at: null, released_at: null },
    ]);
    const freeAfter = after.find((n) => n.id === free.id)!;
    // The orphan is gone; the hold of a booking still in progress is left alone.
    expect(freeAfter.allocations.map((x: any) => x.reservation_id)).toEqual(['fresh-res']);
  });
});
