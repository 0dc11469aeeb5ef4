import { describe, expect, it } from 'vitest';
import { call } from '../support/api.ts';
import { allNodes, assertNoOverlap, blazarIn, hostPool, leaseBody } from '../support/fixtures.ts';

/**
 * The no-double-booking invariant (DESIGN.md §6 invariant 1) under real parallel requests
 * against DynamoDB Local: the write is the check, so the stored calendars never overlap.
 */
describe('no double booking', () => {
  it('lets exactly 3 of 24 parallel one-host leases over 3 hosts succeed', async () => {
    const { filter, hosts } = await hostPool(3);
    const start = blazarIn(3000);
    const end = blazarIn(3120);
    const results = await Promise.all(
      Array.from({ length: 24 }, (_, i) => call('POST', '/v1/leases', { body: leaseBody(filter, { name: `race-${i}`, start, end }) })),
    );
    const statuses = results.map((r) => r.status);
    expect(statuses.filter((s) => s === 201)).toHaveLength(3);
    expect(statuses.filter((s) => s === 409)).toHaveLength(21);
    for (const r of results.filter((x) => x.status === 409)) expect(r.body.error_name).toBe('NOT_ENOUGH_HOSTS_AVAILABLE');

    const names = new Set(hosts.map((h) => h.name));
    const mine = (await allNodes()).filter((n) => names.has(n.name));
    expect(mine.map((n) => n.allocations.length)).toEqual([1, 1, 1]);
    const winners = new Set(results.filter((r) => r.status === 201).map((r) => r.body.lease.id));
    expect(new Set(mine.map((n) => n.allocations[0].lease_id))).toEqual(winners);
    assertNoOverlap(mine);
  });

  it('keeps calendars free of overlaps under random parallel creates, updates and deletes', async () => {
    const { filter, hosts } = await hostPool(4);
    const names = new Set(hosts.map((h) => h.name));
    const rand = (n: number) => Math.floor(Math.random() * n);
    const window = () => {
      const s = 4000 + rand(48) * 30;
      return { start: blazarIn(s), end: blazarIn(s + 30 * (1 + rand(8))) };
    };
    const live: string[] = [];
    let created = 0;
    let conflicts = 0;
    for (let wave = 0; wave < 4; wave++) {
      const ops = Array.from({ length: 24 }, async () => {
        const roll = rand(10);
        if (roll < 5 || live.length === 0) {
          const max = 1 + rand(2);
          const res = await call('POST', '/v1/leases', { body: leaseBody(filter, { ...window(), min: 1, max }) });
          if (res.status === 201) {
            created++;
            live.push(res.body.lease.id);
          } else {
            expect(res.status, res.text).toBe(409);
            conflicts++;
          }
        } else if (roll < 8) {
          const id = live[rand(live.length)]!;
          const w = window();
          const body = rand(2) === 0 ? { end_date: w.end } : { start_date: w.start, end_date: w.end };
          const res = await call('PUT', `/v1/leases/${id}`, { body });
          // 400 when the random end falls before the lease's start; 404 when deleted meanwhile.
          expect([200, 400, 404, 409], res.text).toContain(res.status);
        } else {
          const id = live.splice(rand(live.length), 1)[0]!;
          const res = await call('DELETE', `/v1/leases/${id}`);
          expect([204, 404, 409], res.text).toContain(res.status);
        }
      });
      await Promise.all(ops);
    }
    expect(created).toBeGreaterThan(5);
    expect(conflicts).toBeGreaterThan(0);

    const mine = (await allNodes()).filter((n) => names.has(n.name));
    const allocations = assertNoOverlap(mine);
    // Calendars and leases agree: every allocation belongs to a live lease with the same window
    // and node, and every reserved node holds the allocation.
    const leases = new Map<string, any>();
    for (const n of mine) {
      for (const a of n.allocations) {
        const lease = leases.get(a.lease_id) ?? (await call('GET', `/v1.1/admin/leases/${a.lease_id}`)).body.lease;
        expect(lease, `allocation of a deleted lease ${a.lease_id}`).toBeDefined();
        leases.set(a.lease_id, lease);
        const res = lease.reservations.find((r: any) => r.id === a.reservation_id);
        expect(res.nodes).toContain(n.id);
        expect([a.start, a.end]).toEqual([lease.start_date, lease.end_date]);
      }
    }
    const held = [...leases.values()].flatMap((l) => l.reservations.flatMap((r: any) => r.nodes.map((node: string) => `${node}/${r.id}`)));
    expect(held.length).toBe(allocations);
  });
});
