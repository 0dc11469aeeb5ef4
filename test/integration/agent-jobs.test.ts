import { describe, expect, inject, it } from 'vitest';
import { buildDeps } from '../../layers/aws/deps.ts';
import { enqueueJob } from '../../layers/core/agent/enqueue.ts';
import { ClaimRequest, UNOPENABLE_SECRETS } from '../../layers/core/agent/jobs.ts';
import { claimJobs } from '../../layers/core/agent/kinds.ts';
import type { Principal } from '../../layers/core/identity/identity.ts';
import type { SecretKind } from '../../layers/core/secrets.ts';
import { localCallbacks } from '../../layers/aws/deps.ts';
import { call, tokenFor, unique } from '../support/api.ts';

/**
 * The agent job queue over HTTP (DESIGN.md §6 invariant 4): a job is claimed once, an expired
 * claim is re-offered under a new claim token, results for stale claims are refused, and a
 * finished job never runs again. Jobs are enqueued through the core use-case, as the Ironic and
 * workflow code will.
 */
const deps = () => buildDeps({ TABLE_NAME: 'slipway', DYNAMODB_ENDPOINT: inject('dynamoEndpoint') });
const enqueue = (site: string, extra: Partial<Parameters<typeof enqueueJob>[1]> = {}) =>
  enqueueJob(deps(), { site, kind: 'power', payload: { target: 'power on' }, ...extra });

async function agentFor(site = unique('site')) {
  return { site, ...(await tokenFor('agent', site)) };
}
const claim = (token: string, body: Record<string, unknown> = {}) => call('POST', '/api/v1.0/agent/jobs/claim', { token, body });

