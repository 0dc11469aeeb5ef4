import { describe, expect, it } from 'vitest';
import { call, tokenFor, unique } from '../support/api.ts';
import { blazarIn, hostPool, leaseBody } from '../support/fixtures.ts';

/**
 * Issue 16: point lookups. Lease names are not unique (upstream dropped that constraint), so
 * the name index is a lookup: `GET /v1/leases?name=` answers from it, within the caller's
 * projects, and follows renames, including under concurrent creates of one name.
 */
const V = { 'X-OpenStack-Ironic-API-Version': '1.78' };

describe('lease lookup by name', () => {
  it('finds every lease of a name, only those the caller may see, and follows renames', async () => {
    const { filter } = await hostPool(12);
    const name = unique('named');
    const member = await tokenFor('member');
    // Twelve creates of one name at once: names are not unique, each is found.
    const made = await Promise.all(
      Array.from({ length: 12 }, (_, i) => call('POST', '/v1/leases', { body: leaseBody(filter, { name, start: blazarIn(7000 + 70 * i), end: blazarIn(7060 + 70 * i) }) })),
    );
    for (const r of made) expect(r.status, r.text).toBe(201);
    const ids = made.map((r) => r.body.lease.id).sort();
    const found = await call('GET', `/v1/leases?name=${encodeURIComponent(name)}`);
    expect(found.status).toBe(200);
    expect(found.body.leases.map((l: any) => l.id).sort()).toEqual(ids);
    expect(found.body.leases[0].reservations).toHaveLength(1);

    // Another project sees none of them.
    const theirs = await call('GET', `/v1/leases?name=${encodeURIComponent(name)}`, { token: member.token });
    expect(theirs.status).toBe(200);
    expect(theirs.body.leases).toEqual([]);

    // A rename moves the lease from one name to the other.
    const renamed = unique('renamed');
    expect((await call('PUT', `/v1/leases/${ids[0]}`, { body: { name: renamed } })).status).toBe(200);
    expect((await call('GET', `/v1/leases?name=${encodeURIComponent(renamed)}`)).body.leases.map((l: any) => l.id)).toEqual([ids[0]]);
    expect((await call('GET', `/v1/leases?name=${encodeURIComponent(name)}`)).body.leases).toHaveLength(11);

    // A deleted lease is gone from its name.
    expect((await call('DELETE', `/v1/leases/${ids[1]}`)).status).toBe(204);
    expect((await call('GET', `/v1/leases?name=${encodeURIComponent(name)}`)).body.leases).toHaveLength(10);
  }, 60_000);
});

describe('nodes by address and lists by index', () => {
  it('lists hosts from the host pool: enrolled nodes only, every one of them', async () => {
    const { hosts } = await hostPool(3);
    const res = await call('GET', '/v1/os-hosts');
    expect(res.status).toBe(200);
    const names = new Set(res.body.hosts.map((h: any) => h.hypervisor_hostname));
    for (const h of hosts) expect(names.has(h.name)).toBe(true);
    // An Ironic node that is not a Blazar host is not a host.
    const bare = unique('bare');
    expect((await call('POST', '/v1/nodes', { headers: V, body: { name: bare, driver: 'ipmi', driver_info: { ipmi_address: '10.9.0.2', ipmi_username: 'u', ipmi_password: 'p' } } })).status).toBe(201);
    const again = await call('GET', '/v1/os-hosts');
    expect(again.body.hosts.some((h: any) => h.hypervisor_hostname === bare)).toBe(false);
  });

  it('pages the Blazar host and lease lists when asked (?limit, ?marker), whole lists otherwise', async () => {
    await hostPool(3);
    const first = await call('GET', '/v1/os-hosts?limit=2');
    expect(first.status, first.text).toBe(200);
    expect(first.body.hosts).toHaveLength(2);
    const second = await call('GET', `/v1/os-hosts?limit=2&marker=${first.body.hosts[1].id}`);
    expect(second.body.hosts).toHaveLength(2);
    const whole = (await call('GET', '/v1/os-hosts')).body.hosts.map((h: any) => h.id);
    expect([...first.body.hosts, ...second.body.hosts].map((h: any) => h.id)).toEqual(whole.slice(0, 4));
    expect((await call('GET', '/v1/os-hosts?limit=0')).status).toBe(400);

    const leases = await call('GET', '/v1/leases?limit=2');
    expect(leases.status, leases.text).toBe(200);
    // (the name test above made ten leases that still exist)
    expect(leases.body.leases).toHaveLength(2);
    const next = await call('GET', `/v1/leases?limit=2&marker=${leases.body.leases[1].id}`);
    expect(next.body.leases).toHaveLength(2);
    expect(next.body.leases.every((l: any) => l.id > leases.body.leases[1].id)).toBe(true);
  });

  it('filters the Ironic node list by provision state and driver from their indexes, pages with markers', async () => {
    const names = Array.from({ length: 5 }, () => unique('ps'));
    for (const name of names) {
      const res = await call('POST', '/v1/nodes', { headers: V, body: { name, driver: 'redfish', driver_info: { redfish_address: 'https://10.9.0.1', redfish_username: 'u' } } });
      expect(res.status, res.text).toBe(201);
      // created_at has millisecond resolution: keep the enrolment order unambiguous.
      await new Promise((r) => setTimeout(r, 3));
    }
    // Every page of two, walked by `next` markers, in creation order, with no repeat.
    const seen: string[] = [];
    let path = '/v1/nodes?driver=redfish&provision_state=enroll&limit=2';
    for (let i = 0; i < 100 && path; i++) {
      const res = await call('GET', path, { headers: V });
      expect(res.status, res.text).toBe(200);
      seen.push(...res.body.nodes.map((n: any) => n.name));
      path = res.body.next ? `${new URL(res.body.next).pathname}${new URL(res.body.next).search}` : '';
    }
    expect(new Set(seen).size).toBe(seen.length);
    const mine = seen.filter((n) => names.includes(n));
    expect(mine).toEqual(names);
  });
});
