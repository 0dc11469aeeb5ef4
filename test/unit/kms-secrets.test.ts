import { DecryptCommand, EncryptCommand, GenerateDataKeyCommand } from '@aws-sdk/client-kms';
import { describe, expect, it } from 'vitest';
import { DIRECT_LIMIT, type KmsClientLike, KmsSecretBox } from '../../layers/aws/kms-secrets.ts';

/** The KMS box's requests and format (a fake KMS that XORs: no AWS here). */
function fakeKms(): KmsClientLike & { calls: { name: string; input: any }[] } {
  const calls: { name: string; input: any }[] = [];
  const xor = (b: Uint8Array) => Uint8Array.from(b, (x) => x ^ 0x5a);
  return {
    calls,
    async send(command) {
      calls.push({ name: command.constructor.name, input: command.input });
      if (command instanceof EncryptCommand) return { CiphertextBlob: xor(command.input.Plaintext!) };
      if (command instanceof DecryptCommand) return { Plaintext: xor(command.input.CiphertextBlob!) };
      if (command instanceof GenerateDataKeyCommand) {
        const key = Uint8Array.from({ length: 32 }, (_, i) => (i * 7 + calls.length) & 0xff);
        return { Plaintext: key, CiphertextBlob: xor(key) };
      }
      throw new Error('unexpected command');
    },
  };
}

describe('KmsSecretBox', () => {
  it('seals with the key and an encryption context, and opens what it sealed', async () => {
    const kms = fakeKms();
    const box = new KmsSecretBox('arn:aws:kms:eu-west-1:111122223333:key/k', kms);
    const sealed = await box.seal('calvin');
    expect(sealed).toMatch(/^kms1:/);
    expect(sealed).not.toContain('calvin');
    expect(await box.open(sealed)).toBe('calvin');
    expect(kms.calls.map((c) => [c.name, c.input.KeyId, c.input.EncryptionContext])).toEqual([
      ['EncryptCommand', 'arn:aws:kms:eu-west-1:111122223333:key/k', { purpose: 'slipway-bmc-credential' }],
      ['DecryptCommand', 'arn:aws:kms:eu-west-1:111122223333:key/k', { purpose: 'slipway-bmc-credential' }],
    ]);
  });

  it('refuses a secret sealed another way', async () => {
    await expect(new KmsSecretBox('k', fakeKms()).open('v1:iv:tag:body')).rejects.toThrow('not a KMS-sealed secret');
  });

  it('seals a secret longer than KMS takes (an SSH private key) by envelope, and opens it', async () => {
    const kms = fakeKms();
    const box = new KmsSecretBox('k', kms);
    const key = `-----BEGIN OPENSSH PRIVATE KEY-----\n${'A'.repeat(3200)}\n-----END OPENSSH PRIVATE KEY-----\n`;
    expect(key.length).toBeGreaterThan(DIRECT_LIMIT);
    const sealed = await box.seal(key);
    expect(sealed).toMatch(/^kms2:/);
    expect(sealed).not.toContain('AAAA');
    expect(await box.open(sealed)).toBe(key);
    expect(kms.calls.map((c) => [c.name, c.input.KeySpec ?? null, c.input.EncryptionContext])).toEqual([
      ['GenerateDataKeyCommand', 'AES_256', { purpose: 'slipway-bmc-credential' }],
      ['DecryptCommand', null, { purpose: 'slipway-bmc-credential' }],
    ]);
    // Tampering is detected (GCM tag).
    const parts = sealed.split(':');
    parts[4] = Buffer.from('x'.repeat(10)).toString('base64');
    await expect(box.open(parts.join(':'))).rejects.toThrow();
  });
});
