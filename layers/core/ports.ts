import type { TokenRecord } from './identity/identity.ts';
import type { UserRepository } from './identity/model.ts';
import type { Allocation, Node, NodeCreate, NodePatch } from './inventory/node.ts';
import type { EventStatus, Lease } from './leases/model.ts';
import type { EventRunner, EventScheduler, LeaseEventRef, Notifier } from './leases/lifecycle.ts';
import type { Config } from './config.ts';
import type { TaskCallbacks } from './agent/callbacks.ts';
import type { JobRepository } from './agent/model.ts';
import type { BaremetalPortRepository } from './ironic/model.ts';
import type { SecretBox } from './secrets.ts';
import type { BlobStore, DrydockRepository, TaskRunner } from './drydock/store.ts';
import type { Cluster, ClusterOperation, CommissaireHost, ContainerManager, HostPatch, Network, OperationKind } from './commissaire/model.ts';

/**
 * The ports the use-cases depend on. `layers/aws` implements them on DynamoDB; nothing in
 * `layers/core` knows which store is behind them.
 */
export interface Clock {
  now(): Date;
}

export interface TokenRepository {
  get(hash: string): Promise<TokenRecord | undefined>;
  put(rec: TokenRecord): Promise<void>;
  list(): Promise<TokenRecord[]>;
  /** Deletes by public id; returns false when no such token. */
  revoke(tokenId: string): Promise<boolean>;
}

/**
 * A lease start's grant of one node, written in the event's own transaction (engine.ts, an event
 * run whole): the allocation gets `granted_at` (the event's time of writing), the node's lessee
 * index follows, on condition that the node is still the version read and still holds the
 * allocation. Made from the node as read (`LeaseEventStore.prepareGrant`), it carries what that
 * write needs and nothing else of the node (no BMC credentials, no facts): a start prepared
 * ahead of its time carries it in the workflow's state until then (engine.ts `prepareEvent`).
 */
export interface PreparedGrant {
  node_id: string;
  /** The version the grant was prepared from: the write's condition. */
  node_version: number;
  reservation_id: string;
  /** The store's own changes that come with the grant (the node's index attributes); opaque here. */
  store: Record<string, unknown>;
}

/** A node's allocation change inside a lease commit, guarded by the node's version. */
export interface AllocationChange {
  nodeId: string;
  /**
   * The node version the plan was computed against; the write fails if it moved. Undefined
   * only for a pure release (removals), which can never create an overlap.
   */
  expectedVersion?: number;
  /** Allocations to add or overwrite, keyed by reservation id. */
  set: Allocation[];
  /** Reservation ids whose allocation on this node is removed. */
  remove: string[];
}

/**
 * A window of a collection in id order, for paging without reading the whole collection:
 * the `limit` items after `after`, or the `limit` items just before `before` (both exclusive),
 * always returned in ascending id order.
 */
export interface KeysetRange {
  limit: number;
  after?: string;
  before?: string;
}

/**
 * A scan of the Blazar host pool for lease allocation (issue 16): every enrolled host, or only
 * those whose capability `key` equals `value` (as `matches` compares), in id order starting just
 * after `from` and wrapping around, so that concurrent allocations start at different hosts.
 */
export interface HostScan {
  capability?: { key: string; value: string };
  from: string;
  /** Read the nodes from the base table (a retry after a lost race). */
  consistent: boolean;
}

/** One page of a HostScan; `cursor` is undefined once the whole pool was read. */
export interface HostScanPage {
  nodes: Node[];
  cursor?: unknown;
}

/**
 * A read of the node list in creation order (Ironic's default sort), from one index: every
 * node, or those with one provision state, driver, resource class, or granted to one project.
 * `after` is the creation key (`<created_at>#<uuid>`) the page starts after (before, when `desc`).
 */
export interface NodeIndexQuery {
  by: 'all' | 'provision_state' | 'driver' | 'resource_class' | 'lessee';
  value?: string;
  after?: string;
  desc: boolean;
  limit: number;
}

