/**
 * One bare-metal machine. The same record serves every surface: Blazar sees it as a host once
 * enrolled (`host_id`), Ironic (later) as a node with a BMC, Drydock as a design node.
 */
export interface NodeFacts {
  vcpus?: number;
  memory_mb?: number;
  local_gb?: number;
  cpu_info?: string;
  hypervisor_type?: string;
  hypervisor_version?: number;
  service_name?: string;
  availability_zone?: string;
}

export interface NodeAddress {
  network: string;
  address: string;
}

/**
 * The node's BMC as Ironic registers it (issue 3): driver, driver_info with secrets sealed, and
 * the states the agent reports. `conductor_group` names the site whose agent drives it.
 */
export interface BmcInfo {
  driver: 'ipmi' | 'redfish';
  driver_info: Record<string, unknown>;
  conductor_group: string;
  power_state: 'power on' | 'power off' | null;
  target_power_state: string | null;
  provision_state: string;
  /** Where a provision action in progress goes (`manageable` while `verifying`). */
  target_provision_state?: string | null;
  /** When provision_state last changed through the Ironic API. */
  provision_updated_at?: string | null;
  /**
   * Ironic's `instance_info`: what a deploy installs (`image_source`, `image_checksum`, …), set
   * by PATCH (admins, and the lessee of the node).
   */
  instance_info?: Record<string, unknown>;
  /** When the last successful inspection ended (Ironic's `inspection_finished_at`). */
  inspection_finished_at?: string | null;
  last_error: string | null;
  maintenance: boolean;
  maintenance_reason: string | null;
  /** Ironic's node lock: what holds the node exclusively (a vendor method in progress). */
  reservation?: string | null;
  properties: Record<string, unknown>;
  extra: Record<string, unknown>;
  /** Ironic's resource class (what a scheduler asks for), e.g. `baremetal.gpu`. */
  resource_class?: string | null;
  /**
   * Ironic's per-node `automated_clean`: true cleans on `provide` whatever the setting, false
   * never does, null (or absent) follows `SLIPWAY_AUTOMATED_CLEAN`.
   */
  automated_clean?: boolean | null;
}

/**
 * Provision states in which a node with a BMC is busy or failed (its disks mid-erase, not erased,
 * or its hardware in doubt): such a node, or one in maintenance, is never a new candidate of a
 * lease. A node without a BMC (a Blazar host alone) has no provision state and is not concerned.
 */
export const NOT_ALLOCATABLE_STATES: ReadonlySet<string> = new Set([
  'cleaning',
  'clean wait',
  'clean failed',
  'inspecting',
  'inspect wait',
  'inspect failed',
  'verifying',
  'deploy failed',
  'adopt failed',
  'error',
]);

/** Of those, the states a node leaves by itself (an erase or inspection under way): a lease starting on it waits. */
const PASSING_STATES: ReadonlySet<string> = new Set(['cleaning', 'clean wait', 'inspecting', 'inspect wait', 'verifying']);

/**
 * A node that cannot serve a lease until an operator acts: in maintenance (e.g. its erase
 * failed), or failed (`clean failed`, `deploy failed`: its disks not known to be erased). A lease
 * not yet started on it is healed onto another node (leases/healing.ts).
 */
export const outOfService = (node: Pick<Node, 'bmc'>): boolean =>
  Boolean(node.bmc) && (node.bmc!.maintenance || (NOT_ALLOCATABLE_STATES.has(node.bmc!.provision_state) && !PASSING_STATES.has(node.bmc!.provision_state)));

/** Whether a lease may take the node now (see NOT_ALLOCATABLE_STATES). */
export const allocatable = (node: Pick<Node, 'bmc'>): boolean => !node.bmc || (!node.bmc.maintenance && !NOT_ALLOCATABLE_STATES.has(node.bmc.provision_state));

