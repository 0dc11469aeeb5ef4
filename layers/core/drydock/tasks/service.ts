import { randomUUID } from 'node:crypto';
import * as z from '../../util/zod.ts';
import { ForbiddenError, NotFoundError, ValidationError } from '../../errors.ts';
import { type Principal, requireAdmin } from '../../identity/identity.ts';
import type { Node } from '../../inventory/node.ts';
import type { Ports } from '../../ports.ts';
import { byteLength } from '../../util/bounds.ts';
import { type ListPage, type ListWindow, pageOf, parseListWindow } from '../../util/list-window.ts';
import { log } from '../../util/log.ts';
import { monotonicUlid } from '../bootactions/ulid.ts';
import { type DrydockScope, drydockScope, drydockWriter, ownerOf, PROJECT_ACTIONS, sees } from '../access.ts';
import { applyNodeFilter, effectiveData, findDocument, KINDS, type Kind, loadDesign, parseNodeFilter, projectDesignProblems, validationStatus } from '../design/index.ts';
import { checkDesignRefFor, DesignRefError, loadDesignRef, storedDesignTexts } from '../design-ref.ts';
import type { ListWindowQuery, StoredDesign } from '../store.ts';
import { addFailure, buildDataView, isUuid, message, newTaskRecord, PUBLIC_ACTIONS, pyTime, statusObject, type TaskObject, taskObject, type TaskRecord } from './model.ts';

/**
 * The Drydock API's use-cases (upstream-apis.md §1.1, §1.3): tasks, build data, node filters,
 * design validation and stored designs. Upstream's RBAC rules all default to `role:admin`, and so
 * do ours but for one flow (access.ts): a project's members create `deploy_nodes` and
 * `destroy_nodes` tasks with designs the project stored, and its members and readers read the
 * project's own tasks and designs. Task creation only checks the request and queues the task;
 * the workflow reads the design (so a wrong `design_ref` is a failed task, as upstream) and,
 * for a project's task, checks at every node step that the project's active lease holds the node.
 */

// ---------------------------------------------------------------------------------------------
// Tasks

/** `POST /tasks`: upstream's own checks and messages, without its 500s for a bad body. */
export const CreateTaskBody = z.looseObject({
  action: z.optional(z.string()),
  design_ref: z.optional(z.string()),
  node_filter: z.optional(z.unknown()),
});

const FIELDS_REQUIRED = 'Task creation requires fields design_ref, action';
/** Stored with the task (one item); a filter of node names and labels is far smaller. */
const MAX_NODE_FILTER_BYTES = 16 * 1024;

export async function createTask(deps: Ports, auth: Principal | undefined, raw: unknown): Promise<TaskObject> {
  const scope = drydockWriter(auth);
  const who = scope.who;
  if (raw === undefined || raw === null) throw new ValidationError(FIELDS_REQUIRED, 'INVALID_REQUEST');
  const parsed = CreateTaskBody.safeParse(raw);
  if (!parsed.success) throw new ValidationError(`${FIELDS_REQUIRED}: ${parsed.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; ')}`, 'INVALID_REQUEST');
  const body = parsed.data;
  if (!body.action || !body.design_ref) throw new ValidationError(FIELDS_REQUIRED, 'INVALID_REQUEST');
  if (!(PUBLIC_ACTIONS as readonly string[]).includes(body.action)) throw new ValidationError(`Unsupported action ${body.action}`, 'INVALID_REQUEST');
  // Upstream's per-action policy: a project may run deploy_nodes and destroy_nodes only.
  if (scope.kind === 'project' && !PROJECT_ACTIONS.includes(body.action)) {
    throw new ForbiddenError(`Action ${body.action} is restricted to administrators; a project may run ${PROJECT_ACTIONS.join(' and ')} on the nodes its active leases hold`);
  }
  await checkDesignRefFor(deps, body.design_ref, { project: ownerOf(scope) });
  let nodeFilter: unknown = null;
  if (body.node_filter !== undefined && body.node_filter !== null) {
    if (byteLength(JSON.stringify(body.node_filter)) > MAX_NODE_FILTER_BYTES) throw new ValidationError(`node_filter is larger than ${MAX_NODE_FILTER_BYTES} bytes`, 'INVALID_REQUEST');
    parseNodeFilter(body.node_filter); // 400 with the reason when malformed
    nodeFilter = body.node_filter;
  }
  const at = deps.clock.now().toISOString();
  // Upstream creates the task `requested` and queues it at once; nothing ever sees `requested`.
  const task = newTaskRecord({
    task_id: randomUUID(),
    action: body.action,
    design_ref: body.design_ref,
    node_filter: nodeFilter,
    created: at,
    created_by: who.user_id.slice(0, 16),
    project_id: ownerOf(scope),
  });
  await deps.drydock.createTask(task);
  try {
    await deps.tasks.start({ task_id: task.task_id }, task.task_id);
  } catch (err) {
    // Nothing will run it: it is complete, failed, with the reason, rather than queued forever.
    log.error('drydock task not started', { task_id: task.task_id, error: (err as Error).message });
    await deps.drydock.addMessages(task.task_id, [message('The task workflow could not be started', { error: true, context_type: 'task', context: task.task_id, at: deps.clock.now() })]);
    const failed = await deps.drydock.updateTask(task, { ...task, status: 'complete', result: addFailure(task.result), updated: deps.clock.now().toISOString() });
    return taskObject(failed, await deps.drydock.messages(task.task_id));
  }
  return taskObject(task, []);
}

