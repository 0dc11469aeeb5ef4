import { gunzipSync } from 'node:zlib';
import { OPENAPI_GZIP } from '#http/openapi-gzip.ts';
import { ok, raw, surface } from '#http/surface.ts';

/**
 * Liveness for scripts and load balancers, and the OpenAPI document of every surface: both
 * answer without credentials and touch nothing. The document is generated from the route table
 * and the handlers (`npm run openapi`, infra/openapi.ts) and committed; this function carries it
 * gzipped (a tenth of its size, within the bundle budget) and unpacks it once per cold start.
 */
const OPENAPI = gunzipSync(Buffer.from(OPENAPI_GZIP, 'base64')).toString('utf8');

export const handler = surface(
  // The route `/openapi.json` is keyed `GET /openapi`: a surface dispatches every route on its
  // key without `.json` (infra/routes.ts handlerKey); `jsonSuffix` makes a wrong method on it
  // 405, as on the surfaces whose every route takes `.json`.
  { style: 'sahara', jsonSuffix: true, anonymous: ['GET /healthz', 'GET /openapi'] },
  {
    'GET /healthz': async () => ok({ status: 'ok' }),
    // This OpenAPI 3.1 document, gzipped for clients that take it (surface.ts).
    'GET /openapi': async () => raw(OPENAPI, 'application/json'),
  },
);
