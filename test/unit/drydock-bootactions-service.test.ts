import { describe, expect, it, vi } from 'vitest';
import { configFromEnv } from '../../layers/core/config.ts';
import { hashNodeKey, newNodeKey, nodeKeyHex } from '../../layers/core/drydock/bootactions/keys.ts';
import { MAX_REPORT_DETAILS, parseReport } from '../../layers/core/drydock/bootactions/report.ts';
import { bootActionAdminView, fetchBootdata, reportBootAction } from '../../layers/core/drydock/bootactions/service.ts';
import { ulid } from '../../layers/core/drydock/bootactions/ulid.ts';
import type { BlobStore, BootActionContext, BootActionRecord, DrydockRepository } from '../../layers/core/drydock/store.ts';
import type { TaskMessage } from '../../layers/core/drydock/tasks/model.ts';
import { ForbiddenError, UnauthorizedError, ValidationError } from '../../layers/core/errors.ts';
import type { Principal } from '../../layers/core/identity/identity.ts';
import type { Ports } from '../../layers/core/ports.ts';
import type { SecretKind } from '../../layers/core/secrets.ts';

/**
 * The boot-action use-cases on in-memory ports: the edges the HTTP tests cannot reach (a
 * refused callback, a vanished tarball). Everything else is covered over HTTP in
 * test/integration/bootactions.test.ts.
 */
function setup() {
  const key = newNodeKey();
  const rows = new Map<string, BootActionRecord>();
  const messages: TaskMessage[] = [];
  const now = new Date('2030-01-01T00:00:00Z');
  const ids = [ulid(), ulid()];
  for (const [i, id] of ids.entries()) {
    rows.set(id, { action_id: id, action_name: `a${i}`, node_name: 'n1', task_id: 't1', action_status: 'incomplete', signaling: true, created: now.toISOString(), updated: null });
  }
  const ctx: BootActionContext = {
    node_name: 'n1',
    task_id: 't1',
    subtask_id: 's1',
    design_ref: 'slipway://designs/d',
    key_hash: hashNodeKey(key),
    key_sealed: `sealed:${nodeKeyHex(key)}`,
    action_ids: ids,
    units_object: 'u',
    files_object: 'f',
    packages: [],
    created: now.toISOString(),
    report_token: 'tok',
  };
  const drydock = {
    getBootActionContext: async (n: string) => (n === 'n1' ? ctx : undefined),
    getBootAction: async (id: string) => rows.get(id),
    getBootActions: async (list: readonly string[]) => list.flatMap((id) => (rows.has(id) ? [rows.get(id)!] : [])),
    addMessages: async (_t: string, m: readonly TaskMessage[]) => void messages.push(...m),
    // As the store: one report is all written (condition: still incomplete) or not at all.
    recordBootActionReport: async (a: BootActionRecord, r: { status?: 'success' | 'failure'; messages: readonly TaskMessage[]; at: string }) => {
      const row = rows.get(a.action_id);
      if (row?.action_status !== 'incomplete') return undefined;
      const next = r.status ? { ...row, action_status: r.status, updated: r.at } : row;
      rows.set(a.action_id, next);
      messages.push(...r.messages);
      return next;
    },
  } as unknown as DrydockRepository;
  const blobs: BlobStore = {
    put: async () => undefined,
    get: async () => undefined,
    size: async () => undefined,
    presignGet: async (k, ttl) => `https://s3.example/${k}?X-Amz-Expires=${ttl}`,
    presignPut: async (k, ttl) => `https://s3.example/${k}?X-Amz-Expires=${ttl}&put`,
    delete: async () => undefined,
    getS3Url: async () => undefined,
  };
  const callbacks = { succeed: vi.fn(async () => undefined), fail: vi.fn(), heartbeat: vi.fn() };
  const deps = {
    drydock,
    blobs,
    clock: { now: () => now },
    config: configFromEnv({}),
    secrets: { seal: async (_kind: SecretKind, s: string) => `sealed:${s}`, open: async (_kind: SecretKind, s: string) => s.replace(/^sealed:/, '') },
    callbacks,
  } as unknown as Ports;
  const json = (b: unknown) => ({ text: JSON.stringify(b), contentType: 'application/json' });
  return { deps, key: nodeKeyHex(key), ids, callbacks, messages, json };
}

describe('fetchBootdata', () => {
  it('presigns for at most the configured lifetime', async () => {
    const { deps, key } = setup();
    await expect(fetchBootdata(deps, 'n1', 'files', key, false)).resolves.toEqual({ location: 'https://s3.example/f?X-Amz-Expires=300' });
  });

  it('is an internal error (not a client one) when the tarball object is gone', async () => {
    const { deps, key } = setup();
    const err = await fetchBootdata(deps, 'n1', 'units', key, true).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as { statusCode?: number }).statusCode).toBeUndefined();
    expect((err as Error).message).toContain('bootdata object u of node n1 is missing');
  });

  it('carries the Bootaction-Key challenge on its 401', async () => {
    const { deps } = setup();
    const err = await fetchBootdata(deps, 'n1', 'units', undefined, false).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnauthorizedError);
    expect((err as UnauthorizedError).headers).toEqual({ 'WWW-Authenticate': 'Bootaction-Key' });
  });
});

