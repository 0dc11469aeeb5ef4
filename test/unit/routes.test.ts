import type { Context } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import { type FunctionName, functionNames, handlerKey, routes } from '../../infra/routes.ts';
import { matchRoute } from '../../infra/local/server.ts';
import { handler as blazar } from '../../functions/api/blazar.ts';
import { handler as native } from '../../functions/api/native.ts';
import { handler as system } from '../../functions/api/system.ts';
import { handler as agent } from '../../functions/api/agent.ts';
import { handler as ironic } from '../../functions/api/ironic.ts';
import { handler as commissaire } from '../../functions/api/commissaire.ts';
import { handler as bootactions } from '../../functions/api/bootactions.ts';
import { handler as drydock } from '../../functions/api/drydock.ts';
import { handler as identity } from '../../functions/api/identity.ts';
import { handler as consoleFn } from '../../functions/api/console.ts';
import { cachedToken } from '../support/principal.ts';
import { dynamoStats } from '../../layers/aws/dynamo/client.ts';
import { compileTemplate } from '../../layers/http/route-match.ts';
import type { HttpEvent, HttpResult } from '../../layers/http/surface.ts';

/**
 * The route table and the surface handler tables must agree (infra/routes.ts): every concrete
 * route has a handler in its surface and every handler has a route (`routeKeys`, which
 * `surface()` exposes), cross-checked through the handlers' own 404/405 fallback, which is
 * computed from the same table and runs before any DynamoDB use.
 */
const HANDLERS: Record<FunctionName, (e: HttpEvent, c: Context) => Promise<HttpResult>> = {
  blazar: blazar as never,
  native: native as never,
  system: system as never,
  agent: agent as never,
  ironic: ironic as never,
  commissaire: commissaire as never,
  bootactions: bootactions as never,
  drydock: drydock as never,
  identity: identity as never,
  console: consoleFn as never,
};

/** `/api/v1.0` surfaces answer in Drydock's error shape, the others in Blazar/Sahara's. */
const DRYDOCK_STYLE = new Set<FunctionName>(['agent', 'drydock']);
/** Commissaire: the bare reason phrase as text/html. */
const PHRASE: Record<number, string> = { 401: 'Forbidden', 403: 'Forbidden', 404: 'Not Found', 405: 'Method Not Allowed' };
function expectError(fn: FunctionName, body: any, status: number, name: string): void {
  if (fn === 'bootactions') {
    // falcon's own errors, as upstream's boot-action resources raise them.
    expect(body).toEqual({ title: expect.stringMatching(new RegExp(`^${status} `)), description: expect.any(String) });
    return;
  }
  if (fn === 'commissaire') {
    expect(body).toBe(PHRASE[status]);
    return;
  }
  if (fn === 'identity') {
    // Keystone's own error body.
    expect(body).toEqual({ error: { code: status, title: expect.any(String), message: expect.any(String) } });
    return;
  }
  if (fn === 'ironic') {
    // WSME double encoding: error_message is itself JSON.
    expect(Object.keys(body)).toEqual(['error_message']);
    expect(JSON.parse(body.error_message)).toEqual({ faultcode: 'Client', faultstring: expect.any(String), debuginfo: null });
    return;
  }
  if (DRYDOCK_STYLE.has(fn)) expect(body).toEqual({ type: 'error', message: expect.any(String), retry: false, code: expect.stringMatching(new RegExp(`^${status} `)) });
  else expect(body).toMatchObject({ error_code: status, error_name: name, error_message: expect.any(String) });
}

const concrete = (fn: FunctionName) => routes.filter((r) => r.fn === fn && r.method !== 'ANY');

/** The handler keys a surface serves (its table, as `surface()` exposes it). */
function sourceKeys(fn: FunctionName): string[] {
  return [...(HANDLERS[fn] as unknown as { routeKeys: string[] }).routeKeys];
}

/** A concrete path for a template: every {param} filled with a value that is not a literal anywhere. */
const samplePath = (template: string) => template.replace(/\{[A-Za-z0-9_]+\+?\}/g, 'x9');

const READER = JSON.stringify({ token_id: 't', project_id: 'admin', user_id: 'u', roles: ['reader'] });

