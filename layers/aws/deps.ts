import { configFromEnv } from '#core/config.ts';
import type { Clock, Ports } from '#core/ports.ts';
import { DynamoBaremetalPortRepository } from './dynamo/bm-ports.ts';
import { makeDynamo } from './dynamo/client.ts';
import { DynamoCommissaireRepository } from './dynamo/commissaire.ts';
import { DynamoDrydockRepository } from './dynamo/drydock.ts';
import { DynamoIdempotencyStore } from './dynamo/idempotency.ts';
import { DynamoJobRepository } from './dynamo/jobs.ts';
import { DynamoLeaseRepository } from './dynamo/leases.ts';
import { DynamoNodeRepository } from './dynamo/nodes.ts';
import { DynamoPropertyRepository } from './dynamo/properties.ts';
import { DEFAULT_TABLE_NAME } from './dynamo/schema.ts';
import { DynamoTokenRepository } from './dynamo/tokens.ts';
import { KmsSecretBox } from './kms-secrets.ts';
import { S3BlobStore } from './s3-blobs.ts';
import { AesSecretBox, NoSecretBox } from './secrets.ts';
import { SfnTaskCallbacks } from './sfn-callbacks.ts';
import { LocalTaskCallbacks } from '#core/agent/callbacks.ts';
import type { SecretBox } from '#core/secrets.ts';
import { awsEventRunner, awsEventScheduler, awsNotifier, awsOperationRunner, awsTaskRunner } from './lifecycle-aws.ts';

/**
 * The composition root: builds the ports once per process from the environment. On AWS the
 * CDK function construct sets TABLE_NAME; locally `infra/local` also sets DYNAMODB_ENDPOINT.
 */
export const systemClock: Clock = { now: () => new Date() };

let cached: Ports | undefined;
/** One registry per process, shared by every deps built here (the runner and the handlers). */
export const localCallbacks = new LocalTaskCallbacks();

function secretBox(env: Record<string, string | undefined>): SecretBox {
  // On AWS the stateful stack's KMS key; locally a key file in the data directory.
  if (env.SECRETS_KMS_KEY_ID) return new KmsSecretBox(env.SECRETS_KMS_KEY_ID);
  if (env.SLIPWAY_SECRET_KEY) return new AesSecretBox(Buffer.from(env.SLIPWAY_SECRET_KEY, 'base64'));
  if (env.SLIPWAY_SECRET_KEY_FILE) return AesSecretBox.fromFile(env.SLIPWAY_SECRET_KEY_FILE);
  return new NoSecretBox();
}

/** What the local stack replaces: its timers, workflow runner and notifier instead of AWS's. */
export type LifecyclePorts = Pick<Ports, 'scheduler' | 'runner' | 'notifier' | 'operations' | 'tasks'>;

export function buildDeps(
  env: Record<string, string | undefined> = process.env,
  clock: Clock = systemClock,
  lifecycle?: (deps: Omit<Ports, keyof LifecyclePorts>) => LifecyclePorts,
): Ports {
  const d = makeDynamo({ tableName: env.TABLE_NAME ?? DEFAULT_TABLE_NAME, endpoint: env.DYNAMODB_ENDPOINT, region: env.AWS_REGION });
  const base = {
    clock,
    config: configFromEnv(env),
    tokens: new DynamoTokenRepository(d),
    nodes: new DynamoNodeRepository(d),
    bmPorts: new DynamoBaremetalPortRepository(d),
    leases: new DynamoLeaseRepository(d),
    properties: new DynamoPropertyRepository(d),
    idempotency: new DynamoIdempotencyStore(d),
    jobs: new DynamoJobRepository(d),
    commissaire: new DynamoCommissaireRepository(d),
    drydock: new DynamoDrydockRepository(d),
    // Locally s3rver (the local stack sets S3_ENDPOINT and BOOTDATA_BUCKET); on AWS the stack's bucket.
    blobs: new S3BlobStore({ bucket: env.BOOTDATA_BUCKET ?? 'slipway-bootdata', endpoint: env.S3_ENDPOINT, region: env.AWS_REGION, secretAccessKey: env.S3_SECRET_ACCESS_KEY, publicEndpoint: env.SLIPWAY_S3_PUBLIC_ENDPOINT || undefined }),
    secrets: secretBox(env),
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

/** Used by the local stack and tests to install ports built with other settings. */
export function setDeps(deps: Ports | undefined): void {
  cached = deps;
}
