import { describe, expect, it } from 'vitest';
import type { Node } from '../../layers/core/inventory/node.ts';
import { allocationView, withAllocationView } from '../../layers/core/leases/candidates.ts';
import { capabilityIndexValue, indexableTerm, indexedCapabilities, matches, parseRequirements } from '../../layers/core/leases/filters.ts';
import { hostPlugin } from '../../layers/core/leases/host-plugin.ts';
import { NotEnoughHostsError } from '../../layers/core/errors.ts';
import type { HostScan, Ports } from '../../layers/core/ports.ts';

/** Issue 16: which filters the capability index answers, and how the allocator reads candidates. */
const digest = (s: string) => `digest(${s.length})`;

function host(i: number, overrides: Partial<Node> = {}): Node {
  return {
    id: `n-${String(i).padStart(4, '0')}`,
    name: `bm-${i}`,
    host_id: String(i),
    reservable: true,
    facts: { vcpus: 64, memory_mb: 4096 },
    extra: { gpu: i % 2 === 0 ? 'a100' : 'h100' },
    addresses: [],
    allocations: {},
    version: 1,
    created_at: '2029-12-20T10:00:00.000Z',
    updated_at: null,
    ...overrides,
  };
}

describe('the capability index', () => {
  it('indexes values so that an equality finds exactly the hosts `matches` accepts', () => {
    expect(capabilityIndexValue('4096', digest)).toBe(capabilityIndexValue(4096, digest));
    expect(capabilityIndexValue('4096.0', digest)).toBe(capabilityIndexValue(' 4096 ', digest));
    expect(capabilityIndexValue('4096', digest)).not.toBe(capabilityIndexValue('4096x', digest));
    expect(capabilityIndexValue('a100', digest)).not.toBe(capabilityIndexValue('A100', digest));
    expect(capabilityIndexValue('x'.repeat(400), digest)).toMatch(/^h:digest/);
    // the same pairs, as the filters compare them
    const n = host(0, { extra: { mem: '4096.0' } });
    expect(matches(parseRequirements('["==", "$mem", "4096"]', 'f'), n)).toBe(true);
  });

  it('lists a host under its facts and extra capabilities, never the derived columns', () => {
    const caps = indexedCapabilities(host(0, { facts: { vcpus: 8, service_name: 'x' }, extra: { gpu: 'a100', hypervisor_hostname: 'y' } }));
    expect(caps).toEqual([
      ['vcpus', 8],
      ['gpu', 'a100'],
    ]);
  });

  it('answers a top-level equality or one inside an "and", nothing else', () => {
    const term = (f: string) => indexableTerm(parseRequirements(f, 'f'));
    expect(term('["==", "$gpu", "a100"]')).toEqual({ key: 'gpu', value: 'a100' });
    expect(term('["and", [">=", "$vcpus", "8"], ["=", "$gpu", "a100"]]')).toEqual({ key: 'gpu', value: 'a100' });
    expect(term('["or", ["==", "$gpu", "a100"], ["==", "$gpu", "h100"]]')).toBeUndefined();
    expect(term('[">=", "$vcpus", "8"]')).toBeUndefined();
    expect(term('["==", "$hypervisor_hostname", "bm-1"]')).toBeUndefined();
    expect(term('["==", "$vcpus", "null"]')).toBeUndefined();
    expect(term('')).toBeUndefined();
  });
});

