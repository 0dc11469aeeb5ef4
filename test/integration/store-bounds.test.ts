import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../layers/core/errors.ts';
import { newNode } from '../../layers/core/inventory/node.ts';
import { sharedDeps } from '../support/agent.ts';
import { rejection } from '../support/rejection.ts';

/**
 * The last line of defence behind the surfaces' bounds: a value DynamoDB itself refuses (a key
 * over 2,048 bytes, an item over 400 KB) reaches the client as a 400 ValidationError, never as
 * the SDK's ValidationException (a 500).
 */
const deps = sharedDeps;

describe('DynamoDB refusals', () => {
  it('an over-long key is a ValidationError, in a single write and in a transaction', async () => {
    const long = 'k'.repeat(3000);
    const now = new Date().toISOString();
    const put = await rejection(
      deps().tokens.put({ token_hash: long, token_id: 'bounds', project_id: 'p', user_id: 'u', roles: ['reader'], created_at: now, expires_at: null }),
      ValidationError,
    );
    expect(put.statusCode).toBe(400);
    expect(put.message).not.toMatch(/ValidationException|2048/);
    // A node's name is a uniqueness item of the create transaction.
    const node = newNode({ id: randomUUID(), name: long, reservable: true, facts: {}, extra: {}, created_at: now });
    await rejection(deps().nodes.create(node), ValidationError);
    expect(await deps().nodes.get(node.id)).toBeUndefined();
  });

  it('an item over 400 KB is a ValidationError', async () => {
    const err = await rejection(
      deps().idempotency.finish('bounds-test', 'big', { fingerprint: 'f', state: 'DONE', status: 200, headers: {}, body: 'x'.repeat(450 * 1024) }),
      ValidationError,
    );
    expect(err.statusCode).toBe(400);
  });
});
