import { configFromEnv } from '#core/config.ts';
import type { Clock, Ports } from '#core/ports.ts';
import { DynamoBaremetalPortRepository } from './dynamo/bm-ports.ts';
import { DynamoCommissaireRepository } from './dynamo/commissaire.ts';
import { DynamoDrydockRepository } from './dynamo/drydock.ts';
import { DynamoIdempotencyStore } from './dynamo/idempotency.ts';
import { DynamoJobRepository } from './dynamo/jobs.ts';
import { DynamoLeaseEventStore } from './dynamo/lease-events.ts';
import { DynamoLeaseRepository } from './dynamo/leases.ts';
import { DynamoNodeRepository } from './dynamo/nodes.ts';
import { DynamoPropertyRepository } from './dynamo/properties.ts';
import { DynamoTokenRepository } from './dynamo/tokens.ts';
import { DynamoUserRepository } from './dynamo/users.ts';
import { SfnTaskCallbacks } from './sfn-callbacks.ts';
import { LocalTaskCallbacks } from '#core/agent/callbacks.ts';
import { awsEventRunner, awsEventScheduler, awsNotifier, awsOperationRunner, awsTaskRunner } from './lifecycle-aws.ts';
import { blobStoreFromEnv } from './roots/blobs.ts';
import { dynamoFromEnv, installDeps, systemClock } from './roots/compose.ts';
import { secretBoxFromEnv } from './roots/secrets.ts';

/**
 * The whole composition root: every port, built from the environment. The Lambda functions do not
 * use it (each has its own root with only its ports, `layers/aws/roots/`); the local stack, the
 * CLI and the tests do. Locally `infra/local` sets DYNAMODB_ENDPOINT and the rest.
 */
export { systemClock };

let cached: Ports | undefined;
/** One registry per process, shared by every deps built here (the runner and the handlers). */
export const localCallbacks = new LocalTaskCallbacks();

/** What the local stack replaces: its timers, workflow runner and notifier instead of AWS's. */
export type LifecyclePorts = Pick<Ports, 'scheduler' | 'runner' | 'notifier' | 'operations' | 'tasks'>;

export function buildDeps(
  env: Record<string, string | undefined> = process.env,
  clock: Clock = systemClock,
  lifecycle?: (deps: Omit<Ports, keyof LifecyclePorts>) => LifecyclePorts,
): Ports {
  const d = dynamoFromEnv(env);
  const base = {
    clock,
    config: configFromEnv(env),
    tokens: new DynamoTokenRepository(d),
    users: new DynamoUserRepository(d),
    nodes: new DynamoNodeRepository(d),
    bmPorts: new DynamoBaremetalPortRepository(d),
    leases: new DynamoLeaseRepository(d),
    leaseEvents: new DynamoLeaseEventStore(d),
    properties: new DynamoPropertyRepository(d),
    idempotency: new DynamoIdempotencyStore(d),
    jobs: new DynamoJobRepository(d),
    commissaire: new DynamoCommissaireRepository(d),
    drydock: new DynamoDrydockRepository(d),
    blobs: blobStoreFromEnv(env),
    secrets: secretBoxFromEnv(env),
    // Locally (DynamoDB Local) the workflow runner waits in-process; on AWS, Step Functions.
    callbacks: env.DYNAMODB_ENDPOINT ? localCallbacks : new SfnTaskCallbacks(),
  };
  return {
    ...base,
    ...(lifecycle ? lifecycle(base) : {
          scheduler: awsEventScheduler(env),
          runner: awsEventRunner(env),
          notifier: awsNotifier(env),
          operations: awsOperationRunner(env),
          tasks: awsTaskRunner(env),
        }),
  };
}

export function getDeps(): Ports {
  cached ??= buildDeps();
  return cached;
}

/**
 * Used by the in-process local stack to install the ports it built (its timers, workflow runner
 * and callbacks): `getDeps` here and every function's root hand them out (roots/compose.ts).
 */
export function setDeps(deps: Ports | undefined): void {
  cached = deps;
  installDeps(deps);
}
