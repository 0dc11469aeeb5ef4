import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { ValidationError } from '#core/errors.ts';
import type { SecretBox } from '#core/secrets.ts';

/**
 * AES-256-GCM with a 32-byte key: the local stack keeps the key in `<data dir>/secret.key`
 * (0600), created on first use. Format: `v1:<iv b64>:<tag b64>:<ciphertext b64>`.
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

  async seal(plain: string): Promise<string> {
    const iv = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', this.key, iv);
    const body = Buffer.concat([c.update(plain, 'utf8'), c.final()]);
    return `v1:${iv.toString('base64')}:${c.getAuthTag().toString('base64')}:${body.toString('base64')}`;
  }

  async open(sealed: string): Promise<string> {
    const [v, iv, tag, body, ...rest] = typeof sealed === 'string' ? sealed.split(':') : [];
    if (v !== 'v1' || !iv || !tag || body === undefined || rest.length > 0) throw new Error('unknown sealed secret format');
    const ivBytes = Buffer.from(iv, 'base64');
    const tagBytes = Buffer.from(tag, 'base64');
    // What seal() writes: a 12-byte IV and a 16-byte tag. Anything else is damaged (or was never
    // sealed here), and says so rather than failing somewhere inside the cipher.
    if (ivBytes.length !== 12 || tagBytes.length !== 16) throw new Error('damaged sealed secret');
    try {
      const d = createDecipheriv('aes-256-gcm', this.key, ivBytes);
      d.setAuthTag(tagBytes);
      return Buffer.concat([d.update(Buffer.from(body, 'base64')), d.final()]).toString('utf8');
    } catch {
      throw new Error('sealed secret could not be opened (damaged, or sealed with another key)');
    }
  }
}

/** A box that refuses: the deployment has no key, so the cloud cannot hold passwords. */
export class NoSecretBox implements SecretBox {
  async seal(): Promise<string> {
    throw new ValidationError('This deployment cannot store BMC passwords (no secret key configured); use credential_ref to keep them with the agent', 'SECRETS_UNAVAILABLE');
  }
  async open(): Promise<string> {
    throw new Error('no secret key is configured (SLIPWAY_SECRET_KEY)');
  }
}
