import { describe, expect, it } from 'vitest';
import { PREPARE_LEAD_SECONDS, type LeaseEventRef } from '../../layers/core/leases/lifecycle.ts';
import type { EventType, Lease } from '../../layers/core/leases/model.ts';
import { armLease } from '../../layers/core/leases/triggers.ts';
import type { Ports } from '../../layers/core/ports.ts';

/**
 * Which triggers fire early (issue 16): an event Begin can prepare — a start without an image, a
 * before_end, of at most 25 nodes — fires PREPARE_LEAD_SECONDS before its time; an end, a start
 * with an image or a larger start fires at its time; one already within its lead starts now.
 */
const NOW = Date.parse('2030-01-01T10:00:00.000Z');
const at = (minutes: number) => new Date(NOW + minutes * 60_000).toISOString();

function lease(opts: { image?: boolean; nodes?: number; start?: number } = {}): Lease {
  const start = opts.start ?? 60;
  const ev = (id: string, event_type: EventType, minutes: number) => ({ id, lease_id: 'l', event_type, time: at(minutes), status: 'UNDONE' as const, created_at: at(0), updated_at: null });
  return {
    id: 'l',
    name: 'l',
    user_id: 'u',
    project_id: 'p',
    trust_id: null,
    status: 'PENDING',
    degraded: false,
    start_date: at(start),
    end_date: at(start + 600),
    created_at: at(0),
    updated_at: null,
    version: 1,
    reservations: [
      {
        id: 'r',
        lease_id: 'l',
        resource_type: 'physical:host',
        resource_id: 'r',
        status: 'pending',
        missing_resources: false,
        resources_changed: false,
        params: { min: 1, max: 1, ...(opts.image ? { 'slipway:image': 'img' } : {}) },
        node_ids: Array.from({ length: opts.nodes ?? 1 }, (_, i) => `n${i}`),
        created_at: at(0),
        updated_at: null,
      },
    ],
    events: [ev('s', 'start_lease', start), ev('b', 'before_end_lease', start + 540), ev('e', 'end_lease', start + 600)],
  };
}

async function arm(l: Lease) {
  const put: LeaseEventRef[] = [];
  const started: { ref: LeaseEventRef; name: string }[] = [];
  const deps = {
    clock: { now: () => new Date(NOW) },
    scheduler: { put: async (ref: LeaseEventRef) => void put.push(ref), remove: async () => undefined },
    runner: { start: async (ref: LeaseEventRef, name: string) => void started.push({ ref, name }) },
  } as unknown as Ports;
  await armLease(deps, l);
  return { fires: Object.fromEntries(put.map((r) => [r.event_type, r.fire_at ?? r.time])), started };
}

describe('armLease', () => {
  it("fires a start without an image and a before_end their lead early, an end at its time", async () => {
    const { fires, started } = await arm(lease());
    const lead = PREPARE_LEAD_SECONDS * 1000;
    expect(fires).toEqual({
      start_lease: new Date(Date.parse(at(60)) - lead).toISOString(),
      before_end_lease: new Date(Date.parse(at(600)) - lead).toISOString(),
      end_lease: at(660),
    });
    expect(started).toEqual([]);
  });

  it('fires a start with an image, or of more than 25 nodes, at its time (Begin cannot prepare it)', async () => {
    expect((await arm(lease({ image: true }))).fires.start_lease).toBe(at(60));
    expect((await arm(lease({ nodes: 26 }))).fires.start_lease).toBe(at(60));
    expect((await arm(lease({ nodes: 25 }))).fires.start_lease).not.toBe(at(60));
  });

  it('starts an event within its lead now, under the event time\'s name, rather than a trigger in the past', async () => {
    const { fires, started } = await arm(lease({ start: 0.25 }));
    expect(fires.start_lease).toBeUndefined();
    expect(started.map((s) => [s.ref.event_type, s.name])).toEqual([['start_lease', 's-20300101T1000-now']]);
  });
});
