import { describe, expect, inject, it } from 'vitest';
import { buildDeps, localCallbacks } from '../../layers/aws/deps.ts';
import { enqueueJob } from '../../layers/core/agent/enqueue.ts';
import { ClaimRequest, heartbeatJob } from '../../layers/core/agent/jobs.ts';
import { claimJobs, finishJob } from '../../layers/core/agent/kinds.ts';
import type { Principal } from '../../layers/core/identity/identity.ts';
import { unique } from '../support/api.ts';

/**
 * Jobs that carry a Step Functions task token answer it when they become final (locally
 * through the in-process registry the workflow runner waits on), with real DynamoDB items.
 */
const deps = () => buildDeps({ TABLE_NAME: 'slipway', DYNAMODB_ENDPOINT: inject('dynamoEndpoint') });
const agentOf = (site: string): Principal => ({ token_id: 't', project_id: site, user_id: 'agent', roles: ['agent'] });

describe('task token callbacks', () => {
  it('answers the token with the output on success, after heartbeats', async () => {
    const site = unique('site');
    const token = unique('task-token');
    const waiter = localCallbacks.wait(token);
    await enqueueJob(deps(), { site, kind: 'power_state', payload: {}, task_token: token });
    const [job] = await claimJobs(deps(), agentOf(site), ClaimRequest.parse({}));
    await heartbeatJob(deps(), agentOf(site), job!.id, { claim_token: job!.claim_token!, lease_seconds: 60 });
    expect(waiter.heartbeats).toBe(1);
    await finishJob(deps(), agentOf(site), job!.id, { claim_token: job!.claim_token!, status: 'succeeded', output: { power_state: 'power on' } });
    await expect(waiter.promise).resolves.toEqual({ power_state: 'power on' });
  });

  it('fails the token with the agent error', async () => {
    const site = unique('site');
    const token = unique('task-token');
    const waiter = localCallbacks.wait(token);
    await enqueueJob(deps(), { site, kind: 'power_state', payload: {}, task_token: token });
    const [job] = await claimJobs(deps(), agentOf(site), ClaimRequest.parse({}));
    await finishJob(deps(), agentOf(site), job!.id, { claim_token: job!.claim_token!, status: 'failed', error: 'unreachable: BMC at 10.0.0.1 is unreachable' });
    await expect(waiter.promise).rejects.toMatchObject({ name: 'AgentJobFailed', message: 'unreachable: BMC at 10.0.0.1 is unreachable' });
  });

  it('fails the token of a job given up after its claims expired', async () => {
    const site = unique('site');
    const token = unique('task-token');
    const waiter = localCallbacks.wait(token);
    await enqueueJob(deps(), { site, kind: 'power_state', payload: {}, task_token: token, max_attempts: 1 });
    await claimJobs(deps(), agentOf(site), ClaimRequest.parse({ lease_seconds: 1 }));
    await new Promise((r) => setTimeout(r, 1200));
    expect(await claimJobs(deps(), agentOf(site), ClaimRequest.parse({}))).toEqual([]);
    await expect(waiter.promise).rejects.toMatchObject({ name: 'AgentJobFailed', message: expect.stringMatching(/expired 1 times/) });
  });
});