function event(method: string, routeKey: string, rawPath: string, principal?: string): HttpEvent {
  return {
    version: '2.0',
    routeKey,
    rawPath,
    rawQueryString: '',
    headers: { accept: 'application/json', ...(principal === undefined ? {} : { 'x-auth-token': cachedToken(principal) }) },
    isBase64Encoded: false,
    requestContext: {
      accountId: '000000000000',
      apiId: 'unit',
      domainName: 'unit.local',
      domainPrefix: 'unit',
      http: { method, path: rawPath, protocol: 'HTTP/1.1', sourceIp: '127.0.0.1', userAgent: 'vitest' },
      requestId: 'unit-request',
      routeKey,
      stage: '$default',
      time: new Date().toISOString(),
      timeEpoch: Date.now(),
    },
  } as HttpEvent;
}

const context = { functionName: 'unit', awsRequestId: 'unit', getRemainingTimeInMillis: () => 30_000 } as unknown as Context;

async function invoke(fn: FunctionName, e: HttpEvent): Promise<{ status: number; headers: Record<string, string>; body: any }> {
  const r = await HANDLERS[fn](e, context);
  const headers = Object.fromEntries(Object.entries(r.headers ?? {}).map(([k, v]) => [k.toLowerCase(), String(v)]));
  const body = !r.body ? undefined : headers['content-type'] === 'text/html' ? r.body : JSON.parse(r.body);
  return { status: r.statusCode ?? 200, headers, body };
}

describe('route table', () => {
  it('has one function per surface and only known methods', () => {
    expect([...functionNames].sort()).toEqual(['agent', 'blazar', 'bootactions', 'commissaire', 'console', 'drydock', 'identity', 'ironic', 'native', 'system']);
    for (const r of routes) expect(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'ANY']).toContain(r.method);
  });

  it('has no duplicate method + path', () => {
    const keys = routes.map((r) => `${r.method} ${r.path}`);
    expect(new Set(keys).size).toBe(keys.length);
  });

  it('gives every literal-ending Blazar and native route a .json twin on the same handler', () => {
    for (const r of routes.filter((x) => (x.fn === 'blazar' || x.fn === 'native') && x.method !== 'ANY' && !x.path.endsWith('}'))) {
      if (r.path.endsWith('.json')) continue;
      const twin = routes.find((x) => x.method === r.method && x.path === `${r.path}.json`);
      expect(twin, `${r.method} ${r.path}.json`).toBeDefined();
      expect(handlerKey(twin!)).toBe(handlerKey(r));
    }
  });

  it('requires a token on every route except /healthz, version discovery, Drydock health and the node-facing boot-action routes', () => {
    const open = new Set([
      'GET /healthz',
      // The OpenAPI document: no data, only the API's shape.
      'GET /openapi.json',
      'GET /',
      'GET /v1',
      'GET /versions',
      'GET /api/v1.0/health',
      // Deploying nodes authenticate with their X-Bootaction-Key.
      'GET /api/v1.0/bootactions/nodes/{hostname}/units',
      'GET /api/v1.0/bootactions/nodes/{hostname}/files',
      'GET /api/v1.0/bootdata/{hostname}/units',
      'GET /api/v1.0/bootdata/{hostname}/files',
      'POST /api/v1.0/bootactions/{action_id}',
      'POST /api/v1.0/bootaction/{action_id}',
      // Keystone version discovery and sign-in (the credentials are in the body).
      'GET /v3',
      'POST /v3/auth/tokens',
      // The web console's page and files: public, the data comes from the API with the user's token.
      'GET /console',
      'GET /console/{proxy+}',
    ]);
    for (const r of routes) expect(r.auth, `${r.method} ${r.path}`).toBe(open.has(`${r.method} ${r.path}`) ? 'none' : 'token');
  });

  it('covers every path of a Blazar, native, Commissaire or boot-action route with an ANY catch-all, so a wrong method gets the surface 405, not API Gateway\'s 404', () => {
    // e.g. DELETE /v1/leases.json: no route matches it, so API Gateway would answer {"message":"Not Found"}.
    const uncovered: string[] = [];
    for (const r of routes.filter((x) => ['blazar', 'native', 'commissaire', 'bootactions'].includes(x.fn) && x.method !== 'ANY')) {
      const path = samplePath(r.path);
      const covered = routes.some((c) => c.fn === r.fn && c.method === 'ANY' && compileTemplate(c.path).match(path) !== undefined);
      if (!covered) uncovered.push(`${r.method} ${r.path}`);
    }
    expect(uncovered).toEqual([]);
  });

  it('sends every Commissaire and boot-action path with a trailing slash to its surface\'s catch-all (the surface strips the slash)', () => {
    for (const r of routes.filter((x) => (x.fn === 'commissaire' || x.fn === 'bootactions') && x.method !== 'ANY')) {
      const m = matchRoute(r.method, `${samplePath(r.path)}/`);
      expect(m?.route, `${r.method} ${r.path}/`).toMatchObject({ fn: r.fn, method: 'ANY' });
    }
  });

  it('routes IPv6 literals in {IP}, raw and URL-encoded', () => {
    for (const ip of ['::1', '%3A%3A1', 'fe80::1']) {
      const m = matchRoute('GET', `/api/v0/host/${ip}/status`);
      expect(m?.route.path).toBe('/api/v0/host/{IP}/status');
      expect(m?.params.IP).toBe(decodeURIComponent(ip));
    }
  });
});

