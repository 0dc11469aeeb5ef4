import { DynamoBaremetalPortRepository } from '../dynamo/bm-ports.ts';
import { DynamoDrydockRepository } from '../dynamo/drydock.ts';
import { DynamoIdempotencyStore } from '../dynamo/idempotency.ts';
import { DynamoJobRepository } from '../dynamo/jobs.ts';
import { DynamoNodeRepository } from '../dynamo/nodes.ts';
import { DynamoTokenRepository } from '../dynamo/tokens.ts';
import { awsTaskRunner } from '../sfn-runner.ts';
import { blobStoreFromEnv } from './blobs.ts';
import { compositionRoot } from './compose.ts';
import { secretBoxFromEnv } from './secrets.ts';

/**
 * Drydock `/api/v1.0`: designs, tasks and their build data. Its ports and nothing else
 * (compose.ts).
 */
export const root = compositionRoot('drydock', ({ env, dynamo }) => ({
  tokens: new DynamoTokenRepository(dynamo()),
  idempotency: new DynamoIdempotencyStore(dynamo()),
  secrets: secretBoxFromEnv(env),
  nodes: new DynamoNodeRepository(dynamo()),
  bmPorts: new DynamoBaremetalPortRepository(dynamo()),
  drydock: new DynamoDrydockRepository(dynamo()),
  // Design fetches at a site-internal address are the site agent's jobs (agent/fetch.ts).
  jobs: new DynamoJobRepository(dynamo()),
  blobs: blobStoreFromEnv(env),
  tasks: awsTaskRunner(env),
}));

export const getDeps = root.getDeps;
