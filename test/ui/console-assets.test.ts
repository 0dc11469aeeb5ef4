import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import type { Context } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import { ASSETS_FILE, assetsJson, buildConsole, CONSOLE_BUDGET_BYTES, CONSOLE_DIR } from '../../console/build.ts';
import { CSP, handler } from '../../functions/api/console.ts';
import type { HttpEvent } from '../../layers/http/surface.ts';

/**
 * The web console's build: what is committed (console/dist/assets.json, which the console
 * function serves) is what console/src builds to today, it typechecks with the browser's types,
 * and its JS + CSS stay within the stated budget. Then the console function serves it with the
 * headers a browser needs: the CSP, a revalidated page and year-long hashed files.
 */
const committed = JSON.parse(readFileSync(ASSETS_FILE, 'utf8')) as Awaited<ReturnType<typeof buildConsole>>;

describe('console build', () => {
  it('the committed console/dist/assets.json is what console/src builds to (run `npm run console` after editing it)', async () => {
    const built = await buildConsole();
    expect(assetsJson(built) === readFileSync(ASSETS_FILE, 'utf8'), 'console/dist/assets.json is stale: run npm run console').toBe(true);
  });

  it(`holds JS + CSS within ${CONSOLE_BUDGET_BYTES / 1024} KiB minified`, () => {
    const sizes = Object.entries(committed.files).map(([name, f]) => ({ name, bytes: Buffer.byteLength(f.body), gzip: gzipSync(f.body).length }));
    const total = sizes.reduce((n, s) => n + s.bytes, 0);
    console.info(`console assets: ${sizes.map((s) => `${s.name} ${s.bytes} B (${s.gzip} B gzipped)`).join(', ')}; total ${total} of ${CONSOLE_BUDGET_BYTES} B`);
    expect(sizes.map((s) => s.name.replace(/\.[0-9a-f]{12}\./, '.*.')).sort()).toEqual(['app.*.css', 'app.*.js']);
    expect(total).toBeLessThanOrEqual(CONSOLE_BUDGET_BYTES);
    // Preact, not a heavy framework: no React, no runtime template compiler.
    expect(committed.files[sizes.find((s) => s.name.endsWith('.js'))!.name]!.body).not.toMatch(/react-dom|__SECRET_INTERNALS/);
  });

  it('typechecks with the DOM types (console/tsconfig.json)', () => {
    const tsc = join(CONSOLE_DIR, '../node_modules/.bin/tsc');
    expect(() => execFileSync(tsc, ['-p', join(CONSOLE_DIR, 'tsconfig.json')], { stdio: 'pipe' })).not.toThrow();
  }, 60_000);
});

function event(rawPath: string, routeKey: string, headers: Record<string, string> = {}, proxy?: string): HttpEvent {
  return {
    version: '2.0',
    routeKey,
    rawPath,
    rawQueryString: '',
    headers: { accept: '*/*', ...headers },
    pathParameters: proxy === undefined ? undefined : { proxy },
    isBase64Encoded: false,
    requestContext: {
      accountId: '000000000000',
      apiId: 'unit',
      domainName: 'unit.local',
      domainPrefix: 'unit',
      http: { method: 'GET', path: rawPath, protocol: 'HTTP/1.1', sourceIp: '127.0.0.1', userAgent: 'vitest' },
      requestId: 'unit-request',
      routeKey,
      stage: '$default',
      time: new Date().toISOString(),
      timeEpoch: Date.now(),
    },
  } as HttpEvent;
}
const context = { functionName: 'unit', awsRequestId: 'unit', getRemainingTimeInMillis: () => 30_000 } as unknown as Context;

describe('console function (functions/api/console.ts)', () => {
  it('serves the page without a token, with a strict CSP and no-cache, naming exactly the built files', async () => {
    const res = await handler(event('/console', 'GET /console', { accept: 'text/html,application/xhtml+xml,*/*;q=0.8' }), context);
    expect(res.statusCode).toBe(200);
    expect(res.headers?.['Content-Type']).toBe('text/html; charset=utf-8');
    expect(res.headers?.['Content-Security-Policy']).toBe(CSP);
    expect(CSP).toContain("script-src 'self'");
    expect(CSP).not.toContain('unsafe-inline');
    expect(res.headers?.['Cache-Control']).toBe('no-cache');
    expect(res.headers?.['X-Content-Type-Options']).toBe('nosniff');
    const refs = [...res.body!.matchAll(/(?:src|href)="\/console\/([^"]+)"/g)].map((m) => m[1]).sort();
    expect(refs).toEqual(Object.keys(committed.files).sort());
    // No inline script or style: the CSP would block them.
    expect(res.body).not.toMatch(/<script>|<style|style=/);
    // Revalidation: the same ETag answers 304 without a body.
    const again = await handler(event('/console', 'GET /console', { 'if-none-match': String(res.headers!.ETag) }), context);
    expect(again.statusCode).toBe(304);
    expect(again.body ?? '').toBe('');
  });

  it('serves each hashed file with its type and a year of immutable caching, gzipped when asked', async () => {
    for (const [name, file] of Object.entries(committed.files)) {
      const res = await handler(event(`/console/${name}`, 'GET /console/{proxy+}', { 'accept-encoding': 'gzip' }, name), context);
      expect(res.statusCode, name).toBe(200);
      expect(res.headers?.['Content-Type']).toBe(file.contentType);
      expect(res.headers?.['Cache-Control']).toBe('public, max-age=31536000, immutable');
      const body = res.isBase64Encoded ? (await import('node:zlib')).gunzipSync(Buffer.from(res.body!, 'base64')).toString('utf8') : res.body;
      expect(body).toBe(file.body);
    }
  });

  it('answers 404 for a file it does not have (and for prototype names)', async () => {
    for (const name of ['app.js', '__proto__', 'constructor', '../package.json']) {
      const res = await handler(event(`/console/${name}`, 'GET /console/{proxy+}', {}, name), context);
      expect(res.statusCode, name).toBe(404);
      expect(JSON.parse(res.body!)).toMatchObject({ error_code: 404, error_name: 'NOT_FOUND' });
    }
  });
});
