import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, mkdirSync, renameSync, statSync, unlinkSync } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import { type IncomingMessage, get as httpGet } from 'node:http';
import { get as httpsGet } from 'node:https';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { log } from '#core/util/log.ts';

/**
 * The agent's deploy image cache (netboot.images / netboot.image_cache_dir): the site's catalog
 * maps a name (a design's `platform.image`) to a URL and the sha256 the image must have. The
 * boot service serves an image to the ramdisk (`GET /images/<sha256>`) only from here, and only
 * once its bytes were hashed and matched in this process, so a node is never handed bytes nobody
 * checked.
 *
 * A fetch streams into `<dir>/<sha256>.part-<random>` while hashing and is renamed to
 * `<dir>/<sha256>` only when the hash matches (a mismatch deletes the part file): the cache file
 * name is its content's hash, so a renamed file is complete and right by construction. Files left
 * by an earlier run are hashed again on first use (once per process) before they are trusted,
 * since anything may have touched the directory meanwhile. Concurrent ensure()s of one image share
 * one download.
 *
 * Sources: http(s) URLs (redirects followed), `file:///absolute/path` on the agent's machine, and
 * `api:<name>` — the deployment's bucket (`images/<name>`) through the agent's API: `GET
 * <api_url>/api/v1.0/agent/images/<name>` with the agent token answers a 302 to a short-lived
 * presigned URL, which is then fetched like any http(s) source (the token never goes there, and
 * the URL's query, a credential, never reaches a log or an error). The sha256 is checked the same
 * way whatever the source: neither the API nor the bucket is trusted with integrity.
 */

export interface ImageSpec {
  /** http(s) URL, `file:///absolute/path` or `api:<name>` (the bucket's `images/<name>` through the agent's API). */
  url: string;
  /** 64 hex digits (any case). */
  sha256: string;
}

export interface CachedImage {
  name: string;
  sha256: string;
  size: number;
  /** The verified cache file. */
  path: string;
}

export interface ImageCacheOptions {
  dir: string;
  images: Readonly<Record<string, ImageSpec>>;
  /** A download that receives nothing for this long fails. Default 60 s. */
  stallTimeoutMs?: number;
  /** Largest image accepted. Default 64 GiB. */
  maxBytes?: number;
  /** The agent's API (its api_url and agent token), for `api:<name>` sources. */
  api?: { url: string; token: string };
}

/** Why an image could not be had: the message names the image and what failed (passed to the job as is). */
export class ImageError extends Error {
  override name = 'ImageError';
}

export const DEFAULT_STALL_TIMEOUT_MS = 60_000;
export const DEFAULT_MAX_IMAGE_BYTES = 64 * 1024 ** 3;
const MAX_REDIRECTS = 5;
const SHA256_RE = /^[0-9a-f]{64}$/;
/**
 * An `api:<name>` source: the name is one path segment of the bucket's `images/` (the API's own
 * rule: letters, digits, `.`, `_`, `-`, not starting with a dot, at most 200).
 */
export const API_IMAGE_SOURCE_RE = /^api:([A-Za-z0-9_-][A-Za-z0-9._-]{0,199})$/;
/** How much of the API's error message goes into an ImageError. */
const MAX_API_MESSAGE_CHARS = 300;

/**
 * A URL fit for errors and logs: no user:password, no query (a presigned URL's signature is a
 * credential).
 */
export function displayUrl(text: string): string {
  try {
    const u = new URL(text);
    const query = u.search ? '?…' : '';
    u.username = '';
    u.password = '';
    u.search = '';
    u.hash = '';
    return `${u.toString()}${query}`;
  } catch {
    return '(an invalid URL)';
  }
}

