import { describe, expect, it } from 'vitest';
import { call, tokenFor } from '../support/api.ts';

describe('identity', () => {
  it('answers healthz without credentials', async () => {
    const res = await call('GET', '/healthz', { token: null });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ status: 'ok' });
  });

  it('rejects a missing or unknown token with 401 in the surface format', async () => {
    for (const token of [null, 'slp_not-a-real-token']) {
      const res = await call('GET', '/v1.1/admin/tokens', { token });
      expect(res.status).toBe(401);
      expect(res.body).toMatchObject({ error_code: 401, error_name: 'UNAUTHORIZED' });
      expect(res.headers.get('x-openstack-request-id')).toMatch(/^req-/);
    }
  });

  it('creates a token whose secret works once shown, lists it without the secret, and revokes it', async () => {
    const created = await call('POST', '/v1.1/admin/tokens', { body: { project_id: 'proj-a', role: 'reader' } });
    expect(created.status).toBe(202);
    const secret = created.body.token.token as string;
    expect(secret).toMatch(/^slp_/);

    const list = await call('GET', '/v1.1/admin/tokens');
    const mine = list.body.tokens.find((t: any) => t.id === created.body.token.id);
    expect(mine).toMatchObject({ project_id: 'proj-a', roles: ['reader'] });
    expect(JSON.stringify(list.body)).not.toContain(secret);

    expect((await call('GET', '/v1.1/proj-a/leases', { token: secret })).status).toBe(200);
    expect((await call('DELETE', `/v1.1/admin/tokens/${created.body.token.id}`)).status).toBe(204);
    expect((await call('DELETE', `/v1.1/admin/tokens/${created.body.token.id}`)).status).toBe(404);
  });

  it('refuses an expired token', async () => {
    const soon = new Date(Date.now() + 1500).toISOString();
    const created = await call('POST', '/v1.1/admin/tokens', { body: { project_id: 'proj-x', role: 'member', expires_at: soon } });
    expect(created.status).toBe(202);
    await new Promise((r) => setTimeout(r, 1600));
    const res = await call('GET', '/v1.1/proj-x/leases', { token: created.body.token.token });
    expect(res.status).toBe(401);
  });

  it('scopes /v1.1 paths to the token project (401 otherwise)', async () => {
    const { token, project } = await tokenFor('member');
    expect((await call('GET', `/v1.1/${project}/leases`, { token })).status).toBe(200);
    const other = await call('GET', '/v1.1/someone-else/leases', { token });
    expect(other.status).toBe(401);
    expect(other.body.error_message).toBe('Token tenant != requested tenant');
  });

  it('keeps token management for admins and writes away from readers', async () => {
    const member = await tokenFor('member');
    const res = await call('GET', `/v1.1/${member.project}/tokens`, { token: member.token });
    expect(res.status).toBe(403);
    const reader = await tokenFor('reader');
    const post = await call('POST', '/v1/leases', { token: reader.token, body: {} });
    expect(post.status).toBe(403);
    const agent = await tokenFor('agent');
    expect((await call('GET', '/v1/leases', { token: agent.token })).status).toBe(403);
  });

  it('validates token requests with one 400 listing the problems', async () => {
    const res = await call('POST', '/v1.1/admin/tokens', { body: { project_id: '', role: 'king', extra: 1 } });
    expect(res.status).toBe(400);
    expect(res.body.error_name).toBe('VALIDATION_ERROR');
    expect(res.body.error_message).toMatch(/project_id/);
    expect(res.body.error_message).toMatch(/role/);
  });
});
