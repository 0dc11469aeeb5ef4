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

export async function setup(project: TestProject): Promise<void> {
  process.env.SLIPWAY_LOG_LEVEL ??= 'warn';
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
