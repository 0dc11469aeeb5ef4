import { DynamoBaremetalPortRepository } from '../dynamo/bm-ports.ts';
import { DynamoCommissaireRepository } from '../dynamo/commissaire.ts';
import { DynamoIdempotencyStore } from '../dynamo/idempotency.ts';
import { DynamoJobRepository } from '../dynamo/jobs.ts';
import { DynamoLeaseRepository } from '../dynamo/leases.ts';
import { DynamoNodeRepository } from '../dynamo/nodes.ts';
import { DynamoTokenRepository } from '../dynamo/tokens.ts';
import { awsNotifier } from '../eventbridge-notifier.ts';
import { awsEventScheduler } from '../scheduler.ts';
import { SfnTaskCallbacks } from '../sfn-callbacks.ts';
import { awsEventRunner } from '../sfn-runner.ts';
import { blobStoreFromEnv } from './blobs.ts';
import { compositionRoot } from './compose.ts';
import { secretBoxFromEnv } from './secrets.ts';

/**
 * The agent API: claims, heartbeats and results of every kind of job (leases, Ironic, Drydock,
 * Commissaire), OS images. Its ports and nothing else (compose.ts).
 */
export const root = compositionRoot('agent', ({ env, dynamo }) => ({
  tokens: new DynamoTokenRepository(dynamo()),
  idempotency: new DynamoIdempotencyStore(dynamo()),
  secrets: secretBoxFromEnv(env),
  nodes: new DynamoNodeRepository(dynamo()),
  bmPorts: new DynamoBaremetalPortRepository(dynamo()),
  leases: new DynamoLeaseRepository(dynamo()),
  jobs: new DynamoJobRepository(dynamo()),
  commissaire: new DynamoCommissaireRepository(dynamo()),
  blobs: blobStoreFromEnv(env),
  callbacks: new SfnTaskCallbacks(),
  scheduler: awsEventScheduler(env),
  runner: awsEventRunner(env),
  notifier: awsNotifier(env),
}));

export const getDeps = root.getDeps;
