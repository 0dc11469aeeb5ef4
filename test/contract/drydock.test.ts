import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ApiResponse, adminToken, call, tokenFor } from '../support/api.ts';
import { DRYDOCK_TASK_KEYS } from '../support/drydock-site.ts';
import { waitFor } from '../support/wait.ts';

/**
 * Drydock `/api/v1.0` as its Python client uses it (client-contracts.md §4, upstream-apis.md
 * §1): each request is replayed byte for byte as `drydock_provisioner.drydock_client` sends it
 * through python-requests (its headers, `json.dumps` bodies, its query strings), and the answer
 * is checked against what the client and upstream's API promise.
 *
 * Tasks here get a design_ref that cannot be read, so on the shared stack they finish at once,
 * as failures, without an agent. The purge test runs last: it removes every finished task.
 */

/** What python-requests 2.28.1 sends on every request of a DrydockSession. */
const PY_HEADERS = { 'User-Agent': 'python-requests/2.28.1', 'Accept-Encoding': 'gzip, deflate', Accept: '*/*' };
/** A design_ref nothing answers (the discard port): the task fails while reading the design. */
const UNREACHABLE = 'http://127.0.0.1:9/none.yaml';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
/** Python `str(datetime)` of an aware UTC datetime. */
const PY_TIME = /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d{6})?\+00:00$/;
const TASK_KEYS = [...DRYDOCK_TASK_KEYS].sort();
const STATUS_KEYS = ['kind', 'apiVersion', 'metadata', 'message', 'reason', 'status', 'successes', 'failures', 'links', 'details'].sort();

/**
 * Python's `json.dumps(obj)` with its defaults, which is what `requests.post(json=…)` sends:
 * `", "` and `": "` separators and every non-ASCII character escaped.
 */
