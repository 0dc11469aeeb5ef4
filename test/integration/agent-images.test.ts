import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { call, tokenFor, unique } from '../support/api.ts';
import { sharedDeps } from '../support/agent.ts';

/**
 * `GET /api/v1.0/agent/images/{name}`: an agent fetches an OS image of the deployment's bucket
 * (`images/<name>`) through the API — a 302 to a short-lived presigned URL, since agents hold no
 * AWS credentials. Agent tokens only; names are one safe path segment.
 */
describe('OS images for agents', () => {
  it('answers an agent with a 302 to a presigned URL that serves the image', async () => {
    const name = `${unique('img')}.raw`;
    const bytes = randomBytes(70_000);
    await sharedDeps().blobs.put(`images/${name}`, bytes, 'application/octet-stream');
    const agent = await tokenFor('agent', unique('site'));
    const res = await call('GET', `/api/v1.0/agent/images/${name}`, { token: agent.token, redirect: 'manual' });
    expect(res.status).toBe(302);
    expect(res.headers.get('cache-control')).toBe('no-store');
    const location = res.headers.get('location')!;
    expect(location).toContain(`/images/${name}?`);
    expect(location).toContain('X-Amz-Signature=');
    const image = await fetch(location);
    expect(image.status).toBe(200);
    expect(Buffer.from(await image.arrayBuffer()).equals(bytes)).toBe(true);
    // A name the bucket does not hold: 404 in the API's own format, no redirect.
    const none = unique('none');
    const missing = await call('GET', `/api/v1.0/agent/images/${none}`, { token: agent.token, redirect: 'manual' });
    expect(missing.status).toBe(404);
    expect(missing.body).toMatchObject({ type: 'error', message: `Image ${none} not found (no object images/${none} in the bucket)`, retry: false });
  });

  it('refuses other roles (403) and names that are not one safe segment (400), in Drydock form', async () => {
    const member = await tokenFor('member');
    const res = await call('GET', '/api/v1.0/agent/images/x.raw', { token: member.token, redirect: 'manual' });
    expect(res.status).toBe(403);
    expect(res.body).toMatchObject({ type: 'error', message: 'This API is for agent tokens only', retry: false });
    const agent = await tokenFor('agent', unique('site'));
    for (const bad of ['.hidden', '..x', 'a%2Fb', 'a b', 'x'.repeat(201)]) {
      const r = await call('GET', `/api/v1.0/agent/images/${bad}`, { token: agent.token, redirect: 'manual' });
      expect(r.status, bad).toBe(400);
      expect(r.body, bad).toMatchObject({ type: 'error', retry: false });
    }
  });
});
