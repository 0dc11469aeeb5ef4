import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { Validator } from '@seriousme/openapi-schema-validator';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  buildOpenApi,
  docPath,
  ERROR_BODIES,
  isDocumented,
  isJsonTwin,
  OPENAPI_FILE,
  OPENAPI_GZIP_FILE,
  renderedErrorBody,
  renderOpenApi,
  renderOpenApiGzip,
  tagOf,
} from '../../infra/openapi.ts';
import { type RouteSpec, routes } from '../../infra/routes.ts';
import { NotFoundError, UnauthorizedError, ValidationError } from '../../layers/core/errors.ts';
import type { ErrorStyle } from '../../layers/http/errors.ts';
import * as z from '../../layers/core/util/zod.ts';
import { LeaseCreate } from '../../layers/core/leases/service.ts';
import { CreateTaskBody } from '../../layers/core/drydock/tasks/service.ts';
import { NodeListQuery } from '../../layers/core/ironic/node-list.ts';
import { OPENAPI_GZIP } from '../../layers/http/openapi-gzip.ts';

/**
 * The OpenAPI document (issue 15): generated from infra/routes.ts and the handlers, committed as
 * layers/http/openapi.json (and gzipped for the system function), covering every route, and a
 * valid OpenAPI 3.1 document by a standard validator.
 */
type Doc = {
  paths: Record<string, Record<string, Operation>>;
  components: Record<string, Record<string, any>>;
  tags: { name: string }[];
  security: unknown;
};
type Operation = { tags: string[]; security?: unknown[]; parameters?: { name?: string; in?: string; $ref?: string }[]; requestBody?: any; responses: Record<string, any>; 'x-slipway-json-suffix'?: boolean };

const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options', 'trace'];

/**
 * The routes of `table` the document does not describe as they are: missing operations, a
 * `.json` twin whose route does not say so, a wrong tag, a wrong security, a path parameter
 * missing. Catch-alls (`ANY`) are not operations (infra/openapi.ts isDocumented).
 */
function routeProblems(doc: Doc, table: readonly RouteSpec[]): string[] {
  const problems: string[] = [];
  for (const r of table) {
    const id = `${r.method} ${r.path}`;
    if (!isDocumented(r)) {
      // Only catch-alls are left out: each lies over paths that have real routes, or is a `{proxy+}`.
      if (!(r.method === 'ANY' && (r.path.includes('{proxy+}') || table.some((t) => t.method !== 'ANY' && (t.path === r.path || t.path.startsWith(`${r.path.replace(/\.json$/, '')}/`) || `${t.path}.json` === r.path))))) {
        problems.push(`${id}: left out but not a catch-all`);
      }
      continue;
    }
    if (isJsonTwin(r, table)) {
      const base = doc.paths[docPath(r.path.slice(0, -5))]?.[r.method.toLowerCase()];
      if (!base?.['x-slipway-json-suffix']) problems.push(`${id}: .json twin not folded into its route`);
      continue;
    }
    const op = doc.paths[docPath(r.path)]?.[r.method.toLowerCase()];
    if (!op) {
      problems.push(`${id}: missing`);
      continue;
    }
    if (JSON.stringify(op.tags) !== JSON.stringify([tagOf(r.fn)])) problems.push(`${id}: tag ${op.tags}`);
    if ((r.auth === 'none') !== (Array.isArray(op.security) && op.security.length === 0)) problems.push(`${id}: security does not say auth ${r.auth}`);
    for (const m of r.path.matchAll(/\{([^}+]+)\+?\}/g)) {
      if (!op.parameters?.some((p) => p.in === 'path' && p.name === m[1])) problems.push(`${id}: no path parameter ${m[1]}`);
    }
  }
  // And nothing in the document that the table does not route.
  for (const [path, ops] of Object.entries(doc.paths)) {
    for (const method of Object.keys(ops).filter((m) => METHODS.includes(m))) {
      if (!table.some((r) => isDocumented(r) && !isJsonTwin(r, table) && docPath(r.path) === path && r.method.toLowerCase() === method)) problems.push(`${method.toUpperCase()} ${path}: not in the route table`);
    }
  }
  return problems;
}

