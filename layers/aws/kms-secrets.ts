import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { DecryptCommand, EncryptCommand, GenerateDataKeyCommand, KMSClient } from '@aws-sdk/client-kms';
import type { SecretBox } from '#core/secrets.ts';

/**
 * Secrets sealed with AWS KMS (DESIGN.md §5), always under the deployment's key and an
 * encryption context, so a ciphertext copied elsewhere in the table does not decrypt:
 *  - short ones (BMC passwords) directly: `kms1:<ciphertext blob base64>`;
 *  - longer ones (SSH private keys; KMS encrypts at most 4 KiB) by envelope: a fresh data key
 *    from GenerateDataKey encrypts with AES-256-GCM and is stored encrypted beside it:
 *    `kms2:<encrypted data key>:<iv>:<tag>:<ciphertext>` (base64 each). The plain data key only
 *    lives in memory for the one seal or open.
 */
const CONTEXT = { purpose: 'slipway-bmc-credential' };
/** Above this many bytes a secret goes by envelope (KMS Encrypt takes at most 4,096). */
export const DIRECT_LIMIT = 2048;

type KmsCommand = EncryptCommand | DecryptCommand | GenerateDataKeyCommand;
/** What the adapter needs of the client (a narrow seam for the unit test). */
export interface KmsClientLike {
  send(command: KmsCommand): Promise<{ CiphertextBlob?: Uint8Array; Plaintext?: Uint8Array }>;
}

const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64');

export class KmsSecretBox implements SecretBox {
  constructor(
    private readonly keyId: string,
    private readonly client: KmsClientLike = new KMSClient({}) as unknown as KmsClientLike,
  ) {}

  async seal(plain: string): Promise<string> {
    const bytes = Buffer.from(plain, 'utf8');
    if (bytes.length <= DIRECT_LIMIT) {
      const out = await this.client.send(new EncryptCommand({ KeyId: this.keyId, Plaintext: bytes, EncryptionContext: CONTEXT }));
      return `kms1:${b64(out.CiphertextBlob!)}`;
    }
    const key = await this.client.send(new GenerateDataKeyCommand({ KeyId: this.keyId, KeySpec: 'AES_256', EncryptionContext: CONTEXT }));
    const dataKey = Buffer.from(key.Plaintext!);
    try {
      const iv = randomBytes(12);
      const c = createCipheriv('aes-256-gcm', dataKey, iv);
      const body = Buffer.concat([c.update(bytes), c.final()]);
      return `kms2:${b64(key.CiphertextBlob!)}:${b64(iv)}:${b64(c.getAuthTag())}:${b64(body)}`;
    } finally {
      dataKey.fill(0);
    }
  }

  async open(sealed: string): Promise<string> {
    if (sealed.startsWith('kms1:')) {
      const out = await this.client.send(new DecryptCommand({ KeyId: this.keyId, CiphertextBlob: Buffer.from(sealed.slice(5), 'base64'), EncryptionContext: CONTEXT }));
      return Buffer.from(out.Plaintext!).toString('utf8');
    }
    const [v, encKey, iv, tag, body] = sealed.split(':');
    if (v !== 'kms2' || !encKey || !iv || !tag || body === undefined) throw new Error('not a KMS-sealed secret');
    const out = await this.client.send(new DecryptCommand({ KeyId: this.keyId, CiphertextBlob: Buffer.from(encKey, 'base64'), EncryptionContext: CONTEXT }));
    const dataKey = Buffer.from(out.Plaintext!);
    try {
      const d = createDecipheriv('aes-256-gcm', dataKey, Buffer.from(iv, 'base64'));
      d.setAuthTag(Buffer.from(tag, 'base64'));
      return Buffer.concat([d.update(Buffer.from(body, 'base64')), d.final()]).toString('utf8');
    } finally {
      dataKey.fill(0);
    }
  }
}