describe('reportBootAction', () => {
  it('answers the waiting step once, after the last final report, and shrugs off a refused token', async () => {
    const { deps, key, ids, callbacks, json } = setup();
    callbacks.succeed.mockRejectedValueOnce(Object.assign(new Error('Task Timed Out'), { name: 'TaskTimedOut' }));
    await reportBootAction(deps, ids[0]!, key, json({ status: 'success' }));
    expect(callbacks.succeed).not.toHaveBeenCalled();
    const last = await reportBootAction(deps, ids[1]!, key, json({ status: 'failure' }));
    expect(last.action_status).toBe('failure');
    expect(callbacks.succeed).toHaveBeenCalledExactlyOnceWith('tok', { node_name: 'n1', reports: 'final' });
  });

  it('stamps messages with server time and the action, keeping the client\'s fields in extra', async () => {
    const { deps, key, ids, messages, json } = setup();
    await reportBootAction(deps, ids[0]!, key, json({ details: [{ message: 'm', error: false, ts: 'then', context: 'x', context_type: 'site' }] }));
    expect(messages).toEqual([
      { message: 'm', error: false, context_type: 'bootaction', context: ids[0], ts: '2030-01-01 00:00:00+00:00', extra: { ts: 'then', context: 'x', context_type: 'site' } },
    ]);
  });
});

describe('parseReport', () => {
  const json = (b: unknown) => ({ text: typeof b === 'string' ? b : JSON.stringify(b), contentType: 'application/json' });
  const deep = (levels: number): unknown => {
    let v: unknown = 'leaf';
    for (let i = 0; i < levels; i++) v = { x: v };
    return v;
  };
  const refused = (b: unknown) => {
    try {
      parseReport(json(b));
    } catch (err) {
      expect(err).toBeInstanceOf(ValidationError);
      return (err as ValidationError).message;
    }
    throw new Error(`expected ${JSON.stringify(b).slice(0, 80)} to be refused`);
  };

  it('keeps every extra key of a detail and lower-cases the status', () => {
    expect(parseReport(json({ status: 'Success', details: [{ message: 'm', error: false, code: 3, more: { a: [1] } }] }))).toEqual({
      status: 'success',
      details: [{ message: 'm', error: false, extra: { code: 3, more: { a: [1] } } }],
    });
  });

  it('refuses a detail nested 40 levels deep, one with a constructor, __proto__ or prototype key anywhere, and says where', () => {
    expect(refused({ status: 'success', details: [{ message: 'm', error: false, blob: deep(40) }] })).toMatch(/^Error processing body\. details\[0\]\.blob(\.x)+ is nested deeper than 32 levels/);
    expect(refused({ details: [{ message: 'm', error: false, constructor: 'x' }] })).toMatch(/^Error processing body\. details\[0\]\.constructor: the key "constructor" is reserved/);
    expect(refused('{"details": [{"message": "m", "error": false, "x": {"__proto__": {"polluted": 1}}}]}')).toMatch(/"__proto__" is reserved/);
    expect(refused({ details: [{ message: 'm', error: false, x: [{ prototype: 1 }] }] })).toMatch(/"prototype" is reserved/);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it(`refuses more than ${MAX_REPORT_DETAILS} details, an over-long message, an over-large extra and an over-large report`, () => {
    const d = (message = 'm', extra: Record<string, unknown> = {}) => ({ message, error: false, ...extra });
    expect(() => parseReport(json({ details: Array.from({ length: MAX_REPORT_DETAILS }, () => d()) }))).not.toThrow();
    expect(refused({ details: Array.from({ length: MAX_REPORT_DETAILS + 1 }, () => d()) })).toMatch(/at most 50 details/);
    expect(refused({ details: [d('x'.repeat(16 * 1024 + 1))] })).toMatch(/details\[0\]\.message is longer than 16384 bytes/);
    expect(refused({ details: [d('m', { blob: 'x'.repeat(64 * 1024) })] })).toMatch(/details\[0\]: is larger than 65536 bytes/);
    expect(refused({ details: Array.from({ length: 5 }, () => d('m', { blob: 'x'.repeat(60 * 1024) })) })).toMatch(/larger than 262144 bytes/);
  });

  it('answers upstream\'s bare message for schema violations', () => {
    expect(refused({ status: 'done' })).toBe('Error processing body.');
    expect(refused({ details: [{ message: 'm' }] })).toBe('Error processing body.');
  });
});

describe('reportBootAction: one write', () => {
  it('records a final report\'s status and details together, and nothing of a refused one', async () => {
    const { deps, key, ids, messages, json, callbacks } = setup();
    const deep = JSON.parse(`${'{"x":'.repeat(40)}1${'}'.repeat(40)}`);
    await expect(reportBootAction(deps, ids[0]!, key, json({ status: 'success', details: [{ message: 'm', error: false, blob: deep }] }))).rejects.toBeInstanceOf(ValidationError);
    expect(messages).toEqual([]);
    expect((await deps.drydock.getBootAction(ids[0]!))!.action_status).toBe('incomplete');
    const ok = await reportBootAction(deps, ids[0]!, key, json({ status: 'success', details: [{ message: 'done', error: false }] }));
    expect(ok.action_status).toBe('success');
    expect(messages.map((m) => m.message)).toEqual(['done']);
    expect(callbacks.succeed).not.toHaveBeenCalled(); // the other action is still incomplete
  });
});

describe('bootActionAdminView', () => {
  const who = (roles: Principal['roles']): Principal => ({ token_id: 't', project_id: 'p', user_id: 'u', roles });

  it('opens the key for admins only', async () => {
    const { deps, key, ids } = setup();
    await expect(bootActionAdminView(deps, who(['admin']), 'n1')).resolves.toEqual({
      node_name: 'n1',
      task_id: 't1',
      action_key: key,
      report_url: 'http://localhost:9000/api/v1.0/bootactions/',
      actions: ids.map((id, i) => ({ action_id: id, action_name: `a${i}`, action_status: 'incomplete' })),
    });
    await expect(bootActionAdminView(deps, who(['member']), 'n1')).rejects.toBeInstanceOf(ForbiddenError);
    await expect(bootActionAdminView(deps, undefined, 'n1')).rejects.toBeInstanceOf(UnauthorizedError);
  });
});
