import { describe, expect, it } from 'vitest';
import { DRYDOCK_TASK_KEYS } from '../support/drydock-site.ts';
import { DesignRefError, checkDesignRef } from '../../layers/core/drydock/design-ref.ts';
import {
  ACTION_RESULTS,
  type ActionResult,
  addFailure,
  addSuccess,
  aggregate,
  emptyResult,
  isUuid,
  message,
  newTaskRecord,
  pyTime,
  statusObject,
  subtaskId,
  type TaskMessage,
  taskObject,
  type TaskRecord,
  type TaskResult,
} from '../../layers/core/drydock/tasks/model.ts';

/**
 * The Drydock task model (upstream-apis.md §1.3): timestamps as Python prints them, the Status
 * arithmetic of upstream's `TaskStatus.success()/failure()`, the parent result from subtasks,
 * the exact task and Status objects, status messages, subtask ids, and the design_ref check.
 */

const result = (status: ActionResult, successes: string[] = [], failures: string[] = []): TaskResult => ({ ...emptyResult(), status, successes, failures });
const AT = new Date('2024-05-01T12:00:00.123Z');
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function record(extra: Partial<TaskRecord> = {}): TaskRecord {
  return newTaskRecord({
    task_id: '4f5c8f0e-3b3c-4b7e-9f6e-0c9a3a1b2c3d',
    action: 'deploy_nodes',
    design_ref: 'deckhand+http://deckhand-api/api/v1.0/revisions/12/rendered-documents',
    created: '2024-05-01T12:00:00.123Z',
    status: 'running',
    created_by: 'shipyard',
    version: 3,
    ...extra,
  });
}

describe('pyTime', () => {
  it('prints an aware UTC datetime as Python str(datetime) does', () => {
    expect(pyTime('2024-05-01T12:00:00.123Z')).toBe('2024-05-01 12:00:00.123000+00:00');
    expect(pyTime('2024-05-01T12:00:00.007Z')).toBe('2024-05-01 12:00:00.007000+00:00');
    expect(pyTime('2024-12-31T23:59:59.999Z')).toBe('2024-12-31 23:59:59.999000+00:00');
  });

  it('leaves the microseconds out when they are zero', () => {
    expect(pyTime('2024-05-01T12:00:00Z')).toBe('2024-05-01 12:00:00+00:00');
    expect(pyTime('2024-05-01T12:00:00.000Z')).toBe('2024-05-01 12:00:00+00:00');
  });

  it('converts another offset to UTC', () => {
    expect(pyTime('2024-05-01T14:30:00.500+02:00')).toBe('2024-05-01 12:30:00.500000+00:00');
  });

  it('answers null for no value and for a value that is not a date', () => {
    expect(pyTime(null)).toBeNull();
    expect(pyTime(undefined)).toBeNull();
    expect(pyTime('')).toBeNull();
    expect(pyTime('yesterday-ish')).toBeNull();
  });
});

describe('addSuccess / addFailure', () => {
  // Upstream objects/task.py: success() after failure or partial_success is partial_success,
  // failure() after success or partial_success is partial_success; otherwise the plain value.
  const AFTER_SUCCESS: Record<ActionResult, ActionResult> = {
    incomplete: 'success',
    success: 'success',
    partial_success: 'partial_success',
    failure: 'partial_success',
    unreported: 'success',
  };
  const AFTER_FAILURE: Record<ActionResult, ActionResult> = {
    incomplete: 'failure',
    success: 'partial_success',
    partial_success: 'partial_success',
    failure: 'failure',
    unreported: 'failure',
  };

  it.each(ACTION_RESULTS.map((s) => [s]))('success() from %s', (from) => {
    expect(addSuccess(result(from)).status).toBe(AFTER_SUCCESS[from]);
  });

  it.each(ACTION_RESULTS.map((s) => [s]))('failure() from %s', (from) => {
    expect(addFailure(result(from)).status).toBe(AFTER_FAILURE[from]);
  });

  it('adds the entity once to successes or failures and leaves the other list alone', () => {
    let r = addSuccess(emptyResult(), 'n01');
    r = addSuccess(r, 'n01');
    r = addFailure(r, 'n02');
    r = addFailure(r, 'n02');
    expect(r).toMatchObject({ status: 'partial_success', successes: ['n01'], failures: ['n02'] });
  });

  it('changes only the status without an entity, and never mutates its input', () => {
    const before = result('success', ['n01'], []);
    const after = addFailure(before);
    expect(after).toMatchObject({ status: 'partial_success', successes: ['n01'], failures: [] });
    expect(before).toEqual(result('success', ['n01'], []));
  });

  it('keeps message, reason and links', () => {
    const r: TaskResult = { ...emptyResult(), message: 'm', reason: 'r', links: [{ rel: 'detail_logs', href: 'http://x' }] };
    expect(addSuccess(r, 'a')).toMatchObject({ message: 'm', reason: 'r', links: [{ rel: 'detail_logs', href: 'http://x' }] });
    expect(addFailure(r, 'a')).toMatchObject({ message: 'm', reason: 'r', links: [{ rel: 'detail_logs', href: 'http://x' }] });
  });
});

