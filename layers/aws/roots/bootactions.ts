import { DynamoDrydockRepository } from '../dynamo/drydock.ts';
import { DynamoIdempotencyStore } from '../dynamo/idempotency.ts';
import { DynamoTokenRepository } from '../dynamo/tokens.ts';
import { SfnTaskCallbacks } from '../sfn-callbacks.ts';
import { blobStoreFromEnv } from './blobs.ts';
import { compositionRoot } from './compose.ts';
import { secretBoxFromEnv } from './secrets.ts';

/**
 * Drydock's boot-action routes: node keys, bootdata in the bucket, reports. Its ports and nothing
 * else (compose.ts).
 */
export const root = compositionRoot('bootactions', ({ env, dynamo }) => ({
  tokens: new DynamoTokenRepository(dynamo()),
  idempotency: new DynamoIdempotencyStore(dynamo()),
  secrets: secretBoxFromEnv(env),
  drydock: new DynamoDrydockRepository(dynamo()),
  blobs: blobStoreFromEnv(env),
  callbacks: new SfnTaskCallbacks(),
}));

export const getDeps = root.getDeps;
