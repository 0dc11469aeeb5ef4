import { DynamoBaremetalPortRepository } from '../dynamo/bm-ports.ts';
import { DynamoIdempotencyStore } from '../dynamo/idempotency.ts';
import { DynamoJobRepository } from '../dynamo/jobs.ts';
import { DynamoLeaseRepository } from '../dynamo/leases.ts';
import { DynamoNodeRepository } from '../dynamo/nodes.ts';
import { DynamoPropertyRepository } from '../dynamo/properties.ts';
import { DynamoTokenRepository } from '../dynamo/tokens.ts';
import { awsNotifier } from '../eventbridge-notifier.ts';
import { awsEventScheduler } from '../scheduler.ts';
import { awsEventRunner } from '../sfn-runner.ts';
import { compositionRoot } from './compose.ts';
import { secretBoxFromEnv } from './secrets.ts';

/** Blazar `/v1`: leases and os-hosts. Its ports and nothing else (compose.ts). */
export const root = compositionRoot('blazar', ({ env, dynamo }) => ({
  tokens: new DynamoTokenRepository(dynamo()),
  idempotency: new DynamoIdempotencyStore(dynamo()),
  secrets: secretBoxFromEnv(env),
  nodes: new DynamoNodeRepository(dynamo()),
  bmPorts: new DynamoBaremetalPortRepository(dynamo()),
  leases: new DynamoLeaseRepository(dynamo()),
  properties: new DynamoPropertyRepository(dynamo()),
  jobs: new DynamoJobRepository(dynamo()),
  scheduler: awsEventScheduler(env),
  runner: awsEventRunner(env),
  notifier: awsNotifier(env),
}));

export const getDeps = root.getDeps;
