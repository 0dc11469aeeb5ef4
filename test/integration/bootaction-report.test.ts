import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { localCallbacks } from '../../layers/aws/deps.ts';
import { reportBootAction } from '../../layers/core/drydock/bootactions/service.ts';
import type { BootActionRecord } from '../../layers/core/drydock/store.ts';
import { newTaskRecord } from '../../layers/core/drydock/tasks/model.ts';
import { ValidationError } from '../../layers/core/errors.ts';
import { call, unique } from '../support/api.ts';
import { sharedDeps } from '../support/agent.ts';
import { seedBootActions } from '../support/bootactions.ts';

/**
 * A boot-action report is checked completely and then written whole or not at all (issue
 * "tenants cannot harm the site"): a detail nested 40 levels deep, or with a `constructor` key,
 * used to answer 500 after the status was committed, losing the details and leaving the waiting
 * deploy step to time out. Reports go over HTTP to the shared stack as a node sends them; the
 * waiting step is checked in-process (its callback registry lives in this process).
 */
const deps = sharedDeps;

interface Deployed {
  hostname: string;
  key: string;
  taskId: string;
  actions: BootActionRecord[];
}

/** A node's boot-action context as a deploy leaves it (no tarballs: reports do not need them). */
async function deployNode(names: string[] = ['install-agent']): Promise<Deployed> {
  const d = deps();
  const hostname = unique('report-node');
  const task = newTaskRecord({ task_id: randomUUID(), action: 'deploy_nodes', design_ref: 'slipway://designs/test', created: new Date().toISOString(), status: 'running', created_by: 'tester' });
  await d.drydock.createTask(task);
  const { key, rows: actions } = await seedBootActions(d, task, hostname, names.map((name) => ({ name })));
  return { hostname, key, taskId: task.task_id, actions };
}

function report(actionId: string, key: string, body: unknown) {
  return call('POST', `/api/v1.0/bootactions/${actionId}/`, {
    token: null,
    rawBody: typeof body === 'string' ? body : JSON.stringify(body),
    headers: { 'Content-Type': 'application/json', 'X-Bootaction-Key': key },
  });
}

function nested(levels: number): unknown {
  let v: unknown = 'leaf';
  for (let i = 0; i < levels; i++) v = { blob: v };
  return v;
}

const statusOf = async (id: string) => (await deps().drydock.getBootAction(id))!.action_status;

describe('a final report that cannot be stored', () => {
  it('is refused with 400 before anything is written: a detail nested 40 levels deep leaves the action open and no message', async () => {
    const n = await deployNode();
    const id = n.actions[0]!.action_id;
    const res = await report(id, n.key, { status: 'Success', details: [{ message: 'm', error: false, blob: nested(40) }] });
    expect(res.status, res.text).toBe(400);
    expect(res.body.title).toBe('400 Bad Request');
    expect(res.body.description).toMatch(/^Error processing body\. details\[0\]\.blob(\.blob)* is nested deeper than 32 levels\.$/);
    expect(await statusOf(id)).toBe('incomplete');
    expect(await deps().drydock.messages(n.taskId)).toEqual([]);
    // The node can still report, and its details are kept.
    const ok = await report(id, n.key, { status: 'Success', details: [{ message: 'done', error: false, blob: nested(10) }] });
    expect(ok.status, ok.text).toBe(200);
    expect(ok.body.action_status).toBe('success');
    const messages = await deps().drydock.messages(n.taskId);
    expect(messages.map((m) => m.message)).toEqual(['done']);
    expect(messages[0]!.extra).toEqual({ blob: nested(10) });
  });

  it('is refused with 400 for a constructor, prototype or __proto__ key anywhere in a detail', async () => {
    const n = await deployNode();
    const id = n.actions[0]!.action_id;
    const bodies = [
      '{"status": "success", "details": [{"message": "m", "error": false, "constructor": "x"}]}',
      '{"status": "success", "details": [{"message": "m", "error": false, "x": {"constructor": {"name": "y"}}}]}',
      '{"status": "success", "details": [{"message": "m", "error": false, "x": [{"prototype": 1}]}]}',
      '{"status": "success", "details": [{"message": "m", "error": false, "__proto__": {"polluted": true}}]}',
    ];
    for (const body of bodies) {
      const res = await report(id, n.key, body);
      expect(res.status, body).toBe(400);
      expect(res.body.description).toMatch(/^Error processing body\. .*is reserved\.$/);
    }
    expect(await statusOf(id)).toBe('incomplete');
    expect(await deps().drydock.messages(n.taskId)).toEqual([]);
  });

  it('is refused with 400 for too many details, an over-long message or over-large details, writing nothing', async () => {
    const n = await deployNode();
    const id = n.actions[0]!.action_id;
    const d = (message = 'm', extra: Record<string, unknown> = {}) => ({ message, error: false, ...extra });
    const bodies: [unknown, RegExp][] = [
      [{ status: 'failure', details: Array.from({ length: 51 }, () => d()) }, /at most 50 details/],
      [{ status: 'failure', details: [d('x'.repeat(20_000))] }, /details\[0\]\.message is longer than 16384 bytes/],
      [{ status: 'failure', details: [d('m', { out: 'x'.repeat(70_000) })] }, /details\[0\]: is larger than 65536 bytes/],
      [{ status: 'failure', details: Array.from({ length: 6 }, () => d('m', { out: 'x'.repeat(50_000) })) }, /larger than 262144 bytes/],
      [{ details: Array.from({ length: 51 }, () => d()) }, /at most 50 details/],
    ];
    for (const [body, why] of bodies) {
      const res = await report(id, n.key, body);
      expect(res.status).toBe(400);
      expect(res.body.description).toMatch(why);
    }
    expect(await statusOf(id)).toBe('incomplete');
    expect(await deps().drydock.messages(n.taskId)).toEqual([]);
    // 50 details at the limit are all kept, with the status.
    const full = await report(id, n.key, { status: 'failure', details: Array.from({ length: 50 }, (_, i) => d(`line ${i}`)) });
    expect(full.status, full.text).toBe(200);
    expect((await deps().drydock.messages(n.taskId)).map((m) => m.message)).toEqual(Array.from({ length: 50 }, (_, i) => `line ${i}`));
    expect(await statusOf(id)).toBe('failure');
  });
});

