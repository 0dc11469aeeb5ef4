import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * The node key (upstream-apis.md §1.6.1–1.6.2, §7 trap 3): 32 random bytes per node per
 * deployment, shared by all of that node's boot actions, sent by the node as 64 hex characters
 * in `X-Bootaction-Key`. We store only its SHA-256 (DESIGN.md §5) and compare in constant time;
 * upstream compares raw bytes with `!=` and logs both keys, which we never do.
 *
 * Because only the hash is stored, templates that use `action.action_key` must be rendered
 * while the raw key is still in hand (at deploy time, when the key is made).
 *
 * @example
 * const key = newNodeKey();
 * const stored = hashNodeKey(key);
 * verifyNodeKey(nodeKeyHex(key), stored); // true
 */

export const NODE_KEY_BYTES = 32;
const HEX_KEY_RE = /^[0-9a-fA-F]{64}$/;

/** 32 fresh random bytes. */
export function newNodeKey(): Buffer {
  return randomBytes(NODE_KEY_BYTES);
}

/** Lower-case hex, as Python's `bytes.hex()` writes it (the form templates and nodes see). */
export function nodeKeyHex(key: Uint8Array): string {
  return Buffer.from(key).toString('hex');
}

/** The raw key from its hex form (either case), or undefined when it is not 64 hex digits. */
export function parseNodeKeyHex(hex: string): Buffer | undefined {
  return HEX_KEY_RE.test(hex) ? Buffer.from(hex, 'hex') : undefined;
}

/** SHA-256 (hex) of the raw 32 key bytes: what the database keeps. */
export function hashNodeKey(key: Uint8Array): string {
  if (key.length !== NODE_KEY_BYTES) throw new RangeError(`A node key is ${NODE_KEY_BYTES} bytes, not ${key.length}`);
  return createHash('sha256').update(key).digest('hex');
}

/**
 * Whether the presented hex key is the one whose hash is stored. Malformed input (absent, not
 * hex, wrong length) is a plain mismatch, never an exception; the comparison of the two digests
 * is constant-time. Absent/empty keys are the caller's 401, mismatches its 403 (§1.6.2).
 */
export function verifyNodeKey(presentedHex: string | undefined | null, storedHash: string): boolean {
  const expected = Buffer.from(storedHash, 'hex');
  if (expected.length !== 32 || expected.toString('hex') !== storedHash.toLowerCase()) return false;
  const key = presentedHex === undefined || presentedHex === null ? undefined : parseNodeKeyHex(presentedHex);
  // Hash something even for malformed input, so the work done does not depend on the input.
  const actual = createHash('sha256')
    .update(key ?? Buffer.alloc(NODE_KEY_BYTES))
    .digest();
  return timingSafeEqual(actual, expected) && key !== undefined;
}
