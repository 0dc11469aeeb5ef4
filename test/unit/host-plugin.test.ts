import { describe, expect, it } from 'vitest';
import { type Config, configFromEnv } from '../../layers/core/config.ts';
import { DomainError, NotEnoughHostsError, ValidationError } from '../../layers/core/errors.ts';
import type { Allocation, Node } from '../../layers/core/inventory/node.ts';
import { hostPlugin } from '../../layers/core/leases/host-plugin.ts';
import type { AllocationRequest } from '../../layers/core/leases/plugin.ts';

const BASE = { min: 1, max: 2, hypervisor_properties: '', resource_properties: '' };

function failure(fn: () => unknown): DomainError {
  try {
    fn();
  } catch (err) {
    return err as DomainError;
  }
  throw new Error('expected an error');
}

describe('hostPlugin.validateCreate', () => {
  it('returns the stored form with before_end defaulting to "default"', () => {
    expect(hostPlugin.validateCreate({ ...BASE })).toEqual({
      min: 1,
      max: 2,
      hypervisor_properties: '',
      resource_properties: '',
      before_end: 'default',
    });
  });

  it('accepts integer-like strings for min and max', () => {
    expect(hostPlugin.validateCreate({ ...BASE, min: '2', max: ' 4 ' })).toMatchObject({ min: 2, max: 4 });
  });

  it('accepts min equal to max', () => {
    expect(hostPlugin.validateCreate({ ...BASE, min: 3, max: 3 })).toMatchObject({ min: 3, max: 3 });
  });

  for (const name of ['min', 'max'] as const) {
    it(`rejects a missing ${name} with "Missing parameter ${name}"`, () => {
      const raw: Record<string, unknown> = { ...BASE };
      delete raw[name];
      const err = failure(() => hostPlugin.validateCreate(raw));
      expect(err).toBeInstanceOf(ValidationError);
      expect(err.statusCode).toBe(400);
      expect(err.message).toBe(`Missing parameter ${name}`);
    });

    for (const bad of ['two', '1.5', 1.5, '', '2x']) {
      it(`rejects ${name}=${JSON.stringify(bad)} with "Malformed parameter ${name}"`, () => {
        const err = failure(() => hostPlugin.validateCreate({ ...BASE, min: 1, max: 2, [name]: bad }));
        expect(err).toBeInstanceOf(ValidationError);
        expect(err.message).toBe(`Malformed parameter ${name}`);
      });
    }
  }

  for (const [min, max] of [
    [0, 2],
    [-1, 2],
    [0, 0],
    [1, 0],
    ['0', '3'],
  ] as const) {
    it(`rejects min=${min}, max=${max} as below 1`, () => {
      const err = failure(() => hostPlugin.validateCreate({ ...BASE, min, max }));
      expect(err).toBeInstanceOf(ValidationError);
      expect(err.statusCode).toBe(400);
      expect(err.message).toBe('Malformed parameter min and max (must be greater than or equal to 1)');
    });
  }

  it('rejects max below min as an invalid range', () => {
    const err = failure(() => hostPlugin.validateCreate({ ...BASE, min: 3, max: 2 }));
    expect(err).toBeInstanceOf(ValidationError);
    expect(err.statusCode).toBe(400);
    expect(err.errorName).toBe('INVALID_RANGE');
    expect(err.message).toMatch(/^Invalid values for min\/max of hosts/);
  });

  for (const key of ['hypervisor_properties', 'resource_properties']) {
    it(`rejects a reservation without the ${key} key`, () => {
      const raw: Record<string, unknown> = { ...BASE };
      delete raw[key];
      const err = failure(() => hostPlugin.validateCreate(raw));
      expect(err).toBeInstanceOf(ValidationError);
      expect(err.statusCode).toBe(400);
      expect(err.message).toContain(key);
    });

    it(`rejects ${key}=null`, () => {
      const err = failure(() => hostPlugin.validateCreate({ ...BASE, [key]: null }));
      expect(err).toBeInstanceOf(ValidationError);
      expect(err.message).toContain(key);
    });
  }

  it('accepts "" for both property filters', () => {
    expect(hostPlugin.validateCreate({ ...BASE, hypervisor_properties: '', resource_properties: '' })).toMatchObject({
      hypervisor_properties: '',
      resource_properties: '',
    });
  });

  it('stores a filter given as a list as its JSON string', () => {
    const out = hostPlugin.validateCreate({ ...BASE, resource_properties: ['==', '$gpu', 'a100'] });
    expect(JSON.parse(out.resource_properties as string)).toEqual(['==', '$gpu', 'a100']);
  });

  it('keeps a filter given as a JSON string verbatim', () => {
    const filter = '[">=", "$memory_mb", "65536"]';
    expect(hostPlugin.validateCreate({ ...BASE, hypervisor_properties: filter }).hypervisor_properties).toBe(filter);
  });

  for (const [before_end, stored] of [
    ['', 'default'],
    ['default', 'default'],
    ['snapshot', 'snapshot'],
  ]) {
    it(`accepts before_end=${JSON.stringify(before_end)} and stores ${stored}`, () => {
      expect(hostPlugin.validateCreate({ ...BASE, before_end }).before_end).toBe(stored);
    });
  }

  for (const before_end of ['migration', 'notification', 'SNAPSHOT', 5, null]) {
    it(`rejects before_end=${JSON.stringify(before_end)} with "Malformed parameter before_end"`, () => {
      const err = failure(() => hostPlugin.validateCreate({ ...BASE, before_end }));
      expect(err).toBeInstanceOf(ValidationError);
      expect(err.message).toBe('Malformed parameter before_end');
    });
  }

  for (const key of ['hypervisor_properties', 'resource_properties']) {
    for (const bad of ['["==", "gpu", "a100"]', '["~", "$gpu", "a100"]', '[">=", "$vcpus"', '{"gpu": "a100"}']) {
      it(`rejects malformed ${key} ${bad} with MALFORMED_REQUIREMENTS`, () => {
        const err = failure(() => hostPlugin.validateCreate({ ...BASE, [key]: bad }));
        expect(err).toBeInstanceOf(ValidationError);
        expect(err.statusCode).toBe(400);
        expect(err.errorName).toBe('MALFORMED_REQUIREMENTS');
        expect(err.message).toMatch(/^Malformed requirements/);
      });
    }
  }

  it('checks min/max before the property filters', () => {
    expect(failure(() => hostPlugin.validateCreate({ ...BASE, min: 0, resource_properties: 'nope' })).message).toBe(
      'Malformed parameter min and max (must be greater than or equal to 1)',
    );
  });
});

