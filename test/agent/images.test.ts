/**
 * The agent's image cache (agent/images.ts) against real local HTTP servers and files: a fetch
 * is hashed and kept only when it matches, a mismatch leaves nothing behind, concurrent ensure()s
 * share one download, leftovers are re-hashed before they are trusted, `api:<name>` sources go
 * through the agent's API (a local server plays it and the bucket), and the config section.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { AgentConfig, IMAGE_CACHE_DIR } from '../../agent/config.ts';
import { DEFAULT_IMAGE_URL_PREFIXES, displayUrl, ImageCache, ImageError, normalizeImageUrl, normalizeUrlPrefix } from '../../agent/images.ts';
import { agentImageCache } from '../../agent/runner.ts';
import { rejection } from '../support/rejection.ts';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

let root: string;
let server: Server;
let base: string;
/** Requests per path, the last request's headers per path, and a per-path behaviour. */
const hits = new Map<string, number>();
const headers = new Map<string, IncomingHttpHeaders>();
const routes = new Map<string, (res: import('node:http').ServerResponse, reqHeaders: IncomingHttpHeaders) => void>();

const IMAGE = randomBytes(3 * 1024 * 1024 + 123);
const OTHER = randomBytes(4096);

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'slipway-images-'));
  server = createServer((req, res) => {
    const path = req.url ?? '/';
    hits.set(path, (hits.get(path) ?? 0) + 1);
    headers.set(path, req.headers);
    const route = routes.get(path);
    if (route) return route(res, req.headers);
    res.writeHead(404).end('nope');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server?.closeAllConnections();
  await new Promise<void>((r) => server?.close(() => r()));
  if (root) rmSync(root, { recursive: true, force: true });
});

let dir: string;
let seq = 0;
beforeEach(() => {
  dir = join(root, `cache-${++seq}`);
  hits.clear();
  headers.clear();
  routes.clear();
});

/** Serves `body` slowly enough (in chunks) that concurrent ensure()s overlap the download. */
function serve(path: string, body: Buffer, chunkDelayMs = 0): void {
  routes.set(path, (res) => {
    res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': String(body.length) });
    let off = 0;
    const step = () => {
      if (off >= body.length) return res.end();
      const next = Math.min(body.length, off + 256 * 1024);
      res.write(body.subarray(off, next));
      off = next;
      setTimeout(step, chunkDelayMs);
    };
    step();
  });
}