describe('aggregate', () => {
  const parent = { ...emptyResult(), message: 'kept', reason: 'also kept' };

  it('is success when every subtask succeeded', () => {
    const r = aggregate(parent, [result('success', ['n01']), result('success', ['n02'])]);
    expect(r).toMatchObject({ status: 'success', successes: ['n01', 'n02'], failures: [], message: 'kept', reason: 'also kept' });
  });

  it('is failure when none did (a subtask left incomplete counts as not succeeded)', () => {
    expect(aggregate(parent, [result('failure', [], ['n01']), result('failure', [], ['n02'])])).toMatchObject({ status: 'failure', successes: [], failures: ['n01', 'n02'] });
    expect(aggregate(parent, [result('failure', [], ['n01']), result('incomplete')]).status).toBe('failure');
  });

  it('is partial_success when some did', () => {
    expect(aggregate(parent, [result('success', ['n01']), result('failure', [], ['n02'])])).toMatchObject({ status: 'partial_success', successes: ['n01'], failures: ['n02'] });
    expect(aggregate(parent, [result('partial_success', ['n01'], ['n02'])]).status).toBe('partial_success');
    expect(aggregate(parent, [result('success', ['n01']), result('partial_success', ['n02'], ['n03'])]).status).toBe('partial_success');
  });

  it('is success with no subtask at all (nothing to do is not a failure)', () => {
    expect(aggregate(parent, [])).toMatchObject({ status: 'success', successes: [], failures: [] });
  });

  it('ignores unreported subtasks', () => {
    expect(aggregate(parent, [result('success', ['n01']), result('unreported')]).status).toBe('success');
    expect(aggregate(parent, [result('failure', [], ['n01']), result('unreported')]).status).toBe('failure');
    expect(aggregate(parent, [result('unreported'), result('unreported')]).status).toBe('success');
  });

  it('lists a node that failed anywhere as a failure only, and every node once', () => {
    const r = aggregate(parent, [result('success', ['n01', 'n02']), result('failure', [], ['n02']), result('success', ['n01', 'n03']), result('failure', [], ['n02'])]);
    expect(r.successes).toEqual(['n01', 'n03']);
    expect(r.failures).toEqual(['n02']);
  });

  it('replaces the parent entity lists rather than adding to them', () => {
    const r = aggregate({ ...emptyResult(), successes: ['stale'], failures: ['old'] }, [result('success', ['n01'])]);
    expect(r).toMatchObject({ successes: ['n01'], failures: [] });
  });
});