async function objectOf(deps: Ports, t: TaskRecord, opts: { builddata?: boolean } = {}) {
  const obj: TaskObject & { build_data?: unknown[] } = taskObject(t, await deps.drydock.messages(t.task_id));
  if (opts.builddata) obj.build_data = (await deps.drydock.buildDataOfTask(t.task_id)).map(buildDataView);
  return obj;
}

/** Maps with bounded concurrency (a list of many tasks reads each one's messages). */
async function mapLimited<T, R>(items: readonly T[], limit: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]!);
      }
    }),
  );
  return out;
}

/**
 * Most tasks one `GET /tasks` answers. Each brings its messages (one query each), and the answer
 * must fit a Lambda response (6 MB) with room for tasks that carry many messages.
 */
export const TASK_LIST_MAX = 500;
/** Most design ids one `GET /designs` answers (ids only: no read per design). */
export const DESIGN_LIST_MAX = 1000;

/**
 * One window of a Drydock list (tasks or designs), read from the index of what the scope sees:
 * every item for the site, the project's own for a project (its own index partition, so a
 * project's page never reads other projects' items). Without `limit` and `marker`, the newest
 * `limit` items, oldest first: upstream's whole list while it is shorter than that. With them,
 * `limit` items after the marker (an item the scope sees, else 404 as a missing one).
 */
async function listWindow<T>(
  scope: DrydockScope,
  w: ListWindow,
  read: (q: ListWindowQuery) => Promise<T[]>,
  markerOf: (id: string) => Promise<{ created: string; id: string }>,
  idOf: (t: T) => string,
): Promise<ListPage<T>> {
  const project = scope.kind === 'project' ? { project: scope.project } : {};
  const after = w.marker !== undefined ? await markerOf(w.marker) : undefined;
  // One item more than the page: it only tells whether another page follows.
  const newest = !w.paging;
  return pageOf(await read({ ...project, limit: w.limit + 1, ...(after ? { after } : { newest }) }), w.limit, idOf, newest);
}

/**
 * `GET /tasks`: tasks, subtasks included, oldest first, as upstream (a JSON array of whole task
 * objects); a project's members and readers get the project's own only. Upstream has no paging
 * and answers every task; we answer the newest TASK_LIST_MAX (all of them on a site with fewer),
 * and `limit`/`marker` page through the whole list (the route's `Link` header names the next
 * page). Only the page's tasks have their messages read.
 */
