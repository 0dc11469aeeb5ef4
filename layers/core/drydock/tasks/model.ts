import { createHash } from 'node:crypto';

/**
 * Drydock tasks (upstream-apis.md §1.3–1.4): the task record we store, the Status object
 * (`result`) with its arithmetic, and the task object exactly as upstream's code emits it.
 *
 * Status messages are stored apart from the task (one item each, appended without touching the
 * task record), so boot-action reports from many nodes never contend on the deploy task; the
 * `details.messageList` of the Status object is assembled when the task is read.
 *
 *   requested → queued → running → complete
 *                  └──────────────→ terminated (a queued task whose `terminate` flag is set)
 */
export const PUBLIC_ACTIONS = [
  'validate_design',
  'verify_site',
  'prepare_site',
  'verify_nodes',
  'prepare_nodes',
  'deploy_nodes',
  'destroy_nodes',
  'relabel_nodes',
] as const;
export type PublicAction = (typeof PUBLIC_ACTIONS)[number];

/** Actions that act per node: a subtask for each node in scope, run by the Map of the workflow. */
export const NODE_ACTIONS = ['verify_nodes', 'prepare_nodes', 'deploy_nodes', 'destroy_nodes', 'relabel_nodes'] as const satisfies readonly PublicAction[];
export type NodeAction = (typeof NODE_ACTIONS)[number];
export const isNodeAction = (a: string): a is NodeAction => (NODE_ACTIONS as readonly string[]).includes(a);

export const TASK_STATUSES = ['requested', 'queued', 'running', 'terminating', 'terminated', 'complete'] as const;
export type TaskStatus = (typeof TASK_STATUSES)[number];

export const TASK_TRANSITIONS: Record<TaskStatus, readonly TaskStatus[]> = {
  requested: ['queued'],
  queued: ['running', 'terminated'],
  running: ['complete', 'terminating'],
  terminating: ['terminated'],
  terminated: [],
  complete: [],
};

export const ACTION_RESULTS = ['incomplete', 'success', 'partial_success', 'failure', 'unreported'] as const;
export type ActionResult = (typeof ACTION_RESULTS)[number];

export const CONTEXT_TYPES = ['site', 'network', 'node', 'task', 'bootaction', 'NA'] as const;
export type ContextType = (typeof CONTEXT_TYPES)[number];

/** One status message (`details.messageList[i]`). */
export interface TaskMessage {
  message: string;
  error: boolean;
  context_type: ContextType;
  context: string | null;
  /** Python `str(datetime)`, as every Drydock timestamp. */
  ts: string;
  extra: Record<string, unknown>;
}

/** The stored part of the Status object; messages are kept apart (see above). */
export interface TaskResult {
  status: ActionResult;
  message: string | null;
  reason: string | null;
  successes: string[];
  failures: string[];
  links: { rel: string; href: string }[];
}

export interface TaskRecord {
  task_id: string;
  action: string;
  parent_task_id: string | null;
  design_ref: string;
  status: TaskStatus;
  result: TaskResult;
  node_filter: unknown;
  subtask_id_list: string[];
  /** ISO-8601; rendered as Python `str(datetime)`. */
  created: string;
  created_by: string | null;
  updated: string | null;
  terminated: string | null;
  terminated_by: string | null;
  terminate: boolean;
  retry: number;
  /** Ours: the design's Region (the site whose agent works for the task), once the design is read. */
  site?: string;
  /** Ours: the node a per-node subtask works on. */
  node_name?: string;
  /**
   * Ours: the project that owns the task (its creator's; subtasks inherit it), or null/absent for
   * a site task (an administrator's). A project task works only on the nodes the project's active
   * leases hold (workflow.ts). Not in the task object: upstream's shape has no such field.
   */
  project_id?: string | null;
  /** Ours: bumped by every write; updates are compare-and-set on it. */
  version: number;
}

/** A build-data record (`GET /tasks/{id}/builddata`, `GET /nodes/{name}/builddata`). */
export interface BuildData {
  node_name: string;
  task_id: string;
  /** ISO-8601; rendered as Python `str(datetime)`. */
  collected_date: string;
  generator: string;
  data_format: string;
  data_element: string;
}

export const emptyResult = (): TaskResult => ({ status: 'incomplete', message: null, reason: null, successes: [], failures: [], links: [] });

/** A new task record (top level unless `parent_task_id` is given): queued, nothing done yet. */
export function newTaskRecord(init: Pick<TaskRecord, 'task_id' | 'action' | 'design_ref' | 'created'> & Partial<TaskRecord>): TaskRecord {
  return {
    parent_task_id: null,
    status: 'queued',
    result: emptyResult(),
    node_filter: null,
    subtask_id_list: [],
    created_by: null,
    updated: null,
    terminated: null,
    terminated_by: null,
    terminate: false,
    retry: 0,
    version: 1,
    ...init,
  };
}

/**
 * Python's `str(datetime)` of an aware UTC datetime: `2024-05-01 12:00:00.123456+00:00`
 * (microseconds left out when zero, as Python does).
 */
export function pyTime(iso: string | null | undefined): string | null {
  if (!iso) return null;
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return null;
  const base = d.toISOString().slice(0, 19).replace('T', ' ');
  const ms = d.getUTCMilliseconds();
  return `${base}${ms ? `.${String(ms * 1000).padStart(6, '0')}` : ''}+00:00`;
}

