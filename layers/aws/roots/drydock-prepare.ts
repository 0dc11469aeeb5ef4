import { DynamoDrydockRepository } from '../dynamo/drydock.ts';
import { DynamoJobRepository } from '../dynamo/jobs.ts';
import { DynamoTokenRepository } from '../dynamo/tokens.ts';
import { blobStoreFromEnv } from './blobs.ts';
import { compositionRoot } from './compose.ts';

/**
 * The Drydock task workflow's Prepare step. Its ports and nothing else (compose.ts): the task and
 * its subtasks, stored designs, `s3://` designs and the snapshot, and the agent `fetch` job of a
 * design inside a site (agent/fetch.ts: the agents' presence).
 */
export const root = compositionRoot('drydock-prepare', ({ env, dynamo }) => ({
  tokens: new DynamoTokenRepository(dynamo()),
  jobs: new DynamoJobRepository(dynamo()),
  drydock: new DynamoDrydockRepository(dynamo()),
  blobs: blobStoreFromEnv(env),
}));

export const getDeps = root.getDeps;
