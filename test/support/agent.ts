import { inject } from 'vitest';
import { buildDeps } from '../../layers/aws/deps.ts';
import type { Job } from '../../layers/core/agent/model.ts';
import type { Ports } from '../../layers/core/ports.ts';
import { AgentConfig } from '../../agent/config.ts';
import { driverFactory } from '../../agent/drivers/index.ts';
import { Agent } from '../../agent/runner.ts';
import { apiUrl, call, tokenFor } from './api.ts';
import { waitFor } from './wait.ts';

/**
 * A running in-process agent for `site` against the test stack, with short polls and fast
 * driver timings so tests stay quick; `overrides` are merged into the config file shape. It
 * returns once the site has an agent on record (its first claim): a request racing that claim
 * would rightly find the site without one (a fetch refused, a verify_site failing).
 */
export async function startTestAgent(site: string, overrides: Record<string, unknown> = {}): Promise<Agent> {
  const token = (await tokenFor('agent', site)).token;
  const cfg = {
    ...AgentConfig.parse({
      api_url: apiUrl(),
      token,
      poll_seconds: 1,
      ipmi: { min_command_interval_ms: 100, poll_interval_ms: 200, timeout_seconds: 5, retries: 0 },
      redfish: { poll_interval_ms: 50 },
      ...overrides,
    }),
    token,
  };
  const agent = new Agent(cfg, driverFactory(cfg));
  agent.start();
  await waitFor(`an agent of site ${site} connected`, async () => {
    const res = await call('GET', '/v1.1/admin/sites');
    return res.body.sites?.some((s: { name: string; connected: boolean }) => s.name === site && s.connected);
  });
  return agent;
}

let cached: Ports | undefined;
/**
 * The shared stack's ports, for tests that read and write its store directly: its DynamoDB and
 * s3rver, and its secret key (the stack put SLIPWAY_SECRET_KEY_FILE and S3_SECRET_ACCESS_KEY in
 * the environment the test workers inherit), so that what is sealed here the stack can open.
 */
export function sharedDeps(): Ports {
  cached ??= buildDeps({
    ...process.env,
    TABLE_NAME: 'slipway',
    DYNAMODB_ENDPOINT: inject('dynamoEndpoint'),
    S3_ENDPOINT: inject('s3Endpoint'),
    BOOTDATA_BUCKET: 'slipway-bootdata',
  });
  return cached;
}

/** Polls a job until `test` holds (e.g. `jobFinished`); throws with its last status after `ms`. */
export async function untilJob(id: string, test: (j: Job) => boolean, ms = 20_000): Promise<Job> {
  const end = Date.now() + ms;
  for (;;) {
    const job = (await sharedDeps().jobs.get(id))!;
    if (test(job)) return job;
    if (Date.now() > end) throw new Error(`job ${id} still ${job.status}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
export const jobFinished = (j: Job) => j.status === 'succeeded' || j.status === 'failed';
