import { DynamoBaremetalPortRepository } from '../dynamo/bm-ports.ts';
import { DynamoIdempotencyStore } from '../dynamo/idempotency.ts';
import { DynamoJobRepository } from '../dynamo/jobs.ts';
import { DynamoNodeRepository } from '../dynamo/nodes.ts';
import { DynamoTokenRepository } from '../dynamo/tokens.ts';
import { awsNotifier } from '../eventbridge-notifier.ts';
import { compositionRoot } from './compose.ts';
import { secretBoxFromEnv } from './secrets.ts';

/** Ironic `/v1`: nodes, ports, power, provisioning. Its ports and nothing else (compose.ts). */
export const root = compositionRoot('ironic', ({ env, dynamo }) => ({
  tokens: new DynamoTokenRepository(dynamo()),
  idempotency: new DynamoIdempotencyStore(dynamo()),
  secrets: secretBoxFromEnv(env),
  nodes: new DynamoNodeRepository(dynamo()),
  bmPorts: new DynamoBaremetalPortRepository(dynamo()),
  jobs: new DynamoJobRepository(dynamo()),
  notifier: awsNotifier(env),
}));

export const getDeps = root.getDeps;