export class ImageCache {
  readonly dir: string;
  private readonly images: ReadonlyMap<string, { url: string; sha256: string }>;
  /** sha256 → size of cache files hashed and matched by this process. */
  private readonly verified = new Map<string, number>();
  /** sha256 → the fetch (or re-hash) under way: concurrent ensure()s wait for the same one. */
  private readonly inflight = new Map<string, Promise<number>>();
  private readonly stallTimeoutMs: number;
  private readonly maxBytes: number;
  private readonly api: { url: string; token: string } | undefined;

  constructor(opts: ImageCacheOptions) {
    this.dir = opts.dir;
    this.stallTimeoutMs = opts.stallTimeoutMs ?? DEFAULT_STALL_TIMEOUT_MS;
    this.maxBytes = opts.maxBytes ?? DEFAULT_MAX_IMAGE_BYTES;
    this.api = opts.api;
    const images = new Map<string, { url: string; sha256: string }>();
    for (const [name, spec] of Object.entries(opts.images)) {
      const sha256 = spec.sha256.toLowerCase();
      if (!SHA256_RE.test(sha256)) throw new TypeError(`image ${JSON.stringify(name)}: sha256 must be 64 hex digits`);
      if (spec.url.startsWith('api:') && !API_IMAGE_SOURCE_RE.test(spec.url)) {
        throw new TypeError(`image ${JSON.stringify(name)}: api:<name> takes 1-200 letters, digits, '.', '_' or '-', not starting with '.'`);
      }
      images.set(name, { url: spec.url, sha256 });
    }
    this.images = images;
  }

  /** The catalog's names. */
  names(): string[] {
    return [...this.images.keys()];
  }

  /** Whether the catalog has `name`. */
  has(name: string): boolean {
    return this.images.has(name);
  }

  /**
   * The verified cache file of a sha256 (what `GET /images/<sha256>` serves), or null when this
   * process has not checked one (never fetched, or a leftover not yet re-hashed) or it is gone.
   */
  path(sha256: string): { path: string; size: number } | null {
    const sha = sha256.toLowerCase();
    const size = this.verified.get(sha);
    if (size === undefined) return null;
    const path = join(this.dir, sha);
    try {
      const st = statSync(path);
      if (st.isFile() && st.size === size) return { path, size };
    } catch {
      /* deleted behind our back */
    }
    this.verified.delete(sha);
    return null;
  }

  /** The image `name` in the cache, fetched and verified first when needed. */
  async ensure(name: string): Promise<CachedImage> {
    const spec = this.images.get(name);
    if (!spec) {
      const known = this.names();
      throw new ImageError(`image ${JSON.stringify(name)} is not in the agent's image catalog (netboot.images${known.length > 0 ? `: ${known.map((n) => JSON.stringify(n)).join(', ')}` : ' is empty'})`);
    }
    const ready = this.path(spec.sha256);
    if (ready) return { name, sha256: spec.sha256, size: ready.size, path: ready.path };
    let work = this.inflight.get(spec.sha256);
    if (!work) {
      work = this.obtain(name, spec).finally(() => this.inflight.delete(spec.sha256));
      this.inflight.set(spec.sha256, work);
    }
    const size = await work;
    return { name, sha256: spec.sha256, size, path: join(this.dir, spec.sha256) };
  }

