import { describe, expect, it } from 'vitest';
import { deriveLeaseStatus, eventsBefore, type EventStatus, type LeaseEvent, type Reservation } from '../../layers/core/leases/model.ts';
import { executionName } from '../../layers/core/leases/lifecycle.ts';

/** The status tables of upstream-apis.md §4.7–4.8 as pure functions. */
const ev = (event_type: LeaseEvent['event_type'], status: EventStatus, time = '2030-01-01T10:00:00.000Z'): LeaseEvent => ({
  id: event_type,
  lease_id: 'l',
  event_type,
  time,
  status,
  created_at: time,
  updated_at: null,
});
const res = (status: Reservation['status']): Reservation => ({
  id: `r-${status}`,
  lease_id: 'l',
  resource_type: 'physical:host',
  resource_id: 'r',
  status,
  missing_resources: false,
  resources_changed: false,
  params: {},
  node_ids: [],
  created_at: '',
  updated_at: null,
});

describe('derived lease status', () => {
  it.each([
    ['UNDONE', 'UNDONE', ['pending'], 'PENDING'],
    ['DONE', 'UNDONE', ['active', 'active'], 'ACTIVE'],
    ['DONE', 'DONE', ['deleted'], 'TERMINATED'],
    ['ERROR', 'UNDONE', ['error'], 'ERROR'],
    ['DONE', 'ERROR', ['error'], 'ERROR'],
    ['IN_PROGRESS', 'UNDONE', ['pending'], 'ERROR'],
    // Consistency with the reservations: ACTIVE needs every reservation active...
    ['DONE', 'UNDONE', ['active', 'error'], 'ERROR'],
    // ...and TERMINATED every one deleted.
    ['DONE', 'DONE', ['deleted', 'error'], 'ERROR'],
  ] as const)('start %s, end %s, reservations %j → %s', (start, end, reservations, want) => {
    expect(deriveLeaseStatus([ev('start_lease', start), ev('end_lease', end)], reservations.map(res))).toBe(want);
  });

  it('orders a lease’s own events start → before_end → end whatever their times', () => {
    const lease = { events: [ev('start_lease', 'UNDONE'), ev('before_end_lease', 'UNDONE'), ev('end_lease', 'UNDONE')] };
    expect(eventsBefore(lease, lease.events[0]!)).toEqual([]);
    expect(eventsBefore(lease, lease.events[1]!).map((e) => e.event_type)).toEqual(['start_lease']);
    expect(eventsBefore(lease, lease.events[2]!).map((e) => e.event_type)).toEqual(['start_lease', 'before_end_lease']);
    const started = { events: [ev('start_lease', 'DONE'), ev('before_end_lease', 'ERROR'), ev('end_lease', 'UNDONE')] };
    expect(eventsBefore(started, started.events[2]!)).toEqual([]);
  });

  it('names executions so that a repeated trigger repeats the name and a moved event does not', () => {
    const ref = { lease_id: 'l', event_id: '0b7c2f4e-2a51-4c8e-9d55-2f0f6c7d1e11', event_type: 'end_lease' as const, time: '2030-01-01T10:00:00.000Z' };
    expect(executionName(ref, 'schedule')).toBe(executionName({ ...ref }, 'schedule'));
    expect(executionName(ref, 'schedule')).not.toBe(executionName({ ...ref, time: '2030-01-01T11:00:00.000Z' }, 'schedule'));
    const sweep = executionName(ref, 'sweep', new Date('2030-01-01T10:05:10Z'));
    expect(sweep).not.toBe(executionName(ref, 'sweep', new Date('2030-01-01T10:06:10Z')));
    for (const n of [executionName(ref, 'schedule'), executionName(ref, 'now'), sweep]) {
      expect(n).toMatch(/^[A-Za-z0-9_-]{1,80}$/);
    }
  });
});