describe('statusObject / taskObject', () => {
  const msgs: TaskMessage[] = [
    message('Node n02 failed commissioning', { error: true, context_type: 'node', context: 'n02', at: AT }),
    message('Node n01 deployed', { context_type: 'node', context: 'n01', at: AT }),
    message('Boot action x failed', { error: true, context_type: 'bootaction', context: '01HXYZ', at: AT }),
  ];

  it('emits the Status object with kind Status, apiVersion v1.0 and every key', () => {
    const r: TaskResult = { status: 'partial_success', message: 'some failed', reason: 'see details', successes: ['n01'], failures: ['n02'], links: [{ rel: 'detail_logs', href: 'http://logs/1' }] };
    const s = statusObject(r, msgs);
    expect(Object.keys(s).sort()).toEqual(['apiVersion', 'details', 'failures', 'kind', 'links', 'message', 'metadata', 'reason', 'status', 'successes'].sort());
    expect(s).toEqual({
      kind: 'Status',
      apiVersion: 'v1.0',
      metadata: {},
      message: 'some failed',
      reason: 'see details',
      status: 'partial_success',
      successes: ['n01'],
      failures: ['n02'],
      links: [{ rel: 'detail_logs', href: 'http://logs/1' }],
      details: { errorCount: 2, messageList: msgs },
    });
  });

  it('counts only error messages in errorCount', () => {
    expect(statusObject(emptyResult(), []).details).toEqual({ errorCount: 0, messageList: [] });
    expect(statusObject(emptyResult(), [msgs[1]!]).details.errorCount).toBe(0);
    expect(statusObject(emptyResult(), [msgs[0]!, msgs[0]!, msgs[0]!]).details.errorCount).toBe(3);
  });

  it('emits the task object with kind Task, apiVersion v1, every key of §1.3.2 and no private field', () => {
    const t = taskObject(
      record({ subtask_id_list: ['8a2e0000-0000-4000-8000-000000000001'], updated: '2024-05-01T12:03:10Z', site: 'lab', node_name: 'n01', node_filter: { filter_set_type: 'union', filter_set: [] } }),
      msgs,
    );
    expect(Object.keys(t).sort()).toEqual([...DRYDOCK_TASK_KEYS].sort());
    expect(t).toMatchObject({
      kind: 'Task',
      apiVersion: 'v1',
      task_id: '4f5c8f0e-3b3c-4b7e-9f6e-0c9a3a1b2c3d',
      action: 'deploy_nodes',
      parent_task_id: null,
      design_ref: 'deckhand+http://deckhand-api/api/v1.0/revisions/12/rendered-documents',
      status: 'running',
      node_filter: { filter_set_type: 'union', filter_set: [] },
      subtask_id_list: ['8a2e0000-0000-4000-8000-000000000001'],
      created: '2024-05-01 12:00:00.123000+00:00',
      created_by: 'shipyard',
      updated: '2024-05-01 12:03:10+00:00',
      terminated: null,
      terminated_by: null,
      terminate: false,
      retry: 0,
    });
    expect(t.result).toEqual(statusObject(emptyResult(), msgs));
    expect(t.result.kind).toBe('Status');
    expect(t.result.apiVersion).toBe('v1.0');
  });

  it('renders an absent node_filter as null and a termination time in Python form', () => {
    const t = taskObject(record({ node_filter: undefined, status: 'terminated', terminated: '2024-05-02T00:00:00.5Z', terminated_by: 'slipway', terminate: true }), []);
    expect(t).toMatchObject({ node_filter: null, terminated: '2024-05-02 00:00:00.500000+00:00', terminated_by: 'slipway', terminate: true });
  });
});

describe('message', () => {
  it('has upstream defaults: not an error, context_type task, no context, extra {}', () => {
    expect(message('hello', { at: AT })).toEqual({ message: 'hello', error: false, context_type: 'task', context: null, ts: '2024-05-01 12:00:00.123000+00:00', extra: {} });
  });

  it('keeps a 127-character text whole', () => {
    const text = 'x'.repeat(127);
    const m = message(text, { at: AT });
    expect(m.message).toBe(text);
    expect(m.extra).toEqual({});
  });

  it('cuts a longer text to 127 characters and keeps the whole text in extra.detail', () => {
    const text = `${'a'.repeat(120)} and then some more words`;
    const m = message(text, { error: true, extra: { name: 'DD001' }, at: AT });
    expect(m.message).toHaveLength(127);
    expect(m.message).toBe(`${text.slice(0, 126)}…`);
    expect(m.extra).toEqual({ name: 'DD001', detail: text });
    expect(m.error).toBe(true);
  });

  it('caps extra.detail at 4000 characters', () => {
    const m = message('y'.repeat(5000), { at: AT });
    expect(m.extra.detail).toBe('y'.repeat(4000));
  });

  it('cuts the context to 64 characters', () => {
    expect(message('m', { context: 'c'.repeat(64), at: AT }).context).toBe('c'.repeat(64));
    expect(message('m', { context: `${'c'.repeat(64)}overflow`, at: AT }).context).toBe('c'.repeat(64));
    expect(message('m', { context: null, at: AT }).context).toBeNull();
  });

  it('never splits a character made of two UTF-16 units', () => {
    // A node's boot-action report is client text: a cut inside a surrogate pair would store a
    // lone surrogate, which DynamoDB and JSON clients turn into garbage.
    const text = `${'a'.repeat(125)}😀😀 tail`;
    const m = message(text, { at: AT });
    expect(m.message).toBe(`${'a'.repeat(125)}😀…`);
    expect(m.message).not.toMatch(LONE_SURROGATE);
    expect(m.extra.detail).toBe(text);
    const ctx = message('m', { context: `${'c'.repeat(63)}😀😀`, at: AT }).context!;
    expect(ctx).not.toMatch(LONE_SURROGATE);
    expect(ctx).toBe(`${'c'.repeat(63)}😀`);
  });
});