let committed: Doc;
let generated: Doc;
beforeAll(async () => {
  committed = JSON.parse(readFileSync(OPENAPI_FILE, 'utf8')) as Doc;
  generated = (await buildOpenApi()) as unknown as Doc;
}, 60_000);

describe('OpenAPI document (infra/openapi.ts → layers/http/openapi.json)', () => {
  it('is what the generator makes of the current routes and handlers (run `npm run openapi` after an API change)', () => {
    expect(readFileSync(OPENAPI_FILE, 'utf8')).toBe(renderOpenApi(generated));
  });

  it('is what the system function serves: its gzipped twin holds the same document', () => {
    expect(readFileSync(OPENAPI_GZIP_FILE, 'utf8')).toBe(renderOpenApiGzip(generated));
    expect(JSON.parse(gunzipSync(Buffer.from(OPENAPI_GZIP, 'base64')).toString('utf8'))).toEqual(committed);
  });

  it('describes every route of infra/routes.ts (catch-alls left out, .json twins folded), and no other', () => {
    expect(routes.filter((r) => isDocumented(r) && !isJsonTwin(r)).length).toBeGreaterThan(100);
    expect(routeProblems(committed, routes)).toEqual([]);
  });

  it('notices a route the document lacks, a route it does not route, and a wrong security', () => {
    // The check above can fail: a document with one operation fewer, or a table with one more route.
    const lease = structuredClone(committed);
    delete lease.paths['/v1/leases/{lease_id}']!.put;
    expect(routeProblems(lease, routes)).toEqual(['PUT /v1/leases/{lease_id}: missing']);
    const extra: RouteSpec = { method: 'POST', path: '/v1/leases/{lease_id}/extend', fn: 'blazar', auth: 'token' };
    expect(routeProblems(committed, [...routes, extra])).toEqual(['POST /v1/leases/{lease_id}/extend: missing']);
    expect(routeProblems(committed, routes.filter((r) => !(r.method === 'GET' && r.path === '/healthz')))).toEqual(['GET /healthz: not in the route table']);
    const open = structuredClone(committed);
    delete open.paths['/openapi.json']!.get!.security;
    expect(routeProblems(open, routes)).toEqual(['GET /openapi.json: security does not say auth none']);
  });

  it('passes a standard OpenAPI 3.1 validator, and every $ref resolves', async () => {
    const validator = new Validator();
    const res = await validator.validate(structuredClone(committed) as unknown as Record<string, unknown>);
    expect(res.errors ?? []).toEqual([]);
    expect(res.valid).toBe(true);
    expect(validator.version).toBe('3.1');
    const resolved = JSON.stringify(validator.resolveRefs());
    expect(resolved).not.toContain('"$ref"');
  });

  it('the validator refuses a broken document (the check can fail)', async () => {
    const broken = structuredClone(committed) as any;
    broken.paths['/v1/leases'].get.responses = 'none';
    broken.components.securitySchemes.token.in = 'body';
    const res = await new Validator().validate(broken);
    expect(res.valid).toBe(false);
  });

  it('has one tag per surface, the issue\'s names', () => {
    expect(committed.tags.map((t) => t.name).sort()).toEqual([...new Set(routes.map((r) => tagOf(r.fn)))].sort());
    for (const name of ['Blazar', 'Ironic', 'Drydock', 'Commissaire', 'native', 'agent', 'bootactions', 'system', 'identity']) {
      expect(committed.tags.map((t) => t.name)).toContain(name);
    }
  });

  it('declares X-Auth-Token as the API key of every route but the open ones', () => {
    expect(committed.security).toEqual([{ token: [] }]);
    expect(committed.components.securitySchemes!.token).toMatchObject({ type: 'apiKey', in: 'header', name: 'X-Auth-Token' });
    expect(committed.paths['/healthz']!.get!.security).toEqual([]);
    expect(committed.paths['/v1/leases']!.get!.security).toBeUndefined();
    // Commissaire takes a user's name and password as well (surface({ basicUsers })).
    expect(committed.components.securitySchemes!.basic).toMatchObject({ type: 'http', scheme: 'basic' });
    expect(committed.paths['/api/v0/clusters']!.get!.security).toEqual([{ token: [] }, { basic: [] }]);
  });

  it('takes request bodies and query parameters from the zod schemas the handlers and use-cases parse with', () => {
    const json = (s: z.ZodMiniType) => {
      const out = z.toJSONSchema(s as never, { target: 'draft-2020-12', io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
      delete out.$schema;
      return out;
    };
    // parseWith(LeaseCreate, body) in functions/api/blazar.ts
    expect(committed.paths['/v1/leases']!.post!.requestBody.content['application/json'].schema).toEqual(json(LeaseCreate));
    // createTask(deps, auth, body) → CreateTaskBody.safeParse(raw) in the use-case
    expect(committed.paths['/api/v1.0/tasks']!.post!.requestBody.content['application/json'].schema).toEqual(json(CreateTaskBody));
    // parseWith(NodeListQuery, req.query) → one query parameter per field
    const query = committed.paths['/v1/nodes']!.get!.parameters!.filter((p) => p.in === 'query').map((p) => p.name);
    expect(query.sort()).toEqual(Object.keys((json(NodeListQuery) as { properties: object }).properties).sort());
  });

  it('gives each operation its success codes and the reply types of the views', () => {
    const lease = committed.paths['/v1/leases/{lease_id}']!;
    expect(Object.keys(lease.get!.responses).sort()).toEqual(['200', '401', 'default']);
    expect(lease.get!.responses['200'].content['application/json'].schema).toEqual({
      type: 'object',
      properties: { lease: { $ref: '#/components/schemas/blazarLease' } },
      required: ['lease'],
    });
    expect(Object.keys(lease.delete!.responses).sort()).toEqual(['204', '401', 'default']);
    expect(committed.components.schemas!.blazarLease.required).toEqual(expect.arrayContaining(['id', 'status', 'start_date', 'end_date', 'reservations']));
    expect(Object.keys(committed.paths['/v1/leases']!.post!.responses)).toContain('201');
    expect(Object.keys(committed.paths['/v1/nodes/{node_ident}/states/power']!.put!.responses)).toContain('202');
    expect(Object.keys(committed.paths['/api/v1.0/agent/images/{name}']!.get!.responses)).toContain('302');
    expect(committed.paths['/api/v0/cluster/{name}']!.get!.responses['403']).toEqual({ $ref: '#/components/responses/CommissaireErrorUnauthorized' });
  });
});

describe('error bodies in the document (ERROR_BODIES)', () => {
  // renderError (layers/http/errors.ts) writes them; the document's schemas must accept exactly that.
  const styles = Object.keys(ERROR_BODIES) as ErrorStyle[];
  it.each(styles)('%s: renderError output parses with the documented schema', (style) => {
    for (const err of [new NotFoundError('no such thing'), new UnauthorizedError('no token'), new ValidationError('bad'), new Error('internal')]) {
      const r = ERROR_BODIES[style].schema.safeParse(renderedErrorBody(style, err));
      expect(r.success, `${style} ${err.name}`).toBe(true);
    }
    // And a body of another style does not pass for this one (the schemas tell the formats apart).
    const other = styles.find((s) => ERROR_BODIES[s].name !== ERROR_BODIES[style].name && JSON.stringify(renderedErrorBody(s, new NotFoundError('x'))) !== JSON.stringify(renderedErrorBody(style, new NotFoundError('x'))));
    if (other && ERROR_BODIES[style].media === 'application/json') expect(ERROR_BODIES[style].schema.safeParse(renderedErrorBody(other, new NotFoundError('x'))).success).toBe(false);
  });

  it('each surface\'s operations answer errors in that surface\'s format', () => {
    expect(committed.paths['/v1/nodes']!.get!.responses.default).toEqual({ $ref: '#/components/responses/IronicError' });
    expect(committed.paths['/api/v1.0/tasks']!.get!.responses.default).toEqual({ $ref: '#/components/responses/DrydockError' });
    expect(committed.paths['/v1/leases']!.get!.responses.default).toEqual({ $ref: '#/components/responses/BlazarError' });
    expect(committed.components.responses!.CommissaireError.content).toHaveProperty(['text/html']);
  });
});