export interface NodeRepository {
  /** Creates the node; with `host_id` set it is enrolled in the same transaction. */
  create(node: NodeCreate): Promise<Node>;
  /** A new Blazar host id (all digits, from an atomic counter; gaps are harmless). */
  nextHostId(): Promise<string>;
  get(id: string): Promise<Node | undefined>;
  getByName(name: string): Promise<Node | undefined>;
  getByHostId(hostId: string): Promise<Node | undefined>;
  /** The node one of whose `addresses` is `address` (the first, by id, if several claim it). */
  getByAddress(address: string): Promise<Node | undefined>;
  /** Every node; `consistent` re-reads each one from the base table (used when retrying). */
  list(opts?: { consistent?: boolean }): Promise<Node[]>;
  page(range: KeysetRange): Promise<Node[]>;
  /** The nodes of these ids that exist (any order). */
  getMany(ids: readonly string[], consistent: boolean): Promise<Node[]>;
  /** Up to `limit` hosts of a scan after `cursor` (undefined: its start). */
  scanHosts(q: HostScan, cursor: unknown, limit: number): Promise<HostScanPage>;
  /** Up to `limit` nodes of a NodeIndexQuery after `cursor`; `cursor` undefined at its end. */
  listByCreation(q: NodeIndexQuery, cursor: unknown): Promise<{ nodes: Node[]; cursor?: unknown }>;
  /** Nodes with more addresses or capabilities than their lookup items hold (normally none): lookups read these too. */
  unindexed(): Promise<Node[]>;
  /** Applies a patch if the node is still at `expectedVersion`; bumps the version. */
  update(id: string, expectedVersion: number, patch: NodePatch): Promise<Node>;
  /** Enrols an existing node as Blazar host `hostId`; fails if it is already enrolled. */
  enrol(id: string, expectedVersion: number, hostId: string, patch: NodePatch): Promise<Node>;
  /** Deletes a node that is not a Blazar host and holds no allocation, at that version. */
  delete(id: string, expectedVersion: number): Promise<void>;
  /** Removes the Blazar enrolment; fails with ConflictError while any allocation exists. */
  unenrol(id: string): Promise<void>;
  /**
   * Sets allocations (by reservation id) and removes entries by key without a version check;
   * only for writes that cannot create an overlap (reconciliation). Bumps the version.
   */
  rewriteAllocations(id: string, set: Allocation[], removeKeys: string[]): Promise<void>;
  /**
   * Sets fields of one existing allocation (the lease lifecycle's grant and release marks) in
   * place, only if that allocation is still there; false when it is gone. Bumps the version.
   */
  markAllocation(id: string, reservationId: string, fields: Pick<Allocation, 'granted_at' | 'released_at'>): Promise<boolean>;
}

/** A lease's entry in its project's usage: what the host cap adds up. */
export interface UsageEntry {
  lease_id: string;
  /** ISO-8601 UTC: the lease window. */
  start: string;
  end: string;
  /** Hosts the lease holds (all its reservations). */
  hosts: number;
}

/** A project's usage entries with the version every raising write checks and bumps. */
export interface ProjectUsage {
  /** 0 when the project never had a guarded write. */
  version: number;
  entries: UsageEntry[];
}

/** The compare-and-set a usage-raising lease write carries (the host cap, leases/usage.ts). */
export interface UsageGuard {
  /** The version the usage was read at; the write fails (ConcurrentModificationError) if it moved. */
  expectedVersion: number;
  /** Entries of leases that have ended, dropped by the same write (housekeeping, at most a few). */
  prune: string[];
}

export interface LeaseRepository {
  get(id: string): Promise<Lease | undefined>;
  list(projectId?: string): Promise<Lease[]>;
  /** Leases named `name` (of one project, or of all), at most `limit`, by id; names are not unique. */
  findByName(projectId: string | undefined, name: string, limit: number): Promise<Lease[]>;
  /** A window of the leases of one project (or of all) in id order. */
  page(projectId: string | undefined, range: KeysetRange): Promise<Lease[]>;
  /**
   * Writes the lease (created when `previous` is undefined, else replacing `previous`, which
   * must still be current) together with the node allocation changes: atomically in one
   * transaction when it fits, else in steps that never let two bookings overlap (holds first,
   * then the lease, then the final calendars; rolled back on a lost race).
   * Throws ConcurrentModificationError when a node or the lease moved since it was read.
   */
  commit(next: Lease, previous: Lease | undefined, nodes: AllocationChange[], guard?: UsageGuard): Promise<void>;
  /**
   * The usage entries of a project's leases (read consistently), with its version. Every
   * `commit` keeps its lease's entry and every `delete` removes it, guarded or not. With a
   * `guard`, `commit` also checks and bumps the project's usage version
   * (ConcurrentModificationError when it moved since `projectUsage` read it): the host cap.
   */
  projectUsage(projectId: string): Promise<ProjectUsage>;
  /** Deletes the lease and releases its allocations, atomically. */
  delete(previous: Lease, nodes: AllocationChange[]): Promise<void>;
}

