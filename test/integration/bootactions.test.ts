import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { localCallbacks } from '../../layers/aws/deps.ts';
import type { RenderedFile } from '../../layers/core/drydock/bootactions/render.ts';
import { reportBootAction } from '../../layers/core/drydock/bootactions/service.ts';
import { buildNodeTarballs } from '../../layers/core/drydock/bootactions/tarball.ts';
import { ulid } from '../../layers/core/drydock/bootactions/ulid.ts';
import type { BootActionRecord } from '../../layers/core/drydock/store.ts';
import { newTaskRecord, type TaskRecord } from '../../layers/core/drydock/tasks/model.ts';
import { apiUrl, call, tokenFor, unique } from '../support/api.ts';
import { sharedDeps } from '../support/agent.ts';
import { seedBootActions } from '../support/bootactions.ts';

/**
 * Drydock's boot-action routes over HTTP against the shared stack, as deploying nodes use them:
 * wget and `curl -L | tar -xPz` fetch bootdata through the presigned redirect, reports go to
 * `…/bootactions/{id}/` the way the Go baclient posts them. Contexts are set up directly through
 * the ports (the deploy workflow that makes them is tested elsewhere).
 */
const run = promisify(execFile);

const deps = sharedDeps;

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'slipway-bootdata-'));
  dirs.push(d);
  return d;
}

function deployTask(): TaskRecord {
  return newTaskRecord({ task_id: randomUUID(), action: 'deploy_nodes', design_ref: 'slipway://designs/test', created: new Date().toISOString(), status: 'running', created_by: 'tester' });
}

interface Node {
  hostname: string;
  key: string;
  taskId: string;
  actions: BootActionRecord[];
  /** Where the assets' absolute paths point (a temp dir of this test). */
  root: string;
  assets: RenderedFile[];
  tarballs: { units: Buffer; files: Buffer };
}

/** A node as a deploy leaves it: a context with a fresh key, its action rows, its tarballs in the bucket. */
async function deployNode(actions: { name: string; signaling?: boolean }[] = [{ name: 'install-agent' }], hostname = unique('node')): Promise<Node> {
  const d = deps();
  const task = deployTask();
  await d.drydock.createTask(task);
  const root = tempDir();
  const text = (s: string) => new TextEncoder().encode(s);
  const assets: RenderedFile[] = [
    { type: 'unit', path: `${root}/etc/systemd/system/${hostname}-agent.service`, mode: 0o444, data: text('[Unit]\nDescription=agent\n') },
    { type: 'file', path: `${root}/opt/agent/config.yaml`, mode: 0o640, data: text(`node: ${hostname}\n`) },
    { type: 'file', path: `${root}/opt/agent/secret`, mode: 0o600, data: text('s3cr3t\n') },
  ];
  const tarballs = buildNodeTarballs(assets, { mtime: new Date() });
  const prefix = `bootdata/${task.task_id}/${hostname}`;
  await d.blobs.put(`${prefix}/units.tar.gz`, tarballs.units, 'application/gzip');
  await d.blobs.put(`${prefix}/files.tar.gz`, tarballs.files, 'application/gzip');
  const { key, rows } = await seedBootActions(d, task, hostname, actions);
  return { hostname, key, taskId: task.task_id, actions: rows, root, assets, tarballs };
}

const unitsPath = (h: string) => `/api/v1.0/bootactions/nodes/${h}/units`;
const filesPath = (h: string) => `/api/v1.0/bootactions/nodes/${h}/files`;

/** A GET as a node makes it (no token), without following redirects. */
function nodeGet(path: string, key?: string): Promise<Response> {
  return fetch(`${apiUrl()}${path}`, { redirect: 'manual', headers: key === undefined ? {} : { 'X-Bootaction-Key': key } });
}

/** A report as the baclient sends it: JSON, `X-Bootaction-Key`, a trailing slash. */
function report(actionId: string, key: string | undefined, body: unknown, opts: { contentType?: string; path?: string } = {}) {
  return call('POST', opts.path ?? `/api/v1.0/bootactions/${actionId}/`, {
    token: null,
    rawBody: typeof body === 'string' ? body : JSON.stringify(body),
    headers: { 'Content-Type': opts.contentType ?? 'application/json', ...(key === undefined ? {} : { 'X-Bootaction-Key': key }) },
  });
}