function pyDumps(v: unknown): string {
  if (v === null || v === undefined) return 'null';
  if (Array.isArray(v)) return `[${v.map(pyDumps).join(', ')}]`;
  if (typeof v === 'object') return `{${Object.entries(v as Record<string, unknown>).map(([k, x]) => `${pyDumps(k)}: ${pyDumps(x)}`).join(', ')}}`;
  return JSON.stringify(v).replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/**
 * One request as DrydockSession makes it: `X-Auth-Token` from its auth_gen, and for a POST with
 * `data=` (the client's JSON form) the json.dumps body and `Content-Type: application/json`.
 */
function dd(method: string, path: string, opts: { json?: unknown; raw?: string; contentType?: string; token?: string | null } = {}): Promise<ApiResponse> {
  const headers: Record<string, string> = { ...PY_HEADERS };
  let rawBody: string | undefined;
  if (opts.json !== undefined) {
    rawBody = pyDumps(opts.json);
    headers['Content-Type'] = 'application/json';
  } else if (opts.raw !== undefined) {
    rawBody = opts.raw;
    if (opts.contentType) headers['Content-Type'] = opts.contentType;
  }
  return call(method, path, { token: opts.token === undefined ? adminToken() : opts.token, headers, ...(rawBody !== undefined ? { rawBody } : {}) });
}

/** `DrydockClient.create_task(design_ref, action, node_filter)`. */
const createTask = (action: string, designRef = UNREACHABLE, nodeFilter: unknown = null) =>
  dd('POST', '/api/v1.0/tasks', { json: { action, design_ref: designRef, node_filter: nodeFilter } });

/** The `-n n1,n2` form of the CLI's `task create`. */
const cliNodeFilter = (names: string[]) => ({ filter_set_type: 'intersection', filter_set: [{ filter_type: 'union', node_names: names, rack_names: [] }] });

function expectDrydockError(res: ApiResponse, status: number, message?: string | RegExp) {
  expect(res.status, res.text).toBe(status);
  expect(res.headers.get('content-type')).toMatch(/^application\/json/);
  expect(res.body).toMatchObject({ type: 'error', retry: false });
  expect(typeof res.body.message).toBe('string');
  if (typeof message === 'string') expect(res.body.message).toBe(message);
  else if (message) expect(res.body.message).toMatch(message);
}

function expectTaskObject(t: any) {
  expect(Object.keys(t).sort()).toEqual(TASK_KEYS);
  expect(t).toMatchObject({ kind: 'Task', apiVersion: 'v1', parent_task_id: null, terminate: false, retry: 0 });
  expect(t.task_id).toMatch(UUID);
  expect(t.created).toMatch(PY_TIME);
  expect(typeof t.created_by).toBe('string');
  expect(Object.keys(t.result).sort()).toEqual(STATUS_KEYS);
  expect(t.result).toMatchObject({ kind: 'Status', apiVersion: 'v1.0', metadata: {} });
  expect(t.result.details.errorCount).toBe(t.result.details.messageList.filter((m: any) => m.error).length);
}

async function finished(taskId: string): Promise<any> {
  return waitFor(
    `task ${taskId} to complete`,
    async () => {
      const res = await dd('GET', `/api/v1.0/tasks/${taskId}`);
      expect(res.status, res.text).toBe(200);
      return res.body.status === 'complete' ? res.body : undefined;
    },
    30_000,
    150,
  );
}

/** A design server that answers 404 for everything, as Deckhand does for an unknown revision. */
let designServer: Server;
let missingDesign: string;

beforeAll(async () => {
  designServer = createServer((_req, res) => res.writeHead(404, { 'Content-Type': 'text/plain' }).end('no such revision'));
  await new Promise<void>((r) => designServer.listen(0, '127.0.0.1', r));
  missingDesign = `http://127.0.0.1:${(designServer.address() as { port: number }).port}/api/v1.0/revisions/999/rendered-documents`;
});
afterAll(async () => {
  await new Promise((r) => designServer?.close(r));
});

describe('Drydock: versions and health (no token)', () => {
  it('GET /versions answers the one stable version', async () => {
    const res = await dd('GET', '/versions', { token: null });
    expect(res.status, res.text).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    expect(res.body).toEqual({ 'v1.0': { path: '/api/v1.0', status: 'stable' } });
  });

  it('GET /api/v1.0/health answers 204 without a body, with or without a trailing slash', async () => {
    for (const path of ['/api/v1.0/health', '/api/v1.0/health/']) {
      const res = await dd('GET', path, { token: null });
      expect(res.status, `${path}: ${res.text}`).toBe(204);
      expect(res.text).toBe('');
    }
  });
});

describe('Drydock: tasks', () => {
  it('task create: 201, Location, the whole task object, queued', async () => {
    const res = await createTask('verify_site');
    expect(res.status, res.text).toBe(201);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    expect(res.headers.get('location')).toBe(`/api/v1.0/tasks/${res.body.task_id}`);
    expectTaskObject(res.body);
    expect(res.body).toMatchObject({
      action: 'verify_site',
      design_ref: UNREACHABLE,
      status: 'queued',
      node_filter: null,
      subtask_id_list: [],
      updated: null,
      terminated: null,
      terminated_by: null,
    });
    expect(res.body.result).toMatchObject({ status: 'incomplete', message: null, reason: null, successes: [], failures: [], links: [], details: { errorCount: 0, messageList: [] } });
  });

  it('task create -n: the CLI node filter is accepted and echoed as sent', async () => {
    const filter = cliNodeFilter(['rack1-n01', 'rack1-n02']);
    const res = await createTask('prepare_nodes', UNREACHABLE, filter);
    expect(res.status, res.text).toBe(201);
    expect(res.body.node_filter).toEqual(filter);
    const shown = await dd('GET', `/api/v1.0/tasks/${res.body.task_id}`);
    expect(shown.body.node_filter).toEqual(filter);
    expectDrydockError(await createTask('prepare_nodes', UNREACHABLE, { ...filter, filter_set_type: 'xor' }), 400, /^Invalid node_filter\.filter_set_type/);
  });

  it('accepts every public action and refuses any other with 400 Unsupported action', async () => {
    for (const action of ['validate_design', 'verify_site', 'prepare_site', 'verify_nodes', 'prepare_nodes', 'deploy_nodes', 'destroy_nodes', 'relabel_nodes']) {
      const res = await createTask(action);
      expect(res.status, `${action}: ${res.text}`).toBe(201);
      expect(res.body.action).toBe(action);
    }
    for (const action of ['launch_missiles', 'deploy_node', 'interrogate_oob', 'DEPLOY_NODES']) {
      expectDrydockError(await createTask(action), 400, `Unsupported action ${action}`);
    }
  });

  it('answers 400 Task creation requires fields design_ref, action for a missing field or an empty body (never 500)', async () => {
    const required = 'Task creation requires fields design_ref, action';
    expectDrydockError(await dd('POST', '/api/v1.0/tasks', { json: { action: 'verify_site', node_filter: null } }), 400, required);
    expectDrydockError(await dd('POST', '/api/v1.0/tasks', { json: { design_ref: UNREACHABLE, node_filter: null } }), 400, required);
    expectDrydockError(await dd('POST', '/api/v1.0/tasks', { json: { action: 'verify_site', design_ref: null, node_filter: null } }), 400, new RegExp(`^${required}`));
    expectDrydockError(await dd('POST', '/api/v1.0/tasks', { json: {} }), 400, required);
    expectDrydockError(await dd('POST', '/api/v1.0/tasks', { raw: '', contentType: 'application/json' }), 400, required);
    expectDrydockError(await dd('POST', '/api/v1.0/tasks', { raw: 'null', contentType: 'application/json' }), 400, required);
    expectDrydockError(await dd('POST', '/api/v1.0/tasks', { raw: '[]', contentType: 'application/json' }), 400, new RegExp(`^${required}`));
  });

  it('answers 400, not 500, for a body that is not JSON', async () => {
    // Upstream falls into its catch-all here and answers 500 Unknown error (upstream-apis §1.2).
    const malformed = await dd('POST', '/api/v1.0/tasks', { raw: '{"action": "verify_site", ', contentType: 'application/json' });
    expectDrydockError(malformed, 400, /JSON/);
    // requests' data=<dict> without json= sends a form body.
    const form = await dd('POST', '/api/v1.0/tasks', { raw: 'action=verify_site&design_ref=http%3A%2F%2Fx', contentType: 'application/x-www-form-urlencoded' });
    expectDrydockError(form, 400, /Content-Type must be application\/json/);
  });

  it('refuses a design_ref it can never read with 400 (file://, not a URI)', async () => {
    expectDrydockError(await createTask('verify_site', 'file:///etc/site.yaml'), 400, /^file:\/\/ design references are not served/);
    expectDrydockError(await createTask('verify_site', 'site.yaml'), 400, /is not a URI/);
  });

  it('task list: a JSON array of whole task objects, with the new task in it', async () => {
    const created = (await createTask('verify_nodes')).body;
    const res = await dd('GET', '/api/v1.0/tasks');
    expect(res.status, res.text).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    expect(Array.isArray(res.body)).toBe(true);
    const mine = (res.body as any[]).find((t) => t.task_id === created.task_id);
    expect(mine).toBeDefined();
    expectTaskObject(mine);
    expect(mine).toMatchObject({ action: 'verify_nodes', design_ref: UNREACHABLE, created: created.created });
    for (const t of res.body as any[]) expect(Object.keys(t).sort()).toEqual(TASK_KEYS);
  });

  it('task show: 200 with the task object; the trailing-slash forms are the same routes', async () => {
    const created = (await createTask('verify_site')).body;
    const res = await dd('GET', `/api/v1.0/tasks/${created.task_id}`);
    expect(res.status, res.text).toBe(200);
    expectTaskObject(res.body);
    expect(res.body).toMatchObject({ task_id: created.task_id, action: 'verify_site', created: created.created });

    const slash = await dd('GET', `/api/v1.0/tasks/${created.task_id}/`);
    expect(slash.status, slash.text).toBe(200);
    expect(slash.body.task_id).toBe(created.task_id);
    const list = await dd('GET', '/api/v1.0/tasks/');
    expect(list.status, list.text).toBe(200);
    expect((list.body as any[]).some((t) => t.task_id === created.task_id)).toBe(true);
    const post = await dd('POST', '/api/v1.0/tasks/', { json: { action: 'verify_site', design_ref: UNREACHABLE, node_filter: null } });
    expect(post.status, post.text).toBe(201);
    expect(post.headers.get('location')).toBe(`/api/v1.0/tasks/${post.body.task_id}`);
  });

  it('task show with builddata, subtaskerrors and layers as the client builds the query', async () => {
    const task = await finished((await createTask('verify_site')).body.task_id);
    const id = task.task_id;

    const withData = await dd('GET', `/api/v1.0/tasks/${id}?builddata=true`);
    expect(withData.status, withData.text).toBe(200);
    expect(withData.body.build_data).toEqual([]);
    expect(withData.body.task_id).toBe(id);

    const errors = await dd('GET', `/api/v1.0/tasks/${id}?subtaskerrors=true`);
    expect(errors.body.subtask_errors).toEqual({});
    expect(errors.body.task_id).toBe(id);

    // layers=N: the flat map {init_task_id, <id>: task, …} (this task has no subtasks).
    const flat = await dd('GET', `/api/v1.0/tasks/${id}?builddata=true&subtaskerrors=true&layers=2`);
    expect(flat.status, flat.text).toBe(200);
    expect(Object.keys(flat.body).sort()).toEqual([id, 'init_task_id', 'subtask_errors'].sort());
    expect(flat.body.init_task_id).toBe(id);
    expect(flat.body.subtask_errors).toEqual({});
    const { build_data, ...inner } = flat.body[id];
    expect(build_data).toEqual([]);
    expect(inner).toEqual(task);
    const all = await dd('GET', `/api/v1.0/tasks/${id}?layers=-1`);
    expect(Object.keys(all.body).sort()).toEqual([id, 'init_task_id'].sort());
    // A layers value that is not an integer leaves the normal shape.
    expect((await dd('GET', `/api/v1.0/tasks/${id}?layers=two`)).body).toEqual(task);
  });

  it('answers 404 Task X does not exist for an unknown or malformed id', async () => {
    const unknown = randomUUID();
    expectDrydockError(await dd('GET', `/api/v1.0/tasks/${unknown}`), 404, `Task ${unknown} does not exist`);
    expectDrydockError(await dd('GET', '/api/v1.0/tasks/not-a-task'), 404, 'Task not-a-task does not exist');
    expectDrydockError(await dd('GET', `/api/v1.0/tasks/${unknown}?builddata=true&subtaskerrors=true&layers=-1`), 404, `Task ${unknown} does not exist`);
  });

  it('a task whose design_ref answers an HTTP error ends complete, failed, with the HTTP status in its messages', async () => {
    const t = await finished((await createTask('deploy_nodes', missingDesign)).body.task_id);
    expectTaskObject(t);
    expect(t.status).toBe('complete');
    expect(t.updated).toMatch(PY_TIME);
    expect(t.subtask_id_list).toEqual([]);
    expect(t.result).toMatchObject({ status: 'failure', message: 'Design could not be read.', successes: [], failures: [] });
    expect(t.result.reason).toContain('HTTP 404');
    expect(t.result.details.errorCount).toBeGreaterThanOrEqual(1);
    const msg = (t.result.details.messageList as any[]).find((m) => m.error && m.message.includes('HTTP 404'));
    expect(msg).toMatchObject({ error: true, context_type: 'task', context: t.task_id, extra: {} });
    expect(msg.message).toBe(`Design ${missingDesign} could not be fetched: HTTP 404`);
    expect(msg.ts).toMatch(PY_TIME);
  });

  it('a task whose design_ref does not answer at all ends complete and failed, naming the reference', async () => {
    const t = await finished((await createTask('verify_nodes')).body.task_id);
    expect(t.result.status).toBe('failure');
    // Port 9 is on fetch's list of blocked ports: the reason is fetch's own.
    expect(t.result.details.messageList.some((m: any) => m.error && m.message === `Design ${UNREACHABLE} could not be fetched: bad port`)).toBe(true);
  });
});

describe('Drydock: authentication and authorization', () => {
  it('answers 401 with a JSON error without a token or with an unknown one', async () => {
    for (const token of [null, 'slp_not-a-real-token-0123456789abcdef']) {
      expectDrydockError(await dd('GET', '/api/v1.0/tasks', { token }), 401);
      expectDrydockError(await dd('GET', `/api/v1.0/tasks/${randomUUID()}`, { token }), 401);
      expectDrydockError(await dd('POST', '/api/v1.0/tasks', { token, json: { action: 'verify_site', design_ref: UNREACHABLE, node_filter: null } }), 401);
      expectDrydockError(await dd('DELETE', '/api/v1.0/tasks?days=90', { token }), 401);
    }
  });

  it("a member token: its project's tasks only, 403 for site actions and purge, 400 for a URL design_ref", async () => {
    const { token } = await tokenFor('member');
    const before = (await dd('GET', '/api/v1.0/tasks')).body.length as number;
    const list = await dd('GET', '/api/v1.0/tasks', { token });
    expect(list.status).toBe(200);
    expect(list.body).toEqual([]);
    expectDrydockError(await dd('GET', `/api/v1.0/tasks/${randomUUID()}`, { token }), 404);
    expectDrydockError(await dd('POST', '/api/v1.0/tasks', { token, json: { action: 'verify_site', design_ref: UNREACHABLE, node_filter: null } }), 403);
    // A project never makes the control plane fetch a URL: only its own stored designs.
    expectDrydockError(await dd('POST', '/api/v1.0/tasks', { token, json: { action: 'deploy_nodes', design_ref: UNREACHABLE, node_filter: null } }), 400, /slipway:\/\/designs/);
    expectDrydockError(await dd('DELETE', '/api/v1.0/tasks?days=0', { token }), 403);
    const v = await dd('POST', '/api/v1.0/validatedesign', { token, json: { href: UNREACHABLE } });
    expect(v.status).toBe(400);
    expect(v.body).toMatchObject({ kind: 'Status', code: 400 });
    expectDrydockError(await dd('POST', '/api/v1.0/nodefilter', { token, json: { node_filter: null, design_ref: UNREACHABLE } }), 400);
    // The refused creates made nothing (other files may add tasks meanwhile, never remove them).
    expect((await dd('GET', '/api/v1.0/tasks')).body.length).toBeGreaterThanOrEqual(before);
  });
});

describe('Drydock: validatedesign and nodefilter', () => {
  it('validatedesign: 400 for an empty body or one without href', async () => {
    expectDrydockError(await dd('POST', '/api/v1.0/validatedesign', { raw: '', contentType: 'application/json' }), 400, /href/);
    expectDrydockError(await dd('POST', '/api/v1.0/validatedesign', { json: {} }), 400, /href/);
    expectDrydockError(await dd('POST', '/api/v1.0/validatedesign', { json: { rel: 'design', type: 'application/x-yaml' } }), 400, /href/);
  });

  it('validatedesign: a design that cannot be read is a 400 Status object with code 400', async () => {
    // DrydockClient.validate_design(href) posts {"href": …} only.
    const res = await dd('POST', '/api/v1.0/validatedesign', { json: { href: missingDesign } });
    expect(res.status, res.text).toBe(400);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    expect(res.body).toMatchObject({ kind: 'Status', apiVersion: 'v1.0', code: 400, status: 'Failure', message: 'Site design failed validation.' });
    expect(res.body.details.errorCount).toBe(1);
    expect(res.body.details.messageList[0]).toMatchObject({ error: true, message: `Design ${missingDesign} could not be fetched: HTTP 404` });
    const unreachable = await dd('POST', '/api/v1.0/validatedesign', { json: { rel: 'design', href: UNREACHABLE, type: 'application/x-yaml' } });
    expect(unreachable.status, unreachable.text).toBe(400);
    expect(unreachable.body).toMatchObject({ kind: 'Status', code: 400 });
  });

  it('nodefilter: 400 without a design_ref', async () => {
    // DrydockClient.get_nodes_for_filter posts {"node_filter": …, "design_ref": …}.
    expectDrydockError(await dd('POST', '/api/v1.0/nodefilter', { json: { node_filter: null, design_ref: null } }), 400, /design_ref/);
    expectDrydockError(await dd('POST', '/api/v1.0/nodefilter', { json: { node_filter: cliNodeFilter(['n01']) } }), 400, /design_ref/);
    expectDrydockError(await dd('POST', '/api/v1.0/nodefilter', { raw: '', contentType: 'application/json' }), 400, /design_ref/);
  });

  it('node build data: 404 for a node without any, with the client query latest=True', async () => {
    expectDrydockError(await dd('GET', `/api/v1.0/nodes/ghost-${randomUUID().slice(0, 8)}/builddata?latest=True`), 404, 'No build data found');
  });
});

// Last: a purge with days=0 removes every finished task of the shared stack (running ones stay).
describe('Drydock: task purge', () => {
  it('DELETE ?days=0 purges finished tasks with 200 text/plain; nothing to purge is 404; a non-integer days is 90', async () => {
    const a = await finished((await createTask('verify_site')).body.task_id);
    const b = await finished((await createTask('validate_design', missingDesign)).body.task_id);

    // DrydockClient.delete_tasks(days=None) sends days=None: 90 days, and no task of ours is that old.
    expectDrydockError(await dd('DELETE', '/api/v1.0/tasks?days=None'), 404, 'No tasks older than 90 days to purge');
    expectDrydockError(await dd('DELETE', '/api/v1.0/tasks?days=1.5'), 404, 'No tasks older than 90 days to purge');
    expectDrydockError(await dd('DELETE', '/api/v1.0/tasks'), 404, 'No tasks older than 90 days to purge');
    expectDrydockError(await dd('DELETE', '/api/v1.0/tasks?days=36500'), 404, 'No tasks older than 36500 days to purge');
    expect((await dd('GET', `/api/v1.0/tasks/${a.task_id}`)).status).toBe(200);

    const purged = await dd('DELETE', '/api/v1.0/tasks?days=0');
    expect(purged.status, purged.text).toBe(200);
    expect(purged.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(purged.text).toBe('Tables purged successfully.');
    for (const t of [a, b]) expectDrydockError(await dd('GET', `/api/v1.0/tasks/${t.task_id}`), 404, `Task ${t.task_id} does not exist`);
    expect((await dd('GET', '/api/v1.0/tasks')).body.some((t: any) => t.task_id === a.task_id || t.task_id === b.task_id)).toBe(false);
  });
});
