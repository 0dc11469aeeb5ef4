import { describe, expect, inject, it } from 'vitest';
import { AgentConfig } from '../../agent/config.ts';
import type { VendorDriver } from '../../agent/executor.ts';
import { Agent } from '../../agent/runner.ts';
import { enqueueJob } from '../../layers/core/agent/enqueue.ts';
import { jobFinished, sharedDeps, untilJob } from '../support/agent.ts';
import { tokenFor, unique } from '../support/api.ts';

/**
 * An output the API will not store (too deep, too large, reserved keys) is a 400 for the agent's
 * result. The job did run, so the agent reports it failed with the API's reason: left claimed,
 * it would expire and run again (a BMC reset twice), then fail as "given up" with no reason.
 */
describe('agent: an output the API refuses', () => {
  it('reports the job failed with the reason, once, and goes on with the next job', async () => {
    const site = unique('site');
    const token = (await tokenFor('agent', site)).token;
    const cfg = { ...AgentConfig.parse({ api_url: inject('apiUrl'), token, poll_seconds: 1 }), token };
    let deep: unknown = 'bottom';
    for (let i = 0; i < 40; i++) deep = { d: deep };
    const calls: string[] = [];
    const driver = {
      vendor: async (method: string) => {
        calls.push(method);
        return method === 'deep' ? deep : method === 'huge' ? { text: 'x'.repeat(70_000) } : { fine: true };
      },
    } as unknown as VendorDriver;
    const agent = new Agent(cfg, () => driver);
    agent.start();
    try {
      const payload = (method: string) => ({ driver: 'redfish', driver_info: { redfish_address: `http://${method}.invalid` }, method, args: {} });
      const jobs = await Promise.all(['deep', 'huge', 'fine'].map((m) => enqueueJob(sharedDeps(), { site, kind: 'vendor', payload: payload(m) })));
      const [deepJob, hugeJob, fineJob] = await Promise.all(jobs.map((j) => untilJob(j.id, jobFinished)));
      expect(deepJob).toMatchObject({ status: 'failed', attempts: 1, error: expect.stringMatching(/^agent error: the job ran, but the API refused its output: .*nested deeper than 32 levels/) });
      expect(hugeJob).toMatchObject({ status: 'failed', attempts: 1, error: expect.stringMatching(/refused its output: .*64 KiB/) });
      expect(fineJob).toMatchObject({ status: 'succeeded', output: { fine: true } });
      expect(calls.sort()).toEqual(['deep', 'fine', 'huge']);
    } finally {
      await agent.stop();
    }
  });
});
