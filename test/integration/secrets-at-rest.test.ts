import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, ScanCommand } from '@aws-sdk/lib-dynamodb';
import { describe, expect, inject, it } from 'vitest';
import { buildDeps } from '../../layers/aws/deps.ts';
import { ensureTable } from '../../layers/aws/dynamo/local-table.ts';
import { hashToken } from '../../layers/core/identity/identity.ts';
import { ensureToken, resolveToken } from '../../layers/core/identity/tokens.ts';
import { tokenCache } from '../../layers/http/token-cache.ts';
import { call, tokenFor, unique } from '../support/api.ts';
import { blazarIn, hostPool, hostReservation } from '../support/fixtures.ts';

/**
 * Secrets and replays: an Idempotency-Key belongs to the token that used it (another token of
 * the same user or project runs its own request, with its own rights), a revoked token replays
 * nothing, and no stored replay or container-manager definition holds a secret in plaintext.
 */
const doc = () =>
  DynamoDBDocumentClient.from(new DynamoDBClient({ endpoint: inject('dynamoEndpoint'), region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'x' } }));

/** Every stored item whose text contains `needle`. */
async function itemsContaining(needle: string): Promise<string[]> {
  const found: string[] = [];
  let start: Record<string, unknown> | undefined;
  do {
    const res = await doc().send(new ScanCommand({ TableName: 'slipway', ExclusiveStartKey: start }));
    for (const item of res.Items ?? []) if (JSON.stringify(item).includes(needle)) found.push(`${item.PK}|${item.SK}`);
    start = res.LastEvaluatedKey;
  } while (start);
  return found;
}

describe('Idempotency-Key replays', () => {
  it('replay only to the token that made the request: a member with the same user id runs its own (403), a revoked token gets 401', async () => {
    const key = unique('idem');
    const body = { project_id: unique('p'), role: 'reader' };
    // An admin token of its own (so that it can be revoked), with the user id `admin`.
    const admin = await call('POST', '/v1.1/admin/tokens', { body: { project_id: 'admin', user_id: 'admin', role: 'admin' } });
    expect(admin.status).toBe(202);
    const adminToken = admin.body.token.token as string;
    const first = await call('POST', '/v1.1/admin/tokens', { token: adminToken, body, headers: { 'Idempotency-Key': key } });
    expect(first.status).toBe(202);
    const again = await call('POST', '/v1.1/admin/tokens', { token: adminToken, body, headers: { 'Idempotency-Key': key } });
    expect(again.status).toBe(202);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect(again.body.token.token).toBe(first.body.token.token);

    // Same user id and project, another token and role: no replay, its own request, refused.
    const member = await call('POST', '/v1.1/admin/tokens', { body: { project_id: 'admin', user_id: 'admin', role: 'member' } });
    const stolen = await call('POST', '/v1.1/admin/tokens', { token: member.body.token.token, body, headers: { 'Idempotency-Key': key } });
    expect(stolen.status).toBe(403);
    expect(stolen.text).not.toContain(first.body.token.token);

    // The secret of the replayed answer is not stored in plaintext anywhere.
    expect(await itemsContaining(first.body.token.token)).toEqual([]);

    // Revoked: the token is refused before any replay.
    expect((await call('DELETE', `/v1.1/admin/tokens/${admin.body.token.id}`)).status).toBe(204);
    const revoked = await call('POST', '/v1.1/admin/tokens', { token: adminToken, body, headers: { 'Idempotency-Key': key } });
    expect(revoked.status).toBe(401);
    expect(revoked.text).not.toContain(first.body.token.token);
  });

  it('refuses an over-long or control-character Idempotency-Key with 400', async () => {
    for (const key of ['k'.repeat(300), 'a\tb']) {
      const res = await call('POST', '/v1.1/admin/tokens', { body: { project_id: unique('p'), role: 'reader' }, headers: { 'Idempotency-Key': key } });
      expect(res.status, key.slice(0, 10)).toBe(400);
      expect(res.body.error_message).toMatch(/Idempotency-Key/);
    }
  });
});

describe('tokens', () => {
  it('a cached token stops working at its expiry, not up to the cache TTL later', async () => {
    const p = { token_id: 't', project_id: 'p', user_id: 'u', roles: ['member' as const] };
    tokenCache.set('h-expiring', p, new Date(Date.now() + 50).toISOString());
    tokenCache.set('h-lasting', p, null);
    expect(tokenCache.get('h-expiring')).toEqual(p);
    await new Promise((r) => setTimeout(r, 80));
    expect(tokenCache.get('h-expiring')).toBeUndefined();
    expect(tokenCache.get('h-lasting')).toEqual(p);
  });

  it('replacing the bootstrap admin token revokes the one it replaces', async () => {
    // A table of its own: revoking the shared stack's bootstrap token would fail other files' calls.
    const table = unique('bootstrap');
    await ensureTable(inject('dynamoEndpoint'), table);
    const deps = buildDeps({ TABLE_NAME: table, DYNAMODB_ENDPOINT: inject('dynamoEndpoint') });
    const first = `slp_${unique('bootstrap-a')}-0123456789`;
    const second = `slp_${unique('bootstrap-b')}-0123456789`;
    await ensureToken(deps, first, { project_id: 'admin', user_id: 'admin', roles: ['admin'] });
    expect(await resolveToken(deps, first)).toBeDefined();
    await ensureToken(deps, second, { project_id: 'admin', user_id: 'admin', roles: ['admin'] });
    expect(await resolveToken(deps, first)).toBeUndefined();
    expect(await deps.tokens.get(hashToken(first))).toBeUndefined();
    expect(await resolveToken(deps, second)).toBeDefined();
    // Starting again with the same token keeps it.
    await ensureToken(deps, second, { project_id: 'admin', user_id: 'admin', roles: ['admin'] });
    expect(await resolveToken(deps, second)).toBeDefined();
  });
});