const bytesOf = async (res: Response) => Buffer.from(await res.arrayBuffer());

describe('bootdata: resolve, then key', () => {
  it('answers 404 for a node without a context, whatever the key', async () => {
    for (const key of [undefined, 'ab'.repeat(32)]) {
      const res = await nodeGet(unitsPath(unique('ghost')), key);
      expect(res.status).toBe(404);
      expect(await res.json()).toEqual({ title: '404 Not Found', description: expect.stringContaining('Error locating boot action') });
    }
  });

  it('answers 401 with the Bootaction-Key challenge without a key, or with an empty one', async () => {
    const n = await deployNode();
    for (const key of [undefined, '']) {
      const res = await nodeGet(unitsPath(n.hostname), key);
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toBe('Bootaction-Key');
      expect(await res.json()).toEqual({ title: '401 Unauthorized', description: 'No X-Bootaction-Key' });
    }
  });

  it('answers 403 for another node\'s key, a non-hex key and a short one (never 500)', async () => {
    const n = await deployNode();
    const other = await deployNode();
    for (const key of [other.key, 'zz'.repeat(32), n.key.slice(0, 62), `${n.key}00`]) {
      const res = await nodeGet(filesPath(n.hostname), key);
      expect(res.status, key).toBe(403);
      expect(await res.json()).toEqual({ title: '403 Forbidden', description: 'Invalid X-Bootaction-Key' });
    }
  });

  it('takes the key in either case', async () => {
    const n = await deployNode();
    expect((await nodeGet(unitsPath(n.hostname), n.key.toUpperCase())).status).toBe(302);
  });
});

