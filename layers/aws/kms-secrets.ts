import { DecryptCommand, EncryptCommand, KMSClient } from '@aws-sdk/client-kms';
import type { SecretBox } from '#core/secrets.ts';

/**
 * Secrets sealed with AWS KMS (DESIGN.md §5): each BMC password is encrypted under the
 * deployment's key with an encryption context, so a ciphertext copied elsewhere in the table
 * does not decrypt. Passwords are far below KMS's 4 KiB limit, so no data key is needed.
 * Format: `kms1:<ciphertext blob base64>`.
 */
const CONTEXT = { purpose: 'slipway-bmc-credential' };

type KmsCommand = EncryptCommand | DecryptCommand;
/** What the adapter needs of the client (a narrow seam for the unit test). */
export interface KmsClientLike {
  send(command: KmsCommand): Promise<{ CiphertextBlob?: Uint8Array; Plaintext?: Uint8Array }>;
}

export class KmsSecretBox implements SecretBox {
  constructor(
    private readonly keyId: string,
    private readonly client: KmsClientLike = new KMSClient({}) as unknown as KmsClientLike,
  ) {}

  async seal(plain: string): Promise<string> {
    const out = await this.client.send(new EncryptCommand({ KeyId: this.keyId, Plaintext: Buffer.from(plain, 'utf8'), EncryptionContext: CONTEXT }));
    return `kms1:${Buffer.from(out.CiphertextBlob!).toString('base64')}`;
  }

  async open(sealed: string): Promise<string> {
    if (!sealed.startsWith('kms1:')) throw new Error('not a KMS-sealed secret');
    const out = await this.client.send(new DecryptCommand({ KeyId: this.keyId, CiphertextBlob: Buffer.from(sealed.slice(5), 'base64'), EncryptionContext: CONTEXT }));
    return Buffer.from(out.Plaintext!).toString('utf8');
  }
}