describe('ImageCache', () => {
  it('fetches over HTTP, checks the sha256, keeps <dir>/<sha256> (0700 dir) and serves it by hash', async () => {
    serve('/img.raw', IMAGE);
    const cache = new ImageCache({ dir, images: { debian: { url: `${base}/img.raw`, sha256: sha(IMAGE).toUpperCase() } } });
    expect(cache.path(sha(IMAGE))).toBeNull();
    const got = await cache.ensure('debian');
    expect(got).toEqual({ name: 'debian', sha256: sha(IMAGE), size: IMAGE.length, path: join(dir, sha(IMAGE)) });
    expect(readFileSync(got.path).equals(IMAGE)).toBe(true);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(readdirSync(dir)).toEqual([sha(IMAGE)]);
    expect(cache.path(sha(IMAGE))).toEqual({ path: got.path, size: IMAGE.length });
    expect(cache.path(sha(OTHER))).toBeNull();
    // Verified once: a second ensure() does not download again.
    await cache.ensure('debian');
    expect(hits.get('/img.raw')).toBe(1);
  });

  it('a sha256 mismatch fails naming the image, both hashes and the URL, and leaves no file', async () => {
    serve('/bad.raw', OTHER);
    const want = sha(IMAGE);
    const cache = new ImageCache({ dir, images: { bad: { url: `${base}/bad.raw`, sha256: want } } });
    const err = await rejection(cache.ensure('bad'));
    expect(err).toBeInstanceOf(ImageError);
    expect(err.message).toBe(`image "bad": sha256 mismatch (expected ${want}, got ${sha(OTHER)}) from ${base}/bad.raw`);
    expect(readdirSync(dir)).toEqual([]);
    expect(cache.path(want)).toBeNull();
    expect(cache.path(sha(OTHER))).toBeNull();
  });

  it('names the HTTP status, an unreachable server, and refuses an empty image', async () => {
    const cache = new ImageCache({
      dir,
      images: {
        missing: { url: `${base}/missing.raw?X-Amz-Signature=secret`, sha256: sha(IMAGE) },
        down: { url: 'http://127.0.0.1:9/x.raw', sha256: sha(IMAGE) },
        empty: { url: `${base}/empty.raw`, sha256: sha(Buffer.alloc(0)) },
      },
    });
    routes.set('/empty.raw', (res) => res.writeHead(200, { 'Content-Length': '0' }).end());
    // The query (a presigned URL's signature) never reaches the error text.
    expect((await rejection(cache.ensure('missing'))).message).toBe(`image "missing": HTTP 404 Not Found from ${base}/missing.raw?…`);
    expect((await rejection(cache.ensure('down'))).message).toBe('image "down": request failed (ECONNREFUSED) from http://127.0.0.1:9/x.raw');
    expect((await rejection(cache.ensure('empty'))).message).toBe(`image "empty": ${base}/empty.raw is empty`);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('a body cut short fails and leaves no part file', async () => {
    routes.set('/cut.raw', (res) => {
      res.writeHead(200, { 'Content-Length': String(IMAGE.length) });
      res.write(IMAGE.subarray(0, 1000), () => res.destroy());
    });
    const cache = new ImageCache({ dir, images: { cut: { url: `${base}/cut.raw`, sha256: sha(IMAGE) } } });
    expect((await rejection(cache.ensure('cut'))).message).toMatch(/^image "cut": download failed after \d+ bytes \(.+\) from http:/);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('gives up on a download that stalls', async () => {
    routes.set('/stall.raw', (res) => {
      res.writeHead(200, { 'Content-Length': String(IMAGE.length) });
      res.write(IMAGE.subarray(0, 1000)); // then nothing
    });
    const cache = new ImageCache({ dir, images: { stall: { url: `${base}/stall.raw`, sha256: sha(IMAGE) } }, stallTimeoutMs: 300 });
    expect((await rejection(cache.ensure('stall'))).message).toBe(`image "stall": download failed after 1000 bytes (no data for 0.3 s) from ${base}/stall.raw`);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('refuses an image over the size cap', async () => {
    serve('/big.raw', IMAGE);
    const cache = new ImageCache({ dir, images: { big: { url: `${base}/big.raw`, sha256: sha(IMAGE) } }, maxBytes: 1024 * 1024 });
    expect((await rejection(cache.ensure('big'))).message).toBe(`image "big": ${IMAGE.length} bytes, more than the limit of 1048576 from ${base}/big.raw`);
  });

  it('follows redirects', async () => {
    serve('/real.raw', OTHER);
    routes.set('/redirect.raw', (res) => res.writeHead(302, { Location: '/real.raw' }).end());
    const cache = new ImageCache({ dir, images: { r: { url: `${base}/redirect.raw`, sha256: sha(OTHER) } } });
    expect((await cache.ensure('r')).size).toBe(OTHER.length);
  });

  it('copies a file:// image the same way (and a mismatch there fails too)', async () => {
    const src = join(root, `src-${seq}.raw`);
    writeFileSync(src, IMAGE);
    const url = pathToFileURL(src).toString();
    const cache = new ImageCache({ dir, images: { local: { url, sha256: sha(IMAGE) }, wrong: { url, sha256: sha(OTHER) }, gone: { url: pathToFileURL(join(root, 'none.raw')).toString(), sha256: sha(OTHER) } } });
    const got = await cache.ensure('local');
    expect(readFileSync(got.path).equals(IMAGE)).toBe(true);
    expect((await rejection(cache.ensure('wrong'))).message).toBe(`image "wrong": sha256 mismatch (expected ${sha(OTHER)}, got ${sha(IMAGE)}) from ${url}`);
    expect((await rejection(cache.ensure('gone'))).message).toMatch(/^image "gone": cannot read the file \(ENOENT\) from file:\/\//);
    expect(readdirSync(dir)).toEqual([sha(IMAGE)]);
  });

  it('concurrent ensure()s of one image share one download', async () => {
    serve('/slow.raw', IMAGE, 20);
    const cache = new ImageCache({ dir, images: { a: { url: `${base}/slow.raw`, sha256: sha(IMAGE) } } });
    const all = await Promise.all([cache.ensure('a'), cache.ensure('a'), cache.ensure('a'), cache.ensure('a')]);
    expect(hits.get('/slow.raw')).toBe(1);
    expect(new Set(all.map((x) => x.path)).size).toBe(1);
    expect(readdirSync(dir)).toEqual([sha(IMAGE)]);
    // A failed download is not cached: the next ensure() tries again.
    const bad = new ImageCache({ dir: join(dir, 'b'), images: { b: { url: `${base}/flaky.raw`, sha256: sha(OTHER) } } });
    const errs = await Promise.all([rejection(bad.ensure('b')), rejection(bad.ensure('b'))]);
    expect(errs[0]).toBe(errs[1]);
    expect(hits.get('/flaky.raw')).toBe(1);
    serve('/flaky.raw', OTHER);
    expect((await bad.ensure('b')).size).toBe(OTHER.length);
    expect(hits.get('/flaky.raw')).toBe(2);
  });

  it('an unknown name fails, naming the catalog', async () => {
    const cache = new ImageCache({ dir, images: { debian: { url: `${base}/x`, sha256: sha(IMAGE) } } });
    expect(cache.has('debian')).toBe(true);
    expect(cache.has('ubuntu')).toBe(false);
    const err = await rejection(cache.ensure('ubuntu'));
    expect(err).toBeInstanceOf(ImageError);
    expect(err.message).toBe('image "ubuntu" is not in the agent\'s image catalog (netboot.images: "debian")');
    expect((await rejection(new ImageCache({ dir, images: {} }).ensure('x'))).message).toBe('image "x" is not in the agent\'s image catalog (netboot.images is empty)');
    expect(hits.size).toBe(0);
  });

  it('re-hashes a cache file left by an earlier run before trusting it; replaces a corrupt one', async () => {
    serve('/img.raw', IMAGE);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, sha(IMAGE)), IMAGE);
    const first = new ImageCache({ dir, images: { d: { url: `${base}/img.raw`, sha256: sha(IMAGE) } } });
    // Not served before it was checked.
    expect(first.path(sha(IMAGE))).toBeNull();
    expect((await first.ensure('d')).size).toBe(IMAGE.length);
    expect(hits.get('/img.raw')).toBeUndefined();
    // Corrupted behind the agent's back, then a new process: hashed, found wrong, fetched again.
    const corrupt = Buffer.from(IMAGE);
    corrupt[1000] = corrupt[1000]! ^ 0xff;
    writeFileSync(join(dir, sha(IMAGE)), corrupt);
    const second = new ImageCache({ dir, images: { d: { url: `${base}/img.raw`, sha256: sha(IMAGE) } } });
    const got = await second.ensure('d');
    expect(hits.get('/img.raw')).toBe(1);
    expect(readFileSync(got.path).equals(IMAGE)).toBe(true);
    // A verified file that disappears is no longer served.
    rmSync(got.path);
    expect(second.path(sha(IMAGE))).toBeNull();
  });

  it('displayUrl drops credentials and queries', () => {
    expect(displayUrl('http://user:pw@h:1/a/b.raw?sig=x#f')).toBe('http://h:1/a/b.raw?…');
    expect(displayUrl('file:///srv/a.raw')).toBe('file:///srv/a.raw');
  });
});

describe('ImageCache: api:<name> sources (the bucket through the agent API)', () => {
  const TOKEN = 'agent-token-for-images';
  const SIG = 'X-Amz-Signature=very-secret';
  /** The agent API's images route, as the cloud answers it: 302 to a presigned URL, for the agent token only. */
  function api(name: string, location: string): void {
    routes.set(`/api/v1.0/agent/images/${name}`, (res, h) => {
      if (h['x-auth-token'] !== TOKEN) {
        res.writeHead(401, { 'Content-Type': 'application/json' }).end(JSON.stringify({ type: 'error', message: 'Authentication required', retry: false }));
        return;
      }
      res.writeHead(302, { Location: location, 'Cache-Control': 'no-store' }).end();
    });
  }
  const cacheOf = (images: Record<string, { url: string; sha256: string }>, apiUrl = base, token = TOKEN) => new ImageCache({ dir, images, api: { url: apiUrl, token } });

  it('asks the API with the agent token, follows its 302 and downloads the presigned URL (no token sent there)', async () => {
    api('debian-12.raw', `/bucket/images/debian-12.raw?${SIG}`);
    serve(`/bucket/images/debian-12.raw?${SIG}`, IMAGE);
    // A trailing slash on api_url is fine.
    const cache = cacheOf({ debian: { url: 'api:debian-12.raw', sha256: sha(IMAGE) } }, `${base}/`);
    const got = await cache.ensure('debian');
    expect(got).toEqual({ name: 'debian', sha256: sha(IMAGE), size: IMAGE.length, path: join(dir, sha(IMAGE)) });
    expect(readFileSync(got.path).equals(IMAGE)).toBe(true);
    expect(headers.get('/api/v1.0/agent/images/debian-12.raw')?.['x-auth-token']).toBe(TOKEN);
    // The presigned URL carries its own credential: the agent token never goes to the store.
    expect(headers.get(`/bucket/images/debian-12.raw?${SIG}`)?.['x-auth-token']).toBeUndefined();
    expect(hits.get(`/bucket/images/debian-12.raw?${SIG}`)).toBe(1);
    await cache.ensure('debian');
    expect(hits.get('/api/v1.0/agent/images/debian-12.raw')).toBe(1);
  });

  it("names the API's status and message (a wrong token: the server saw the one sent)", async () => {
    api('x.raw', `/bucket/images/x.raw?${SIG}`);
    const err = await rejection(cacheOf({ x: { url: 'api:x.raw', sha256: sha(IMAGE) } }, base, 'not-the-agent-token').ensure('x'));
    expect(err).toBeInstanceOf(ImageError);
    expect(err.message).toBe('image "x": the API answered HTTP 401 (Authentication required) from api:x.raw');
    expect(headers.get('/api/v1.0/agent/images/x.raw')?.['x-auth-token']).toBe('not-the-agent-token');
    routes.set('/api/v1.0/agent/images/member.raw', (res) =>
      res.writeHead(403, { 'Content-Type': 'application/json' }).end(JSON.stringify({ type: 'error', message: 'This API is for agent tokens only', retry: false })),
    );
    expect((await rejection(cacheOf({ m: { url: 'api:member.raw', sha256: sha(IMAGE) } }).ensure('m'))).message).toBe(
      'image "m": the API answered HTTP 403 (This API is for agent tokens only) from api:member.raw',
    );
    // Not JSON, or a 200 instead of the redirect: the status alone.
    routes.set('/api/v1.0/agent/images/oops.raw', (res) => res.writeHead(502).end('<html>bad gateway</html>'));
    routes.set('/api/v1.0/agent/images/ok.raw', (res) => res.writeHead(200).end('{"not":"a redirect"}'));
    routes.set('/api/v1.0/agent/images/nowhere.raw', (res) => res.writeHead(302).end());
    routes.set('/api/v1.0/agent/images/ftp.raw', (res) => res.writeHead(302, { Location: 'ftp://h/x' }).end());
    const c = cacheOf({
      oops: { url: 'api:oops.raw', sha256: sha(IMAGE) },
      ok: { url: 'api:ok.raw', sha256: sha(IMAGE) },
      nowhere: { url: 'api:nowhere.raw', sha256: sha(IMAGE) },
      ftp: { url: 'api:ftp.raw', sha256: sha(IMAGE) },
    });
    expect((await rejection(c.ensure('oops'))).message).toBe('image "oops": the API answered HTTP 502 from api:oops.raw');
    expect((await rejection(c.ensure('ok'))).message).toBe('image "ok": the API answered HTTP 200 from api:ok.raw');
    expect((await rejection(c.ensure('nowhere'))).message).toBe('image "nowhere": the API answered 302 without a Location from api:nowhere.raw');
    expect((await rejection(c.ensure('ftp'))).message).toBe('image "ftp": the API redirected to a non-http(s) URL from api:ftp.raw');
    expect(readdirSync(dir)).toEqual([]);
  });

  it("names the store's status and a mismatch, never the presigned URL's query", async () => {
    api('gone.raw', `${base}/bucket/images/gone.raw?${SIG}`);
    api('other.raw', `/bucket/images/other.raw?${SIG}`);
    serve(`/bucket/images/other.raw?${SIG}`, OTHER);
    const c = cacheOf({ gone: { url: 'api:gone.raw', sha256: sha(IMAGE) }, other: { url: 'api:other.raw', sha256: sha(IMAGE) } });
    const gone = await rejection(c.ensure('gone'));
    expect(gone.message).toBe(`image "gone": HTTP 404 Not Found from api:gone.raw via ${base}/bucket/images/gone.raw?…`);
    const wrong = await rejection(c.ensure('other'));
    expect(wrong.message).toBe(`image "other": sha256 mismatch (expected ${sha(IMAGE)}, got ${sha(OTHER)}) from api:other.raw`);
    for (const e of [gone, wrong]) expect(e.message).not.toContain('secret');
    expect(readdirSync(dir)).toEqual([]);
  });

  it('stalls and size caps apply to the presigned download as to any http(s) source', async () => {
    api('stall.raw', `/bucket/stall.raw?${SIG}`);
    routes.set(`/bucket/stall.raw?${SIG}`, (res) => {
      res.writeHead(200, { 'Content-Length': String(IMAGE.length) });
      res.write(IMAGE.subarray(0, 1000));
    });
    api('big.raw', `/bucket/big.raw?${SIG}`);
    serve(`/bucket/big.raw?${SIG}`, IMAGE);
    const stall = new ImageCache({ dir, images: { s: { url: 'api:stall.raw', sha256: sha(IMAGE) } }, api: { url: base, token: TOKEN }, stallTimeoutMs: 300 });
    expect((await rejection(stall.ensure('s'))).message).toBe(`image "s": download failed after 1000 bytes (no data for 0.3 s) from api:stall.raw via ${base}/bucket/stall.raw?…`);
    const big = new ImageCache({ dir, images: { b: { url: 'api:big.raw', sha256: sha(IMAGE) } }, api: { url: base, token: TOKEN }, maxBytes: 1024 * 1024 });
    expect((await rejection(big.ensure('b'))).message).toBe(`image "b": ${IMAGE.length} bytes, more than the limit of 1048576 from api:big.raw via ${base}/bucket/big.raw?…`);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('fails clearly without an API to ask, or with the API down; refuses a bad name up front', async () => {
    const none = new ImageCache({ dir, images: { a: { url: 'api:a.raw', sha256: sha(IMAGE) } } });
    const err = await rejection(none.ensure('a'));
    expect(err).toBeInstanceOf(ImageError);
    expect(err.message).toBe('image "a": the image cache has no API to ask (the agent\'s api_url and token) from api:a.raw');
    // A port nothing listens on (fetch refuses port 9 outright).
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    const down = cacheOf({ a: { url: 'api:a.raw', sha256: sha(IMAGE) } }, `http://127.0.0.1:${port}`);
    expect((await rejection(down.ensure('a'))).message).toBe(`image "a": the API at http://127.0.0.1:${port}/ could not be asked (ECONNREFUSED) from api:a.raw`);
    for (const url of ['api:', 'api:.hidden', 'api:a/b', `api:${'x'.repeat(201)}`]) {
      expect(() => new ImageCache({ dir, images: { a: { url, sha256: sha(IMAGE) } } }), url).toThrow(TypeError);
    }
    expect(hits.size).toBe(0);
  });
});

describe('ImageCache: ad-hoc URL images (ensureUrl, netboot.image_url_prefixes)', () => {
  it('fetches a URL image the same verified way, keyed by its sha256; named by its display URL', async () => {
    serve('/adhoc/img.raw?sig=secret', IMAGE);
    const cache = new ImageCache({ dir, images: {}, urlPrefixes: [`${base}/adhoc/`] });
    const url = `${base}/adhoc/img.raw?sig=secret`;
    const got = await cache.ensureUrl(url, sha(IMAGE).toUpperCase());
    expect(got).toEqual({ name: `${base}/adhoc/img.raw?…`, sha256: sha(IMAGE), size: IMAGE.length, path: join(dir, sha(IMAGE)) });
    expect(readFileSync(got.path).equals(IMAGE)).toBe(true);
    expect(readdirSync(dir)).toEqual([sha(IMAGE)]);
    expect(cache.path(sha(IMAGE))).toEqual({ path: got.path, size: IMAGE.length });
    // Keyed by the sha256: the same image by another URL (even one that would fail) is not fetched again.
    expect((await cache.ensureUrl(`${base}/adhoc/elsewhere.raw`, sha(IMAGE))).path).toBe(got.path);
    expect(hits.get('/adhoc/img.raw?sig=secret')).toBe(1);
    expect(hits.get('/adhoc/elsewhere.raw')).toBeUndefined();
  });

  it('a sha256 mismatch fails naming the display URL, both hashes, and leaves no file', async () => {
    serve('/adhoc/other.raw', OTHER);
    const cache = new ImageCache({ dir, images: {}, urlPrefixes: ['http://'] });
    const err = await rejection(cache.ensureUrl(`http://u:pw@${base.slice(7)}/adhoc/other.raw`, sha(IMAGE)), ImageError);
    expect(err.message).toBe(`image "${base}/adhoc/other.raw": sha256 mismatch (expected ${sha(IMAGE)}, got ${sha(OTHER)}) from ${base}/adhoc/other.raw`);
    expect(err.message).not.toContain('pw');
    expect(readdirSync(dir)).toEqual([]);
    expect((await rejection(cache.ensureUrl(`${base}/adhoc/other.raw`, 'ab'.repeat(16)), ImageError)).message).toBe(`image "${base}/adhoc/other.raw": the sha256 must be 64 hex digits`);
  });

  it('shares the cache file, and a download under way, with a catalog entry of the same sha256', async () => {
    serve('/catalog.raw', IMAGE, 20);
    serve('/adhoc/same.raw', IMAGE, 20);
    const cache = new ImageCache({ dir, images: { debian: { url: `${base}/catalog.raw`, sha256: sha(IMAGE) } }, urlPrefixes: [`${base}/adhoc/`] });
    // Concurrent: one download between them.
    const [a, b] = await Promise.all([cache.ensure('debian'), cache.ensureUrl(`${base}/adhoc/same.raw`, sha(IMAGE))]);
    expect(a.path).toBe(b.path);
    expect(a.name).toBe('debian');
    expect(b.name).toBe(`${base}/adhoc/same.raw`);
    expect((hits.get('/catalog.raw') ?? 0) + (hits.get('/adhoc/same.raw') ?? 0)).toBe(1);
    // URL first, then the catalog (another process, the leftover re-hashed): the catalog source is never asked.
    const dir2 = join(dir, 'second');
    const first = new ImageCache({ dir: dir2, images: {}, urlPrefixes: [`${base}/adhoc/`] });
    await first.ensureUrl(`${base}/adhoc/same.raw`, sha(IMAGE));
    const catalogHits = hits.get('/catalog.raw') ?? 0;
    const urlHits = hits.get('/adhoc/same.raw') ?? 0;
    expect((await first.ensure('debian').catch((e: Error) => e)) instanceof ImageError).toBe(true); // not in this cache's catalog
    const second = new ImageCache({ dir: dir2, images: { debian: { url: `${base}/catalog.raw`, sha256: sha(IMAGE) } } });
    expect((await second.ensure('debian')).size).toBe(IMAGE.length);
    expect(hits.get('/catalog.raw') ?? 0).toBe(catalogHits);
    // And the catalog's file serves a later URL deploy of the same sha256 without a fetch.
    const third = new ImageCache({ dir: dir2, images: {}, urlPrefixes: [`${base}/adhoc/`] });
    await third.ensureUrl(`${base}/adhoc/same.raw`, sha(IMAGE));
    expect(hits.get('/adhoc/same.raw') ?? 0).toBe(urlHits);
  });

  it('fetches only URLs its prefixes allow, compared normalized; redirects must be allowed too', async () => {
    const cache = new ImageCache({ dir, images: {}, urlPrefixes: [`${base}/adhoc/`, 'https://images.example.com/os/'] });
    expect(cache.allowsUrl(`${base}/adhoc/x.raw`)).toBe(true);
    expect(cache.allowsUrl(`${base.toUpperCase().replace('HTTP', 'http')}/adhoc/x.raw`)).toBe(true);
    expect(cache.allowsUrl('HTTPS://Images.Example.COM:443/os/debian.raw?x=1')).toBe(true);
    expect(cache.allowsUrl('https://user:pw@images.example.com/os/debian.raw')).toBe(true);
    for (const url of [
      `${base}/adhoc/../secret.raw`, // dot segments resolved: /secret.raw
      `${base}/adhoc`, // the prefix's path is /adhoc/
      'https://images.example.com.evil.test/os/x.raw',
      'https://images.example.com@evil.test/os/x.raw',
      'https://images.example.com/os2/x.raw',
      'http://images.example.com/os/x.raw',
      'file:///etc/passwd',
      'api:debian.raw',
      'not a url',
    ]) {
      expect(cache.allowsUrl(url), url).toBe(false);
    }
    const err = await rejection(cache.ensureUrl('https://elsewhere.test/x.raw', sha(IMAGE)), ImageError);
    expect(err.message).toBe('image "https://elsewhere.test/x.raw": the URL is not allowed by this agent (netboot.image_url_prefixes)');
    // Default: any https URL, nothing else.
    const dflt = new ImageCache({ dir, images: {} });
    expect(DEFAULT_IMAGE_URL_PREFIXES).toEqual(['https://']);
    expect(dflt.allowsUrl('https://anywhere.test/x')).toBe(true);
    expect(dflt.allowsUrl(`${base}/adhoc/x.raw`)).toBe(false);
    expect((await rejection(dflt.ensureUrl(`${base}/adhoc/x.raw`, sha(IMAGE)))).message).toMatch(/not allowed by this agent/);
    // A redirect out of the allowed prefixes is not followed.
    routes.set('/adhoc/jump.raw', (res) => res.writeHead(302, { Location: '/internal/img.raw?sig=s' }).end());
    serve('/internal/img.raw?sig=s', IMAGE);
    const jump = await rejection(cache.ensureUrl(`${base}/adhoc/jump.raw`, sha(IMAGE)), ImageError);
    expect(jump.message).toBe(`image "${base}/adhoc/jump.raw": a redirect to ${base}/internal/img.raw?…, which is not allowed by this agent (netboot.image_url_prefixes) from ${base}/adhoc/jump.raw`);
    expect(hits.get('/internal/img.raw?sig=s')).toBeUndefined();
    // One within them is.
    routes.set('/adhoc/hop.raw', (res) => res.writeHead(302, { Location: '/adhoc/real.raw' }).end());
    serve('/adhoc/real.raw', IMAGE);
    expect((await cache.ensureUrl(`${base}/adhoc/hop.raw`, sha(IMAGE))).size).toBe(IMAGE.length);
    expect(readdirSync(dir)).toEqual([sha(IMAGE)]);
  });

  it('normalizes URLs and prefixes; refuses prefixes that could match more than meant', () => {
    expect(normalizeImageUrl('HTTPS://U:P@Host.Example:443/a/./b/../c.raw?q=1#frag')).toBe('https://host.example/a/c.raw?q=1');
    for (const u of ['ftp://h/x', 'http:///x', 'http:x', 'file:///x', `https://h/${'x'.repeat(2048)}`]) expect(normalizeImageUrl(u), u).toBeNull();
    expect(normalizeUrlPrefix('HTTPS://')).toBe('https://');
    expect(normalizeUrlPrefix('http://')).toBe('http://');
    expect(normalizeUrlPrefix('https://Images.Example.com/os/')).toBe('https://images.example.com/os/');
    expect(normalizeUrlPrefix('https://images.example.com/debian-')).toBe('https://images.example.com/debian-');
    for (const p of ['https://images.example.com', 'https://u@images.example.com/', 'https://h/?q', 'https://h/#f', 'ftp://', 'https:', 'images.example.com/', '']) {
      expect(normalizeUrlPrefix(p), p).toBeNull();
      expect(() => new ImageCache({ dir, images: {}, urlPrefixes: [p] }), p).toThrow(TypeError);
    }
  });
});

describe('netboot.images in the agent config', () => {
  const parse = (netboot: Record<string, unknown>) => AgentConfig.safeParse({ api_url: 'http://127.0.0.1:9', token: 'unused-token', netboot: { public_url: 'http://10.0.0.1:8081', ...netboot } });
  const H = 'AB'.repeat(32);

  it('takes http(s) and file:///abs URLs with a sha256 (lower-cased); defaults the cache dir', () => {
    const ok = parse({ images: { 'debian-12': { url: 'https://img.example/d.raw', sha256: H }, local: { url: 'file:///srv/img/x.raw', sha256: H.toLowerCase() } } });
    expect(ok.success).toBe(true);
    expect(ok.data?.netboot?.images).toEqual({ 'debian-12': { url: 'https://img.example/d.raw', sha256: 'ab'.repeat(32) }, local: { url: 'file:///srv/img/x.raw', sha256: 'ab'.repeat(32) } });
    expect(ok.data?.netboot?.image_cache_dir).toBe(IMAGE_CACHE_DIR);
    expect(IMAGE_CACHE_DIR.endsWith('/.cache/agent-images')).toBe(true);
    expect(parse({}).data?.netboot?.images).toEqual({});
    expect(parse({ image_cache_dir: '/var/cache/slipway' }).data?.netboot?.image_cache_dir).toBe('/var/cache/slipway');
  });

  it('refuses bad names, URLs and hashes', () => {
    const img = { url: 'http://h/x', sha256: H };
    for (const name of ['', 'a/b', 'a\nb', 'x'.repeat(256)]) expect(parse({ images: { [name]: img } }).success, JSON.stringify(name)).toBe(false);
    expect(parse({ images: { ['x'.repeat(255)]: img } }).success).toBe(true);
    for (const url of ['ftp://h/x', 'file://host/x', 'file:relative', 'not a url', 'http:///x']) expect(parse({ images: { a: { url, sha256: H } } }).success, url).toBe(false);
    for (const sha256 of ['ab', 'g'.repeat(64), `${H}0`]) expect(parse({ images: { a: { url: 'http://h/x', sha256 } } }).success, sha256).toBe(false);
    expect(parse({ images: { a: { ...img, extra: 1 } } }).success).toBe(false);
  });

  it('image_url_prefixes: default any https URL; validated', () => {
    expect(parse({}).data?.netboot?.image_url_prefixes).toEqual(['https://']);
    expect(parse({ image_url_prefixes: ['https://images.example.com/', 'http://'] }).data?.netboot?.image_url_prefixes).toEqual(['https://images.example.com/', 'http://']);
    expect(parse({ image_url_prefixes: [] }).data?.netboot?.image_url_prefixes).toEqual([]);
    for (const p of ['https://images.example.com', 'ftp://', 'https://u:p@h/', 'https://h/?x', 'h/', '']) {
      const r = parse({ image_url_prefixes: [p] });
      expect(r.success, p).toBe(false);
      expect(r.error?.issues[0]?.path, p).toEqual(['netboot', 'image_url_prefixes', 0]);
    }
    expect(parse({ image_url_prefixes: 'https://' }).success).toBe(false);
  });

  it('takes api:<name> (the bucket through the API) with the API\'s name rule', () => {
    const ok = parse({ images: { debian: { url: 'api:debian-12_v1.raw', sha256: H } } });
    expect(ok.success).toBe(true);
    expect(ok.data?.netboot?.images.debian).toEqual({ url: 'api:debian-12_v1.raw', sha256: 'ab'.repeat(32) });
    expect(parse({ images: { a: { url: `api:${'x'.repeat(200)}`, sha256: H } } }).success).toBe(true);
    for (const url of ['api:', 'api:.hidden', 'api:..', 'api:a/b', 'api:a b', 'api:a%2Fb', 'api://h/x', `api:${'x'.repeat(201)}`]) {
      const r = parse({ images: { a: { url, sha256: H } } });
      expect(r.success, url).toBe(false);
      expect(r.error?.issues[0]?.message, url).toMatch(/api:<name>/);
    }
  });
});

describe("the agent's image cache from its config", () => {
  it('takes the URL policy, the catalog and the API from agent.json', () => {
    const cfg = AgentConfig.parse({
      api_url: 'http://127.0.0.1:9',
      token: 'slp_agent-token-0123456789abcdef',
      netboot: { public_url: 'http://10.0.0.2:8081', image_cache_dir: join(tmpdir(), 'unused-cache'), image_url_prefixes: ['https://images.example.com/'] },
    });
    const cache = agentImageCache({ ...cfg, token: 'slp_agent-token-0123456789abcdef' })!;
    expect(cache.allowsUrl('https://images.example.com/debian.raw')).toBe(true);
    expect(cache.allowsUrl('https://images.example.com.evil/debian.raw')).toBe(false);
    expect(cache.allowsUrl('https://elsewhere.example/debian.raw')).toBe(false);
    expect(agentImageCache({ ...AgentConfig.parse({ api_url: 'http://127.0.0.1:9', token: 'slp_agent-token-0123456789abcdef' }), token: 'slp_agent-token-0123456789abcdef' })).toBeUndefined();
  });
});
