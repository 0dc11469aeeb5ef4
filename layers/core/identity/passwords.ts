import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto';

/**
 * Password (and application-credential secret) hashing with scrypt from node:crypto: slow and
 * memory-hard by design. Stored as `scrypt$<log2 N>$<r>$<p>$<salt>$<hash>` (base64url), so the
 * cost can be raised later without invalidating stored hashes: each hash carries its own.
 *
 * N = 2^15, r = 8, p = 1 is 32 MiB and about 50–100 ms of one core per check: well inside a
 * Lambda's memory, and 2^15 is the floor of common guidance for interactive logins. The work runs
 * on libuv's thread pool (`crypto.scrypt`, not `scryptSync`), so a sign-in never blocks the loop.
 */
const LOG2_N = 15;
const R = 8;
const P = 1;
const KEY_BYTES = 32;
/** scrypt needs 128·N·r bytes; Node's default cap (32 MiB) is exactly that, with no room. */
const MAXMEM = 64 * 1024 * 1024;

/** Passwords and secrets are bounded (Keystone's `max_password_length` is 4096 too). */
export const MAX_SECRET_BYTES = 4096;

function derive(secret: string, salt: Buffer, log2n: number, r: number, p: number): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scrypt(secret.normalize('NFC'), salt, KEY_BYTES, { N: 2 ** log2n, r, p, maxmem: MAXMEM }, (err, key) => (err ? reject(err) : resolve(key))),
  );
}

export async function hashSecret(secret: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await derive(secret, salt, LOG2_N, R, P);
  return ['scrypt', LOG2_N, R, P, salt.toString('base64url'), key.toString('base64url')].join('$');
}

/**
 * Checks a secret against a stored hash in constant time. Without a stored hash (unknown user)
 * it hashes against a fixed dummy with the same cost, so an unknown user and a wrong password
 * take the same time and give the same answer.
 */
export async function verifySecret(secret: string, stored: string | undefined): Promise<boolean> {
  const parts = (stored ?? DUMMY).split('$');
  const [scheme, log2n, r, p, salt, hash] = parts;
  if (parts.length !== 6 || scheme !== 'scrypt') return false;
  const n = Number(log2n);
  // Bounds against a corrupted record asking for absurd work.
  if (!Number.isInteger(n) || n < 10 || n > 20 || Number(r) !== R || Number(p) !== P) return false;
  const expected = Buffer.from(hash!, 'base64url');
  const key = await derive(secret, Buffer.from(salt!, 'base64url'), n, R, P);
  return stored !== undefined && expected.length === key.length && timingSafeEqual(expected, key);
}

/** A well-formed hash of no secret anyone knows (random salt and key): the unknown user's. */
const DUMMY = ['scrypt', LOG2_N, R, P, randomBytes(16).toString('base64url'), randomBytes(KEY_BYTES).toString('base64url')].join('$');