describe('agent job queue', () => {
  it('offers a job once, takes heartbeats and one result, then never again', async () => {
    const a = await agentFor();
    const job = await enqueue(a.site);
    const first = await claim(a.token);
    expect(first.status, first.text).toBe(200);
    expect(first.body.jobs).toHaveLength(1);
    const claimed = first.body.jobs[0];
    expect(claimed).toMatchObject({ id: job.id, kind: 'power', payload: { target: 'power on' }, status: 'claimed', attempts: 1 });
    expect(claimed.claim_token).toEqual(expect.any(String));
    expect((await claim(a.token)).body.jobs).toEqual([]);

    const hb = await call('POST', `/api/v1.0/agent/jobs/${job.id}/heartbeat`, { token: a.token, body: { claim_token: claimed.claim_token, lease_seconds: 120 } });
    expect(hb.status).toBe(200);
    expect(Date.parse(hb.body.job.claim_expires_at)).toBeGreaterThan(Date.parse(claimed.claim_expires_at));

    const done = await call('POST', `/api/v1.0/agent/jobs/${job.id}/result`, { token: a.token, body: { claim_token: claimed.claim_token, status: 'succeeded', output: { power_state: 'power on' } } });
    expect(done.status).toBe(200);
    expect(done.body.job).toMatchObject({ status: 'succeeded', output: { power_state: 'power on' } });
    const again = await call('POST', `/api/v1.0/agent/jobs/${job.id}/result`, { token: a.token, body: { claim_token: claimed.claim_token, status: 'failed', error: 'x' } });
    expect(again.status).toBe(409);
    expect(again.body).toMatchObject({ type: 'error', retry: false });
    expect((await call('GET', `/api/v1.0/agent/jobs/${job.id}`, { token: a.token })).body.job).toMatchObject({ status: 'succeeded', claim_token: null });
    expect((await claim(a.token)).body.jobs).toEqual([]);
  });

  it('hands each of 10 jobs to exactly one of 30 parallel claims', async () => {
    const a = await agentFor();
    const jobs = await Promise.all(Array.from({ length: 10 }, () => enqueue(a.site)));
    const results = await Promise.all(Array.from({ length: 30 }, () => claim(a.token)));
    for (const r of results) expect(r.status).toBe(200);
    const got = results.flatMap((r) => r.body.jobs.map((j: any) => j.id));
    expect(got.sort()).toEqual(jobs.map((j) => j.id).sort());
  });

  it('re-offers a job whose claim expired, and refuses the old claim', async () => {
    const a = await agentFor();
    const job = await enqueue(a.site);
    const old = (await claim(a.token, { lease_seconds: 1 })).body.jobs[0];
    expect(old.id).toBe(job.id);
    await new Promise((r) => setTimeout(r, 1200));
    const fresh = (await claim(a.token)).body.jobs[0];
    expect(fresh).toMatchObject({ id: job.id, attempts: 2 });
    expect(fresh.claim_token).not.toBe(old.claim_token);
    const stale = await call('POST', `/api/v1.0/agent/jobs/${job.id}/result`, { token: a.token, body: { claim_token: old.claim_token, status: 'succeeded' } });
    expect(stale.status).toBe(409);
    expect((await call('POST', `/api/v1.0/agent/jobs/${job.id}/heartbeat`, { token: a.token, body: { claim_token: old.claim_token } })).status).toBe(409);
    const ok = await call('POST', `/api/v1.0/agent/jobs/${job.id}/result`, { token: a.token, body: { claim_token: fresh.claim_token, status: 'failed', error: 'BMC unreachable' } });
    expect(ok.body.job).toMatchObject({ status: 'failed', error: 'BMC unreachable' });
  });

  it('takes a released job back at once for the next claim', async () => {
    const a = await agentFor();
    const job = await enqueue(a.site, { max_attempts: 1 });
    const first = (await claim(a.token)).body.jobs[0];
    const rel = await call('POST', `/api/v1.0/agent/jobs/${job.id}/release`, { token: a.token, body: { claim_token: first.claim_token } });
    expect(rel.status).toBe(200);
    expect(rel.body.job).toMatchObject({ status: 'queued', attempts: 0, claim_token: null });
    const second = (await claim(a.token)).body.jobs[0];
    expect(second).toMatchObject({ id: job.id, attempts: 1 });
    expect((await call('POST', `/api/v1.0/agent/jobs/${job.id}/release`, { token: a.token, body: { claim_token: first.claim_token } })).status).toBe(409);
    const big = await call('POST', `/api/v1.0/agent/jobs/${job.id}/result`, { token: a.token, body: { claim_token: second.claim_token, status: 'succeeded', output: 'x'.repeat(70_000) } });
    expect(big.status).toBe(400);
  });

  it('gives up a job whose claims expired max_attempts times', async () => {
    const a = await agentFor();
    const job = await enqueue(a.site, { max_attempts: 1 });
    expect((await claim(a.token, { lease_seconds: 1 })).body.jobs[0].id).toBe(job.id);
    await new Promise((r) => setTimeout(r, 1200));
    expect((await claim(a.token)).body.jobs).toEqual([]);
    const shown = await call('GET', `/api/v1.0/agent/jobs/${job.id}`, { token: a.token });
    expect(shown.body.job.status).toBe('failed');
    expect(shown.body.job.error).toMatch(/expired 1 times/);
  });

  it('long-polls until a job arrives', async () => {
    const a = await agentFor();
    const started = Date.now();
    const pending = claim(a.token, { wait: 5 });
    await new Promise((r) => setTimeout(r, 800));
    const job = await enqueue(a.site);
    const res = await pending;
    expect(res.body.jobs.map((j: any) => j.id)).toEqual([job.id]);
    expect(Date.now() - started).toBeLessThan(4000);
  });

  it('keeps sites apart and the API to agent tokens', async () => {
    const a = await agentFor();
    const b = await agentFor();
    const job = await enqueue(a.site);
    expect((await claim(b.token)).body.jobs).toEqual([]);
    expect((await call('GET', `/api/v1.0/agent/jobs/${job.id}`, { token: b.token })).status).toBe(404);
    const admin = await claim(inject('adminToken'));
    expect(admin.status).toBe(403);
    expect(admin.body.type).toBe('error');
    const bad = await claim(a.token, { wait: 99, colour: 'red' });
    expect(bad.status).toBe(400);
    expect(bad.body.message).toMatch(/wait/);
    expect((await call('GET', '/v1/leases', { token: a.token })).status).toBe(403);
  });

  it('refuses outputs it could not store: reserved keys, 40 levels, over 64 KiB; the claim stays usable', async () => {
    const a = await agentFor();
    const job = await enqueue(a.site);
    const held = (await claim(a.token)).body.jobs[0];
    let deep: unknown = 1;
    for (let i = 0; i < 40; i++) deep = [deep];
    for (const output of [JSON.parse('{"constructor": {"x": 1}}'), { a: JSON.parse('{"__proto__": 1}') }, deep, { text: 'x'.repeat(66_000) }]) {
      const res = await call('POST', `/api/v1.0/agent/jobs/${job.id}/result`, { token: a.token, body: { claim_token: held.claim_token, status: 'succeeded', output } });
      expect(res.status, res.text.slice(0, 300)).toBe(400);
      expect(res.body).toMatchObject({ type: 'error', retry: false });
    }
    const long = await call('POST', `/api/v1.0/agent/jobs/${job.id}/heartbeat`, { token: a.token, body: { claim_token: 'c'.repeat(300) } });
    expect(long.status).toBe(400);
    const done = await call('POST', `/api/v1.0/agent/jobs/${job.id}/result`, { token: a.token, body: { claim_token: held.claim_token, status: 'succeeded', output: { sensors: 'y'.repeat(60_000) } } });
    expect(done.status, done.text.slice(0, 300)).toBe(200);
  });

  it('fails a job whose secrets cannot be opened alone, and hands out the rest of the batch', async () => {
    const a = await agentFor();
    const before = await enqueue(a.site);
    // A sealed value nobody sealed (clients can no longer submit one; an old or damaged item can hold one).
    const bad = await enqueueJob(deps(), {
      site: a.site,
      kind: 'power',
      payload: { driver: 'ipmi', driver_info: { ipmi_address: '10.0.0.1', ipmi_username: { $sealed: 'v1:AAAA:BBBB:CCCC' } }, target: 'power on' },
    });
    const after = await enqueue(a.site);
    const res = await claim(a.token, { max: 3 });
    expect(res.status, res.text).toBe(200);
    expect(res.body.jobs.map((j: any) => j.id).sort()).toEqual([before.id, after.id].sort());
    const failed = await call('GET', `/api/v1.0/agent/jobs/${bad.id}`, { token: a.token });
    expect(failed.body.job).toMatchObject({ status: 'failed', error: UNOPENABLE_SECRETS });
    expect(failed.body.job.error).not.toContain('AAAA');
    expect((await claim(a.token)).body.jobs).toEqual([]);
  });

  it('claims around a secrets port that throws for one job (the use-case alone)', async () => {
    const site = unique('site');
    const agent: Principal = { token_id: 't', project_id: site, user_id: 'agent', roles: ['agent'] };
    const base = deps();
    const secrets = {
      seal: async (_kind: SecretKind, plain: string) => `plain:${plain}`,
      open: async (_kind: SecretKind, sealed: string) => {
        if (sealed === 'broken') throw new Error('unable to authenticate data');
        return sealed.replace(/^plain:/, '');
      },
    };
    const fake = { ...base, secrets };
    const good = await enqueueJob(base, { site, kind: 'power', payload: { driver: 'ipmi', driver_info: { ipmi_address: 'a', ipmi_password: { $sealed: 'plain:pw' } } } });
    const token = unique('task-token');
    // Settled during the claim: caught at once, looked at below.
    const told = localCallbacks.wait(token).promise.then(() => undefined, (err: Error) => err);
    const broken = await enqueueJob(base, { site, kind: 'power', payload: { driver: 'ipmi', driver_info: { ipmi_address: 'b', ipmi_password: { $sealed: 'broken' } } }, task_token: token });
    const later = await enqueueJob(base, { site, kind: 'power', payload: { driver: 'ipmi', driver_info: { ipmi_address: 'c' } } });
    const jobs = await claimJobs(fake, agent, ClaimRequest.parse({ max: 5 }));
    expect(jobs.map((j) => j.id).sort()).toEqual([good.id, later.id].sort());
    expect(jobs.find((j) => j.id === good.id)!.payload.driver_info).toEqual({ ipmi_address: 'a', ipmi_password: 'pw' });
    expect(await base.jobs.get(broken.id)).toMatchObject({ status: 'failed', error: UNOPENABLE_SECRETS });
    // The workflow waiting for it is told at once, not left to its timeout.
    expect(await told).toMatchObject({ name: 'AgentJobFailed', message: UNOPENABLE_SECRETS });
  });
});
