import { randomFillSync } from 'node:crypto';

/**
 * ULIDs for boot-action ids (upstream-apis.md §1.6.1: a fresh ULID per boot action and node,
 * rendered as 26 Crockford base32 characters). 48 bits of milliseconds, then 80 random bits.
 *
 * NOTE: written here rather than taken from npm: it is ~60 lines, needs only node:crypto, and the
 * parts we care about (monotonic order inside one millisecond and after a clock step back,
 * strict parsing for the 404-on-undecodable-id rule) are easier to see and test in our code.
 *
 * @example
 * const next = monotonicUlid();
 * const id = next();            // '01J9Z6Q4K8W3M2V7T5R1N0B6XA'
 * parseUlid(id.toLowerCase());  // same id, upper case
 */

const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
const ULID_RE = /^[0-7][0-9A-HJKMNP-TV-Z]{25}$/;
const MAX_TIME = 2 ** 48 - 1;
const RANDOM_BYTES = 10;

export interface UlidSources {
  /** Milliseconds since the epoch; `Date.now` by default. */
  now?: () => number;
  /** Fills the buffer with random bytes; `crypto.randomFillSync` by default. */
  fill?: (buf: Uint8Array) => void;
}

/** Encodes a 48-bit time and 80 random bits as 26 base32 characters. */
export function encodeUlid(time: number, random: Uint8Array): string {
  if (!Number.isInteger(time) || time < 0 || time > MAX_TIME) throw new RangeError(`ULID time out of range: ${time}`);
  if (random.length !== RANDOM_BYTES) throw new RangeError('ULID randomness must be 10 bytes');
  let value = BigInt(time);
  for (const b of random) value = (value << 8n) | BigInt(b);
  let out = '';
  // 26 characters carry 130 bits; the first character holds the top 3 of the 128.
  for (let i = 25; i >= 0; i--) out += ALPHABET[Number((value >> BigInt(5 * i)) & 31n)];
  return out;
}

/**
 * A generator whose ids strictly increase: inside one millisecond (or when the clock steps back)
 * it reuses the last time and adds one to the last randomness, as the ULID spec's monotonic
 * factory does. 2^80 ids in one millisecond overflow and throw.
 */
export function monotonicUlid(sources: UlidSources = {}): () => string {
  const now = sources.now ?? Date.now;
  const fill = sources.fill ?? ((buf: Uint8Array) => void randomFillSync(buf));
  let lastTime = -1;
  const last = new Uint8Array(RANDOM_BYTES);
  return () => {
    const t = now();
    if (t > lastTime) {
      lastTime = t;
      fill(last);
    } else if (!increment(last)) {
      throw new RangeError('ULID randomness overflow inside one millisecond');
    }
    return encodeUlid(lastTime, last);
  };
}

/** Adds one to a big-endian byte string; false when it wrapped around. */
function increment(bytes: Uint8Array): boolean {
  for (let i = bytes.length - 1; i >= 0; i--) {
    if (bytes[i] !== 0xff) {
      bytes[i] = (bytes[i] as number) + 1;
      return true;
    }
    bytes[i] = 0;
  }
  return false;
}

const shared = monotonicUlid();

/** A new ULID from the process-wide monotonic generator. */
export function ulid(): string {
  return shared();
}

/**
 * The canonical (upper-case) form of a ULID, or undefined when `value` is not one: wrong
 * length, a character outside Crockford's alphabet (I, L, O, U), or a first character above 7
 * (more than 128 bits). Callers answer 404 for undefined (§1.6.2).
 */
export function parseUlid(value: string): string | undefined {
  const upper = value.toUpperCase();
  return ULID_RE.test(upper) ? upper : undefined;
}

/** The millisecond timestamp carried by a valid ULID. */
export function ulidTime(id: string): number {
  const canonical = parseUlid(id);
  if (!canonical) throw new RangeError(`Not a ULID: ${id}`);
  let t = 0;
  for (const ch of canonical.slice(0, 10)) t = t * 32 + ALPHABET.indexOf(ch);
  return t;
}
