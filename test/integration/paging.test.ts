import { describe, expect, it } from 'vitest';
import { call, tokenFor } from '../support/api.ts';
import { hostPool, leaseBody } from '../support/fixtures.ts';

/**
 * Lists served as keyset windows from the index (limit, default sort, no filter) must give
 * exactly what the in-memory Sahara paging gives for the same data (forced here with a filter
 * that every item passes).
 */
describe('keyset paging equals in-memory paging', () => {
  it('pages the leases of a project identically both ways', async () => {
    const { filter } = await hostPool(7);
    const { token, project } = await tokenFor('member');
    for (let i = 0; i < 7; i++) {
      const res = await call('POST', '/v1/leases', { token, body: leaseBody(filter, { name: `p${i}` }) });
      expect(res.status, res.text).toBe(201);
    }
    const all = (await call('GET', `/v1.1/${project}/leases`, { token })).body.leases.map((l: any) => l.id);
    expect(all).toHaveLength(7);
    expect([...all].sort()).toEqual(all);

    const walk = async (extra: string) => {
      const pages: unknown[] = [];
      let marker: string | undefined;
      for (let i = 0; i < 5; i++) {
        const res = await call('GET', `/v1.1/${project}/leases?limit=3${marker ? `&marker=${marker}` : ''}${extra}`, { token });
        expect(res.status, res.text).toBe(200);
        pages.push(res.body);
        marker = res.body.markers?.next ?? undefined;
        if (!marker) break;
      }
      return pages;
    };
    const keyset = await walk('');
    const inMemory = await walk('&status=PENDING');
    expect(keyset).toEqual(inMemory);
    expect((keyset as any[]).map((p) => p.leases.map((l: any) => l.id))).toEqual([all.slice(0, 3), all.slice(3, 6), all.slice(6)]);
    expect((keyset as any[]).map((p) => p.markers)).toEqual([
      { prev: null, next: all[2] },
      { prev: null, next: all[5] },
      { prev: all[2], next: null },
    ]);
    // A marker from another project is not found, like an unknown one.
    const other = await tokenFor('member');
    const res = await call('GET', `/v1.1/${other.project}/leases?limit=2&marker=${all[0]}`, { token: other.token });
    expect(res.status).toBe(404);
    expect(res.body.error_message).toBe(`Object with {'id': '${all[0]}'} not found`);
  });

});