describe('hostPlugin.validateUpdate', () => {
  const current = hostPlugin.validateCreate({ min: 2, max: 4, hypervisor_properties: '', resource_properties: '["==", "$gpu", "a100"]', before_end: 'snapshot' });

  it('merges the changed parameters over the current ones', () => {
    expect(hostPlugin.validateUpdate(current, { max: 6 })).toEqual({ ...current, max: 6 });
  });

  it('rejects an update that puts max below the current min', () => {
    expect(failure(() => hostPlugin.validateUpdate(current, { max: 1 })).errorName).toBe('INVALID_RANGE');
  });

  it('rejects an update with a malformed filter', () => {
    expect(failure(() => hostPlugin.validateUpdate(current, { resource_properties: '["=="]' })).errorName).toBe('MALFORMED_REQUIREMENTS');
  });
});

describe('hostPlugin.referencedProperties', () => {
  it('lists the keys both filters use', () => {
    const keys = hostPlugin.referencedProperties({
      hypervisor_properties: '[">=", "$memory_mb", "4096"]',
      resource_properties: '["and", ["==", "$gpu", "a100"], ["==", "$rack", "r1"]]',
    });
    expect([...keys].sort()).toEqual(['gpu', 'memory_mb', 'rack']);
  });

  it('pins nothing for a stored filter that no longer parses (stored before the bounds), instead of failing', () => {
    const deep = `${'["and", '.repeat(1500)}["==", "$gpu", "a100"]${']'.repeat(1500)}`;
    expect(hostPlugin.referencedProperties({ hypervisor_properties: '[">=", "$vcpus", "8"]', resource_properties: deep })).toEqual(['vcpus']);
  });
});