describe.each(functionNames)('surface %s', (fn) => {
  it('declares exactly the handler keys of its routes (ANY excluded), each once', () => {
    const inSource = sourceKeys(fn);
    expect(new Set(inSource).size, 'duplicate handler keys').toBe(inSource.length);
    const expected = [...new Set(concrete(fn).map(handlerKey))].sort();
    expect(expected.length).toBeGreaterThan(0);
    expect([...inSource].sort()).toEqual(expected);
  });

  it('answers an unknown route key with 404 NOT_FOUND from its fallback', async () => {
    const res = await invoke(fn, event('GET', 'GET /nope', '/nope', READER));
    expect(res.status).toBe(404);
    expectError(fn, res.body, 404, 'NOT_FOUND');
  });

  it("lists each route's method in the 405 Allow header for its path (the handler table has it)", async () => {
    for (const r of concrete(fn)) {
      const res = await invoke(fn, event('TRACE', 'ANY /probe', samplePath(r.path), READER));
      expect(res.status, `${r.method} ${r.path}`).toBe(405);
      expectError(fn, res.body, 405, 'METHOD_NOT_ALLOWED');
      expect(res.headers.allow?.split(', '), `${r.method} ${r.path}`).toContain(r.method);
      if (fn !== 'commissaire' && fn !== 'bootactions') continue;
      // With a trailing slash too (the surface matches the path without it).
      const slash = await invoke(fn, event('TRACE', 'ANY /probe/{proxy+}', `${samplePath(r.path)}/`, READER));
      expect(slash.status, `${r.method} ${r.path}/`).toBe(405);
      expect(slash.headers.allow?.split(', '), `${r.method} ${r.path}/`).toContain(r.method);
    }
  });
});

describe('surfaces without credentials', () => {
  it('answer every token route without a principal with 401 UNAUTHORIZED in the surface format (Commissaire: 403)', async () => {
    const tokenRoutes = routes.filter((x) => x.method !== 'ANY' && x.auth === 'token');
    expect(tokenRoutes.length).toBeGreaterThan(10);
    for (const r of tokenRoutes) {
      const res = await invoke(r.fn, event(r.method, handlerKey(r), samplePath(r.path)));
      expect(res.status, `${r.method} ${r.path}`).toBe(r.fn === 'commissaire' ? 403 : 401);
      expectError(r.fn, res.body, 401, 'UNAUTHORIZED');
      expect(res.headers['x-openstack-request-id']).toMatch(/^req-/);
    }
  });
});

describe('surfaces at run time', () => {
  it('answers /healthz without credentials', async () => {
    const res = await invoke('system', event('GET', 'GET /healthz', '/healthz'));
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ status: 'ok' });
  });

  it('sends every concrete route of the real table to a function whose table has its key', async () => {
    for (const r of routes.filter((x) => x.method !== 'ANY')) {
      const m = matchRoute(r.method, samplePath(r.path));
      expect(m, `${r.method} ${r.path}`).toBeDefined();
      expect(m!.route.fn).toBe(r.fn);
      expect(sourceKeys(m!.route.fn)).toContain(handlerKey(m!.route));
    }
  });

  it('touched DynamoDB in none of these tests', () => {
    expect([...dynamoStats.calls.values()].reduce((a, b) => a + b, 0)).toBe(0);
  });
});
