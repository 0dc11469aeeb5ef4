import { randomBytes, randomUUID } from 'node:crypto';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { makeDynamo } from '../../layers/aws/dynamo/client.ts';
import { ensureTable } from '../../layers/aws/dynamo/local-table.ts';
import { DynamoDrydockRepository } from '../../layers/aws/dynamo/drydock.ts';
import { S3BlobStore, s3Stats } from '../../layers/aws/s3-blobs.ts';
import { ulid } from '../../layers/core/drydock/bootactions/ulid.ts';
import type { BootActionContext, BootActionRecord } from '../../layers/core/drydock/store.ts';
import { message, newTaskRecord, type TaskRecord } from '../../layers/core/drydock/tasks/model.ts';
import { ConcurrentModificationError, ConflictError } from '../../layers/core/errors.ts';
import { unique } from '../support/api.ts';

/**
 * The Drydock storage adapters against the shared stack's DynamoDB Local and s3rver: the
 * conditional writes (task CAS, site slots, final-once boot actions) under real concurrency.
 * In a table of their own: the purge test writes finished tasks dated 1990, which a purge over
 * HTTP in another file (test/contract/drydock.test.ts, on the shared table) must not see.
 */
const table = unique('drydock-store');
beforeAll(() => ensureTable(inject('dynamoEndpoint'), table));
const repo = () => new DynamoDrydockRepository(makeDynamo({ tableName: table, endpoint: inject('dynamoEndpoint') }));
const blobs = () => new S3BlobStore({ bucket: 'slipway-bootdata', endpoint: inject('s3Endpoint') });

function task(over: Partial<TaskRecord> = {}): TaskRecord {
  return newTaskRecord({ task_id: randomUUID(), action: 'deploy_nodes', design_ref: 'slipway://designs/d1', created: new Date().toISOString(), status: 'requested', created_by: 'tester', ...over });
}

const msg = (text: string) => message(text, { at: new Date(), context_type: 'node', context: 'n1', extra: { i: text } });

