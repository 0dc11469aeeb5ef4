import { DynamoBaremetalPortRepository } from '../dynamo/bm-ports.ts';
import { DynamoIdempotencyStore } from '../dynamo/idempotency.ts';
import { DynamoJobRepository } from '../dynamo/jobs.ts';
import { DynamoLeaseRepository } from '../dynamo/leases.ts';
import { DynamoNodeRepository } from '../dynamo/nodes.ts';
import { DynamoTokenRepository } from '../dynamo/tokens.ts';
import { awsNotifier } from '../eventbridge-notifier.ts';
import { awsEventScheduler } from '../scheduler.ts';
import { awsEventRunner } from '../sfn-runner.ts';
import { compositionRoot } from './compose.ts';
import { secretBoxFromEnv } from './secrets.ts';

/** The native `/v1.1` surface: nodes, leases, tokens. Its ports and nothing else (compose.ts). */
export const root = compositionRoot('native', ({ env, dynamo }) => ({
  tokens: new DynamoTokenRepository(dynamo()),
  idempotency: new DynamoIdempotencyStore(dynamo()),
  secrets: secretBoxFromEnv(env),
  nodes: new DynamoNodeRepository(dynamo()),
  bmPorts: new DynamoBaremetalPortRepository(dynamo()),
  leases: new DynamoLeaseRepository(dynamo()),
  jobs: new DynamoJobRepository(dynamo()),
  scheduler: awsEventScheduler(env),
  runner: awsEventRunner(env),
  notifier: awsNotifier(env),
}));

export const getDeps = root.getDeps;