describe('hostPlugin.validateCreate: filter bounds', () => {
  it('refuses a filter nested 2,000 levels deep with MALFORMED_REQUIREMENTS (400), not a stack overflow', () => {
    const deep = `${'['.repeat(2000)}${']'.repeat(2000)}`;
    const err = failure(() => hostPlugin.validateCreate({ resource_type: 'physical:host', ...BASE, resource_properties: deep }));
    expect(err).toBeInstanceOf(ValidationError);
    expect(err.errorName).toBe('MALFORMED_REQUIREMENTS');
    expect(err.message).toMatch(/nested deeper than 8 levels/);
  });

  it('refuses a $__proto__ key in either filter', () => {
    for (const key of ['hypervisor_properties', 'resource_properties']) {
      const err = failure(() => hostPlugin.validateCreate({ resource_type: 'physical:host', ...BASE, [key]: '["==", "$__proto__", "x"]' }));
      expect(err.errorName, key).toBe('MALFORMED_REQUIREMENTS');
      expect(err.message).toMatch(/reserved/);
    }
  });
});

// ---------------------------------------------------------------------------------------------

const CONFIG: Config = configFromEnv({});
const START = new Date('2030-01-06T09:00:00.000Z');
const END = new Date('2030-01-10T17:00:00.000Z');
const iso = (d: Date) => d.toISOString();
const minutes = (d: Date, m: number) => new Date(d.getTime() + m * 60_000);

function alloc(reservation_id: string, start: Date, end: Date): Allocation {
  return { reservation_id, lease_id: `lease-${reservation_id}`, project_id: 'p-other', start: iso(start), end: iso(end) };
}

let counter = 0;
function node(name: string, opts: { allocations?: Allocation[]; extra?: Record<string, string>; reservable?: boolean; enrolled?: boolean } = {}): Node {
  counter++;
  const n: Node = {
    id: `node-${name}`,
    name,
    reservable: opts.reservable ?? true,
    facts: { vcpus: 64, memory_mb: 262144 },
    extra: opts.extra ?? {},
    addresses: [],
    allocations: Object.fromEntries((opts.allocations ?? []).map((a) => [a.reservation_id, a])),
    version: 1,
    created_at: '2029-01-01T00:00:00.000Z',
    updated_at: null,
  };
  if (opts.enrolled ?? true) n.host_id = String(counter);
  return n;
}

/** A past allocation: the node has been used but is free in [START, END]. */
const past = (id = 'r-past') => alloc(id, new Date('2029-06-01T00:00:00Z'), new Date('2029-06-02T00:00:00Z'));
/** An allocation overlapping [START, END]. */
const busy = (id = 'r-busy') => alloc(id, minutes(START, 60), minutes(START, 120));

function request(over: Partial<AllocationRequest> & { min?: number; max?: number; resource_properties?: string; hypervisor_properties?: string }): AllocationRequest {
  const { min = 1, max = 1, resource_properties = '', hypervisor_properties = '', ...rest } = over;
  return {
    params: { min, max, hypervisor_properties, resource_properties, before_end: 'default' },
    start: START,
    end: END,
    nodes: [],
    reservationId: 'r-new',
    current: [],
    active: false,
    config: CONFIG,
    attempt: 0,
    ...rest,
  };
}

function allocFailure(req: AllocationRequest): DomainError {
  return failure(() => hostPlugin.allocate(req));
}

