import { DynamoBaremetalPortRepository } from '../dynamo/bm-ports.ts';
import { DynamoDrydockRepository } from '../dynamo/drydock.ts';
import { DynamoJobRepository } from '../dynamo/jobs.ts';
import { DynamoNodeRepository } from '../dynamo/nodes.ts';
import { DynamoTokenRepository } from '../dynamo/tokens.ts';
import { awsNotifier } from '../eventbridge-notifier.ts';
import { SfnTaskCallbacks } from '../sfn-callbacks.ts';
import { blobStoreFromEnv } from './blobs.ts';
import { compositionRoot } from './compose.ts';
import { secretBoxFromEnv } from './secrets.ts';

/** The Drydock task workflow's steps. Its ports and nothing else (compose.ts). */
export const root = compositionRoot('drydock-tasks', ({ env, dynamo }) => ({
  tokens: new DynamoTokenRepository(dynamo()),
  secrets: secretBoxFromEnv(env),
  nodes: new DynamoNodeRepository(dynamo()),
  bmPorts: new DynamoBaremetalPortRepository(dynamo()),
  jobs: new DynamoJobRepository(dynamo()),
  drydock: new DynamoDrydockRepository(dynamo()),
  blobs: blobStoreFromEnv(env),
  callbacks: new SfnTaskCallbacks(),
  notifier: awsNotifier(env),
}));

export const getDeps = root.getDeps;