describe('DynamoDrydockRepository: tasks', () => {
  it('creates, reads and refuses a second create of the same id', async () => {
    const r = repo();
    const t = task({ site: 'site-a' });
    await r.createTask(t);
    expect(await r.getTask(t.task_id)).toEqual(t);
    await expect(r.createTask(t)).rejects.toBeInstanceOf(ConflictError);
    expect(await r.getTask(randomUUID())).toBeUndefined();
  });

  it('updates with compare-and-set on the version; a stale update throws', async () => {
    const r = repo();
    const t = task();
    await r.createTask(t);
    const { version: _v, ...rest } = t;
    const next = await r.updateTask(t, { ...rest, status: 'queued', updated: new Date().toISOString() });
    expect(next.version).toBe(2);
    expect(next.status).toBe('queued');
    expect(await r.getTask(t.task_id)).toEqual(next);
    // `t` is version 1, the stored one is 2.
    await expect(r.updateTask(t, { ...rest, status: 'running' })).rejects.toBeInstanceOf(ConcurrentModificationError);
    expect((await r.getTask(t.task_id))!.status).toBe('queued');
  });

  it('of concurrent updates from one version exactly one wins', async () => {
    const r = repo();
    const t = task();
    await r.createTask(t);
    const { version: _v, ...rest } = t;
    const results = await Promise.allSettled(Array.from({ length: 8 }, (_, i) => r.updateTask(t, { ...rest, retry: i + 1 })));
    expect(results.filter((x) => x.status === 'fulfilled')).toHaveLength(1);
    for (const x of results) if (x.status === 'rejected') expect(x.reason).toBeInstanceOf(ConcurrentModificationError);
  });

  it('puts subtasks idempotently and keeps ones that moved on', async () => {
    const r = repo();
    const parent = task();
    const subs = Array.from({ length: 20 }, (_, i) => task({ parent_task_id: parent.task_id, node_name: `n${i}` }));
    await r.putSubtasks(subs);
    const { version: _v, ...rest } = subs[0]!;
    await r.updateTask(subs[0]!, { ...rest, status: 'queued' });
    await r.putSubtasks(subs);
    const got = await r.getTasks([...subs.map((s) => s.task_id), randomUUID()]);
    expect(got).toHaveLength(20);
    expect(got.find((s) => s.task_id === subs[0]!.task_id)).toMatchObject({ status: 'queued', version: 2 });
    expect(await r.getTasks([])).toEqual([]);
  });

  it('lists tasks oldest first', async () => {
    const r = repo();
    const a = task({ created: '2001-01-01T00:00:00.000Z' });
    const b = task({ created: '2001-01-01T00:00:01.000Z' });
    await r.createTask(b);
    await r.createTask(a);
    const ids = (await r.listTasks()).map((t) => t.task_id);
    expect(ids.indexOf(a.task_id)).toBeGreaterThanOrEqual(0);
    expect(ids.indexOf(a.task_id)).toBeLessThan(ids.indexOf(b.task_id));
  });

  it('keeps message order inside one call and across calls', async () => {
    const r = repo();
    const t = task();
    await r.createTask(t);
    await r.addMessages(t.task_id, [msg('m1'), msg('m2'), msg('m3')]);
    await r.addMessages(t.task_id, [msg('m4'), msg('m5')]);
    const got = await r.messages(t.task_id);
    expect(got.map((m) => m.message)).toEqual(['m1', 'm2', 'm3', 'm4', 'm5']);
    expect(got[0]).toEqual({ message: 'm1', error: false, context_type: 'node', context: 'n1', ts: expect.any(String), extra: { i: 'm1' } });
    // Many messages in one call (several batch writes) keep their order too.
    const many = Array.from({ length: 60 }, (_, i) => msg(`x${i}`));
    await r.addMessages(t.task_id, many);
    expect((await r.messages(t.task_id)).slice(5).map((m) => m.message)).toEqual(many.map((m) => m.message));
    expect(await r.messages(randomUUID())).toEqual([]);
  });

  it('finds build data by task and by node', async () => {
    const r = repo();
    const t1 = randomUUID();
    const t2 = randomUUID();
    const node = unique('node');
    const other = unique('node');
    const bd = (task_id: string, node_name: string, at: string, gen: string) => ({
      task_id,
      node_name,
      collected_date: at,
      generator: gen,
      data_format: 'text/plain',
      data_element: `${gen} output`,
    });
    await r.addBuildData(bd(t1, node, '2024-05-01T10:00:00.000Z', 'lshw'));
    await r.addBuildData(bd(t1, other, '2024-05-01T10:00:01.000Z', 'lshw'));
    await r.addBuildData(bd(t2, node, '2024-05-02T10:00:00.000Z', 'dmidecode'));
    await r.addBuildData(bd(t2, node, '2024-05-02T10:00:00.000Z', 'lsblk'));
    expect((await r.buildDataOfTask(t1)).map((b) => b.node_name)).toEqual([node, other]);
    const ofNode = await r.buildDataOfNode(node);
    expect(ofNode.map((b) => b.generator)).toEqual(['lshw', 'dmidecode', 'lsblk']);
    expect(ofNode[0]).toEqual(bd(t1, node, '2024-05-01T10:00:00.000Z', 'lshw'));
    expect(await r.buildDataOfNode(unique('node'))).toEqual([]);
  });

  it('purges old finished top-level tasks with their subtasks, messages and build data', async () => {
    const r = repo();
    // Far in the past, so no other test's tasks fall in the purged range.
    const old = '1990-01-01T00:00:00.000Z';
    const before = new Date('1990-02-01T00:00:00.000Z');

    const a = task({ created: old, status: 'complete' });
    const nested = task({ created: '1990-03-01T00:00:00.000Z', parent_task_id: 'x', status: 'complete' });
    // A subtask newer than `before` goes with its parent.
    const a1 = task({ created: '1990-03-01T00:00:00.000Z', parent_task_id: a.task_id, status: 'complete', subtask_id_list: [nested.task_id] });
    const a2 = task({ created: old, parent_task_id: a.task_id, status: 'complete' });
    nested.parent_task_id = a1.task_id;
    a.subtask_id_list = [a1.task_id, a2.task_id];
    const b = task({ created: old, status: 'terminated' });
    const running = task({ created: old, status: 'running' });
    const runningSub = task({ created: old, parent_task_id: running.task_id, status: 'complete' });
    running.subtask_id_list = [runningSub.task_id];
    const recent = task({ created: '1990-03-01T00:00:00.000Z', status: 'complete' });
    for (const t of [a, b, running, recent]) await r.createTask(t);
    await r.putSubtasks([a1, a2, nested, runningSub]);
    await r.addMessages(a.task_id, [msg('a')]);
    await r.addMessages(a1.task_id, [msg('a1')]);
    await r.addMessages(running.task_id, [msg('r')]);
    const node = unique('node');
    await r.addBuildData({ task_id: a1.task_id, node_name: node, collected_date: old, generator: 'g', data_format: 'text/plain', data_element: 'x' });

    expect(await r.purgeTasks(before)).toBe(5);
    expect(await r.getTasks([a, a1, a2, nested, b].map((t) => t.task_id))).toEqual([]);
    expect(await r.messages(a.task_id)).toEqual([]);
    expect(await r.messages(a1.task_id)).toEqual([]);
    expect(await r.buildDataOfTask(a1.task_id)).toEqual([]);
    // The GSI1 entry goes with the item (the index is eventually consistent, hence the wait).
    await expect.poll(() => r.buildDataOfNode(node)).toEqual([]);
    expect((await r.getTasks([running, runningSub, recent].map((t) => t.task_id))).length).toBe(3);
    expect((await r.messages(running.task_id)).map((m) => m.message)).toEqual(['r']);
    expect(await r.purgeTasks(before)).toBe(0);
  });
});

