import { createCipheriv, randomBytes } from 'node:crypto';
import { DecryptCommand, EncryptCommand, GenerateDataKeyCommand } from '@aws-sdk/client-kms';
import { describe, expect, it } from 'vitest';
import { contextOf, DIRECT_LIMIT, type KmsClientLike, KmsSecretBox, LEGACY_CONTEXT } from '../../layers/aws/kms-secrets.ts';
import { AesSecretBox } from '../../layers/aws/secrets.ts';
import { SECRET_KINDS } from '../../layers/core/secrets.ts';

/**
 * The KMS box's requests and format, with a fake KMS that XORs and, like KMS, binds the
 * encryption context: a ciphertext opens only with the context it was made with (no AWS here).
 */
function fakeKms(): KmsClientLike & { calls: { name: string; input: any }[] } {
  const calls: { name: string; input: any }[] = [];
  const ctxTag = (ctx: Record<string, string> | undefined) => Buffer.from(JSON.stringify(ctx ?? {}).padEnd(48, ' ').slice(0, 48));
  const xor = (b: Uint8Array) => Uint8Array.from(b, (x) => x ^ 0x5a);
  return {
    calls,
    async send(command) {
      calls.push({ name: command.constructor.name, input: command.input });
      const ctx = (command.input as { EncryptionContext?: Record<string, string> }).EncryptionContext;
      if (command instanceof EncryptCommand) return { CiphertextBlob: Buffer.concat([ctxTag(ctx), xor(command.input.Plaintext!)]) };
      if (command instanceof DecryptCommand) {
        const blob = Buffer.from(command.input.CiphertextBlob!);
        if (!blob.subarray(0, 48).equals(ctxTag(ctx))) throw Object.assign(new Error('context mismatch'), { name: 'InvalidCiphertextException' });
        return { Plaintext: xor(blob.subarray(48)) };
      }
      if (command instanceof GenerateDataKeyCommand) {
        const key = Uint8Array.from({ length: 32 }, (_, i) => (i * 7 + calls.length) & 0xff);
        return { Plaintext: key, CiphertextBlob: Buffer.concat([ctxTag(ctx), xor(key)]) };
      }
      throw new Error('unexpected command');
    },
  };
}