const uniq = (xs: readonly string[]) => [...new Set(xs)];

/**
 * Upstream's `TaskStatus.success()` / `failure()` arithmetic: a success after a failure (or a
 * partial success) is a partial success, a failure after a success is a partial success,
 * otherwise the plain value. The entity, when given, joins `successes` or `failures`.
 */
export function addSuccess(r: TaskResult, entity?: string): TaskResult {
  const status: ActionResult = r.status === 'failure' || r.status === 'partial_success' ? 'partial_success' : 'success';
  return { ...r, status, successes: entity ? uniq([...r.successes, entity]) : r.successes };
}

export function addFailure(r: TaskResult, entity?: string): TaskResult {
  const status: ActionResult = r.status === 'success' || r.status === 'partial_success' ? 'partial_success' : 'failure';
  return { ...r, status, failures: entity ? uniq([...r.failures, entity]) : r.failures };
}

/**
 * A parent's result from its finished subtasks ("bubble" the entity lists, then "align" the
 * statuses): every node counted once, a node that failed anywhere is a failure; the status is
 * success when every subtask succeeded, failure when none did, else partial_success; with no
 * subtask at all it is success (nothing to do is not a failure: upstream issues #77/#89).
 */
export function aggregate(parent: TaskResult, subtasks: readonly Pick<TaskResult, 'status' | 'successes' | 'failures'>[]): TaskResult {
  const failures = uniq(subtasks.flatMap((s) => s.failures));
  const successes = uniq(subtasks.flatMap((s) => s.successes)).filter((n) => !failures.includes(n));
  const statuses = subtasks.map((s) => s.status).filter((s) => s !== 'unreported');
  let status: ActionResult;
  if (statuses.length === 0) status = 'success';
  else if (statuses.every((s) => s === 'success')) status = 'success';
  else if (statuses.every((s) => s === 'failure' || s === 'incomplete')) status = 'failure';
  else status = 'partial_success';
  return { ...parent, status, successes, failures };
}

/** The Status object as upstream emits it (`kind: Status`, `apiVersion: v1.0`). */
export function statusObject(r: TaskResult, messages: readonly TaskMessage[]) {
  return {
    kind: 'Status',
    apiVersion: 'v1.0',
    metadata: {},
    message: r.message,
    reason: r.reason,
    status: r.status,
    successes: r.successes,
    failures: r.failures,
    links: r.links,
    details: { errorCount: messages.filter((m) => m.error).length, messageList: messages },
  };
}

/** The task object exactly as upstream's code emits it (`kind: Task`, `apiVersion: v1`). */
export function taskObject(t: TaskRecord, messages: readonly TaskMessage[]) {
  return {
    kind: 'Task',
    apiVersion: 'v1',
    task_id: t.task_id,
    action: t.action,
    parent_task_id: t.parent_task_id,
    design_ref: t.design_ref,
    status: t.status,
    result: statusObject(t.result, messages),
    node_filter: t.node_filter ?? null,
    subtask_id_list: t.subtask_id_list,
    created: pyTime(t.created),
    created_by: t.created_by,
    updated: pyTime(t.updated),
    terminated: pyTime(t.terminated),
    terminated_by: t.terminated_by,
    terminate: t.terminate,
    retry: t.retry,
  };
}
export type TaskObject = ReturnType<typeof taskObject>;

export function buildDataView(b: BuildData) {
  return { ...b, collected_date: pyTime(b.collected_date) };
}

/** The first `n` characters (code points, as upstream's database counts them) of `s`. */
function head(s: string, n: number): string {
  const chars = Array.from(s);
  return chars.length > n ? chars.slice(0, n).join('') : s;
}

/**
 * A status message. Upstream stores `message` in 128 chars and `context` in 64; clients may
 * rely on that, so a longer text is cut there and kept (up to 4000 characters) in
 * `extra.detail`. Lengths count code points: a cut never splits a surrogate pair, which would
 * leave a lone surrogate in client-supplied text (boot-action reports).
 */
export function message(
  text: string,
  opts: { error?: boolean; context_type?: ContextType; context?: string | null; extra?: Record<string, unknown>; at: Date },
): TaskMessage {
  const long = Array.from(text).length > 127;
  return {
    message: long ? `${head(text, 126)}…` : text,
    error: opts.error ?? false,
    context_type: opts.context_type ?? 'task',
    context: opts.context === undefined || opts.context === null ? null : head(opts.context, 64),
    ts: pyTime(opts.at.toISOString())!,
    extra: { ...(opts.extra ?? {}), ...(long ? { detail: head(text, 4000) } : {}) },
  };
}

/**
 * The subtask id of `node` under `parent`: derived, not random, so a repeated workflow step
 * finds the subtasks it created before instead of making new ones (a UUID-shaped SHA-256 prefix).
 */
export function subtaskId(parentId: string, node: string): string {
  const h = createHash('sha256').update(`${parentId}\n${node}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-${((parseInt(h[16]!, 16) & 0x3) | 0x8).toString(16)}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
export const isUuid = (s: string) => UUID.test(s);
