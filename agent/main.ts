import { ConfigError, loadConfig } from './config.ts';
import { driverFactory } from './drivers/index.ts';
import { Agent } from './runner.ts';

/**
 * `npm run agent`: the on-prem agent. SLIPWAY_API_URL and SLIPWAY_AGENT_TOKEN from the
 * environment, or `npm run agent -- --config FILE`. SIGTERM / Ctrl-C finishes or releases the
 * jobs it holds, then exits.
 */
let config;
try {
  config = loadConfig(process.argv.slice(2), process.env);
} catch (err) {
  if (err instanceof ConfigError) {
    process.stderr.write(`slipway-agent: ${err.message}\nUsage: SLIPWAY_API_URL=... SLIPWAY_AGENT_TOKEN=... npm run agent   (or: npm run agent -- --config FILE)\n`);
    process.exit(2);
  }
  throw err;
}
const agent = new Agent(config, driverFactory(config));
agent.start();
let stopping = false;
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    if (stopping) return;
    stopping = true;
    agent.stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  });
}
