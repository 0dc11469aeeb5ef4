import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type LocalStack, type LocalStackOptions, startLocalStack } from '../../infra/local/stack.ts';
import { useStack } from './api.ts';

/**
 * A local stack of a test file's own (its own settings, a test clock), in memory, on a free
 * port, in a temporary data directory; this file's `call`s then go to it. `stop` stops it and
 * removes the directory.
 */
export async function startOwnStack(
  name: string,
  opts: Omit<LocalStackOptions, 'port' | 'dataDir' | 'ephemeral' | 'adminToken'> = {},
): Promise<{ stack: LocalStack; stop: () => Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), `slipway-${name}-`));
  const stack = await startLocalStack({ ...opts, port: 0, dataDir: dir, ephemeral: true, adminToken: `slp_${name}-admin-token-0123456789abcdef` });
  useStack(stack.url, stack.adminToken);
  return {
    stack,
    stop: async () => {
      await stack.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
