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
  UNDONE: ['IN_PROGRESS'],
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