  /** Re-hashes a leftover cache file, else fetches; returns the verified size. */
  private async obtain(name: string, spec: { url: string; sha256: string }): Promise<number> {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const final = join(this.dir, spec.sha256);
    const leftover = (() => {
      try {
        const st = statSync(final);
        return st.isFile() && st.size > 0 ? st.size : null;
      } catch {
        return null;
      }
    })();
    if (leftover !== null) {
      const { sha256, size } = await hashFile(final);
      if (sha256 === spec.sha256 && size === leftover) {
        this.verified.set(spec.sha256, size);
        log.info('image cache file verified', { image: name, sha256, size });
        return size;
      }
      log.warn('image cache file does not match its name; fetching again', { image: name, expected: spec.sha256, got: sha256 });
      unlinkQuiet(final);
    }
    const part = `${final}.part-${randomBytes(6).toString('hex')}`;
    const started = Date.now();
    const where = displayUrl(spec.url);
    log.info('image fetch started', { image: name, url: where, sha256: spec.sha256 });
    try {
      const { sha256, size } = await this.download(name, spec.url, part);
      if (sha256 !== spec.sha256) throw new ImageError(`image ${JSON.stringify(name)}: sha256 mismatch (expected ${spec.sha256}, got ${sha256}) from ${where}`);
      if (size === 0) throw new ImageError(`image ${JSON.stringify(name)}: ${where} is empty`);
      renameSync(part, final);
      this.verified.set(spec.sha256, size);
      log.info('image fetched and verified', { image: name, sha256, size, ms: Date.now() - started });
      return size;
    } catch (err) {
      unlinkQuiet(part);
      log.warn('image fetch failed', { image: name, url: where, error: (err as Error).message });
      throw err;
    }
  }

  /** Streams the URL into `part` while hashing; the hash and the byte count. */
  private async download(name: string, url: string, part: string): Promise<{ sha256: string; size: number }> {
    // An api: source's errors name the presigned URL too, once the API gave one.
    let where = displayUrl(url);
    const fail = (why: string) => new ImageError(`image ${JSON.stringify(name)}: ${why} from ${where}`);
    let source: Readable;
    if (url.startsWith('file:')) {
      let file: string;
      try {
        file = fileURLToPath(url);
      } catch (err) {
        throw fail(`bad file URL (${(err as Error).message})`);
      }
      try {
        const st = statSync(file);
        if (!st.isFile()) throw new Error('not a regular file');
        if (st.size > this.maxBytes) throw new Error(`${st.size} bytes, more than the limit of ${this.maxBytes}`);
      } catch (err) {
        throw fail(`cannot read the file (${why(err)})`);
      }
      source = createReadStream(file);
    } else if (url.startsWith('api:')) {
      const location = await this.locate(url, fail);
      where = `${where} via ${displayUrl(location)}`;
      log.info('image location from the API', { image: name, url: where });
      source = await this.request(location, fail);
    } else {
      source = await this.request(url, fail);
    }
    const hash = createHash('sha256');
    let size = 0;
    const max = this.maxBytes;
    // Opened before the pipeline starts: a stream that opens lazily could create the part file
    // after a failed download's cleanup already ran.
    let out: FileHandle;
    try {
      out = await open(part, 'wx', 0o600);
    } catch (err) {
      source.destroy();
      throw fail(`cannot write the cache (${why(err)})`);
    }
    try {
      await pipeline(
        source,
        async function* (chunks: AsyncIterable<Buffer>) {
          for await (const chunk of chunks) {
            size += chunk.length;
            if (size > max) throw fail(`more than the limit of ${max} bytes`);
            hash.update(chunk);
            yield chunk;
          }
        },
        createWriteStream('', { fd: out }),
      );
    } catch (err) {
      if (err instanceof ImageError) throw err;
      throw fail(`download failed after ${size} bytes (${why(err)})`);
    }
    return { sha256: hash.digest('hex'), size };
  }