describe('DynamoDrydockRepository: site slots', () => {
  it('gives the one slot to exactly one of 10 concurrent tasks, then to another after release', async () => {
    const r = repo();
    const site = unique('site');
    const ids = Array.from({ length: 10 }, () => randomUUID());
    const got = await Promise.all(ids.map((id) => r.acquireSite(site, id, 1)));
    expect(got.filter(Boolean)).toHaveLength(1);
    const holder = ids[got.indexOf(true)]!;
    expect(await r.siteHolders(site)).toEqual([holder]);
    // The holder asking again is true; another is still refused.
    expect(await r.acquireSite(site, holder, 1)).toBe(true);
    const other = ids.find((id) => id !== holder)!;
    expect(await r.acquireSite(site, other, 1)).toBe(false);
    await r.releaseSite(site, holder);
    expect(await r.siteHolders(site)).toEqual([]);
    expect(await r.acquireSite(site, other, 1)).toBe(true);
    expect(await r.siteHolders(site)).toEqual([other]);
    // Releasing a slot not held changes nothing.
    await r.releaseSite(site, holder);
    await r.releaseSite(unique('site'), holder);
    expect(await r.siteHolders(site)).toEqual([other]);
  });

  it('gives two slots to exactly two of 10 with max=2', async () => {
    const r = repo();
    const site = unique('site');
    const ids = Array.from({ length: 10 }, () => randomUUID());
    const got = await Promise.all(ids.map((id) => r.acquireSite(site, id, 2)));
    expect(got.filter(Boolean)).toHaveLength(2);
    const holders = ids.filter((_, i) => got[i]);
    expect(await r.siteHolders(site)).toEqual([...holders].sort());
    await r.releaseSite(site, holders[0]!);
    expect(await r.siteHolders(site)).toEqual([holders[1]]);
    const next = ids.find((id) => !holders.includes(id))!;
    expect(await r.acquireSite(site, next, 2)).toBe(true);
    expect(await r.acquireSite(site, holders[0]!, 2)).toBe(false);
  });
});

