import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ImageCache, ImageError } from '../../agent/images.ts';
import { sharedDeps } from '../support/agent.ts';
import { apiUrl, tokenFor, unique } from '../support/api.ts';
import { rejection } from '../support/rejection.ts';

/**
 * The agent's image cache with an `api:<name>` catalog entry against the real local stack: the
 * cache asks `GET /api/v1.0/agent/images/<name>` with the agent token, follows the 302 to the
 * presigned URL of the bucket's `images/<name>` (s3rver here) and checks the sha256 it was given.
 */
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

let root: string;
beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'slipway-image-api-'));
});
afterAll(() => {
  if (root) rmSync(root, { recursive: true, force: true });
});

describe('ImageCache: api:<name> through the API and the bucket', () => {
  it('downloads an image of the bucket, verified; a wrong sha256 and a missing object fail clearly', async () => {
    const name = `${unique('img')}.raw`;
    const bytes = Buffer.concat([Buffer.from('slipway image through the API\n'), randomBytes(300_000)]);
    await sharedDeps().blobs.put(`images/${name}`, bytes, 'application/octet-stream');
    const agent = await tokenFor('agent', unique('site'));
    const missing = `${unique('none')}.raw`;
    const dir = join(root, 'cache');
    const cache = new ImageCache({
      dir,
      images: {
        debian: { url: `api:${name}`, sha256: sha(bytes) },
        wrong: { url: `api:${name}`, sha256: sha(Buffer.from('another release')) },
        // Another hash: the cache is content-addressed, so one it already holds is never fetched.
        missing: { url: `api:${missing}`, sha256: sha(Buffer.from('not in the bucket')) },
      },
      api: { url: apiUrl(), token: agent.token },
    });

    const got = await cache.ensure('debian');
    expect(got).toMatchObject({ name: 'debian', sha256: sha(bytes), size: bytes.length });
    expect(readFileSync(got.path).equals(bytes)).toBe(true);
    expect(cache.path(sha(bytes))).toEqual({ path: got.path, size: bytes.length });

    const wrong = await rejection(cache.ensure('wrong'));
    expect(wrong).toBeInstanceOf(ImageError);
    expect(wrong.message).toBe(`image "wrong": sha256 mismatch (expected ${sha(Buffer.from('another release'))}, got ${sha(bytes)}) from api:${name}`);

    // A name the bucket does not hold: the API's own 404 and its message.
    const gone = await rejection(cache.ensure('missing'));
    expect(gone).toBeInstanceOf(ImageError);
    expect(gone.message).toBe(`image "missing": the API answered HTTP 404 (Image ${missing} not found (no object images/${missing} in the bucket)) from api:${missing}`);
    // The presigned URL's signature never reaches an error text.
    for (const e of [wrong, gone]) expect(e.message).not.toMatch(/X-Amz-|Signature|Credential/);
    // Only the verified image is kept.
    expect(readdirSync(dir)).toEqual([sha(bytes)]);
  });

  it("names the API's refusal: a token that is not an agent's", async () => {
    const member = await tokenFor('member');
    const cache = new ImageCache({
      dir: join(root, 'member'),
      images: { x: { url: 'api:x.raw', sha256: sha(Buffer.from('x')) } },
      api: { url: apiUrl(), token: member.token },
    });
    const err = await rejection(cache.ensure('x'));
    expect(err).toBeInstanceOf(ImageError);
    expect(err.message).toBe('image "x": the API answered HTTP 403 (This API is for agent tokens only) from api:x.raw');
  });
});
