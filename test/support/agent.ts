import { AgentConfig } from '../../agent/config.ts';
import { driverFactory } from '../../agent/drivers/index.ts';
import { Agent } from '../../agent/runner.ts';
import { apiUrl, tokenFor } from './api.ts';

/**
 * A running in-process agent for `site` against the test stack, with short polls and fast
 * driver timings so tests stay quick; `overrides` are merged into the config file shape.
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
  return agent;
}