describe('DynamoDrydockRepository: designs', () => {
  it('stores a design and returns its parts in the order added', async () => {
    const r = repo();
    const id = randomUUID();
    const design = { design_id: id, base_design_id: null, created: new Date().toISOString(), created_by: 'tester' };
    await r.createDesign(design);
    expect(await r.getDesign(id)).toEqual(design);
    await expect(r.createDesign(design)).rejects.toBeInstanceOf(ConflictError);
    expect(await r.getDesign(randomUUID())).toBeUndefined();
    const parts = ['a', 'b', 'c'].map((x, i) => ({
      design_id: id,
      part_id: `2024-05-01T10:00:0${i}.000Z-${x}${randomUUID().slice(0, 4)}`,
      ingester: 'deckhand',
      text: `---\nschema: x/${x}/v1\n`,
      added_at: new Date().toISOString(),
    }));
    for (const p of parts) await r.addDesignPart(p);
    expect(await r.designParts(id)).toEqual(parts);
    expect(await r.designParts(randomUUID())).toEqual([]);
  });
});

describe('DynamoDrydockRepository: boot actions', () => {
  const action = (node: string, taskId: string, over: Partial<BootActionRecord> = {}): BootActionRecord => ({
    action_id: ulid(),
    action_name: 'hello',
    node_name: node,
    task_id: taskId,
    action_status: 'incomplete',
    signaling: true,
    created: new Date().toISOString(),
    updated: null,
    ...over,
  });
  const context = (node: string, taskId: string, actions: BootActionRecord[]): BootActionContext => ({
    node_name: node,
    task_id: taskId,
    subtask_id: randomUUID(),
    design_ref: 'slipway://designs/d1',
    key_hash: randomBytes(32).toString('hex'),
    key_sealed: `sealed:${randomBytes(16).toString('base64')}`,
    action_ids: actions.map((a) => a.action_id),
    units_object: `bootdata/${node}/units.tar.gz`,
    files_object: `bootdata/${node}/files.tar.gz`,
    packages: ['curl', ['docker.io', '20.10']],
    created: new Date().toISOString(),
  });

  it('replaces the context of a node; the old action ids stop answering', async () => {
    const r = repo();
    const node = unique('node');
    const t1 = randomUUID();
    const first = [action(node, t1), action(node, t1, { action_name: 'second' })];
    const ctx1 = context(node, t1, first);
    await r.putBootActionContext(ctx1, first);
    expect(await r.getBootActionContext(node)).toEqual(ctx1);
    expect(await r.getBootAction(first[0]!.action_id)).toEqual(first[0]);
    expect((await r.getBootActions([...first.map((a) => a.action_id), ulid()])).length).toBe(2);

    const t2 = randomUUID();
    const second = [action(node, t2)];
    const ctx2 = context(node, t2, second);
    await r.putBootActionContext(ctx2, second);
    expect(await r.getBootActionContext(node)).toEqual(ctx2);
    expect(await r.getBootAction(first[0]!.action_id)).toBeUndefined();
    expect(await r.getBootAction(first[1]!.action_id)).toBeUndefined();
    expect(await r.getBootAction(second[0]!.action_id)).toEqual(second[0]);
    expect(await r.getBootActionContext(unique('node'))).toBeUndefined();
  });

  it('finalizes an action once: of 10 concurrent reports exactly one wins', async () => {
    const r = repo();
    const node = unique('node');
    const t = randomUUID();
    const acts = [action(node, t), action(node, t, { action_status: 'unreported', signaling: false })];
    await r.putBootActionContext(context(node, t, acts), acts);
    const now = '2024-05-01T10:00:00.000Z';
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => r.recordBootActionReport(acts[0]!, { status: i % 2 ? 'failure' : 'success', messages: [], at: now })));
    const winners = results.filter((x) => x !== undefined);
    expect(winners).toHaveLength(1);
    expect(winners[0]).toMatchObject({ action_id: acts[0]!.action_id, updated: now });
    expect(await r.getBootAction(acts[0]!.action_id)).toEqual(winners[0]);
    expect(await r.recordBootActionReport(acts[0]!, { status: 'success', messages: [], at: now })).toBeUndefined();
    // Not `incomplete`: an unreported action cannot be made final, nor a missing one.
    expect(await r.recordBootActionReport(acts[1]!, { status: 'success', messages: [], at: now })).toBeUndefined();
    expect((await r.getBootAction(acts[1]!.action_id))!.action_status).toBe('unreported');
    expect(await r.recordBootActionReport({ ...acts[0]!, action_id: ulid() }, { status: 'success', messages: [], at: now })).toBeUndefined();
  });

  it('sets and clears the report token only for the task that owns the context', async () => {
    const r = repo();
    const node = unique('node');
    const t = randomUUID();
    const acts = [action(node, t)];
    await r.putBootActionContext(context(node, t, acts), acts);
    expect(await r.setReportToken(node, t, 'token-1')).toBe(true);
    expect((await r.getBootActionContext(node))!.report_token).toBe('token-1');
    expect(await r.setReportToken(node, randomUUID(), 'token-2')).toBe(false);
    expect(await r.setReportToken(node, randomUUID(), undefined)).toBe(false);
    expect((await r.getBootActionContext(node))!.report_token).toBe('token-1');
    expect(await r.setReportToken(node, t, undefined)).toBe(true);
    expect(await r.getBootActionContext(node)).not.toHaveProperty('report_token');
    expect(await r.setReportToken(unique('node'), t, 'token-3')).toBe(false);
  });
});