/** An in-memory host pool behind the NodeRepository methods the allocator uses; counts reads. */
function fakePorts(nodes: Node[]) {
  const sorted = [...nodes].sort((a, b) => a.id.localeCompare(b.id));
  const log = { pages: 0, read: 0, starts: [] as string[], fullLists: 0 };
  const repo = {
    async getMany(ids: readonly string[]) {
      return sorted.filter((n) => ids.includes(n.id));
    },
    async unindexed() {
      return [];
    },
    async list() {
      log.fullLists++;
      return sorted;
    },
    async scanHosts(q: HostScan, cursor: unknown, limit: number) {
      const at = (cursor as { wrapped: boolean; pos: number } | undefined) ?? { wrapped: false, pos: 0 };
      if (!cursor) log.starts.push(q.from);
      const pool = sorted.filter((n) => (q.capability ? matches(parseRequirements(JSON.stringify(['==', `$${q.capability.key}`, q.capability.value]), 'f'), n) : true));
      const part = pool.filter((n) => (at.wrapped ? n.id <= q.from : n.id > q.from));
      const page = part.slice(at.pos, at.pos + limit);
      log.pages++;
      log.read += page.length;
      const more = at.pos + limit < part.length;
      return { nodes: page, cursor: more ? { ...at, pos: at.pos + limit } : at.wrapped ? undefined : { wrapped: true, pos: 0 } };
    },
  };
  return { deps: { nodes: repo, config: { cleaningMinutes: 0 } } as unknown as Ports, log };
}

const params = (min: number, filter = '') => ({ min, max: min, hypervisor_properties: '', resource_properties: filter, before_end: 'default' });
const want = (min: number, filter = '') => ({
  plugin: hostPlugin,
  req: { params: params(min, filter), start: new Date('2030-01-01T00:00:00Z'), end: new Date('2030-01-01T01:00:00Z'), reservationId: 'r', current: [], active: false, config: { cleaningMinutes: 0 } as Ports['config'], attempt: 0 },
});

describe('reading candidates, not the fleet', () => {
  it('reads one page for a one-host lease in a free pool of 1,000, from a random place', async () => {
    const { deps, log } = fakePorts(Array.from({ length: 1000 }, (_, i) => host(i)));
    for (let i = 0; i < 20; i++) {
      const view = await allocationView(deps, [want(1)], false);
      expect(view.complete).toBe(false);
      expect(view.nodes.length).toBeLessThanOrEqual(9);
    }
    expect(log.pages).toBe(20);
    // twenty creates start at twenty places (random ids), so they do not all race for one host
    expect(new Set(log.starts).size).toBe(20);
  });

  it('keeps reading past busy hosts until it has `max` free ones, wrapping around the pool', async () => {
    const busy = { reservation_id: 'x', lease_id: 'l', project_id: 'p', start: '2030-01-01T00:00:00Z', end: '2030-01-02T00:00:00Z' };
    // One free host in twenty: a first page (max + 8 = 13 hosts) holds at most one.
    const nodes = Array.from({ length: 100 }, (_, i) => host(i, i % 20 !== 0 ? { allocations: { x: busy } } : {}));
    const { deps, log } = fakePorts(nodes);
    const view = await allocationView(deps, [want(5)], false);
    const free = view.nodes.filter((n) => Object.keys(n.allocations).length === 0);
    expect(free).toHaveLength(5);
    expect(log.pages).toBeGreaterThan(1);
    expect(view.nodes.length).toBeGreaterThan(13);
  });

  it('reads only the hosts of the capability when the filter requires one', async () => {
    const { deps, log } = fakePorts(Array.from({ length: 200 }, (_, i) => host(i)));
    const view = await allocationView(deps, [want(3, '["==", "$gpu", "h100"]')], false);
    expect(view.nodes.every((n) => n.extra.gpu === 'h100')).toBe(true);
    expect(log.read).toBeLessThanOrEqual(11);
  });

  it('plans once more with the whole inventory only when a partial view was too small', async () => {
    const { deps, log } = fakePorts(Array.from({ length: 50 }, (_, i) => host(i)));
    const plan = (nodes: Node[]) => hostPlugin.allocate({ ...want(3).req, nodes });
    expect(await withAllocationView(deps, [want(3)], false, plan)).toHaveLength(3);
    expect(log.fullLists).toBe(0);
    // A plan that refuses a partial view is retried on the whole inventory, once.
    let calls = 0;
    const picky = (nodes: Node[]) => {
      calls++;
      if (nodes.length < 50) throw new NotEnoughHostsError('too few');
      return ['ok'];
    };
    expect(await withAllocationView(deps, [want(3)], false, picky)).toEqual(['ok']);
    expect(calls).toBe(2);
    expect(log.fullLists).toBe(1);
  });
});