export async function listTasks(deps: Ports, auth: Principal | undefined, query: Record<string, string> = {}): Promise<ListPage<TaskObject>> {
  const scope = drydockScope(auth);
  const page = await listWindow(
    scope,
    parseListWindow(query, TASK_LIST_MAX),
    (q) => deps.drydock.taskWindow(q),
    async (id) => {
      const t = await findTask(deps, scope, id);
      return { created: t.created, id: t.task_id };
    },
    (t) => t.task_id,
  );
  return { ...page, items: await mapLimited(page.items, 16, (t) => objectOf(deps, t)) };
}

const bool = (v: string | undefined) => v !== undefined && /^(true|1|yes)$/i.test(v);

/** The task, if `scope` may see it: another project's is missing, with the same 404. */
async function findTask(deps: Ports, scope: DrydockScope, id: string): Promise<TaskRecord> {
  const t = isUuid(id) ? await deps.drydock.getTask(id.toLowerCase()) : undefined;
  if (!t || !sees(scope, t.project_id)) throw new NotFoundError(`Task ${id} does not exist`);
  return t;
}

/** Descendants of `root` down to `depth` layers below it (-1: all), breadth first. */
async function descendants(deps: Ports, root: TaskRecord, depth: number): Promise<TaskRecord[]> {
  const out: TaskRecord[] = [];
  let level = [root];
  for (let d = 0; (depth < 0 || d < depth) && level.length > 0; d++) {
    const ids = level.flatMap((t) => t.subtask_id_list);
    level = ids.length ? await deps.drydock.getTasks(ids) : [];
    out.push(...level);
  }
  return out;
}

/**
 * `GET /tasks/{id}` with upstream's query parameters: `builddata=true` adds `build_data`,
 * `subtaskerrors=true` adds `subtask_errors` (every descendant whose messages include an
 * error), `layers=N` (or -1) answers the flat map `{init_task_id, <id>: task, …}` of N layers.
 */
export async function showTask(deps: Ports, auth: Principal | undefined, id: string, query: Record<string, string>) {
  const task = await findTask(deps, drydockScope(auth), id);
  const builddata = bool(query.builddata);
  const layersRaw = Number(query.layers);
  const layers = Number.isInteger(layersRaw) ? layersRaw : 0;
  let subtaskErrors: Record<string, unknown> | undefined;
  if (bool(query.subtaskerrors)) {
    subtaskErrors = {};
    for (const d of await descendants(deps, task, -1)) {
      const messages = await deps.drydock.messages(d.task_id);
      if (messages.some((m) => m.error)) subtaskErrors[d.task_id] = { ...statusObject(d.result, messages), task_id: d.task_id };
    }
  }
  if (layers === 0 || layers < -1) {
    const obj: Record<string, unknown> = await objectOf(deps, task, { builddata });
    if (subtaskErrors) obj.subtask_errors = subtaskErrors;
    return obj;
  }
  const flat: Record<string, unknown> = { init_task_id: task.task_id };
  const all = [task, ...(await descendants(deps, task, layers === -1 ? -1 : layers - 1))];
  for (const t of all) flat[t.task_id] = await objectOf(deps, t, { builddata });
  if (subtaskErrors) flat.subtask_errors = subtaskErrors;
  return flat;
}

/** `GET /tasks/{id}/builddata`: 404 when there is none. */
export async function taskBuildData(deps: Ports, auth: Principal | undefined, id: string) {
  const task = await findTask(deps, drydockScope(auth), id);
  const ids = [task.task_id, ...(await descendants(deps, task, -1)).map((t) => t.task_id)];
  const records = (await Promise.all(ids.map((i) => deps.drydock.buildDataOfTask(i)))).flat();
  if (records.length === 0) throw new NotFoundError(`No build data found for task ${id}`);
  return records.map(buildDataView);
}

/**
 * `GET /nodes/{hostname}/builddata[?latest=true]` (latest: the newest record per generator).
 * Admins only: a node's build data spans every task and tenant that ever worked on it.
 */
export async function nodeBuildData(deps: Ports, auth: Principal | undefined, hostname: string, query: Record<string, string>) {
  requireAdmin(auth);
  let records = await deps.drydock.buildDataOfNode(hostname);
  if (bool(query.latest)) {
    const newest = new Map<string, (typeof records)[number]>();
    for (const r of records) if (!newest.has(r.generator) || newest.get(r.generator)!.collected_date < r.collected_date) newest.set(r.generator, r);
    records = [...newest.values()];
  }
  if (records.length === 0) throw new NotFoundError('No build data found');
  return records.map(buildDataView);
}

