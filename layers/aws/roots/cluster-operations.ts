import { DynamoBaremetalPortRepository } from '../dynamo/bm-ports.ts';
import { DynamoCommissaireRepository } from '../dynamo/commissaire.ts';
import { DynamoJobRepository } from '../dynamo/jobs.ts';
import { DynamoNodeRepository } from '../dynamo/nodes.ts';
import { DynamoTokenRepository } from '../dynamo/tokens.ts';
import { awsOperationRunner } from '../sfn-runner.ts';
import { compositionRoot } from './compose.ts';
import { secretBoxFromEnv } from './secrets.ts';

/** The Commissaire cluster-operation workflow's steps. Its ports and nothing else (compose.ts). */
export const root = compositionRoot('cluster-operations', ({ env, dynamo }) => ({
  tokens: new DynamoTokenRepository(dynamo()),
  secrets: secretBoxFromEnv(env),
  nodes: new DynamoNodeRepository(dynamo()),
  bmPorts: new DynamoBaremetalPortRepository(dynamo()),
  jobs: new DynamoJobRepository(dynamo()),
  commissaire: new DynamoCommissaireRepository(dynamo()),
  operations: awsOperationRunner(env),
}));

export const getDeps = root.getDeps;
