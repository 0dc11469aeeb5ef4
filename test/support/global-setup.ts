import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { type LocalStack, startLocalStack } from '../../infra/local/stack.ts';

/**
 * One real local stack for the whole run: DynamoDB Local (in memory), s3rver and the HTTP
 * server on a free port. Tests reach it over HTTP only, through `inject('apiUrl')`.
 */
declare module 'vitest' {
  export interface ProvidedContext {
    apiUrl: string;
    adminToken: string;
    dynamoEndpoint: string;
    s3Endpoint: string;
  }
}

let stack: LocalStack | undefined;
let dir: string | undefined;

/**
 * The suite's results must not depend on the shell that runs it: every SLIPWAY_* variable the
 * caller exported (SLIPWAY_ADMIN_TOKEN, SLIPWAY_DATA_DIR, settings such as
 * SLIPWAY_CLEANING_MINUTES, ...) and PORT are dropped here, in the main process, before the
 * stack starts and before any test worker is forked (workers inherit this environment). The
 * suite then sets its own: SLIPWAY_LOG_LEVEL here and in vitest.config.ts, and what the stack
 * puts in the environment (SLIPWAY_SECRET_KEY_FILE, SLIPWAY_COMMISSAIRE_SITE).
 * No proxy is used for loopback, whatever http_proxy says (curl and wget fetch presigned URLs).
 */
export function isolateFromCallerEnvironment(env: NodeJS.ProcessEnv = process.env): void {
  for (const name of Object.keys(env)) {
    if (name.startsWith('SLIPWAY_') || name === 'PORT') delete env[name];
  }
  env.SLIPWAY_LOG_LEVEL = 'warn';
  const loopback = ['127.0.0.1', 'localhost', '::1', '[::1]'];
  for (const name of ['no_proxy', 'NO_PROXY']) {
    const have = (env[name] ?? '').split(',').map((s) => s.trim()).filter(Boolean);
    env[name] = [...new Set([...have, ...loopback])].join(',');
  }
}

export async function setup(project: TestProject): Promise<void> {
  isolateFromCallerEnvironment();
  dir = mkdtempSync(join(tmpdir(), 'slipway-test-'));
  stack = await startLocalStack({
    port: 0,
    dataDir: dir,
    ephemeral: true,
    adminToken: 'slp_test-admin-token-0123456789abcdef',
    // No test runs an agent for this site: Commissaire's SSH jobs on the shared stack stay queued
    // (hosts stay `investigating`, operations `in_process`) instead of reaching port 22 of
    // loopback through some other test's agent. The SSH tests use a stack of their own.
    env: { SLIPWAY_COMMISSAIRE_SITE: 'shared-stack-commissaire' },
  });
  project.provide('apiUrl', stack.url);
  project.provide('adminToken', stack.adminToken);
  project.provide('dynamoEndpoint', stack.dynamoEndpoint);
  project.provide('s3Endpoint', stack.s3Endpoint);
}

export async function teardown(): Promise<void> {
  await stack?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
}