/** `DELETE /tasks?days=N`: finished tasks older than N days (default 90; not an integer → 90). */
export async function purgeTasks(deps: Ports, auth: Principal | undefined, query: Record<string, string>): Promise<number> {
  requireAdmin(auth);
  const n = Number(query.days);
  const days = query.days !== undefined && Number.isInteger(n) && n >= 0 ? n : 90;
  const purged = await deps.drydock.purgeTasks(new Date(deps.clock.now().getTime() - days * 86_400_000));
  if (purged === 0) throw new NotFoundError(`No tasks older than ${days} days to purge`);
  return purged;
}

/**
 * `GET /nodes`: the inventory's nodes with a BMC (upstream: its node provisioner's live view), each
 * with its boot MAC: its PXE port's (Ironic ports), if it has one. Admins only: it shows BMC
 * addresses (a project sees its leased nodes through Ironic, redacted).
 */
export async function listDrydockNodes(deps: Ports, auth: Principal | undefined): Promise<{ node: Node; bootMac: string | null }[]> {
  requireAdmin(auth);
  const [nodes, ports] = await Promise.all([deps.nodes.list(), deps.bmPorts.list()]);
  const pxe = new Map<string, string>();
  for (const p of ports.filter((x) => x.pxe_enabled).sort((a, b) => a.created_at.localeCompare(b.created_at))) if (!pxe.has(p.node_uuid)) pxe.set(p.node_uuid, p.address);
  return nodes.filter((n) => n.bmc).map((node) => ({ node, bootMac: pxe.get(node.id) ?? null }));
}

/** `GET /health/extended`: reaching the table is the health of a serverless Drydock (no controller, no MaaS). */
export async function extendedHealth(deps: Ports, auth: Principal | undefined) {
  requireAdmin(auth);
  const started = Date.now();
  await deps.drydock.siteHolders('health');
  return { state_manager: { healthy: true, latency_ms: Date.now() - started }, node_provisioner: { healthy: true, kind: 'slipway-agent' } };
}

// ---------------------------------------------------------------------------------------------
// Node filter and validation

export const NodeFilterBody = z.looseObject({ design_ref: z.optional(z.string()), node_filter: z.optional(z.unknown()) });

/** `POST /nodefilter`: the names the filter selects in the design (null filter: every node). */
export async function nodeFilter(deps: Ports, auth: Principal | undefined, raw: unknown): Promise<string[]> {
  // A POST that changes nothing, but readers make no POSTs (the house rule for every surface).
  const scope = drydockWriter(auth);
  const body = NodeFilterBody.safeParse(raw ?? {});
  if (!body.success || !body.data.design_ref) throw new ValidationError('NodeFilter requires a design_ref', 'INVALID_REQUEST');
  const loaded = await loadDesignRef(deps, body.data.design_ref, { project: ownerOf(scope) });
  if (!loaded.valid) throw new ValidationError('The site design failed validation; run validate_design for the messages', 'INVALID_DESIGN');
  return applyNodeFilter(loaded.design, body.data.node_filter ?? null);
}

export const ValidateDesignBody = z.looseObject({ rel: z.optional(z.string()), href: z.optional(z.string()), type: z.optional(z.string()) });

/**
 * `POST /validatedesign`: the Status object with `code` 200 (valid) or 400 (invalid, or the
 * design could not be read), which is also the HTTP status.
 */