describe('final once, with details', () => {
  it('keeps exactly one of 10 concurrent final reports (one 200, nine 409), with all of its details and none of the others\'', async () => {
    const n = await deployNode();
    const id = n.actions[0]!.action_id;
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        report(id, n.key, { status: i % 2 ? 'success' : 'failure', details: [{ message: `final ${i} a`, error: false }, { message: `final ${i} b`, error: false, i }] }),
      ),
    );
    expect(results.map((r) => r.status).sort()).toEqual([200, ...Array(9).fill(409)]);
    const winner = results.findIndex((r) => r.status === 200);
    const messages = await deps().drydock.messages(n.taskId);
    expect(messages.map((m) => m.message)).toEqual([`final ${winner} a`, `final ${winner} b`]);
    expect(messages[1]!.extra).toEqual({ i: winner });
    expect(await statusOf(id)).toBe(results[winner]!.body.action_status);
  });

  it('records progress reports racing a final one whole or not at all, and none after it', async () => {
    const n = await deployNode();
    const id = n.actions[0]!.action_id;
    const progress = Array.from({ length: 8 }, (_, i) => report(id, n.key, { details: [{ message: `p${i} 1`, error: false }, { message: `p${i} 2`, error: false }] }));
    const final = report(id, n.key, { status: 'success', details: [{ message: 'final', error: false }] });
    const results = await Promise.all([...progress, final]);
    expect(results[8]!.status).toBe(200);
    const accepted = results.slice(0, 8).flatMap((r, i) => (r.status === 200 ? [i] : []));
    for (const r of results.slice(0, 8)) expect([200, 409]).toContain(r.status);
    const texts = (await deps().drydock.messages(n.taskId)).map((m) => m.message);
    // Each accepted progress report's two messages are there, adjacent; refused ones left nothing.
    expect(texts.sort()).toEqual([...accepted.flatMap((i) => [`p${i} 1`, `p${i} 2`]), 'final'].sort());
    expect((await report(id, n.key, { details: [{ message: 'late', error: false }] })).status).toBe(409);
    expect((await deps().drydock.messages(n.taskId)).map((m) => m.message)).not.toContain('late');
  });
});

describe('the waiting deploy step', () => {
  const body = (b: unknown) => ({ text: JSON.stringify(b), contentType: 'application/json' });

  it('is not told of a refused final report, and is told of the stored one only after it is stored', async () => {
    const n = await deployNode(['a', 'b']);
    const token = unique('report-token');
    const waiter = localCallbacks.wait(token);
    let seen: { status?: string; messages?: string[] } | undefined;
    void waiter.promise.then(async () => {
      // What the step finds when it is told: the last report is already there.
      seen = {
        status: await statusOf(n.actions[1]!.action_id),
        messages: (await deps().drydock.messages(n.taskId)).map((m) => m.message),
      };
    });
    expect(await deps().drydock.setReportToken(n.hostname, n.taskId, token)).toBe(true);
    await reportBootAction(deps(), n.actions[0]!.action_id, n.key, body({ status: 'success' }));
    const refused = reportBootAction(deps(), n.actions[1]!.action_id, n.key, body({ status: 'failure', details: [{ message: 'm', error: true, blob: nested(40) }] }));
    await expect(refused).rejects.toBeInstanceOf(ValidationError);
    await new Promise((r) => setTimeout(r, 100));
    expect(seen).toBeUndefined();
    expect(await statusOf(n.actions[1]!.action_id)).toBe('incomplete');
    await reportBootAction(deps(), n.actions[1]!.action_id, n.key, body({ status: 'failure', details: [{ message: 'boom', error: true }] }));
    await expect(waiter.promise).resolves.toEqual({ node_name: n.hostname, reports: 'final' });
    await new Promise((r) => setTimeout(r, 50));
    expect(seen).toEqual({ status: 'failure', messages: ['boom'] });
  });
});
