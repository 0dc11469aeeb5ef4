import { JavaMissingError } from './dynamodb.ts';
import { startLocalStack } from './stack.ts';

/**
 * `npm start`: the whole system on this machine. PORT (default 8080), SLIPWAY_DATA_DIR (default
 * .slipway), SLIPWAY_ADMIN_TOKEN (else generated into <data dir>/admin-token). Ctrl-C or
 * SIGTERM stops everything it started, the JVM included.
 *
 * `npm start -- --bundled` (or SLIPWAY_BUNDLED=1) serves the Lambda bundles CDK deploys instead
 * of the sources (stack.ts `bundled`): what runs is what AWS runs.
 *
 * Everything listens on 127.0.0.1. SLIPWAY_HOST moves the API (only the API: DynamoDB Local and
 * the object store stay on loopback) to another address, e.g. for machines on a lab network that
 * call it; its routes still want their credentials (tokens, boot-action keys).
 */
async function main(): Promise<void> {
  // Whatever this process and its children (the JVM) create is for this user only: the data
  // directory holds the database, the bootdata objects, the secret key and the admin token.
  process.umask(0o077);
  const port = Number(process.env.PORT ?? 8080);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    process.stderr.write(`PORT must be a TCP port number, got ${process.env.PORT}\n`);
    process.exit(2);
  }
  const host = process.env.SLIPWAY_HOST || '127.0.0.1';
  const args = process.argv.slice(2);
  const unknown = args.filter((a) => a !== '--bundled');
  if (unknown.length > 0) {
    process.stderr.write(`slipway: unknown option ${unknown.join(' ')} (the one option is --bundled)\n`);
    process.exit(2);
  }
  const bundled = args.includes('--bundled') || /^(1|true|yes)$/i.test(process.env.SLIPWAY_BUNDLED ?? '');
  let stack;
  try {
    stack = await startLocalStack({ port, host, bundled });
  } catch (err) {
    if (err instanceof JavaMissingError) {
      process.stderr.write(`slipway: ${err.message}\n`);
      process.exit(1);
    }
    if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE') {
      process.stderr.write(`slipway: port ${port} is already in use; set PORT to another port\n`);
      process.exit(1);
    }
    throw err;
  }
  if (!['127.0.0.1', '::1', 'localhost'].includes(host)) {
    process.stderr.write(`slipway: warning: SLIPWAY_HOST=${process.env.SLIPWAY_HOST}: the API listens on ${host}, not only on this machine (DynamoDB Local and the object store stay on 127.0.0.1)\n`);
  }
  const tokenHint = stack.adminTokenFile ? `cat ${stack.adminTokenFile}` : '$SLIPWAY_ADMIN_TOKEN';
  process.stdout.write(
    [
      `Slipway is running at ${stack.url}  (data: ${stack.dataDir})${bundled ? `  serving the Lambda bundles (${stack.bundles!.dir})` : ''}`,
      `  health:       curl ${stack.url}/healthz`,
      `  admin token:  ${tokenHint}`,
      `  Blazar:       blazar --os-auth-type admin_token --os-endpoint ${stack.url}/v1 --os-token "$(${stack.adminTokenFile ? `cat ${stack.adminTokenFile}` : 'echo $SLIPWAY_ADMIN_TOKEN'})" host-list`,
      `  native:       curl -H "X-Auth-Token: $(${stack.adminTokenFile ? `cat ${stack.adminTokenFile}` : 'echo $SLIPWAY_ADMIN_TOKEN'})" ${stack.url}/v1.1/admin/nodes`,
      `  console:      ${stack.url}/console  (a user first: npm run slipway -- user create --name N --project P --role admin)`,
      `  sign-in:      ${stack.url}/v3 for clouds.yaml's auth_url (docs/identity.md); API document: ${stack.url}/openapi.json`,
      'Press Ctrl-C to stop.',
      '',
    ].join('\n'),
  );
  let stopping = false;
  const shutdown = (sig: string) => {
    if (stopping) return;
    stopping = true;
    process.stdout.write(`\n${sig}: stopping...\n`);
    stack.stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGTERM', () => shutdown('SIGTERM'));
}

main().catch((err) => {
  process.stderr.write(`slipway: failed to start: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