export async function validateDesignRef(deps: Ports, auth: Principal | undefined, raw: unknown): Promise<{ code: number; body: Record<string, unknown> }> {
  const scope = drydockWriter(auth);
  const body = ValidateDesignBody.safeParse(raw);
  if (raw === undefined || !body.success || !body.data.href) throw new ValidationError('Validation requires a body {"rel": "design", "href": <design_ref>, "type": "application/x-yaml"}', 'INVALID_REQUEST');
  try {
    // A project's design is validated by the rules its tasks apply (no OOB; no asset locations).
    const loaded = await loadDesignRef(deps, body.data.href, { project: ownerOf(scope) });
    const status = validationStatus(loaded.messages);
    const code = loaded.valid ? 200 : 400;
    return { code, body: { ...status, code } };
  } catch (err) {
    if (!(err instanceof DesignRefError)) throw err;
    const status = validationStatus([{ kind: 'ValidationMessage', name: 'DD000', message: err.message, error: true, level: 'Error', diagnostic: 'Check design_ref and that the design is reachable from Slipway.', documents: [] }]);
    return { code: 400, body: { ...status, code: 400 } };
  }
}

// ---------------------------------------------------------------------------------------------
// Stored designs (`design_ref: slipway://designs/<id>`)

export const designRef = (id: string) => `slipway://designs/${id}`;

function designView(d: StoredDesign) {
  return {
    id: d.design_id,
    design_id: d.design_id,
    base_design_id: d.base_design_id,
    design_ref: designRef(d.design_id),
    created: pyTime(d.created),
    created_by: d.created_by,
    project_id: d.project_id ?? null,
  };
}

export const CreateDesignBody = z.optional(z.nullable(z.strictObject({ base_design_id: z.optional(z.nullable(z.uuid())) })));

/**
 * `POST /designs`: an administrator's design is the site's; a member's belongs to its project,
 * which alone sees and uses it. A project's base design must be its own (the site's designs hold
 * BMC credentials; another project's are not its to read).
 */
export async function createDesign(deps: Ports, auth: Principal | undefined, raw: unknown) {
  const scope = drydockWriter(auth);
  const body = CreateDesignBody.safeParse(raw);
  if (!body.success) throw new ValidationError(`Invalid design: ${body.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; ')}`, 'INVALID_REQUEST');
  const base = body.data?.base_design_id ?? null;
  if (base) {
    const b = await deps.drydock.getDesign(base);
    if (!b || !sees(scope, b.project_id)) throw new ValidationError(`Base design ${base} does not exist`, 'INVALID_REQUEST');
  }
  const d: StoredDesign = { design_id: randomUUID(), base_design_id: base, created: deps.clock.now().toISOString(), created_by: scope.who.user_id, project_id: ownerOf(scope) };
  await deps.drydock.createDesign(d);
  return designView(d);
}

/** The design, if `scope` may see it: another project's (or, for a project, the site's) is missing. */
async function findDesign(deps: Ports, scope: DrydockScope, id: string): Promise<StoredDesign> {
  const d = isUuid(id) ? await deps.drydock.getDesign(id.toLowerCase()) : undefined;
  if (!d || !sees(scope, d.project_id)) throw new NotFoundError(`Design ${id} not found`);
  return d;
}

/** `GET /designs`: the ids of the stored designs the scope sees, oldest first, a window as `GET /tasks`. */
export async function listDesigns(deps: Ports, auth: Principal | undefined, query: Record<string, string> = {}): Promise<ListPage<string>> {
  const scope = drydockScope(auth);
  const page = await listWindow(
    scope,
    parseListWindow(query, DESIGN_LIST_MAX),
    (q) => deps.drydock.designWindow(q),
    async (id) => {
      const d = await findDesign(deps, scope, id);
      return { created: d.created, id: d.design_id };
    },
    (d) => d.design_id,
  );
  return { ...page, items: page.items.map((d) => d.design_id) };
}

/** The documents of a stored design (with its base design's), by kind; `compiled` applies profile inheritance to nodes. */
async function designDocuments(deps: Ports, d: StoredDesign, source: string | undefined) {
  // A project's design reads only its own base designs (createDesign keeps it so; checked again).
  const texts = await storedDesignTexts(deps, d.design_id, { project: d.project_id ?? null });
  const { design } = loadDesign(texts);
  const compiled = source === 'compiled';
  const out: Record<string, { name: string; schema: string; data: unknown }[]> = {};
  for (const kind of KINDS) {
    out[kind] = design[kind].map((doc) => ({
      name: doc.name,
      schema: doc.schema,
      data: compiled && (doc.kind === 'BaremetalNode' || doc.kind === 'HostProfile') ? effectiveData(design, doc as never).data : doc.data,
    }));
  }
  return { design, out };
}