describe('hostPlugin.allocate: create', () => {
  it('takes up to max hosts greedily, not just min', () => {
    const nodes = ['a', 'b', 'c', 'd', 'e'].map((n) => node(n));
    const got = hostPlugin.allocate(request({ nodes, min: 1, max: 3 }));
    expect(got).toHaveLength(3);
    expect(new Set(got).size).toBe(3);
  });

  it('takes all free hosts when there are fewer than max but at least min', () => {
    const nodes = [node('a'), node('b')];
    expect(hostPlugin.allocate(request({ nodes, min: 1, max: 4 })).sort()).toEqual(['node-a', 'node-b']);
  });

  it('fails with 409 NOT_ENOUGH_HOSTS_AVAILABLE when fewer than min hosts are free', () => {
    const err = allocFailure(request({ nodes: [node('a'), node('b')], min: 3, max: 3 }));
    expect(err).toBeInstanceOf(NotEnoughHostsError);
    expect(err.statusCode).toBe(409);
    expect(err.errorName).toBe('NOT_ENOUGH_HOSTS_AVAILABLE');
  });

  it('fails when there are no nodes at all', () => {
    expect(allocFailure(request({ nodes: [], min: 1, max: 1 }))).toBeInstanceOf(NotEnoughHostsError);
  });

  it('prefers never-allocated hosts over used-but-free ones', () => {
    // "a" sorts first by name but has been used before.
    const nodes = [node('a', { allocations: [past()] }), node('b')];
    expect(hostPlugin.allocate(request({ nodes, min: 1, max: 1 }))).toEqual(['node-b']);
  });

  it('takes only never-allocated hosts when they alone reach min, even below max (upstream step 3)', () => {
    const nodes = [node('a', { allocations: [past()] }), node('b')];
    expect(hostPlugin.allocate(request({ nodes, min: 1, max: 2 }))).toEqual(['node-b']);
  });

  it('adds used-but-free hosts when never-allocated ones do not reach min', () => {
    const nodes = [node('a', { allocations: [past()] }), node('b'), node('c', { allocations: [past('r-past-2')] })];
    expect(hostPlugin.allocate(request({ nodes, min: 2, max: 3 })).sort()).toEqual(['node-a', 'node-b', 'node-c']);
    // with room for fewer than all, used-but-free hosts come first (upstream: "free first")
    const two = hostPlugin.allocate(request({ nodes, min: 2, max: 2 }));
    expect(two.sort()).toEqual(['node-a', 'node-c']);
  });

  it('never chooses a host busy in the window', () => {
    const nodes = [node('a', { allocations: [busy()] }), node('b')];
    expect(hostPlugin.allocate(request({ nodes, min: 1, max: 2 }))).toEqual(['node-b']);
    expect(allocFailure(request({ nodes, min: 2, max: 2 }))).toBeInstanceOf(NotEnoughHostsError);
  });

  it('treats an allocation covering the whole window, or inside it, as busy', () => {
    const around = node('a', { allocations: [alloc('r1', minutes(START, -600), minutes(END, 600))] });
    const inside = node('b', { allocations: [alloc('r2', minutes(START, 1), minutes(END, -1))] });
    expect(allocFailure(request({ nodes: [around, inside], min: 1, max: 2 }))).toBeInstanceOf(NotEnoughHostsError);
  });

  it('allows back-to-back reservations (end == next start) with cleaning time 0', () => {
    expect(CONFIG.cleaningMinutes).toBe(0);
    const before = node('a', { allocations: [alloc('r-before', minutes(START, -600), START)] });
    const after = node('b', { allocations: [alloc('r-after', END, minutes(END, 600))] });
    expect(hostPlugin.allocate(request({ nodes: [before, after], min: 2, max: 2 })).sort()).toEqual(['node-a', 'node-b']);
  });

  it('keeps the cleaning gap free on both sides of the window', () => {
    const config: Config = { ...CONFIG, cleaningMinutes: 30 };
    // ends 20 minutes before start, starts 20 minutes after end: both inside the 30-minute gap
    const before = node('a', { allocations: [alloc('r-before', minutes(START, -600), minutes(START, -20))] });
    const after = node('b', { allocations: [alloc('r-after', minutes(END, 20), minutes(END, 600))] });
    // exactly 30 minutes away: outside the gap
    const edge = node('c', { allocations: [alloc('r-edge', minutes(START, -600), minutes(START, -30))] });
    expect(hostPlugin.allocate(request({ nodes: [before, after, edge], min: 1, max: 3, config }))).toEqual(['node-c']);
    // back-to-back is busy once there is a cleaning gap
    const b2b = node('d', { allocations: [alloc('r-b2b', minutes(START, -600), START)] });
    expect(allocFailure(request({ nodes: [b2b], min: 1, max: 1, config }))).toBeInstanceOf(NotEnoughHostsError);
    // ...and all of them are free without it
    expect(hostPlugin.allocate(request({ nodes: [before, after, edge, b2b], min: 4, max: 4 }))).toHaveLength(4);
  });

  it('reads the cleaning gap from SLIPWAY_CLEANING_MINUTES', () => {
    const config = configFromEnv({ SLIPWAY_CLEANING_MINUTES: '60' });
    const before = node('a', { allocations: [alloc('r-before', minutes(START, -600), minutes(START, -59))] });
    expect(allocFailure(request({ nodes: [before], min: 1, max: 1, config }))).toBeInstanceOf(NotEnoughHostsError);
  });

  it('never chooses non-reservable or unenrolled nodes', () => {
    const nodes = [node('a', { reservable: false }), node('b', { enrolled: false }), node('c')];
    expect(hostPlugin.allocate(request({ nodes, min: 1, max: 3 }))).toEqual(['node-c']);
    expect(allocFailure(request({ nodes, min: 2, max: 3 }))).toBeInstanceOf(NotEnoughHostsError);
  });

  it('chooses only hosts matching both property filters', () => {
    const nodes = [
      node('a', { extra: { gpu: 'a100' } }),
      node('b', { extra: { gpu: 'h100' } }),
      node('c'),
      node('d', { extra: { gpu: 'a100', rack: 'r1' } }),
    ];
    expect(hostPlugin.allocate(request({ nodes, min: 1, max: 4, resource_properties: '["==", "$gpu", "a100"]' })).sort()).toEqual([
      'node-a',
      'node-d',
    ]);
    expect(
      hostPlugin.allocate(
        request({ nodes, min: 1, max: 4, resource_properties: '["==", "$gpu", "a100"]', hypervisor_properties: '["==", "$hypervisor_hostname", "d"]' }),
      ),
    ).toEqual(['node-d']);
    expect(allocFailure(request({ nodes, min: 3, max: 4, resource_properties: '["==", "$gpu", "a100"]' }))).toBeInstanceOf(NotEnoughHostsError);
  });

  it('ignores the reservation\'s own allocations when checking for overlap', () => {
    const nodes = [node('a', { allocations: [alloc('r-self', START, END)] })];
    expect(hostPlugin.allocate(request({ nodes, min: 1, max: 1, reservationId: 'r-self' }))).toEqual(['node-a']);
    // ...but another reservation's identical allocation blocks it
    expect(allocFailure(request({ nodes, min: 1, max: 1, reservationId: 'r-other' }))).toBeInstanceOf(NotEnoughHostsError);
  });

  it('returns distinct hosts on a shuffled retry too', () => {
    const nodes = ['a', 'b', 'c', 'd', 'e', 'f'].map((n) => node(n));
    for (let attempt = 1; attempt < 5; attempt++) {
      const got = hostPlugin.allocate(request({ nodes, min: 2, max: 4, attempt }));
      expect(got).toHaveLength(4);
      expect(new Set(got).size).toBe(4);
    }
  });
});

