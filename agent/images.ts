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
 *
 * Ad-hoc URL images (ensureUrl: an Ironic lessee's `instance_info.image_source` URL with its
 * checksum) take the same verified path, keyed by their sha256 like catalog images: a cache file
 * with that sha256 — fetched for a catalog entry or for another URL — is reused, and a download
 * under way for it is shared. Unlike catalog sources, which the operator chose, the lessee chooses
 * these URLs and the agent fetches them from inside the site: only http(s) URLs that start with one
 * of `urlPrefixes` (netboot.image_url_prefixes; default any https URL) are fetched, and every
 * redirect they answer must be allowed too (the SSRF control, see allowsUrl).
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
  /**
   * Which ad-hoc image URLs (ensureUrl) may be fetched (netboot.image_url_prefixes): a URL must
   * start with one of them, compared after URL normalization (normalizeUrlPrefix). Default
   * `["https://"]`: any https URL.
   */
  urlPrefixes?: readonly string[];
}

/** Why an image could not be had: the message names the image and what failed (passed to the job as is). */
export class ImageError extends Error {
  override name = 'ImageError';
}

export const DEFAULT_STALL_TIMEOUT_MS = 60_000;
/** netboot.image_url_prefixes' default: any https URL. */
export const DEFAULT_IMAGE_URL_PREFIXES: readonly string[] = ['https://'];
/** Longest ad-hoc image URL (the job payload's bound). */
export const MAX_IMAGE_URL_CHARS = 2048;
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

/**
 * An http(s) URL in the form the policy compares: `scheme://host[:port]/path[?query]` as WHATWG
 * URL parsing normalizes it (scheme and host lower-cased, default port dropped, `.`/`..` segments
 * resolved, percent-encoding applied), without user:password or fragment; null for anything else
 * (another scheme, no host, not a URL).
 */
export function normalizeImageUrl(text: string): string | null {
  if (text.length > MAX_IMAGE_URL_CHARS) return null;
  // Spelled out: WHATWG URL parsing would read `http:///x` as http://x/ and `http:x` as http://x/.
  if (!/^https?:\/\/[^/]/i.test(text)) return null;
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    return null;
  }
  if ((u.protocol !== 'http:' && u.protocol !== 'https:') || u.hostname === '') return null;
  return `${u.protocol}//${u.host}${u.pathname}${u.search}`;
}

/**
 * A policy prefix (netboot.image_url_prefixes) in normalized form, or null when it is not one:
 * either a bare scheme, `http://` or `https://` (any URL of that scheme), or an http(s) URL with a
 * host and a path (at least `/`) and no user:password, query or fragment. The path is required so
 * that `https://images.example.com` cannot be read as allowing `https://images.example.com.evil/`.
 */
export function normalizeUrlPrefix(text: string): string | null {
  const bare = /^(https?):\/\/$/i.exec(text);
  if (bare) return `${bare[1]!.toLowerCase()}://`;
  const m = /^https?:\/\/([^/?#]+)\//i.exec(text);
  if (!m || m[1]!.includes('@') || /[?#]/.test(text)) return null;
  return normalizeImageUrl(text);
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
  private readonly urlPrefixes: readonly string[];

  constructor(opts: ImageCacheOptions) {
    this.dir = opts.dir;
    this.urlPrefixes = (opts.urlPrefixes ?? DEFAULT_IMAGE_URL_PREFIXES).map((p) => {
      const n = normalizeUrlPrefix(p);
      if (n === null) throw new TypeError(`image URL prefix ${JSON.stringify(p)}: http:// or https://, or an http(s) URL with a host and a path (no credentials, query or fragment)`);
      return n;
    });
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

  /**
   * Whether an ad-hoc image URL may be fetched: an http(s) URL whose normalized form
   * (normalizeImageUrl) starts with one of the policy's prefixes.
   */
  allowsUrl(url: string): boolean {
    const n = normalizeImageUrl(url);
    return n !== null && this.urlPrefixes.some((p) => n.startsWith(p));
  }

  /**
   * An image named by its URL and sha256 rather than by the catalog (an Ironic lessee's
   * image_source), fetched and verified exactly as a catalog image, and keyed by its sha256: a
   * cache file with that sha256 (whatever fetched it) is reused, a download of it under way is
   * shared. The URL, and every redirect it answers, must be allowed by the policy (allowsUrl);
   * the caller checks the URL first to refuse with its own words, this is the backstop. The
   * result's `name` is the URL's display form (displayUrl).
   */
  async ensureUrl(url: string, sha256: string): Promise<CachedImage> {
    const name = displayUrl(url);
    const sha = sha256.toLowerCase();
    if (!SHA256_RE.test(sha)) throw new ImageError(`image ${JSON.stringify(name)}: the sha256 must be 64 hex digits`);
    if (!this.allowsUrl(url)) throw new ImageError(`image ${JSON.stringify(name)}: the URL is not allowed by this agent (netboot.image_url_prefixes)`);
    const ready = this.path(sha);
    if (ready) return { name, sha256: sha, size: ready.size, path: ready.path };
    let work = this.inflight.get(sha);
    if (!work) {
      work = this.obtain(name, { url, sha256: sha }, (next) => this.allowsUrl(next)).finally(() => this.inflight.delete(sha));
      this.inflight.set(sha, work);
    }
    const size = await work;
    return { name, sha256: sha, size, path: join(this.dir, sha) };
  }

  /**
   * Re-hashes a leftover cache file, else fetches; returns the verified size. `redirectAllowed`:
   * each redirect's target must pass it (ad-hoc URLs); absent, any http(s) redirect is followed.
   */
  private async obtain(name: string, spec: { url: string; sha256: string }, redirectAllowed?: (url: string) => boolean): Promise<number> {
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
      const { sha256, size } = await this.download(name, spec.url, part, redirectAllowed);
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
  private async download(name: string, url: string, part: string, redirectAllowed?: (url: string) => boolean): Promise<{ sha256: string; size: number }> {
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
      source = await this.request(url, fail, 0, redirectAllowed);
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
  private request(url: string, fail: (why: string) => ImageError, redirects = 0, redirectAllowed?: (url: string) => boolean): Promise<IncomingMessage> {
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
          if (redirectAllowed && !redirectAllowed(next)) return reject(fail(`a redirect to ${displayUrl(next)}, which is not allowed by this agent (netboot.image_url_prefixes)`));
          return this.request(next, fail, redirects + 1, redirectAllowed).then(resolve, reject);
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
