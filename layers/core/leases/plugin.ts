import type { Config } from '../config.ts';
import type { Node } from '../inventory/node.ts';
import type { Ports, PreparedGrant } from '../ports.ts';
import type { EventType, Lease, Reservation } from './model.ts';

/**
 * The contract between the lease engine and a reservable resource type (Blazar's
 * `plugins/base.py`). The engine knows leases, reservations, events and calendars; a plugin
 * knows what its resources are and how to pick them. Adding a resource type means adding a
 * plugin to `PLUGINS`, not changing the engine.
 */
export interface AllocationRequest {
  /** Parameters as validated by the plugin. */
  params: Record<string, unknown>;
  start: Date;
  end: Date;
  /** Every node with its calendar as currently planned (earlier reservations of this lease included). */
  nodes: readonly Node[];
  /** The reservation being (re)allocated: its own allocations never conflict with it. */
  reservationId: string;
  /** Nodes it holds now (update); empty on create. */
  current: readonly string[];
  /**
   * Healing: resources of `current` that are out of service and must be replaced. The
   * reservation then aims at as many resources as it held (at least `min`, never more).
   */
  replace?: readonly string[];
  /** True once the reservation is running: its nodes may not be swapped (upstream bug #1692805). */
  active: boolean;
  config: Config;
  /** Which try this is (0 first); a retry after a lost race reads fresh calendars. */
  attempt: number;
  /**
   * How many resources the reservation should take at most under the project's usage cap
   * (`SLIPWAY_MAX_HOSTS_PER_PROJECT`); undefined without a cap. A hint, not a rule: greedy
   * allocation stops there instead of at `max`, but never below `min` or below what the
   * reservation already holds. The engine refuses a lease that still exceeds the cap.
   */
  limit?: number;
}

export interface ResourcePlugin {
  readonly resourceType: string;
  /** Validates create parameters (400 on error) and returns the stored form. */
  validateCreate(raw: Record<string, unknown>): Record<string, unknown>;
  /** Merges and validates update parameters over the current ones. */
  validateUpdate(current: Record<string, unknown>, raw: Record<string, unknown>): Record<string, unknown>;
  /** Chooses the node ids for the reservation, or throws NotEnoughHostsError. */
  allocate(req: AllocationRequest): string[];
  /**
   * What `allocate` needs to see (issue 16: read candidates, not the fleet): how many new
   * resources it would take at most (`room`), which nodes are such candidates (`fits`), and an
   * equality on a capability that every candidate satisfies (the index to read them from).
   */
  wants(req: Omit<AllocationRequest, 'nodes'>): CandidateWant;
  /**
   * Seals what the validated parameters hold that must not be stored in plain text (a config
   * drive's user data); values already sealed are kept. Called before every lease write.
   */
  sealParams?(deps: Ports, params: Record<string, unknown>): Promise<Record<string, unknown>>;
  /** The plugin's fields in the reservation's API view. */
  view(res: Reservation): Record<string, unknown>;
  /** Property keys a reservation depends on (a host may not change them while reserved). */
  referencedProperties(params: Record<string, unknown>): string[];

  /** Healing: the reservation's resources that are out of service (a node in maintenance), sorted. */
  lostResources?(deps: Ports, res: Reservation): Promise<string[]>;

  /** After the lease was deleted while running: stop what it ran (best effort, no workflow). */
  afterDeleteActive(deps: Ports, lease: Lease, res: Reservation): Promise<void>;
}

/**
 * What a resource type does over a lease's life: the lease-event workflow calls these (each must
 * be safe to run twice). Apart from ResourcePlugin, so that the API functions, which only book
 * and delete, do not carry the start and end code (the Blazar function's bundle budget, issue 12).
 */
export interface ResourceLifecycle {
  /** Why the reservation cannot start yet (its resources still held by an earlier lease), else undefined. */
  startBlocker(deps: Ports, lease: Lease, res: Reservation): Promise<string | undefined>;
  /** start_lease: hand the resources to the lease's project. */
  onStart(deps: Ports, lease: Lease, res: Reservation): Promise<LifecycleStep>;
  /** before_end_lease: the reservation's `before_end` action. */
  onBeforeEnd(deps: Ports, lease: Lease, res: Reservation): Promise<LifecycleStep>;
  /** end_lease, first half: take the resources back and say what agent work ending needs. */
  onEnd(deps: Ports, lease: Lease, res: Reservation): Promise<LifecycleStep>;
  /** Queues one agent job of a step with the workflow's task token (answered by the job's result). */
  queueJob(deps: Ports, job: AgentJobSpec, taskToken: string, res: Reservation): Promise<{ job_id: string }>;
  /** end_lease, second half, once the agent jobs are done or failed: release the resources. */
  afterEnd(deps: Ports, lease: Lease, res: Reservation, results: JobResult[]): Promise<void>;
  /**
   * A failed agent job of the end whose failure left the resource safely out of the pool (e.g.
   * a node whose erase failed is in maintenance, never leased): the note that replaces the
   * failure, so the lease still terminates. Undefined: it is the end's failure.
   */
  settledFailure?(deps: Ports, result: JobResult): Promise<string | undefined>;
  /**
   * The action of an event that runs whole (which events do is `runsWholeEvent`, whole.ts: API
   * functions arm triggers by it without these lifecycles): the grants its transaction writes,
   * and its notes. Throws to fail the event.
   */
  wholeStep?(deps: Ports, lease: Lease, res: Reservation, eventType: EventType): Promise<WholeStep>;
}

/** What an event run whole writes besides the lease (its grants), and what it notes. */
export interface WholeStep {
  grants: PreparedGrant[];
  notes: string[];
}

export interface CandidateWant {
  room: number;
  fits(node: Node): boolean;
  capability?: { key: string; value: string };
}

/** One unit of agent work for a lifecycle step (one node). */
export interface AgentJobSpec {
  reservation_id: string;
  node_id: string;
  action: string;
}

/** The outcome of one agent job as the workflow's Map collects it. */
export interface JobResult {
  reservation_id: string;
  node_id: string;
  ok: boolean;
  error?: string;
}

export interface LifecycleStep {
  jobs: AgentJobSpec[];
  notes: string[];
}