describe('hostPlugin.allocate: update', () => {
  it('keeps the current hosts of an active reservation that still fit', () => {
    const nodes = [node('a', { allocations: [alloc('r1', START, END)] }), node('b', { allocations: [alloc('r1', START, END)] }), node('c')];
    const got = hostPlugin.allocate(request({ nodes, min: 2, max: 2, reservationId: 'r1', current: ['node-a', 'node-b'], active: true, end: minutes(END, 600) }));
    expect(got.sort()).toEqual(['node-a', 'node-b']);
  });

  it('refuses to extend an active reservation whose host became busy, rather than swap it', () => {
    const nodes = [
      node('a', { allocations: [alloc('r1', START, END), alloc('r-next', minutes(END, 60), minutes(END, 600))] }),
      node('b'),
      node('c'),
    ];
    const err = allocFailure(request({ nodes, min: 1, max: 1, reservationId: 'r1', current: ['node-a'], active: true, end: minutes(END, 120) }));
    expect(err).toBeInstanceOf(NotEnoughHostsError);
    expect(err.errorName).toBe('NOT_ENOUGH_HOSTS_AVAILABLE');
  });

  it('refuses to change the filters of an active reservation so that a held host no longer matches', () => {
    const nodes = [node('a', { allocations: [alloc('r1', START, END)], extra: { gpu: 'a100' } }), node('b', { extra: { gpu: 'h100' } })];
    const err = allocFailure(
      request({ nodes, min: 1, max: 1, reservationId: 'r1', current: ['node-a'], active: true, resource_properties: '["==", "$gpu", "h100"]' }),
    );
    expect(err).toBeInstanceOf(NotEnoughHostsError);
  });

  it('refuses an active reservation whose host is gone or no longer reservable', () => {
    const gone = request({ nodes: [node('b')], min: 1, max: 1, reservationId: 'r1', current: ['node-a'], active: true });
    expect(allocFailure(gone)).toBeInstanceOf(NotEnoughHostsError);
    const withdrawn = request({
      nodes: [node('a', { reservable: false, allocations: [alloc('r1', START, END)] }), node('b')],
      min: 1,
      max: 1,
      reservationId: 'r1',
      current: ['node-a'],
      active: true,
    });
    expect(allocFailure(withdrawn)).toBeInstanceOf(NotEnoughHostsError);
  });

  it('adds hosts to an active reservation whose min grew, keeping the current ones', () => {
    const nodes = [node('a', { allocations: [alloc('r1', START, END)] }), node('b'), node('c')];
    const got = hostPlugin.allocate(request({ nodes, min: 2, max: 2, reservationId: 'r1', current: ['node-a'], active: true }));
    expect(got).toHaveLength(2);
    expect(got).toContain('node-a');
  });

  it('keeps still-fitting hosts of a pending reservation and drops the busy one when min is still met', () => {
    const nodes = [
      node('a', { allocations: [alloc('r1', START, END)] }),
      node('b', { allocations: [alloc('r1', START, END), alloc('r-next', minutes(END, 60), minutes(END, 600))] }),
      node('c'),
    ];
    const got = hostPlugin.allocate(request({ nodes, min: 1, max: 2, reservationId: 'r1', current: ['node-a', 'node-b'], end: minutes(END, 120) }));
    expect(got).toEqual(['node-a']);
  });

  it('replaces a busy host of a pending reservation with a free one to reach min', () => {
    const nodes = [
      node('a', { allocations: [alloc('r1', START, END)] }),
      node('b', { allocations: [alloc('r1', START, END), alloc('r-next', minutes(END, 60), minutes(END, 600))] }),
      node('c'),
    ];
    const got = hostPlugin.allocate(request({ nodes, min: 2, max: 2, reservationId: 'r1', current: ['node-a', 'node-b'], end: minutes(END, 120) }));
    expect(got.sort()).toEqual(['node-a', 'node-c']);
  });

  it('fails a pending update when busy hosts cannot be replaced up to min', () => {
    const nodes = [
      node('a', { allocations: [alloc('r1', START, END)] }),
      node('b', { allocations: [alloc('r1', START, END), alloc('r-next', minutes(END, 60), minutes(END, 600))] }),
    ];
    const err = allocFailure(request({ nodes, min: 2, max: 2, reservationId: 'r1', current: ['node-a', 'node-b'], end: minutes(END, 120) }));
    expect(err).toBeInstanceOf(NotEnoughHostsError);
  });

  it('drops surplus hosts above a lowered max, keeping only current ones', () => {
    const nodes = ['a', 'b', 'c', 'd'].map((n) => node(n, { allocations: [alloc('r1', START, END)] }));
    const got = hostPlugin.allocate(request({ nodes, min: 1, max: 2, reservationId: 'r1', current: ['node-a', 'node-b', 'node-c'] }));
    expect(got).toHaveLength(2);
    for (const id of got) expect(['node-a', 'node-b', 'node-c']).toContain(id);
  });

  it('drops surplus hosts of an active reservation above a lowered max without failing', () => {
    const nodes = ['a', 'b', 'c'].map((n) => node(n, { allocations: [alloc('r1', START, END)] }));
    const got = hostPlugin.allocate(request({ nodes, min: 1, max: 1, reservationId: 'r1', current: ['node-a', 'node-b', 'node-c'], active: true }));
    expect(got).toHaveLength(1);
    expect(['node-a', 'node-b', 'node-c']).toContain(got[0]);
  });

  it('leaves a pending reservation unchanged when its window shrinks', () => {
    const nodes = [node('a', { allocations: [alloc('r1', START, END)] }), node('b')];
    expect(hostPlugin.allocate(request({ nodes, min: 1, max: 2, reservationId: 'r1', current: ['node-a'], end: minutes(END, -600) }))).toEqual(['node-a']);
  });
});