  /**
   * Where an `api:<name>` source is now: the agent's API answers `GET /api/v1.0/agent/images/<name>`
   * with a 302 to a presigned URL of the bucket's `images/<name>`. Anything else fails with the
   * status and the API's message.
   */
  private async locate(source: string, fail: (why: string) => ImageError): Promise<string> {
    const m = API_IMAGE_SOURCE_RE.exec(source);
    if (!m) throw fail("not an image name of the deployment's bucket");
    if (!this.api) throw fail("the image cache has no API to ask (the agent's api_url and token)");
    const endpoint = `${this.api.url.replace(/\/+$/, '')}/api/v1.0/agent/images/${encodeURIComponent(m[1]!)}`;
    let res: Response;
    try {
      res = await fetch(endpoint, {
        headers: { 'X-Auth-Token': this.api.token, Accept: 'application/json', 'User-Agent': 'slipway-agent' },
        redirect: 'manual',
        signal: AbortSignal.timeout(this.stallTimeoutMs),
      });
    } catch (err) {
      const e = err as Error & { cause?: NodeJS.ErrnoException };
      const reason = e.name === 'TimeoutError' ? `no answer for ${this.stallTimeoutMs / 1000} s` : (e.cause?.code ?? e.cause?.message ?? e.message);
      throw fail(`the API at ${displayUrl(this.api.url)} could not be asked (${reason})`);
    }
    const text = await res.text().catch(() => '');
    const location = res.headers.get('location');
    if (res.status !== 302) {
      let message: string | undefined;
      try {
        const body = JSON.parse(text) as { message?: unknown };
        if (typeof body?.message === 'string' && body.message) message = body.message;
      } catch {
        // not JSON: the status alone
      }
      if (message && message.length > MAX_API_MESSAGE_CHARS) message = `${message.slice(0, MAX_API_MESSAGE_CHARS - 1)}…`;
      throw fail(`the API answered HTTP ${res.status}${message ? ` (${message})` : ''}`);
    }
    if (!location) throw fail('the API answered 302 without a Location');
    let next: URL;
    try {
      next = new URL(location, endpoint);
    } catch {
      throw fail('the API answered 302 with an invalid Location');
    }
    if (next.protocol !== 'http:' && next.protocol !== 'https:') throw fail('the API redirected to a non-http(s) URL');
    return next.toString();
  }

  /** The response body of a GET (redirects followed), with the stall timeout on its socket. */
  private request(url: string, fail: (why: string) => ImageError, redirects = 0): Promise<IncomingMessage> {
    return new Promise((resolve, reject) => {
      const get = url.startsWith('https:') ? httpsGet : httpGet;
      let response: IncomingMessage | undefined;
      const req = get(url, { headers: { 'User-Agent': 'slipway-agent' } }, (res) => {
        response = res;
        const status = res.statusCode ?? 0;
        if (status >= 300 && status < 400 && res.headers.location) {
          res.resume();
          if (redirects >= MAX_REDIRECTS) return reject(fail(`more than ${MAX_REDIRECTS} redirects`));
          const next = new URL(res.headers.location, url).toString();
          if (!/^https?:/.test(next)) return reject(fail('a redirect to a non-http(s) URL'));
          return this.request(next, fail, redirects + 1).then(resolve, reject);
        }
        if (status !== 200) {
          res.resume();
          return reject(fail(`HTTP ${status}${res.statusMessage ? ` ${res.statusMessage}` : ''}`));
        }
        const declared = Number(res.headers['content-length'] ?? NaN);
        if (declared > this.maxBytes) {
          res.destroy();
          return reject(fail(`${declared} bytes, more than the limit of ${this.maxBytes}`));
        }
        resolve(res);
      });
      // Idle socket for stallTimeoutMs, before or during the body: no progress, give up.
      // The error goes to the body stream once there is one, so the pipeline reports the stall.
      req.setTimeout(this.stallTimeoutMs, () => {
        const stalled = Object.assign(new Error(`no data for ${this.stallTimeoutMs / 1000} s`), { code: 'ESTALLED' });
        if (response) response.destroy(stalled);
        else req.destroy(stalled);
      });
      req.on('error', (err) => reject(fail(`request failed (${why(err)})`)));
    });
  }
}

/** An error's code (ECONNREFUSED, ENOENT, …) or, without one or for a stall, its message. */
function why(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  return e.code && e.code !== 'ESTALLED' ? e.code : (e.message ?? String(err));
}

function unlinkQuiet(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    /* already gone */
  }
}

async function hashFile(path: string): Promise<{ sha256: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(path) as AsyncIterable<Buffer>) {
    hash.update(chunk);
    size += chunk.length;
  }
  return { sha256: hash.digest('hex'), size };
}
