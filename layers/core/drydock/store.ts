import type { BuildData, TaskMessage, TaskRecord } from './tasks/model.ts';

/**
 * The Drydock ports: what the task and boot-action use-cases need from storage (DynamoDB),
 * from the object store (S3) and from the workflow engine (Step Functions). `layers/aws`
 * implements them; nothing here knows which store is behind them.
 */

/** A design kept in Slipway (`POST /api/v1.0/designs`), referenced as `design_ref: slipway://designs/<id>`. */
export interface StoredDesign {
  design_id: string;
  base_design_id: string | null;
  created: string;
  created_by: string | null;
  /**
   * The project that stored it (a member's), or null/absent for the site's (an administrator's).
   * A project sees and uses only its own designs; the site's hold BMC credentials.
   */
  project_id?: string | null;
}

/** One `POST /designs/{id}/parts` body: YAML documents, kept verbatim. */
export interface DesignPart {
  design_id: string;
  /** Sortable, unique within the design (ISO time + random suffix). */
  part_id: string;
  ingester: string;
  text: string;
  added_at: string;
}

/** Boot-action status (`action_status`), upstream's `ActionResult` subset. */
export const BOOT_ACTION_STATUSES = ['incomplete', 'success', 'failure', 'unreported'] as const;
export type BootActionStatus = (typeof BOOT_ACTION_STATUSES)[number];

/** One boot action of one node in one deployment (upstream's `BootActionStatus` row). */
export interface BootActionRecord {
  /** ULID, 26 chars of Crockford base32. */
  action_id: string;
  action_name: string;
  node_name: string;
  /** The deploy task (top level) whose status messages receive the reports. */
  task_id: string;
  action_status: BootActionStatus;
  signaling: boolean;
  created: string;
  updated: string | null;
}

/**
 * The boot-action context of a node: one per node, replaced by every deployment (which
 * rotates the key and the action ids). The key itself is never stored, only its hash.
 */
export interface BootActionContext {
  node_name: string;
  task_id: string;
  /** The per-node subtask that deploys this node (it waits for the reports). */
  subtask_id: string;
  design_ref: string;
  /** `hashNodeKey(key)`: what the key check compares against. */
  key_hash: string;
  /**
   * The key itself, sealed (SecretBox): opened only for the admin view and the deploy job the
   * site's agent claims, which hand it to the node's installer.
   */
  key_sealed: string;
  action_ids: string[];
  /** Object keys of the rendered tarballs in the bootdata bucket. */
  units_object: string;
  files_object: string;
  /** `#cloud-config` packages merged from the `pkg_list` assets (for the site's installer). */
  packages: (string | [string, string])[];
  created: string;
  /** Task token of the workflow state waiting for this node's final reports, while it waits. */
  report_token?: string;
}

/**
 * A bounded window of the task or design list, read from an index (issue 16): the cost is the
 * window's, not the list's. Always handed back oldest first.
 */
export interface ListWindowQuery {
  /** A project's own items (the index of the project's), else every item (the site's view). */
  project?: string;
  limit: number;
  /** Only the items listed after this one (its creation time and id). */
  after?: { created: string; id: string };
  /** Without `after`: the newest `limit` items rather than the oldest. */
  newest?: boolean;
}

export interface DrydockRepository {
  /** Creates a task; ConflictError when the id exists. */
  createTask(task: TaskRecord): Promise<void>;
  /** Creates subtasks that do not exist yet (a repeated call is harmless). */
  putSubtasks(subtasks: readonly TaskRecord[]): Promise<void>;
  getTask(id: string): Promise<TaskRecord | undefined>;
  /** The tasks among `ids` that exist (any order). */
  getTasks(ids: readonly string[]): Promise<TaskRecord[]>;
  /**
   * Every task, subtasks included, oldest first: a read of the whole list, for the local stack's
   * restart only (`GET /tasks` reads `taskWindow`).
   */
  listTasks(): Promise<TaskRecord[]>;
  /** At most `limit` tasks (subtasks included), every one or a project's, oldest first (see ListWindowQuery). */
  taskWindow(w: ListWindowQuery): Promise<TaskRecord[]>;
  /**
   * Replaces the task if it is still at `expected.version` (bumps the version);
   * ConcurrentModificationError otherwise.
   */
  updateTask(expected: TaskRecord, next: Omit<TaskRecord, 'version'>): Promise<TaskRecord>;
  /** Appends status messages to a task (no read, no contention with other writers). */
  addMessages(taskId: string, messages: readonly TaskMessage[]): Promise<void>;
  /** The task's messages in the order they were added. */
  messages(taskId: string): Promise<TaskMessage[]>;
  addBuildData(rec: BuildData): Promise<void>;
  buildDataOfTask(taskId: string): Promise<BuildData[]>;
  buildDataOfNode(nodeName: string): Promise<BuildData[]>;
  /**
   * Deletes top-level tasks created before `before` that are finished (complete or terminated),
   * with their subtasks, messages and build data. Returns how many tasks were deleted.
   */
  purgeTasks(before: Date): Promise<number>;

