import { DynamoIdempotencyStore } from '../dynamo/idempotency.ts';
import { DynamoTokenRepository } from '../dynamo/tokens.ts';
import { DynamoUserRepository } from '../dynamo/users.ts';
import { keystoneSettingsFromEnv } from '#core/identity/keystone.ts';
import { compositionRoot } from './compose.ts';
import { secretBoxFromEnv } from './secrets.ts';

/**
 * Keystone v3 sign-in `/v3` (issue 15): tokens, users and application credentials; the
 * Idempotency-Key records of its POSTs (an application credential's secret is a reply kept
 * sealed). Its ports and nothing else (compose.ts).
 */
export const root = compositionRoot('identity', ({ env, dynamo }) => ({
  tokens: new DynamoTokenRepository(dynamo()),
  users: new DynamoUserRepository(dynamo()),
  idempotency: new DynamoIdempotencyStore(dynamo()),
  secrets: secretBoxFromEnv(env),
}));

export const getDeps = root.getDeps;

/** Token lifetime and catalog region, from this process's environment (read once, like the ports). */
export const keystoneSettings = keystoneSettingsFromEnv(process.env);