describe('bootdata: the tarballs', () => {
  it('redirects to a presigned URL valid at most 5 minutes, not to be cached, that serves the tarball', async () => {
    const n = await deployNode();
    for (const [path, want] of [
      [unitsPath(n.hostname), n.tarballs.units],
      [filesPath(n.hostname), n.tarballs.files],
    ] as const) {
      const res = await nodeGet(path, n.key);
      expect(res.status).toBe(302);
      expect(res.headers.get('cache-control')).toBe('no-store');
      const location = new URL(res.headers.get('location')!);
      expect(location.origin).toBe(new URL(inject('s3Endpoint')).origin);
      const expires = Number(location.searchParams.get('X-Amz-Expires'));
      expect(expires).toBeGreaterThan(0);
      expect(expires).toBeLessThanOrEqual(300);
      expect(await res.text()).toBe('');
      const object = await fetch(location);
      expect(object.status).toBe(200);
      expect(await bytesOf(object)).toEqual(want);
    }
  });

  it('serves the bytes themselves with ?inline=true, as an attachment named like upstream\'s', async () => {
    const n = await deployNode();
    const units = await nodeGet(`${unitsPath(n.hostname)}?inline=true`, n.key);
    expect(units.status).toBe(200);
    expect(units.headers.get('content-type')).toBe('application/gzip');
    expect(units.headers.get('content-disposition')).toBe(`attachment; filename="${n.hostname}-unit.tar.gz"`);
    expect(units.headers.get('cache-control')).toBe('no-store');
    expect(await bytesOf(units)).toEqual(n.tarballs.units);
    const files = await nodeGet(`${filesPath(n.hostname)}?inline=true`, n.key);
    expect(files.headers.get('content-disposition')).toBe(`attachment; filename="${n.hostname}-file.tar.gz"`);
    expect(await bytesOf(files)).toEqual(n.tarballs.files);
  });

  it('answers the seed\'s /bootdata/ paths and a trailing slash alike', async () => {
    const n = await deployNode();
    const alias = await nodeGet(`/api/v1.0/bootdata/${n.hostname}/units?inline=true`, n.key);
    expect(alias.status).toBe(200);
    expect(await bytesOf(alias)).toEqual(n.tarballs.units);
    const slash = await nodeGet(`/api/v1.0/bootdata/${n.hostname}/files/?inline=true`, n.key);
    expect(slash.status).toBe(200);
    expect(await bytesOf(slash)).toEqual(n.tarballs.files);
    const redirect = await nodeGet(`${unitsPath(n.hostname)}/`, n.key);
    expect(redirect.status).toBe(302);
    expect((await nodeGet(`${unitsPath(n.hostname)}/`)).status).toBe(401);
  });

  it('is fetched by wget, which follows the redirect', async () => {
    const n = await deployNode();
    const out = join(tempDir(), 'units.tar.gz');
    await run('wget', ['-q', '-O', out, '--header', `X-Bootaction-Key: ${n.key}`, `${apiUrl()}${unitsPath(n.hostname)}`]);
    expect(readFileSync(out)).toEqual(n.tarballs.units);
  });

  it('unpacks with curl -sfL | tar -xPz onto the absolute asset paths with their modes, owned by root', async () => {
    const n = await deployNode();
    for (const path of [unitsPath(n.hostname), filesPath(n.hostname)]) {
      await run('sh', ['-c', `curl -sfL -H "X-Bootaction-Key: ${n.key}" "${apiUrl()}${path}" | tar -xPz`]);
    }
    for (const a of n.assets) {
      expect(readFileSync(a.path, 'utf8'), a.path).toBe(new TextDecoder().decode(a.data));
      expect(statSync(a.path).mode & 0o7777, a.path).toBe(a.mode);
    }
    // The listing shows numeric root ownership and the octal modes as given.
    const out = join(tempDir(), 'files.tar.gz');
    await run('sh', ['-c', `curl -sfL -H "X-Bootaction-Key: ${n.key}" -o "${out}" "${apiUrl()}${filesPath(n.hostname)}"`]);
    const { stdout } = await run('tar', ['-tvzf', out]);
    const lines = stdout.trim().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(new RegExp(`^-rw-r----- 0/0 .* ${n.root}/opt/agent/config.yaml$`));
    expect(lines[1]).toMatch(new RegExp(`^-rw------- 0/0 .* ${n.root}/opt/agent/secret$`));
  });

  it('makes curl -f fail without the key (401), so a node never unpacks an error body', async () => {
    const n = await deployNode();
    await expect(run('sh', ['-c', `curl -sfL "${apiUrl()}${unitsPath(n.hostname)}" > /dev/null`])).rejects.toMatchObject({ code: 22 });
  });
});