  /**
   * The older top-level tasks of the site that are queued or running (at most `limit`): the
   * site runs its tasks in creation order, as upstream's single orchestrator does.
   */
  tasksAhead(site: string, task: Pick<TaskRecord, 'created' | 'task_id'>, limit: number): Promise<{ task_id: string; created: string }[]>;
  /**
   * Takes one of the site's `max` task slots for `taskId` (a repeated call by the holder is
   * true); false while `max` other tasks hold one. The write itself is the check.
   */
  acquireSite(site: string, taskId: string, max: number): Promise<boolean>;
  releaseSite(site: string, taskId: string): Promise<void>;
  /** The task ids holding the site's slots. */
  siteHolders(site: string): Promise<string[]>;

  createDesign(design: StoredDesign): Promise<void>;
  getDesign(id: string): Promise<StoredDesign | undefined>;
  /** At most `limit` stored designs, every one or a project's, oldest first (see ListWindowQuery). */
  designWindow(w: ListWindowQuery): Promise<StoredDesign[]>;
  addDesignPart(part: DesignPart): Promise<void>;
  /** The design's parts in the order they were added. */
  designParts(designId: string): Promise<DesignPart[]>;

  /**
   * Stores the node's new boot-action context with its action rows, replacing the previous
   * context (whose actions stop answering: the old key and ids are dead).
   */
  putBootActionContext(ctx: BootActionContext, actions: readonly BootActionRecord[]): Promise<void>;
  getBootActionContext(nodeName: string): Promise<BootActionContext | undefined>;
  getBootAction(actionId: string): Promise<BootActionRecord | undefined>;
  /** The action rows among `ids` (any order). */
  getBootActions(ids: readonly string[]): Promise<BootActionRecord[]>;
  /**
   * Records one report of an `incomplete` action in one transaction, or nothing: its messages
   * on task `taskId` and, with `status`, the action's final status. The action's status is the
   * condition (`incomplete`), so of concurrent final reports exactly one is written and a
   * report after the final one writes nothing. Returns the action as written, or undefined
   * when it was no longer `incomplete` (or is gone).
   */
  recordBootActionReport(
    action: BootActionRecord,
    report: { status?: 'success' | 'failure'; messages: readonly TaskMessage[]; at: string },
  ): Promise<BootActionRecord | undefined>;
  /**
   * Records the task token of the step waiting for the node's reports, if the node's context
   * still belongs to `taskId`; false otherwise. `undefined` clears it.
   */
  setReportToken(nodeName: string, taskId: string, token: string | undefined): Promise<boolean>;
  /** Removes the node's context and its action rows (destroy_nodes: the key stops working). */
  deleteBootActionContext(nodeName: string): Promise<void>;

  /** Records a site's configuration (`prepare_site`), replacing the previous one. */
  putSiteConfig(config: SiteConfig): Promise<void>;
  getSiteConfig(site: string): Promise<SiteConfig | undefined>;
}

/** What `prepare_site` records of a site: its Region, networks, links and racks from the design. */
export interface SiteConfig {
  site: string;
  task_id: string;
  design_ref: string;
  recorded_at: string;
  region: unknown;
  networks: Record<string, unknown>;
  network_links: Record<string, unknown>;
  racks: Record<string, unknown>;
}

/** The bootdata bucket (and `s3://` design references). */
export interface BlobStore {
  put(key: string, body: Uint8Array, contentType: string): Promise<void>;
  /** Undefined when there is no such object. */
  get(key: string): Promise<Buffer | undefined>;
  /** The object's size, without reading it; undefined when there is no such object. */
  size(key: string): Promise<number | undefined>;
  /**
   * A presigned GET URL of the object, valid for `ttlSeconds`. `audience` says who follows it:
   * `node` (default), a booting machine, which may reach the object store at another address
   * than the site's agent does (SLIPWAY_S3_PUBLIC_ENDPOINT); `agent`, the site's agent.
   */
  presignGet(key: string, ttlSeconds: number, audience?: 'node' | 'agent'): Promise<string>;
  /** A presigned PUT URL for the object, valid for `ttlSeconds` (a site's agent uploading what it fetched). */
  presignPut(key: string, ttlSeconds: number, audience: 'agent'): Promise<string>;
  /** Deletes the object; one already gone is fine. */
  delete(key: string): Promise<void>;
  /** An object of any bucket the deployment may read (`s3://bucket/key`); undefined when missing. */
  getS3Url(bucket: string, key: string): Promise<Buffer | undefined>;
}

/** Starts the Drydock task workflow (Step Functions / the local runner). */
export interface TaskRunner {
  /** A name already used is not an error (a repeated request). */
  start(input: { task_id: string }, name: string): Promise<void>;
}
