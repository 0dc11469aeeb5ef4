import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import type { DecryptCommand, EncryptCommand, GenerateDataKeyCommand } from '@aws-sdk/client-kms';
import { SECRET_KINDS, type SecretBox, type SecretKind } from '#core/secrets.ts';
import { log } from '#core/util/log.ts';
import { firstUse } from './lazy-client.ts';

/**
 * Secrets sealed with AWS KMS (DESIGN.md §5), always under the deployment's key and an
 * encryption context naming the secret's kind, so a ciphertext opens only as the kind it was
 * sealed as, and only for a role whose `kms:EncryptionContext:purpose` condition names that kind
 * (infra/constructs/secret-grants.ts):
 *  - short ones (BMC passwords, node keys) directly: `kms3:<kind>:<ciphertext blob base64>`;
 *  - longer ones (SSH private keys, config drives; KMS encrypts at most 4 KiB) by envelope: a
 *    fresh data key from GenerateDataKey encrypts with AES-256-GCM and is stored encrypted beside
 *    it: `kms4:<kind>:<encrypted data key>:<iv>:<tag>:<ciphertext>` (base64 each). The plain data
 *    key only lives in memory for the one seal or open.
 *
 * Values sealed before kinds existed (`kms1:` direct, `kms2:` envelope) carry the one context
 * every kind used then, LEGACY_CONTEXT. They still open, but only for roles the deployment grants
 * that context (`slipway:legacySecrets`, docs/deploying-to-aws.md), and each such open is logged
 * so an operator can see when none are left.
 */
export const contextOf = (kind: SecretKind) => ({ purpose: `slipway-${kind}` });
export const LEGACY_CONTEXT = { purpose: 'slipway-bmc-credential' };
/** Above this many bytes a secret goes by envelope (KMS Encrypt takes at most 4,096). */
export const DIRECT_LIMIT = 2048;

type KmsCommand = EncryptCommand | DecryptCommand | GenerateDataKeyCommand;
/** What the adapter needs of the client (a narrow seam for the unit test). */
export interface KmsClientLike {
  send(command: KmsCommand): Promise<{ CiphertextBlob?: Uint8Array; Plaintext?: Uint8Array }>;
}

/**
 * Imported at the first seal or open, not at the function's cold start (lazy-client.ts): most
 * invocations of most functions handle no secret. One client for the process (a root makes one box).
 */
const kms = firstUse(() => import('@aws-sdk/client-kms'));
const kmsClient = firstUse(async () => new (await kms()).KMSClient({}) as unknown as KmsClientLike);
const defaultClient: KmsClientLike = { send: async (command) => (await kmsClient()).send(command) };

const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64');
const isKind = (k: string | undefined): k is SecretKind => (SECRET_KINDS as readonly string[]).includes(k ?? '');

export class KmsSecretBox implements SecretBox {
  constructor(
    private readonly keyId: string,
    private readonly client: KmsClientLike = defaultClient,
  ) {}

  async seal(kind: SecretKind, plain: string): Promise<string> {
    if (!isKind(kind)) throw new Error(`unknown secret kind ${String(kind)}`);
    const context = contextOf(kind);
    const bytes = Buffer.from(plain, 'utf8');
    const { EncryptCommand, GenerateDataKeyCommand } = await kms();
    if (bytes.length <= DIRECT_LIMIT) {
      const out = await this.client.send(new EncryptCommand({ KeyId: this.keyId, Plaintext: bytes, EncryptionContext: context }));
      return `kms3:${kind}:${b64(out.CiphertextBlob!)}`;
    }
    const key = await this.client.send(new GenerateDataKeyCommand({ KeyId: this.keyId, KeySpec: 'AES_256', EncryptionContext: context }));
    const dataKey = Buffer.from(key.Plaintext!);
    try {
      const iv = randomBytes(12);
      const c = createCipheriv('aes-256-gcm', dataKey, iv);
      const body = Buffer.concat([c.update(bytes), c.final()]);
      return `kms4:${kind}:${b64(key.CiphertextBlob!)}:${b64(iv)}:${b64(c.getAuthTag())}:${b64(body)}`;
    } finally {
      dataKey.fill(0);
    }
  }

  async open(kind: SecretKind, sealed: string): Promise<string> {
    const parts = sealed.split(':');
    const version = parts[0];
    let context: Record<string, string>;
    let rest: string[];
    if (version === 'kms3' || version === 'kms4') {
      // Refused before asking KMS (which would refuse too: the context differs), with a clearer reason.
      if (parts[1] !== kind) throw new Error(`a sealed ${isKind(parts[1]) ? parts[1] : 'secret of unknown kind'} cannot be opened as ${kind}`);
      context = contextOf(kind);
      rest = parts.slice(2);
    } else if (version === 'kms1' || version === 'kms2') {
      log.warn('opening a secret sealed before secret kinds (legacy encryption context)', { kind });
      context = LEGACY_CONTEXT;
      rest = parts.slice(1);
    } else {
      throw new Error('not a KMS-sealed secret');
    }
    const { DecryptCommand } = await kms();
    if (version === 'kms1' || version === 'kms3') {
      if (rest.length !== 1 || !rest[0]) throw new Error('not a KMS-sealed secret');
      const out = await this.client.send(new DecryptCommand({ KeyId: this.keyId, CiphertextBlob: Buffer.from(rest[0], 'base64'), EncryptionContext: context }));
      return Buffer.from(out.Plaintext!).toString('utf8');
    }
    const [encKey, iv, tag, body] = rest;
    if (rest.length !== 4 || !encKey || !iv || !tag || body === undefined) throw new Error('not a KMS-sealed secret');
    const out = await this.client.send(new DecryptCommand({ KeyId: this.keyId, CiphertextBlob: Buffer.from(encKey, 'base64'), EncryptionContext: context }));
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
