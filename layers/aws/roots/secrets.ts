import type { SecretBox } from '#core/secrets.ts';
import { KmsSecretBox } from '../kms-secrets.ts';
import { AesSecretBox, NoSecretBox } from '../secrets.ts';
import type { Env } from './compose.ts';

/** The secret box of the environment: on AWS the stateful stack's KMS key; locally a key file in the data directory. */
export function secretBoxFromEnv(env: Env): SecretBox {
  if (env.SECRETS_KMS_KEY_ID) return new KmsSecretBox(env.SECRETS_KMS_KEY_ID);
  if (env.SLIPWAY_SECRET_KEY) return new AesSecretBox(Buffer.from(env.SLIPWAY_SECRET_KEY, 'base64'));
  if (env.SLIPWAY_SECRET_KEY_FILE) return AesSecretBox.fromFile(env.SLIPWAY_SECRET_KEY_FILE);
  return new NoSecretBox();
}