describe('KmsSecretBox', () => {
  it('seals each kind with the key and its own encryption context, and opens what it sealed as that kind', async () => {
    const kms = fakeKms();
    const box = new KmsSecretBox('arn:aws:kms:eu-west-1:111122223333:key/k', kms);
    const sealed = await box.seal('bmc-password', 'calvin');
    expect(sealed).toMatch(/^kms3:bmc-password:/);
    expect(sealed).not.toContain('calvin');
    expect(await box.open('bmc-password', sealed)).toBe('calvin');
    expect(kms.calls.map((c) => [c.name, c.input.KeyId, c.input.EncryptionContext])).toEqual([
      ['EncryptCommand', 'arn:aws:kms:eu-west-1:111122223333:key/k', { purpose: 'slipway-bmc-password' }],
      ['DecryptCommand', 'arn:aws:kms:eu-west-1:111122223333:key/k', { purpose: 'slipway-bmc-password' }],
    ]);
    // One context per kind, none equal to another's or to the legacy one (the IAM conditions name them).
    const contexts = SECRET_KINDS.map((k) => contextOf(k).purpose);
    expect(new Set([...contexts, LEGACY_CONTEXT.purpose]).size).toBe(SECRET_KINDS.length + 1);
  });

  it('refuses to open a secret as another kind, even with its kind label rewritten', async () => {
    const kms = fakeKms();
    const box = new KmsSecretBox('k', kms);
    const nodeKey = await box.seal('node-key', 'ab'.repeat(32));
    await expect(box.open('bmc-password', nodeKey)).rejects.toThrow('a sealed node-key cannot be opened as bmc-password');
    // Relabelled by someone who can write the table: KMS refuses (the context is bound to the ciphertext).
    const relabelled = nodeKey.replace('kms3:node-key:', 'kms3:bmc-password:');
    await expect(box.open('bmc-password', relabelled)).rejects.toThrow('context mismatch');
  });

  it('refuses a secret sealed another way, and an unknown kind', async () => {
    await expect(new KmsSecretBox('k', fakeKms()).open('bmc-password', 'v1:iv:tag:body')).rejects.toThrow('not a KMS-sealed secret');
    await expect(new KmsSecretBox('k', fakeKms()).seal('password' as never, 'x')).rejects.toThrow('unknown secret kind');
  });

  it('seals a secret longer than KMS takes (an SSH private key) by envelope, and opens it', async () => {
    const kms = fakeKms();
    const box = new KmsSecretBox('k', kms);
    const key = `-----BEGIN OPENSSH PRIVATE KEY-----\n${'A'.repeat(3200)}\n-----END OPENSSH PRIVATE KEY-----\n`;
    expect(key.length).toBeGreaterThan(DIRECT_LIMIT);
    const sealed = await box.seal('ssh-key', key);
    expect(sealed).toMatch(/^kms4:ssh-key:/);
    expect(sealed).not.toContain('AAAA');
    expect(await box.open('ssh-key', sealed)).toBe(key);
    expect(kms.calls.map((c) => [c.name, c.input.KeySpec ?? null, c.input.EncryptionContext])).toEqual([
      ['GenerateDataKeyCommand', 'AES_256', { purpose: 'slipway-ssh-key' }],
      ['DecryptCommand', null, { purpose: 'slipway-ssh-key' }],
    ]);
    // Tampering is detected (GCM tag).
    const parts = sealed.split(':');
    parts[5] = Buffer.from('x'.repeat(10)).toString('base64');
    await expect(box.open('ssh-key', parts.join(':'))).rejects.toThrow();
  });

  it('still opens values sealed before kinds (kms1 direct, kms2 envelope) with the legacy context', async () => {
    const kms = fakeKms();
    // What the box wrote before kinds: the same blobs under the one legacy context.
    const direct = await kms.send(new EncryptCommand({ KeyId: 'k', Plaintext: Buffer.from('calvin'), EncryptionContext: LEGACY_CONTEXT }));
    const data = await kms.send(new GenerateDataKeyCommand({ KeyId: 'k', KeySpec: 'AES_256', EncryptionContext: LEGACY_CONTEXT }));
    const iv = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', Buffer.from(data.Plaintext!), iv);
    const body = Buffer.concat([c.update('ssh key', 'utf8'), c.final()]);
    const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64');
    const box = new KmsSecretBox('k', kms);
    kms.calls.length = 0;
    expect(await box.open('bmc-password', `kms1:${b64(direct.CiphertextBlob!)}`)).toBe('calvin');
    expect(await box.open('ssh-key', `kms2:${b64(data.CiphertextBlob!)}:${b64(iv)}:${b64(c.getAuthTag())}:${b64(body)}`)).toBe('ssh key');
    expect(kms.calls.map((call) => call.input.EncryptionContext)).toEqual([LEGACY_CONTEXT, LEGACY_CONTEXT]);
  });
});

describe('AesSecretBox (the local stack)', () => {
  const box = new AesSecretBox(randomBytes(32));

  it('binds the kind as additional data: a value opens only as the kind it was sealed as', async () => {
    const sealed = await box.seal('config-drive', '{"user_data":"pw"}');
    expect(sealed).toMatch(/^v2:config-drive:/);
    expect(await box.open('config-drive', sealed)).toBe('{"user_data":"pw"}');
    await expect(box.open('bmc-password', sealed)).rejects.toThrow('a sealed config-drive cannot be opened as bmc-password');
    await expect(box.open('bmc-password', sealed.replace('v2:config-drive:', 'v2:bmc-password:'))).rejects.toThrow('could not be opened');
  });

  it('still opens v1 values sealed before kinds (no additional data)', async () => {
    const key = randomBytes(32);
    const iv = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', key, iv);
    const body = Buffer.concat([c.update('calvin', 'utf8'), c.final()]);
    const v1 = `v1:${iv.toString('base64')}:${c.getAuthTag().toString('base64')}:${body.toString('base64')}`;
    expect(await new AesSecretBox(key).open('bmc-password', v1)).toBe('calvin');
  });
});