/**
 * What the lease-event workflow and the sweeper write and read of leases, apart from the lease
 * repository, which the API functions use: their bundles carry none of this (the Blazar function's
 * budget, test/infra/bundle.test.ts).
 */
export interface LeaseEventStore {
  /**
   * A status change of one event (compare-and-set on its status `from`) with the lease's new
   * status and reservations, in one transaction guarded by the lease version.
   * Throws ConcurrentModificationError when the event or the lease moved.
   */
  transition(previous: Lease, next: Lease, eventId: string, from: EventStatus, grants?: readonly PreparedGrant[]): Promise<void>;
  /** `UNDONE` events due at or before `until`, oldest first (before_end → end → start at equal times). */
  dueEvents(until: Date, limit: number): Promise<LeaseEventRef[]>;
  /** Every `UNDONE` event, due or not (the local scheduler arms them at start). */
  pendingEvents(): Promise<LeaseEventRef[]>;
  /** Events `IN_PROGRESS` since before `startedBefore`. */
  eventsInProgress(startedBefore: Date): Promise<LeaseEventRef[]>;
  /**
   * The grant of `node`'s allocation of `reservationId`, prepared from the node as read (no
   * reads): what `transition` writes for it. Throws when the node holds no such allocation.
   */
  prepareGrant(node: Node, reservationId: string): PreparedGrant;
}

export interface PropertyRecord {
  id: string;
  resource_type: string;
  property_name: string;
  private: boolean;
  created_at: string;
  updated_at: string | null;
}

export interface PropertyRepository {
  list(resourceType: string): Promise<PropertyRecord[]>;
  put(rec: PropertyRecord): Promise<void>;
}

export interface IdempotencyRecord {
  fingerprint: string;
  state: 'IN_PROGRESS' | 'DONE';
  status?: number;
  headers?: Record<string, string>;
  body?: string;
  /** `body` is sealed with the secret box (the response carried a secret). */
  sealed?: boolean;
}

export interface IdempotencyStore {
  /** Claims the key; returns the existing record when the key was already used. */
  begin(scope: string, key: string, fingerprint: string): Promise<IdempotencyRecord | undefined>;
  finish(scope: string, key: string, rec: IdempotencyRecord): Promise<void>;
  abandon(scope: string, key: string): Promise<void>;
}

/** A hostset change: the new list, and the hosts that join or leave with it. */
export interface HostsetChange {
  hostset: string[];
  /** Hosts that join: each must still be ready and in no other cluster at the moment of the write. */
  add: string[];
  /** Hosts that leave (their `cluster` is cleared). */
  remove: string[];
}

/**
 * Commissaire's clusters, hosts, networks, container managers and cluster operations. Every
 * membership change is one transaction over the cluster (compare-and-set on its
 * `hostset_version`) and the hosts it touches; any lost race or failed condition is a
 * ConcurrentModificationError, after which the use-case re-reads and decides.
 */
export interface CommissaireRepository {
  getCluster(name: string): Promise<Cluster | undefined>;
  /** Clusters by name: at most 1,000 (a bounded read; the adapter logs when more exist). Likewise networks and container managers. */
  listClusters(): Promise<Cluster[]>;
  /** Creates the cluster or replaces its definition; members and operations stay. */
  putCluster(def: Pick<Cluster, 'name' | 'network' | 'container_manager'>, now: string): Promise<Cluster>;
  /**
   * Deletes the cluster (still at the `hostset_version` read) with its operation records, and
   * clears `cluster` on `members` (at most 90 in one go: one transaction; shrink the hostset first).
   */
  deleteCluster(cluster: Cluster, members: readonly string[]): Promise<void>;
  /** Applies a hostset change if the cluster is still at `expectedVersion`. */
  setHostset(name: string, expectedVersion: number, change: HostsetChange, now: string): Promise<Cluster>;

