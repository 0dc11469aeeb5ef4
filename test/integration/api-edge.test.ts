import { randomBytes, randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { handleRequest } from '../../infra/local/server.ts';
import type { FunctionName } from '../../infra/routes.ts';
import type { LambdaHandler } from '../../infra/local/functions.ts';
import { INLINE_BOOTDATA_MAX_BYTES } from '../../layers/core/drydock/bootactions/service.ts';
import { newTaskRecord } from '../../layers/core/drydock/tasks/model.ts';
import type { HttpEvent } from '../../layers/http/surface.ts';
import { apiUrl, call, tokenFor, unique } from '../support/api.ts';
import { sharedDeps } from '../support/agent.ts';
import { seedBootActions } from '../support/bootactions.ts';

/**
 * The API edge: one invocation per request (the surface authenticates, no authorizer runs before
 * it), 401s still in each surface's own format, revoked tokens refused, and `?inline=true`
 * tarballs too large for a Lambda response refused with a 413 that names the redirect.
 */

describe('one invocation per request', () => {
  it('the local gateway invokes only the route’s function, handing it the request’s own credentials', async () => {
    const seen: HttpEvent[] = [];
    const recorder: LambdaHandler = async (event) => {
      seen.push(event);
      return { statusCode: 204 };
    };
    // Every function of the route table is this recorder: whatever the gateway invokes is counted.
    const fns = new Map<FunctionName, Promise<LambdaHandler>>(
      (['system', 'blazar', 'native', 'agent', 'ironic', 'commissaire', 'bootactions', 'drydock'] as FunctionName[]).map((f) => [f, Promise.resolve(recorder)]),
    );
    const server = createServer((req, res) => void handleRequest(req, res, fns));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const res = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/leases`, { headers: { 'X-Auth-Token': 'slp_not-a-real-token' } });
      expect(res.status).toBe(204);
      expect(seen).toHaveLength(1);
      expect(seen[0]!.headers['x-auth-token']).toBe('slp_not-a-real-token');
      expect((seen[0]!.requestContext as { authorizer?: unknown }).authorizer).toBeUndefined();
    } finally {
      server.close();
    }
  });

  it('answers a token route without credentials, or with unknown ones, 401 in the surface’s format', async () => {
    for (const token of [null, 'slp_no-such-token-0123456789']) {
      const blazar = await call('GET', '/v1/leases', { token });
      expect(blazar.status).toBe(401);
      expect(blazar.body).toMatchObject({ error_code: 401, error_name: 'UNAUTHORIZED' });
      const drydock = await call('GET', '/api/v1.0/tasks', { token });
      expect(drydock.status).toBe(401);
      expect(drydock.body).toMatchObject({ type: 'error', retry: false });
      // Commissaire never answers 401: bad credentials are its 403 Forbidden.
      const commissaire = await call('GET', '/api/v0/clusters', { token });
      expect(commissaire).toMatchObject({ status: 403, text: 'Forbidden' });
    }
  });

  it('takes the token as X-Auth-Token, Bearer or Basic password, and refuses it at once when revoked', async () => {
    const { token, project, id } = await tokenFor('member');
    const path = `/v1.1/${project}/leases`;
    expect((await call('GET', path, { token })).status).toBe(200);
    expect((await call('GET', path, { token: null, headers: { Authorization: `Bearer ${token}` } })).status).toBe(200);
    const basic = Buffer.from(`anyone:${token}`).toString('base64');
    expect((await call('GET', '/api/v0/clusters', { token: null, headers: { Authorization: `Basic ${basic}` } })).status).toBe(200);
    expect((await call('DELETE', `/v1.1/admin/tokens/${id}`)).status).toBe(204);
    // The surfaces share the local stack's process, whose token cache the revocation cleared.
    const refused = await call('GET', path, { token });
    expect(refused.status).toBe(401);
    expect(refused.body).toMatchObject({ error_code: 401, error_name: 'UNAUTHORIZED' });
  });
});

describe('?inline=true bootdata over the Lambda response limit', () => {
  async function nodeWithUnits(size: number): Promise<{ hostname: string; key: string }> {
    const d = sharedDeps();
    const task = newTaskRecord({ task_id: randomUUID(), action: 'deploy_nodes', design_ref: 'slipway://designs/test', created: new Date().toISOString(), status: 'running', created_by: 'tester' });
    await d.drydock.createTask(task);
    const hostname = unique('big-node');
    const prefix = `bootdata/${task.task_id}/${hostname}`;
    await d.blobs.put(`${prefix}/units.tar.gz`, randomBytes(size), 'application/gzip');
    await d.blobs.put(`${prefix}/files.tar.gz`, randomBytes(16), 'application/gzip');
    const { key } = await seedBootActions(d, task, hostname, [{ name: 'install' }]);
    return { hostname, key };
  }
  const get = (path: string, key: string) => fetch(`${apiUrl()}${path}`, { redirect: 'manual', headers: { 'X-Bootaction-Key': key } });

  it('serves a tarball of the largest inline size, and refuses one byte more with a 413 that points at the redirect', async () => {
    expect(INLINE_BOOTDATA_MAX_BYTES).toBeGreaterThan(4.4 * 1024 * 1024);
    // Base64 of the largest inline tarball, plus 64 KiB of headers, within Lambda's 6 MiB.
    expect(Math.ceil(INLINE_BOOTDATA_MAX_BYTES / 3) * 4 + 64 * 1024).toBeLessThanOrEqual(6 * 1024 * 1024);

    const fits = await nodeWithUnits(INLINE_BOOTDATA_MAX_BYTES);
    const served = await get(`/api/v1.0/bootactions/nodes/${fits.hostname}/units?inline=true`, fits.key);
    expect(served.status).toBe(200);
    expect((await served.arrayBuffer()).byteLength).toBe(INLINE_BOOTDATA_MAX_BYTES);

    const big = await nodeWithUnits(INLINE_BOOTDATA_MAX_BYTES + 1);
    const refused = await get(`/api/v1.0/bootactions/nodes/${big.hostname}/units?inline=true`, big.key);
    expect(refused.status).toBe(413);
    const body = (await refused.json()) as { title: string; description: string };
    expect(body.title).toBe('413 Request Entity Too Large');
    expect(body.description).toMatch(/units tarball of .* is 4\.\d\d MiB, more than the 4\.\d\d MiB an inline answer can carry/);
    expect(body.description).toContain('without ?inline=true');
    expect(body.description).toContain('302 redirect');

    // The redirect form serves the same tarball.
    const redirect = await get(`/api/v1.0/bootactions/nodes/${big.hostname}/units`, big.key);
    expect(redirect.status).toBe(302);
    const download = await fetch(redirect.headers.get('location')!);
    expect((await download.arrayBuffer()).byteLength).toBe(INLINE_BOOTDATA_MAX_BYTES + 1);
  });

  it('checks the node key before the size: a wrong key learns nothing about the tarball', async () => {
    const big = await nodeWithUnits(INLINE_BOOTDATA_MAX_BYTES + 1);
    const res = await get(`/api/v1.0/bootactions/nodes/${big.hostname}/units?inline=true`, 'ab'.repeat(32));
    expect(res.status).toBe(403);
  });
});
