import { DynamoBaremetalPortRepository } from '../dynamo/bm-ports.ts';
import { DynamoCommissaireRepository } from '../dynamo/commissaire.ts';
import { DynamoIdempotencyStore } from '../dynamo/idempotency.ts';
import { DynamoJobRepository } from '../dynamo/jobs.ts';
import { DynamoNodeRepository } from '../dynamo/nodes.ts';
import { DynamoTokenRepository } from '../dynamo/tokens.ts';
import { DynamoUserRepository } from '../dynamo/users.ts';
import { awsOperationRunner } from '../sfn-runner.ts';
import { compositionRoot } from './compose.ts';
import { secretBoxFromEnv } from './secrets.ts';

/**
 * Commissaire `/api/v0`: clusters, hosts, networks, container managers, cluster operations. Its
 * ports and nothing else (compose.ts).
 */
export const root = compositionRoot('commissaire', ({ env, dynamo }) => ({
  tokens: new DynamoTokenRepository(dynamo()),
  // `Basic user:password` (layers/http/credentials.ts): a user by name.
  users: new DynamoUserRepository(dynamo()),
  idempotency: new DynamoIdempotencyStore(dynamo()),
  secrets: secretBoxFromEnv(env),
  nodes: new DynamoNodeRepository(dynamo()),
  bmPorts: new DynamoBaremetalPortRepository(dynamo()),
  jobs: new DynamoJobRepository(dynamo()),
  commissaire: new DynamoCommissaireRepository(dynamo()),
  operations: awsOperationRunner(env),
}));

export const getDeps = root.getDeps;
