/**
 * Leases, reservations and events with Blazar's vocabulary and status values exactly
 * (upstream-apis.md §4.3, §4.7). Status changes are compare-and-set writes checked against
 * these tables (DESIGN.md §6 invariant 2).
 */
export const LEASE_STATUSES = [
  'CREATING',
  'PENDING',
  'STARTING',
  'ACTIVE',
  'UPDATING',
  'TERMINATING',
  'TERMINATED',
  'ERROR',
  'DELETING',
] as const;
export type LeaseStatus = (typeof LEASE_STATUSES)[number];

export const STABLE_LEASE_STATUSES: readonly LeaseStatus[] = ['PENDING', 'ACTIVE', 'TERMINATED', 'ERROR'];

export const LEASE_TRANSITIONS: Record<LeaseStatus, readonly LeaseStatus[]> = {
  CREATING: ['PENDING', 'DELETING'],
  PENDING: ['STARTING', 'UPDATING', 'DELETING'],
  STARTING: ['ACTIVE', 'ERROR', 'DELETING'],
  ACTIVE: ['TERMINATING', 'UPDATING', 'DELETING'],
  UPDATING: ['PENDING', 'ACTIVE', 'TERMINATED', 'ERROR', 'DELETING'],
  TERMINATING: ['TERMINATED', 'ERROR', 'DELETING'],
  TERMINATED: ['UPDATING', 'DELETING'],
  ERROR: ['TERMINATING', 'UPDATING', 'DELETING'],
  DELETING: ['ERROR'],
};

export type ReservationStatus = 'pending' | 'active' | 'deleted' | 'error';
export const RESERVATION_TRANSITIONS: Record<ReservationStatus, readonly ReservationStatus[]> = {
  pending: ['active', 'deleted', 'error'],
  active: ['deleted', 'error'],
  error: ['deleted'],
  deleted: [],
};

export type EventStatus = 'UNDONE' | 'IN_PROGRESS' | 'DONE' | 'ERROR';
export const EVENT_TRANSITIONS: Record<EventStatus, readonly EventStatus[]> = {
  // ERROR directly when it can never run (e.g. the start of a lease that is already in ERROR).
  // DONE or ERROR directly too for an event Begin runs whole (no agent work: engine.ts runWhole).
  UNDONE: ['IN_PROGRESS', 'DONE', 'ERROR'],
  // Back to UNDONE only when its execution died (a stopped local stack): the actions are idempotent.
  IN_PROGRESS: ['DONE', 'ERROR', 'UNDONE'],
  DONE: ['UNDONE'], // a prolonged lease re-arms its before_end event
  ERROR: [],
};

export type EventType = 'start_lease' | 'end_lease' | 'before_end_lease';
/** At equal times: before_end, then end, then start, so back-to-back leases work (§4.8). */
export const EVENT_ORDER: Record<EventType, number> = { before_end_lease: 0, end_lease: 1, start_lease: 2 };

export interface Reservation {
  id: string;
  lease_id: string;
  resource_type: string;
  /** The plugin's own reservation record id (upstream: host_reservation id). */
  resource_id: string;
  status: ReservationStatus;
  missing_resources: boolean;
  resources_changed: boolean;
  /** Plugin parameters (physical:host: min, max, hypervisor_properties, resource_properties, before_end). */
  params: Record<string, unknown>;
  /** Nodes allocated to this reservation (their calendars hold the matching allocation). */
  node_ids: string[];
  created_at: string;
  updated_at: string | null;
}

export interface LeaseEvent {
  id: string;
  lease_id: string;
  event_type: EventType;
  /** ISO-8601 UTC */
  time: string;
  status: EventStatus;
  /** Why the event ended as it did (an unsupported before_end action, a node that failed). */
  status_reason?: string | null;
  created_at: string;
  updated_at: string | null;
}

export interface Lease {
  id: string;
  name: string;
  user_id: string;
  project_id: string;
  trust_id: string | null;
  status: LeaseStatus;
  degraded: boolean;
  /** ISO-8601 UTC */
  start_date: string;
  end_date: string;
  created_at: string;
  updated_at: string | null;
  /** Optimistic-concurrency version of the lease item; every write bumps it. */
  version: number;
  reservations: Reservation[];
  events: LeaseEvent[];
}

/** Events in execution order: by time, then before_end → end → start. */
export function sortEvents(events: LeaseEvent[]): LeaseEvent[] {
  return [...events].sort((a, b) => a.time.localeCompare(b.time) || EVENT_ORDER[a.event_type] - EVENT_ORDER[b.event_type]);
}

/** True when `to` is a legal next status of `from`. */
export function canTransition<S extends string>(table: Record<S, readonly S[]>, from: S, to: S): boolean {
  return table[from]?.includes(to) ?? false;
}

/**
 * A lease's own events run in this order whatever their times (upstream §4.8: a lease's
 * before_end/end due together with its start run after its start).
 */
export const LEASE_EVENT_SEQUENCE: Record<EventType, number> = { start_lease: 0, before_end_lease: 1, end_lease: 2 };

const finished = (e: LeaseEvent | undefined) => e?.status === 'DONE' || e?.status === 'ERROR';

/**
 * The stable status after a status-managed operation (upstream §4.7): from the start and end
 * events, checked against the reservations (ACTIVE needs them all active, TERMINATED all
 * deleted); anything else is ERROR.
 */
export function deriveLeaseStatus(events: readonly LeaseEvent[], reservations: readonly Reservation[]): LeaseStatus {
  const start = events.find((e) => e.event_type === 'start_lease')?.status ?? 'UNDONE';
  const end = events.find((e) => e.event_type === 'end_lease')?.status ?? 'UNDONE';
  const all = (s: ReservationStatus) => reservations.every((r) => r.status === s);
  if (start === 'UNDONE' && end === 'UNDONE') return reservations.every((r) => r.status === 'pending') ? 'PENDING' : 'ERROR';
  if (start === 'DONE' && end === 'UNDONE') return all('active') ? 'ACTIVE' : 'ERROR';
  if (start === 'DONE' && end === 'DONE') return all('deleted') ? 'TERMINATED' : 'ERROR';
  return 'ERROR';
}

/** Events of the same lease that must finish before `event` may run. */
export function eventsBefore(lease: Pick<Lease, 'events'>, event: LeaseEvent): LeaseEvent[] {
  return lease.events.filter((e) => e.id !== event.id && LEASE_EVENT_SEQUENCE[e.event_type] < LEASE_EVENT_SEQUENCE[event.event_type] && !finished(e));
}

/** The lease status while an event runs (before_end changes none). */
export const RUNNING_STATUS: Record<EventType, LeaseStatus | undefined> = {
  start_lease: 'STARTING',
  end_lease: 'TERMINATING',
  before_end_lease: undefined,
};