/** A node's booking by one reservation: an entry of its calendar (`Node.allocations`). */
export interface Allocation {
  reservation_id: string;
  lease_id: string;
  project_id: string;
  /** ISO-8601 UTC. */
  start: string;
  end: string;
  /**
   * Set on a hold written by a multi-step booking (a lease too large for one transaction)
   * before the lease itself commits; `reconcileCalendars` may drop stale holds.
   */
  held_at?: string;
  /** Set by start_lease: the lease's project holds the node (see `grantsOf`). */
  granted_at?: string | null;
  /**
   * Set by end_lease when a cleaning gap is configured: the lease is over, but the entry stays
   * (still padded by the gap) until the gap has passed, so nothing is booked into it.
   */
  released_at?: string;
}

export interface Node {
  id: string;
  name: string;
  /** Blazar host id (all digits) while enrolled in the reservation service. */
  host_id?: string;
  reservable: boolean;
  facts: NodeFacts;
  /** Blazar extra capabilities; values are strings as upstream stores them. */
  extra: Record<string, string>;
  addresses: NodeAddress[];
  /** Allocations by reservation id (the calendar of this node). */
  allocations: Record<string, Allocation>;
  /** Present once a BMC is registered (Ironic `POST /v1/nodes`). */
  bmc?: BmcInfo;
  /** Bumped by every write; the booking transaction checks it (DESIGN.md §6 invariant 1). */
  version: number;
  created_at: string;
  updated_at: string | null;
}

export type NodeCreate = Omit<Node, 'version' | 'updated_at'>;

/** A node the inventory does not have yet: reservable, nothing known of it, an empty calendar. */
export function newNode(init: Pick<NodeCreate, 'id' | 'name' | 'created_at'> & Partial<NodeCreate>): NodeCreate {
  return { reservable: true, facts: {}, extra: {}, addresses: [], allocations: {}, ...init };
}

export interface NodePatch {
  name?: string;
  reservable?: boolean;
  facts?: Partial<NodeFacts>;
  /** Keys set to a string are written; keys set to null are removed. */
  extra?: Record<string, string | null>;
  /** Replace all extra capabilities. */
  replaceExtra?: Record<string, string>;
  addresses?: NodeAddress[];
  /** Replaces the BMC registration; null removes it. */
  bmc?: BmcInfo | null;
}

export const INT_FACTS = ['vcpus', 'memory_mb', 'local_gb', 'hypervisor_version'] as const;
export const STRING_FACTS = ['cpu_info', 'hypervisor_type', 'service_name', 'availability_zone'] as const;
export const FACT_KEYS: readonly string[] = [...INT_FACTS, ...STRING_FACTS];

/** Active allocations of a node in a window, padded by the cleaning gap on both sides. */
export function overlapping(
  node: Pick<Node, 'allocations'>,
  start: Date,
  end: Date,
  cleaningMinutes: number,
  ignoreReservationIds: ReadonlySet<string> = new Set(),
): Allocation[] {
  const pad = cleaningMinutes * 60_000;
  const s = start.getTime() - pad;
  const e = end.getTime() + pad;
  return Object.values(node.allocations).filter(
    (a) => !ignoreReservationIds.has(a.reservation_id) && Date.parse(a.start) < e && s < Date.parse(a.end),
  );
}

/** An allocation whose lease has started on the node and not yet ended: its project holds the node. */
export const isGranted = (a: Allocation) => a.granted_at !== undefined && a.granted_at !== null && !a.released_at;

/**
 * Projects that may see and operate the node now: those whose running lease holds it (granted
 * at start_lease, revoked at end_lease). Derived from the calendar, so a grant can never outlive
 * its allocation.
 */
/** Ironic's resource class (nodes registered before it had its own field kept it in `extra`). */
export function resourceClassOf(node: Pick<Node, 'bmc'>): string | null {
  return node.bmc?.resource_class ?? (node.bmc?.extra?.resource_class as string | undefined) ?? null;
}

export function grantsOf(node: Pick<Node, 'allocations'>): string[] {
  return [...new Set(Object.values(node.allocations).filter(isGranted).map((a) => a.project_id))];
}
