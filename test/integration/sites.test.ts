import { readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import type { Agent } from '../../agent/runner.ts';
import { enqueueJob } from '#core/agent/enqueue.ts';
import { call, tokenFor, unique } from '../support/api.ts';
import { sharedDeps, startTestAgent } from '../support/agent.ts';
import { waitFor } from '../support/wait.ts';

/**
 * `GET /v1.1/{project_id}/sites` over HTTP against the shared stack: each site with its agents'
 * last contact (a claim or a heartbeat, written at most once per ~30 s by a conditional write),
 * the version each agent reports, and its queued and running jobs; for admins only.
 */

const VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

async function siteOf(name: string): Promise<any> {
  const res = await call('GET', '/v1.1/admin/sites');
  expect(res.status, res.text).toBe(200);
  return (res.body.sites as any[]).find((s) => s.name === name);
}

async function claim(token: string, userAgent: string): Promise<any[]> {
  const res = await call('POST', '/api/v1.0/agent/jobs/claim', { token, body: { wait: 0, max: 1 }, headers: { 'User-Agent': userAgent } });
  expect(res.status, res.text).toBe(200);
  return res.body.jobs;
}

const agents: Agent[] = [];
afterAll(async () => {
  for (const a of agents) await a.stop();
});

describe('GET /v1.1/{project_id}/sites', () => {
  it("lists a site's agents with their last claim or heartbeat, version, and the site's job counts", async () => {
    const site = unique('site');
    const a = await tokenFor('agent', site);
    const b = await tokenFor('agent', site);
    // A member of the same project is no agent.
    await tokenFor('member', site);

    const fresh = await siteOf(site);
    expect(fresh).toMatchObject({ name: site, connected: false, last_contact_at: null, jobs: { queued: 0, running: 0, truncated: false } });
    expect(fresh.agents.map((x: any) => x.id)).toEqual([a.id, b.id].sort());
    for (const x of fresh.agents) {
      expect(x).toMatchObject({ token_active: true, last_contact_at: null, connected: false, version: null, expires_at: null });
      expect(Date.parse(x.created_at)).toBeGreaterThan(Date.now() - 60_000);
    }

    const deps = sharedDeps();
    await enqueueJob(deps, { site, kind: 'power_state', payload: {} });
    await enqueueJob(deps, { site, kind: 'power_state', payload: {} });
    const before = Date.now();
    const [job] = await claim(a.token, 'slipway-agent/1.2.3');
    expect(job).toBeDefined();

    const claimed = await siteOf(site);
    const byId = (s: any, id: string) => s.agents.find((x: any) => x.id === id);
    expect(claimed).toMatchObject({ connected: true, jobs: { queued: 1, running: 1, truncated: false } });
    expect(byId(claimed, a.id)).toMatchObject({ connected: true, version: '1.2.3' });
    expect(Date.parse(byId(claimed, a.id).last_contact_at)).toBeGreaterThanOrEqual(before - 1000);
    expect(claimed.last_contact_at).toBe(byId(claimed, a.id).last_contact_at);
    expect(byId(claimed, b.id)).toMatchObject({ last_contact_at: null, connected: false });

    // A heartbeat is contact too: agent b keeps a's claim alive (same site, same claim token).
    const hb = await call('POST', `/api/v1.0/agent/jobs/${job.id}/heartbeat`, {
      token: b.token,
      body: { claim_token: job.claim_token },
      headers: { 'User-Agent': 'slipway-agent/1.2.4' },
    });
    expect(hb.status, hb.text).toBe(200);
    expect(byId(await siteOf(site), b.id)).toMatchObject({ connected: true, version: '1.2.4' });

    // A User-Agent that is not the agent's records contact without a version.
    const c = await tokenFor('agent', site);
    await claim(c.token, 'curl/8.0');
    expect(byId(await siteOf(site), c.id)).toMatchObject({ connected: true, version: null });
  });

  it("shows the agent's own version, from the real agent's User-Agent", async () => {
    const site = unique('site-agent');
    agents.push(await startTestAgent(site));
    const agent = await waitFor('the agent on record', async () => (await siteOf(site))?.agents.find((x: any) => x.last_contact_at !== null), 15_000);
    expect(agent).toMatchObject({ connected: true, version: VERSION, token_active: true });
  });

  it('keeps showing a revoked agent token that made contact, as inactive', async () => {
    const site = unique('site-revoked');
    const gone = await tokenFor('agent', site);
    const stays = await tokenFor('agent', site);
    await claim(gone.token, 'slipway-agent/0.0.1');
    expect((await call('DELETE', `/v1.1/admin/tokens/${gone.id}`)).status).toBe(204);
    const s = await siteOf(site);
    expect(s.agents.map((x: any) => x.id).sort()).toEqual([gone.id, stays.id].sort());
    expect(s.agents.find((x: any) => x.id === gone.id)).toMatchObject({ token_active: false, version: '0.0.1', created_at: null, description: null });
    expect(s.agents.find((x: any) => x.id === stays.id)).toMatchObject({ token_active: true, last_contact_at: null });
  });

  it('writes an agent\'s contact at most once per 30 s, conditionally on the stored time', async () => {
    const deps = sharedDeps();
    const site = unique('site-touch');
    const t0 = new Date(Date.now() - 120_000);
    const at = async () => (await deps.jobs.agentsSeen(site)).map((s) => [s.agent, s.at, s.version ?? null]);
    expect(await deps.jobs.touchAgent(site, 'agent-1', t0, '1.0.0')).toBe(true);
    // A burst within 30 s (other instances, a heartbeat with a claim): no write lands.
    expect(await deps.jobs.touchAgent(site, 'agent-1', new Date(t0.getTime() + 10_000), '2.0.0')).toBe(false);
    expect(await deps.jobs.touchAgent(site, 'agent-1', new Date(t0.getTime() + 29_999))).toBe(false);
    expect(await at()).toEqual([['agent-1', t0.toISOString(), '1.0.0']]);
    const t1 = new Date(t0.getTime() + 31_000);
    expect(await deps.jobs.touchAgent(site, 'agent-1', t1, '2.0.0')).toBe(true);
    expect(await at()).toEqual([['agent-1', t1.toISOString(), '2.0.0']]);
    // A late writer with an older time never replaces a newer one.
    expect(await deps.jobs.touchAgent(site, 'agent-1', t0)).toBe(false);
    expect(await at()).toEqual([['agent-1', t1.toISOString(), '2.0.0']]);
    // Each agent has its own record.
    expect(await deps.jobs.touchAgent(site, 'agent-2', t0)).toBe(true);
    expect((await at()).map(([a]) => a).sort()).toEqual(['agent-1', 'agent-2']);
  });

  it('is for admins only: 403 in the Sahara format for members, readers and agents; 401 for another project', async () => {
    for (const role of ['member', 'reader', 'agent'] as const) {
      const t = await tokenFor(role);
      const res = await call('GET', `/v1.1/${t.project}/sites`, { token: t.token });
      expect(res.status, role).toBe(403);
      const message = role === 'agent' ? 'Agent tokens may only use the agent API' : 'This operation is restricted to administrators';
      expect(res.body).toEqual({ error_code: 403, error_name: 'FORBIDDEN', error_message: message });
    }
    const member = await tokenFor('member');
    const other = await call('GET', '/v1.1/admin/sites', { token: member.token });
    expect(other.status).toBe(401);
    expect(other.body).toMatchObject({ error_code: 401, error_name: 'UNAUTHORIZED' });
    expect((await call('GET', '/v1.1/admin/sites', { token: null })).status).toBe(401);
    // The Sahara `.json` suffix, as every native route.
    expect((await call('GET', '/v1.1/admin/sites.json')).status).toBe(200);
  });
});