describe('reports', () => {
  it('append each detail as a message on the deploy task, every extra key kept and the reserved ones not overridable', async () => {
    const n = await deployNode();
    const id = n.actions[0]!.action_id;
    const before = Date.now();
    const res = await report(id, n.key, {
      details: [
        { message: 'Bootaction starting execution.', error: false },
        { message: 'step 2 failed', error: true, context: 'evil', context_type: 'node', ts: '1999-01-01', exit_code: 3, nested: { a: [1, 2] } },
      ],
    });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ node_name: n.hostname, action_id: id, action_name: 'install-agent', task_id: n.taskId, action_status: 'incomplete' });
    const messages = await deps().drydock.messages(n.taskId);
    expect(messages).toHaveLength(2);
    expect(messages[0]).toEqual({ message: 'Bootaction starting execution.', error: false, context_type: 'bootaction', context: id, ts: expect.any(String), extra: {} });
    expect(messages[1]).toEqual({
      message: 'step 2 failed',
      error: true,
      context_type: 'bootaction',
      context: id,
      ts: expect.stringMatching(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{6})?\+00:00$/),
      extra: { context: 'evil', context_type: 'node', ts: '1999-01-01', exit_code: 3, nested: { a: [1, 2] } },
    });
    const ts = Date.parse(messages[1]!.ts.replace(' ', 'T'));
    expect(ts).toBeGreaterThanOrEqual(before - 1000);
    expect(ts).toBeLessThanOrEqual(Date.now() + 1000);
  });

  it('take the seed\'s /bootaction/ path, without the trailing slash, and a lower- or upper-case id', async () => {
    const n = await deployNode();
    const id = n.actions[0]!.action_id;
    const res = await report(id, n.key, { details: [{ message: 'via alias', error: false }] }, { path: `/api/v1.0/bootaction/${id.toLowerCase()}` });
    expect(res.status).toBe(200);
    expect(res.body.action_id).toBe(id);
    expect((await report(id, n.key, {}, { path: `/api/v1.0/bootactions/${id}` })).status).toBe(200);
  });

  it('make the action final once: of 10 concurrent final reports one is 200 and nine 409, and only its detail is kept', async () => {
    const n = await deployNode();
    const id = n.actions[0]!.action_id;
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) => report(id, n.key, { status: i % 2 ? 'Success' : 'success', details: [{ message: `final ${i}`, error: false }] })),
    );
    const statuses = results.map((r) => r.status).sort();
    expect(statuses).toEqual([200, ...Array(9).fill(409)]);
    const winner = results.find((r) => r.status === 200)!;
    expect(winner.body).toMatchObject({ action_id: id, action_status: 'success' });
    for (const r of results.filter((x) => x.status === 409)) {
      expect(r.body).toEqual({ title: '409 Conflict', description: `Action ${id} status finalized, not available for update.` });
    }
    expect(await deps().drydock.messages(n.taskId)).toHaveLength(1);
    expect((await deps().drydock.getBootAction(id))!.action_status).toBe('success');
    // Nothing more once final, messages included.
    const late = await report(id, n.key, { details: [{ message: 'too late', error: false }] });
    expect(late.status).toBe(409);
    expect(await deps().drydock.messages(n.taskId)).toHaveLength(1);
  });

  it('store a failure lower-case', async () => {
    const n = await deployNode();
    const res = await report(n.actions[0]!.action_id, n.key, { status: 'Failure' });
    expect(res.status).toBe(200);
    expect(res.body.action_status).toBe('failure');
  });

  it('answer 409 for an action that does not signal (unreported)', async () => {
    const n = await deployNode([{ name: 'quiet', signaling: false }]);
    const id = n.actions[0]!.action_id;
    const res = await report(id, n.key, { details: [{ message: 'hello', error: false }] });
    expect(res.status).toBe(409);
    expect(res.body.description).toBe(`Action ${id} status finalized, not available for update.`);
  });

  it('answer 404 for an unknown or undecodable id and for an action of a replaced deployment', async () => {
    const n = await deployNode();
    for (const id of [ulid(), 'not-a-ulid', 'U'.repeat(26)]) {
      const res = await report(id, n.key, { status: 'success' });
      expect(res.status, id).toBe(404);
      expect(res.body.title).toBe('404 Not Found');
    }
    const redeployed = await deployNode([{ name: 'install-agent' }], n.hostname);
    const old = await report(n.actions[0]!.action_id, n.key, { status: 'success' });
    expect(old.status).toBe(404);
    // The old key is dead too; the new one works for the new ids.
    expect((await report(redeployed.actions[0]!.action_id, n.key, { status: 'success' })).status).toBe(403);
    expect((await report(redeployed.actions[0]!.action_id, redeployed.key, { status: 'success' })).status).toBe(200);
  });

  it('check the key before the body: 401 and 403 even for a bad body', async () => {
    const n = await deployNode();
    const id = n.actions[0]!.action_id;
    const none = await report(id, undefined, 'not json', { contentType: 'text/plain' });
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toBe('Bootaction-Key');
    expect((await report(id, 'ab'.repeat(32), 'not json', { contentType: 'text/plain' })).status).toBe(403);
  });

  it('answer 400 "Error processing body." for a wrong content type, a non-JSON or empty body, and any schema violation', async () => {
    const n = await deployNode();
    const id = n.actions[0]!.action_id;
    const bad: [unknown, string?][] = [
      [{ details: [{ message: 'x', error: false }] }, 'text/plain'],
      [{ details: [{ message: 'x', error: false }] }, 'application/x-www-form-urlencoded'],
      ['{"details": [', undefined],
      ['', undefined],
      ['[]', undefined],
      ['null', undefined],
      [{ status: 'success', extra: 1 }],
      [{ status: 'done' }],
      [{ status: null }],
      [{ details: [{ message: 'no error flag' }] }],
      [{ details: [{ message: 'x', error: 'false' }] }],
      [{ details: [{ error: false }] }],
      [{ details: { message: 'x', error: false } }],
      [{ details: ['x'] }],
    ];
    for (const [body, contentType] of bad) {
      const res = await report(id, n.key, body, { contentType });
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body).toEqual({ title: '400 Bad Request', description: 'Error processing body.' });
    }
    // Nothing was recorded, and the action is still open.
    expect(await deps().drydock.messages(n.taskId)).toEqual([]);
    expect((await report(id, n.key, { status: 'success' }, { contentType: 'application/json; charset=utf-8' })).status).toBe(200);
  });
});

