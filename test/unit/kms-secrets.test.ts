import { DecryptCommand, EncryptCommand } from '@aws-sdk/client-kms';
import { describe, expect, it } from 'vitest';
import { type KmsClientLike, KmsSecretBox } from '../../layers/aws/kms-secrets.ts';

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
});