describe('subtaskId', () => {
  const parent = '4f5c8f0e-3b3c-4b7e-9f6e-0c9a3a1b2c3d';

  it('is deterministic for a parent and a node', () => {
    expect(subtaskId(parent, 'n01')).toBe(subtaskId(parent, 'n01'));
  });

  it('differs between nodes and between parents', () => {
    const ids = new Set([subtaskId(parent, 'n01'), subtaskId(parent, 'n02'), subtaskId('5f5c8f0e-3b3c-4b7e-9f6e-0c9a3a1b2c3d', 'n01'), subtaskId(parent, 'n010')]);
    expect(ids.size).toBe(4);
  });

  it('is shaped as a version-4 UUID, which the API accepts as a task id', () => {
    for (const node of ['n01', 'rack1-n02', 'a', 'x'.repeat(200)]) {
      const id = subtaskId(parent, node);
      expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      expect(isUuid(id)).toBe(true);
    }
  });
});

describe('checkDesignRef', () => {
  it.each([
    'http://deckhand-api/api/v1.0/revisions/12/rendered-documents',
    'https://designs.example.com/site.yaml',
    'deckhand+http://deckhand-api/api/v1.0/revisions/12/rendered-documents',
    'promenade+http://promenade/api/v1.0/config',
    'DECKHAND+HTTP://deckhand-api/x',
    's3://site-designs/lab/site.yaml',
    'slipway://designs/0b6c4d2e-8a1f-4c3e-9b7d-2f5a6e8c1d40',
    'slipway://designs/0B6C4D2E-8A1F-4C3E-9B7D-2F5A6E8C1D40/',
  ])('accepts %s', (ref) => {
    expect(() => checkDesignRef(ref)).not.toThrow();
  });

  it('refuses file:// with a message that says what to do instead', () => {
    for (const ref of ['file:///etc/drydock/site.yaml', 'deckhand+file:///tmp/site.yaml']) {
      const err = (() => {
        try {
          checkDesignRef(ref);
        } catch (e) {
          return e;
        }
        return undefined;
      })();
      expect(err).toBeInstanceOf(DesignRefError);
      expect((err as DesignRefError).statusCode).toBe(400);
      expect((err as Error).message).toMatch(/^file:\/\/ design references are not served: publish the design over HTTP\(S\), put it in S3, or store it with POST \/api\/v1\.0\/designs$/);
    }
  });

  it.each([
    ['ftp://host/site.yaml', /scheme ftp is not supported/],
    ['gopher+ftp://host/site.yaml', /scheme gopher\+ftp is not supported/],
    ['slipway://designs/not-a-uuid', /scheme slipway is not supported/],
    ['slipway://designs/------------------------------------', /scheme slipway is not supported/],
    ['slipway://elsewhere/0b6c4d2e-8a1f-4c3e-9b7d-2f5a6e8c1d40', /scheme slipway is not supported/],
  ])('refuses the unknown scheme or form of %s', (ref, why) => {
    expect(() => checkDesignRef(ref)).toThrow(DesignRefError);
    expect(() => checkDesignRef(ref)).toThrow(why);
  });

  it.each(['site.yaml', '/srv/designs/site.yaml', '', '://nothing', '1http://x'])('refuses %j, which is not a URI', (ref) => {
    expect(() => checkDesignRef(ref)).toThrow(DesignRefError);
    expect(() => checkDesignRef(ref)).toThrow(/is not a URI/);
  });

  it('refuses a reference longer than 1024 characters', () => {
    expect(() => checkDesignRef(`http://h/${'a'.repeat(1015)}`)).not.toThrow();
    expect(() => checkDesignRef(`http://h/${'a'.repeat(1016)}`)).toThrow(/at most 1024 characters/);
  });
});
