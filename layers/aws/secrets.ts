import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { ValidationError } from '#core/errors.ts';
import { SECRET_KINDS, type SecretBox, type SecretKind } from '#core/secrets.ts';

/**
 * AES-256-GCM with a 32-byte key: the local stack keeps the key in `<data dir>/secret.key`
 * (0600), created on first use. Format: `v2:<kind>:<iv b64>:<tag b64>:<ciphertext b64>`, the
 * kind bound as additional authenticated data (`slipway-<kind>`, the KMS box's encryption
 * context), so a value opens only as the kind it was sealed as, as on AWS.
 *
 * `v1:<iv>:<tag>:<ciphertext>` values (sealed before kinds, without additional data) still open,
 * as any kind: a local data directory has no per-function roles to keep apart.
 *
 * SLIPWAY_SECRET_KEY (base64) gives the key directly, for deployments without KMS; on AWS the
 * stacks use `KmsSecretBox` instead.
 */
export class AesSecretBox implements SecretBox {
  constructor(private readonly key: Buffer) {
    if (key.length !== 32) throw new Error('the secret key must be 32 bytes');
  }

  static fromFile(path: string): AesSecretBox {
    if (!existsSync(path)) {
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(path, randomBytes(32).toString('base64'), { mode: 0o600, flag: 'wx' });
    }
    return new AesSecretBox(Buffer.from(readFileSync(path, 'utf8').trim(), 'base64'));
  }

  async seal(kind: SecretKind, plain: string): Promise<string> {
    if (!(SECRET_KINDS as readonly string[]).includes(kind)) throw new Error(`unknown secret kind ${String(kind)}`);
    const iv = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', this.key, iv);
    c.setAAD(aad(kind));
    const body = Buffer.concat([c.update(plain, 'utf8'), c.final()]);
    return `v2:${kind}:${iv.toString('base64')}:${c.getAuthTag().toString('base64')}:${body.toString('base64')}`;
  }

  async open(kind: SecretKind, sealed: string): Promise<string> {
    const parts = typeof sealed === 'string' ? sealed.split(':') : [];
    const v = parts[0];
    if (v === 'v2' && parts[1] !== kind) throw new Error(`a sealed ${(SECRET_KINDS as readonly string[]).includes(parts[1] ?? '') ? parts[1] : 'secret of unknown kind'} cannot be opened as ${kind}`);
    const [iv, tag, body, ...rest] = v === 'v2' ? parts.slice(2) : parts.slice(1);
    if ((v !== 'v1' && v !== 'v2') || !iv || !tag || body === undefined || rest.length > 0) throw new Error('unknown sealed secret format');
    const ivBytes = Buffer.from(iv, 'base64');
    const tagBytes = Buffer.from(tag, 'base64');
    // What seal() writes: a 12-byte IV and a 16-byte tag. Anything else is damaged (or was never
    // sealed here), and says so rather than failing somewhere inside the cipher.
    if (ivBytes.length !== 12 || tagBytes.length !== 16) throw new Error('damaged sealed secret');
    try {
      const d = createDecipheriv('aes-256-gcm', this.key, ivBytes);
      if (v === 'v2') d.setAAD(aad(kind));
      d.setAuthTag(tagBytes);
      return Buffer.concat([d.update(Buffer.from(body, 'base64')), d.final()]).toString('utf8');
    } catch {
      throw new Error('sealed secret could not be opened (damaged, or sealed with another key)');
    }
  }
}

/** The additional authenticated data of a kind: the KMS box's encryption context value. */
const aad = (kind: SecretKind) => Buffer.from(`slipway-${kind}`, 'utf8');

/** A box that refuses: the deployment has no key, so the cloud cannot hold passwords. */
export class NoSecretBox implements SecretBox {
  async seal(): Promise<string> {
    throw new ValidationError('This deployment cannot store BMC passwords (no secret key configured); use credential_ref to keep them with the agent', 'SECRETS_UNAVAILABLE');
  }
  async open(): Promise<string> {
    throw new Error('no secret key is configured (SLIPWAY_SECRET_KEY)');
  }
}
