import { NotFoundError } from '#core/errors.ts';
import { raw, type Reply, surface } from '#http/surface.ts';
import assets from '../../console/dist/assets.json' with { type: 'json' };

/**
 * The web console (console/src, built into console/dist/assets.json by `npm run console`),
 * served by the API itself: same origin as every surface it calls, so no CORS and no token in a
 * URL. Anonymous: the page and its two files are public; everything they show comes from the
 * API with the token the user signs in for. No ports, no table, no secrets.
 *
 * The page answers `no-cache` (revalidated with its ETag, so a new deployment is seen at once);
 * the JS and CSS have content-hashed names and are cached for a year. The Content-Security-Policy
 * allows only this origin's script, style and API, so an injected string (a lease name, a node's
 * `extra`) can never run as script.
 */
export const CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "connect-src 'self'",
  "img-src 'self' data:",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

const SECURITY_HEADERS = {
  'Content-Security-Policy': CSP,
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'X-Frame-Options': 'DENY',
};

const files: Record<string, { contentType: string; body: string }> = assets.files;
const indexEtag = `"${Object.keys(files).sort().join('+')}"`;

export const handler = surface(
  { style: 'sahara', jsonSuffix: false, anonymous: ['GET /console', 'GET /console/{proxy+}'] },
  {
    'GET /console': async ({ headers }): Promise<Reply> => {
      const cache = { ...SECURITY_HEADERS, 'Cache-Control': 'no-cache', ETag: indexEtag };
      if (headers['if-none-match'] === indexEtag) return { statusCode: 304, headers: cache };
      return raw(assets.index, 'text/html; charset=utf-8', cache);
    },
    'GET /console/{proxy+}': async ({ path }) => {
      const name = path.proxy ?? '';
      const file = Object.hasOwn(files, name) ? files[name] : undefined;
      if (!file) throw new NotFoundError(`The console has no file ${name}`);
      return raw(file.body, file.contentType, { ...SECURITY_HEADERS, 'Cache-Control': 'public, max-age=31536000, immutable' });
    },
  },
);