describe('admin view', () => {
  it('shows admins the node key, report URL and actions; members 403, anonymous 401', async () => {
    const n = await deployNode([{ name: 'install-agent' }, { name: 'quiet', signaling: false }]);
    const res = await call('GET', `/api/v1.0/bootactions/nodes/${n.hostname}`);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      node_name: n.hostname,
      task_id: n.taskId,
      action_key: n.key,
      report_url: expect.stringMatching(/\/api\/v1\.0\/bootactions\/?$/),
      actions: [
        { action_id: n.actions[0]!.action_id, action_name: 'install-agent', action_status: 'incomplete' },
        { action_id: n.actions[1]!.action_id, action_name: 'quiet', action_status: 'unreported' },
      ],
    });
    // With a trailing slash too.
    expect((await call('GET', `/api/v1.0/bootactions/nodes/${n.hostname}/`)).body.action_key).toBe(n.key);
    const member = await call('GET', `/api/v1.0/bootactions/nodes/${n.hostname}`, { token: (await tokenFor('member')).token });
    expect(member.status).toBe(403);
    expect(member.body.title).toBe('403 Forbidden');
    const anonymous = await call('GET', `/api/v1.0/bootactions/nodes/${n.hostname}`, { token: null });
    expect(anonymous.status).toBe(401);
    expect(anonymous.body.title).toBe('401 Unauthorized');
    // The node key is not a token: it opens nothing here.
    expect((await call('GET', `/api/v1.0/bootactions/nodes/${n.hostname}`, { token: null, headers: { 'X-Bootaction-Key': n.key } })).status).toBe(401);
    expect((await call('GET', `/api/v1.0/bootactions/nodes/${unique('ghost')}`)).status).toBe(404);
  });
});

describe('the deploy step waiting for final reports', () => {
  // In-process: the waiter lives in this process's callback registry (the one the local
  // workflow runner uses), which the shared stack's server, running in another process, cannot
  // reach; the use-case is the same one the route calls.
  const body = (b: unknown) => ({ text: JSON.stringify(b), contentType: 'application/json' });

  it('is answered once every signalling action of the node is final, and not before', async () => {
    const n = await deployNode([{ name: 'a' }, { name: 'b' }, { name: 'quiet', signaling: false }]);
    const token = unique('report-token');
    const waiter = localCallbacks.wait(token);
    let answered: unknown;
    void waiter.promise.then((v) => {
      answered = v;
    });
    expect(await deps().drydock.setReportToken(n.hostname, n.taskId, token)).toBe(true);
    await reportBootAction(deps(), n.actions[0]!.action_id, n.key, body({ details: [{ message: 'running', error: false }] }));
    await reportBootAction(deps(), n.actions[0]!.action_id, n.key, body({ status: 'success' }));
    await new Promise((r) => setTimeout(r, 50));
    expect(answered).toBeUndefined();
    const last = await reportBootAction(deps(), n.actions[1]!.action_id, n.key, body({ status: 'failure', details: [{ message: 'boom', error: true }] }));
    expect(last.action_status).toBe('failure');
    await expect(waiter.promise).resolves.toEqual({ node_name: n.hostname, reports: 'final' });
  });

  it('is not answered while no token is set, and a final report still succeeds', async () => {
    const n = await deployNode();
    const res = await reportBootAction(deps(), n.actions[0]!.action_id, n.key, body({ status: 'success' }));
    expect(res.action_status).toBe('success');
  });
});