describe('hostPlugin.allocate: the usage-cap hint (limit)', () => {
  it('stops greedy allocation at the limit instead of max', () => {
    const nodes = ['a', 'b', 'c', 'd', 'e'].map((n) => node(n));
    expect(hostPlugin.allocate(request({ nodes, min: 1, max: 5, limit: 2 }))).toHaveLength(2);
    expect(hostPlugin.allocate(request({ nodes, min: 1, max: 2, limit: 4 }))).toHaveLength(2);
  });

  it('never goes below min for it (the engine refuses the lease instead)', () => {
    const nodes = ['a', 'b', 'c'].map((n) => node(n));
    expect(hostPlugin.allocate(request({ nodes, min: 2, max: 3, limit: 0 }))).toHaveLength(2);
    expect(hostPlugin.allocate(request({ nodes, min: 2, max: 3, limit: -4 }))).toHaveLength(2);
  });

  it('never drops hosts a reservation holds for it, but still drops those above a lowered max', () => {
    const nodes = ['a', 'b', 'c', 'd'].map((n) => node(n, { allocations: [alloc('r1', START, END)] }));
    const current = ['node-a', 'node-b', 'node-c'];
    expect(hostPlugin.allocate(request({ nodes, min: 1, max: 4, limit: 1, reservationId: 'r1', current, active: true })).sort()).toEqual(current);
    expect(hostPlugin.allocate(request({ nodes, min: 1, max: 2, limit: 9, reservationId: 'r1', current }))).toHaveLength(2);
  });
});