  getHost(address: string): Promise<CommissaireHost | undefined>;
  /** The hosts that exist among `addresses` (any order). */
  getHosts(addresses: readonly string[]): Promise<CommissaireHost[]>;
  /** At most `limit` hosts in address order (of the index: code-unit order), after `after` if given. */
  hostWindow(w: { limit: number; after?: string }): Promise<CommissaireHost[]>;
  /**
   * Creates the host (fails if it exists); with `cluster`, appends it to that hostset in the same
   * transaction, guarded by the version the caller read.
   */
  createHost(host: CommissaireHost, cluster?: { name: string; expectedVersion: number; hostset: string[] }): Promise<void>;
  /** Patches a host; with `expectStatus`, only if its status still is that (undefined otherwise or when gone). */
  updateHost(address: string, patch: HostPatch, now: string, expectStatus?: CommissaireHost['status']): Promise<CommissaireHost | undefined>;
  /** Deletes the host (credentials included) and, if it is a member, removes it from that hostset. */
  deleteHost(host: CommissaireHost, cluster?: Cluster): Promise<void>;

  getNetwork(name: string): Promise<Network | undefined>;
  listNetworks(): Promise<Network[]>;
  /** Creates the network, or does nothing when an identical one exists; ConflictError when it differs. */
  putNetwork(net: Network): Promise<void>;
  /** False when there was none. */
  deleteNetwork(name: string): Promise<boolean>;
  getContainerManager(name: string): Promise<ContainerManager | undefined>;
  listContainerManagers(): Promise<ContainerManager[]>;
  /**
   * Creates the container manager, or does nothing when an identical one exists; ConflictError
   * when it differs. `definition` is the fingerprint of the definition as given (its token is
   * stored sealed, and a seal differs each time).
   */
  putContainerManager(cm: ContainerManager, definition?: string): Promise<void>;
  deleteContainerManager(name: string): Promise<boolean>;

  getOperation(cluster: string, kind: OperationKind): Promise<ClusterOperation | undefined>;
  /**
   * Takes the cluster's operation lock and stores the initial record, in one transaction.
   * NotFoundError without the cluster; ConflictError while another operation is in process.
   */
  startOperation(op: ClusterOperation): Promise<void>;
  /** Stores progress of the operation in process; false when it is no longer in process. */
  updateOperation(op: ClusterOperation): Promise<boolean>;
  /** Stores the final record and releases the cluster's lock; false when the lock is gone. */
  finishOperation(op: ClusterOperation): Promise<boolean>;
}

/** Starts Commissaire cluster-operation workflows (Step Functions / the local runner); `commissaire/operations.ts` runs their steps. */
export interface OperationRunner {
  /** Starts the workflow; a name already used is not an error (a repeated request). */
  start(input: { cluster: string; kind: OperationKind }, name: string): Promise<void>;
}

export interface Ports {
  clock: Clock;
  config: Config;
  tokens: TokenRepository;
  /** Keystone users and their application credentials (issue 15). */
  users: UserRepository;
  nodes: NodeRepository;
  /** Ironic ports (a node's NICs by MAC address). */
  bmPorts: BaremetalPortRepository;
  leases: LeaseRepository;
  /** Lease events' transitions and queries (the workflow's and the sweeper's). */
  leaseEvents: LeaseEventStore;
  properties: PropertyRepository;
  idempotency: IdempotencyStore;
  jobs: JobRepository;
  secrets: SecretBox;
  callbacks: TaskCallbacks;
  /** One-time triggers of lease events (EventBridge Scheduler / local timers). */
  scheduler: EventScheduler;
  /** Starts lease-event workflow executions (Step Functions / local runner). */
  runner: EventRunner;
  notifier: Notifier;
  /** Starts Commissaire cluster-operation workflows (Step Functions / local runner). */
  operations: OperationRunner;
  commissaire: CommissaireRepository;
  /** Drydock tasks, designs and boot actions. */
  drydock: DrydockRepository;
  /** The bootdata bucket (S3 / s3rver). */
  blobs: BlobStore;
  /** Starts Drydock task workflows (Step Functions / local runner). */
  tasks: TaskRunner;
}