describe('S3BlobStore', () => {
  it('round-trips binary bytes and answers undefined for a missing key', async () => {
    const b = blobs();
    const key = `test/${randomUUID()}/units.tar.gz`;
    const bytes = new Uint8Array(randomBytes(70_000));
    s3Stats.reset();
    await b.put(key, bytes, 'application/gzip');
    const got = await b.get(key);
    expect(got).toBeInstanceOf(Buffer);
    expect(Buffer.compare(got!, Buffer.from(bytes))).toBe(0);
    expect(await b.get(`test/${randomUUID()}`)).toBeUndefined();
    expect(s3Stats.calls.get('PutObjectCommand')).toBeGreaterThanOrEqual(1);
    expect(s3Stats.calls.get('GetObjectCommand')).toBeGreaterThanOrEqual(2);
  });

  it('presigns a GET URL that plain fetch can use', async () => {
    const b = blobs();
    const key = `test/${randomUUID()}/files.tar.gz`;
    const bytes = new Uint8Array(randomBytes(1000));
    await b.put(key, bytes, 'application/gzip');
    const before = s3Stats.presigns;
    const url = await b.presignGet(key, 300);
    expect(s3Stats.presigns).toBe(before + 1);
    expect(url).toContain('X-Amz-Expires=300');
    expect(url.startsWith(inject('s3Endpoint'))).toBe(true);
    const res = await fetch(url);
    expect(res.status).toBe(200);
    expect(Buffer.compare(Buffer.from(await res.arrayBuffer()), Buffer.from(bytes))).toBe(0);
  });

  it('reads an object of a named bucket (s3:// design references)', async () => {
    const b = blobs();
    const key = `designs/${randomUUID()}.yaml`;
    await b.put(key, new TextEncoder().encode('---\nschema: x\n'), 'application/x-yaml');
    expect((await b.getS3Url('slipway-bootdata', key))!.toString('utf8')).toBe('---\nschema: x\n');
    expect(await b.getS3Url('slipway-bootdata', `designs/${randomUUID()}.yaml`)).toBeUndefined();
    expect(await b.getS3Url('no-such-bucket', key)).toBeUndefined();
  });
});