describe('hostPlugin.allocate: healing (replace)', () => {
  const held = (name: string) => node(name, { allocations: [alloc('r1', START, END)] });

  it('replaces a lost host one for one, keeping the others', () => {
    const nodes = [held('a'), held('b'), node('c'), node('d')];
    const got = hostPlugin.allocate(request({ nodes, min: 1, max: 3, reservationId: 'r1', current: ['node-a', 'node-b'], replace: ['node-a'] }));
    expect(got).toHaveLength(2);
    expect(got).toContain('node-b');
    expect(got).not.toContain('node-a');
  });

  it('never grows past what the reservation held, even with room up to max', () => {
    const nodes = [held('a'), node('c'), node('d'), node('e')];
    expect(hostPlugin.allocate(request({ nodes, min: 1, max: 4, reservationId: 'r1', current: ['node-a'], replace: ['node-a'] }))).toHaveLength(1);
  });

  it('keeps the others when there is no replacement but they still reach min', () => {
    const nodes = [held('a'), held('b'), held('c')];
    expect(hostPlugin.allocate(request({ nodes, min: 2, max: 3, reservationId: 'r1', current: ['node-a', 'node-b', 'node-c'], replace: ['node-c'] })).sort()).toEqual(['node-a', 'node-b']);
  });

  it('fails when the others fall below min and no host is free', () => {
    const nodes = [held('a'), held('b'), node('c', { allocations: [alloc('r-busy', START, END)] })];
    const err = allocFailure(request({ nodes, min: 2, max: 2, reservationId: 'r1', current: ['node-a', 'node-b'], replace: ['node-b'] }));
    expect(err).toBeInstanceOf(NotEnoughHostsError);
    expect(err.message).toBe('Not enough hosts available: 1 more needed, 0 free of 3 matching host(s) for this period');
  });
});

describe('hostPlugin.allocate: why hosts are not free', () => {
  it('names hosts free but for the cleaning gap, and hosts out of service', () => {
    const config: Config = { ...CONFIG, cleaningMinutes: 30 };
    const nodes = [
      node('a', { allocations: [alloc('r-prev', minutes(START, -120), minutes(START, -10))] }),
      node('b', { allocations: [alloc('r-next', END, minutes(END, 60))] }),
      { ...node('c'), bmc: { maintenance: true, provision_state: 'available' } as Node['bmc'] },
      node('d', { allocations: [alloc('r-busy', START, END)] }),
    ];
    const err = allocFailure(request({ nodes, min: 1, max: 1, config }));
    expect(err.message).toBe(
      'Not enough hosts available: 1 more needed, 0 free of 4 matching host(s) for this period (of the others: 2 only inside the 30-minute cleaning gap kept before and after another lease on the node (its disks are erased then); 1 in maintenance, being cleaned or failed)',
    );
  });
});
