import { DynamoBaremetalPortRepository } from '../dynamo/bm-ports.ts';
import { DynamoJobRepository } from '../dynamo/jobs.ts';
import { DynamoLeaseEventStore } from '../dynamo/lease-events.ts';
import { DynamoLeaseRepository } from '../dynamo/leases.ts';
import { DynamoNodeRepository } from '../dynamo/nodes.ts';
import { DynamoTokenRepository } from '../dynamo/tokens.ts';
import { awsNotifier } from '../eventbridge-notifier.ts';
import { awsEventScheduler } from '../scheduler.ts';
import { awsEventRunner } from '../sfn-runner.ts';
import { compositionRoot } from './compose.ts';
import { secretBoxFromEnv } from './secrets.ts';

/** The lease-event sweeper and calendar reconciler. Its ports and nothing else (compose.ts). */
export const root = compositionRoot('sweeper', ({ env, dynamo }) => ({
  tokens: new DynamoTokenRepository(dynamo()),
  secrets: secretBoxFromEnv(env),
  nodes: new DynamoNodeRepository(dynamo()),
  bmPorts: new DynamoBaremetalPortRepository(dynamo()),
  leases: new DynamoLeaseRepository(dynamo()),
  leaseEvents: new DynamoLeaseEventStore(dynamo()),
  jobs: new DynamoJobRepository(dynamo()),
  scheduler: awsEventScheduler(env),
  runner: awsEventRunner(env),
  notifier: awsNotifier(env),
}));

export const getDeps = root.getDeps;
