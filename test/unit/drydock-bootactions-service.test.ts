import { describe, expect, it, vi } from 'vitest';
import { configFromEnv } from '../../layers/core/config.ts';
import { hashNodeKey, newNodeKey, nodeKeyHex } from '../../layers/core/drydock/bootactions/keys.ts';
import { bootActionAdminView, fetchBootdata, reportBootAction } from '../../layers/core/drydock/bootactions/service.ts';
import { ulid } from '../../layers/core/drydock/bootactions/ulid.ts';
import type { BlobStore, BootActionContext, BootActionRecord, DrydockRepository } from '../../layers/core/drydock/store.ts';
import type { TaskMessage } from '../../layers/core/drydock/tasks/model.ts';
import { ForbiddenError, UnauthorizedError } from '../../layers/core/errors.ts';
import type { Principal } from '../../layers/core/identity/identity.ts';
import type { Ports } from '../../layers/core/ports.ts';

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
    finalizeBootAction: async (id: string, status: 'success' | 'failure', at: string) => {
      const r = rows.get(id);
      if (r?.action_status !== 'incomplete') return undefined;
      const next = { ...r, action_status: status, updated: at };
      rows.set(id, next);
      return next;
    },
    addMessages: async (_t: string, m: readonly TaskMessage[]) => void messages.push(...m),
  } as unknown as DrydockRepository;
  const blobs: BlobStore = {
    put: async () => undefined,
    get: async () => undefined,
    presignGet: async (k, ttl) => `https://s3.example/${k}?X-Amz-Expires=${ttl}`,
    getS3Url: async () => undefined,
  };
  const callbacks = { succeed: vi.fn(async () => undefined), fail: vi.fn(), heartbeat: vi.fn() };
  const deps = {
    drydock,
    blobs,
    clock: { now: () => now },
    config: configFromEnv({}),
    secrets: { seal: async (s: string) => `sealed:${s}`, open: async (s: string) => s.replace(/^sealed:/, '') },
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
