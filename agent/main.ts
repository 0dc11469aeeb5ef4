import { ConfigError, loadConfig } from './config.ts';
import { DnsmasqConfigError, dnsmasqConfigCommand } from './dnsmasq.ts';
import { driverFactory } from './drivers/index.ts';
import { NetbootService } from './netboot.ts';
import { Agent, agentImageCache } from './runner.ts';

/**
 * `npm run agent`: the on-prem agent. SLIPWAY_API_URL and SLIPWAY_AGENT_TOKEN from the
 * environment, or `npm run agent -- --config FILE`. With a `netboot` section it also runs the
 * site boot service (agent/netboot.ts) for `inspect`, `clean` and image `deploy_node` jobs, serving the
 * images of its catalog (netboot.images: http(s), file:// or `api:<name>`, the deployment's bucket
 * through the API) from the image cache (agent/images.ts). SIGTERM / Ctrl-C finishes or releases
 * the jobs it holds, then exits.
 *
 * `npm run --silent agent -- dnsmasq-config [--config FILE | --public-url URL] [--range SUBNET] [--interface IF] [--tftp-root DIR]`
 * prints a dnsmasq proxy-DHCP configuration that chains the site's PXE clients to the boot service.
 */
const argv = process.argv.slice(2);
if (argv[0] === 'dnsmasq-config') {
  try {
    process.stdout.write(dnsmasqConfigCommand(argv.slice(1)));
    process.exit(0);
  } catch (err) {
    process.stderr.write(`slipway-agent dnsmasq-config: ${(err as Error).message}\n`);
    process.exit(err instanceof DnsmasqConfigError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS') ? 2 : 1);
  }
}

let config;
try {
  config = loadConfig(argv, process.env);
} catch (err) {
  if (err instanceof ConfigError) {
    process.stderr.write(`slipway-agent: ${err.message}\nUsage: SLIPWAY_API_URL=... SLIPWAY_AGENT_TOKEN=... npm run agent   (or: npm run agent -- --config FILE)\n`);
    process.exit(2);
  }
  throw err;
}
let netboot: NetbootService | undefined;
if (config.netboot) {
  const nb = config.netboot;
  // Images are fetched on first use by a deploy, not here: a catalog entry that is down must not
  // stop the agent. `api:<name>` entries are fetched through this agent's API with its token.
  const images = agentImageCache(config)!;
  netboot = new NetbootService({ host: nb.listen.host, port: nb.listen.port, publicUrl: nb.public_url, kernel: nb.kernel, initramfs: nb.initramfs, kernelArgs: nb.kernel_args, images });
  try {
    await netboot.start();
  } catch (err) {
    process.stderr.write(`slipway-agent: the boot service cannot listen on ${nb.listen.host}:${nb.listen.port}: ${(err as Error).message}\n`);
    process.exit(1);
  }
}
const agent = new Agent(config, driverFactory(config), netboot);
agent.start();
let stopping = false;
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    if (stopping) return;
    stopping = true;
    agent
      .stop()
      .then(() => netboot?.stop())
      .then(
        () => process.exit(0),
        () => process.exit(1),
      );
  });
}