describe('Commissaire container manager token', () => {
  it('is stored sealed and shown masked to everyone', async () => {
    const name = unique('cm');
    const secret = `k8s-${unique('secret')}`;
    const put = await call('PUT', `/api/v0/containermanager/${name}`, { body: { type: 'openshift', options: { server_url: 'https://127.0.0.1:8443', token: secret } } });
    expect(put.status, put.text).toBe(201);
    expect(put.text).not.toContain(secret);
    expect((await call('GET', `/api/v0/containermanager/${name}`)).body.options.token).toBe('******');
    expect(await itemsContaining(secret)).toEqual([]);
    const reader = await tokenFor('reader');
    expect((await call('GET', `/api/v0/containermanager/${name}`, { token: reader.token })).body.options.token).toBe('******');
  });
});

describe("a lease's config drive (slipway:config_drive)", () => {
  it('is stored sealed, shown masked, replaced or removed by an update, and checked as Ironic checks one', async () => {
    const pool = await hostPool(1);
    const member = await tokenFor('member');
    const secret = `pw-${unique('userdata')}`;
    const drive = { meta_data: { hostname: 'leased' }, user_data: `#!/bin/sh\necho ${secret} | chpasswd\n` };
    const reservation = (extra: Record<string, unknown>) => hostReservation(pool.filter, 1, 1, { 'slipway:image': 'debian-12', ...extra });
    const create = (extra: Record<string, unknown>) =>
      call('POST', '/v1/leases', { token: member.token, body: { name: unique('drive'), start_date: blazarIn(600), end_date: blazarIn(660), reservations: [reservation(extra)], events: [] } });

    // Refused: without an image, a string that is not JSON, an unknown key, a sealed-looking value, too large.
    for (const [extra, message] of [
      [{ 'slipway:image': '', 'slipway:config_drive': drive }, /no slipway:image is given/],
      [{ 'slipway:config_drive': 'user_data=x' }, /give it as JSON/],
      [{ 'slipway:config_drive': { user_data: 'x', vendor: 1 } }, /Malformed parameter slipway:config_drive: .*vendor/],
      [{ 'slipway:config_drive': { meta_data: { $sealed: 'AAAA' } } }, /\$sealed key is not allowed/],
      [{ 'slipway:config_drive': { user_data: 'x'.repeat(17 * 1024) } }, /larger than 16384 bytes/],
    ] as const) {
      const res = await create(extra);
      expect(res.status, res.text).toBe(400);
      expect(res.body.error_message).toMatch(message);
    }

    // The JSON may come as a string (a command line's form).
    const res = await create({ 'slipway:config_drive': JSON.stringify(drive) });
    expect(res.status, res.text).toBe(201);
    expect(res.text).not.toContain(secret);
    const lease = res.body.lease;
    expect(lease.reservations[0]['slipway:config_drive']).toBe('******');
    expect(await itemsContaining(secret)).toEqual([]);

    // An update that leaves it out keeps it; a new one replaces it; '' removes it.
    const update = (params: Record<string, unknown>) =>
      call('PUT', `/v1/leases/${lease.id}`, { token: member.token, body: { reservations: [{ id: lease.reservations[0].id, ...params }] } });
    expect((await update({ max: 1 })).body.lease.reservations[0]['slipway:config_drive']).toBe('******');
    const secret2 = `pw-${unique('userdata')}`;
    const replaced = await update({ 'slipway:config_drive': { user_data: `#!/bin/sh\necho ${secret2}\n` } });
    expect(replaced.status, replaced.text).toBe(200);
    expect(await itemsContaining(secret2)).toEqual([]);
    expect((await update({ 'slipway:config_drive': { meta_data: { $sealed: 'AAAA' } } })).status).toBe(400);
    const removed = await update({ 'slipway:config_drive': '' });
    expect(removed.status, removed.text).toBe(200);
    expect(removed.body.lease.reservations[0]).not.toHaveProperty('slipway:config_drive');
    expect((await call('DELETE', `/v1/leases/${lease.id}`, { token: member.token })).status).toBe(204);
  });
});