const SOURCES = ['designed', 'compiled'];

export async function showDesign(deps: Ports, auth: Principal | undefined, id: string, query: Record<string, string>) {
  const d = await findDesign(deps, drydockScope(auth), id);
  const source = query.source ?? 'designed';
  if (!SOURCES.includes(source)) throw new ValidationError(`source must be designed or compiled, not ${source}`, 'INVALID_REQUEST');
  const { out } = await designDocuments(deps, d, source);
  return { ...designView(d), source, documents: out };
}

const nextPartId = monotonicUlid();

/** `POST /designs/{id}/parts?ingester=NAME`: YAML documents; 400 with the parser's messages when they do not parse. */
const MAX_PART_BYTES = 256 * 1024;

export async function addDesignPart(deps: Ports, auth: Principal | undefined, id: string, text: unknown, query: Record<string, string>) {
  const d = await findDesign(deps, drydockWriter(auth), id);
  if (typeof text !== 'string' || text.trim() === '') throw new ValidationError('The body must be YAML documents', 'INVALID_REQUEST');
  // A part is stored as one item (DynamoDB items hold 400 KB): a larger site is several parts.
  if (byteLength(text) > MAX_PART_BYTES) throw new ValidationError(`A design part is at most ${MAX_PART_BYTES / 1024} KiB; send a larger design as several parts`, 'INVALID_REQUEST');
  const ingester = query.ingester ?? 'yaml';
  if (ingester !== 'yaml' && ingester !== 'deckhand') throw new ValidationError(`Unknown ingester ${ingester} (yaml, deckhand)`, 'INVALID_REQUEST');
  const { design, messages } = loadDesign([text]);
  const errors = messages.filter((m) => m.error);
  if (errors.length > 0) throw new ValidationError(`The documents do not parse: ${errors.map((m) => m.message).join('; ').slice(0, 2000)}`, 'INVALID_DESIGN');
  // A project's design never makes Slipway fetch a URL (docs/security.md): refused here,
  // whoever adds the part, and again by the validation its tasks run.
  const problems = d.project_id ? projectDesignProblems(design) : [];
  if (problems.length > 0) throw new ValidationError(`${problems.map((p) => p.text).join(' ').slice(0, 2000)} Give the assets inline data instead.`, 'INVALID_DESIGN');
  await deps.drydock.addDesignPart({ design_id: d.design_id, part_id: nextPartId(), ingester, text, added_at: deps.clock.now().toISOString() });
  return showDesign(deps, auth, d.design_id, {});
}

export async function listDesignParts(deps: Ports, auth: Principal | undefined, id: string) {
  const d = await findDesign(deps, drydockScope(auth), id);
  const { design } = await designDocuments(deps, d, 'designed');
  return KINDS.flatMap((kind) => design[kind].map((doc) => ({ kind, key: doc.name })));
}

function kindOf(raw: string): Kind {
  const kind = raw === 'Site' ? 'Region' : raw;
  if (!(KINDS as readonly string[]).includes(kind)) throw new NotFoundError(`Unknown design part kind ${raw}`);
  return kind as Kind;
}

export async function listDesignPartsOfKind(deps: Ports, auth: Principal | undefined, id: string, rawKind: string, query: Record<string, string>) {
  const d = await findDesign(deps, drydockScope(auth), id);
  const { out } = await designDocuments(deps, d, query.source);
  return out[kindOf(rawKind)] ?? [];
}

export async function showDesignPart(deps: Ports, auth: Principal | undefined, id: string, rawKind: string, name: string, query: Record<string, string>) {
  const d = await findDesign(deps, drydockScope(auth), id);
  const kind = kindOf(rawKind);
  const { design, out } = await designDocuments(deps, d, query.source);
  if (!findDocument(design, kind, name)) throw new NotFoundError(`${rawKind} ${name} not found in design ${id}`);
  return out[kind]?.find((doc) => doc.name === name);
}
