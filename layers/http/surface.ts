import { createHash, randomUUID } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import middy from '@middy/core';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Context } from 'aws-lambda';
import {
  ConflictError,
  DomainError,
  ForbiddenError,
  IdempotencyMismatchError,
  MethodNotAllowedError,
  NotAcceptableError,
  NotFoundError,
  PayloadTooLargeError,
  UnauthorizedError,
  ValidationError,
} from '#core/errors.ts';
import type { Principal, Role } from '#core/identity/identity.ts';
import type { Ports } from '#core/ports.ts';
import { checkJson, idProblem, MAX_ID_BYTES, MAX_QUERY_BYTES } from '#core/util/bounds.ts';
import { appendLogContext, invocationFields, withLogContext } from '#core/util/log.ts';
import { credentialOf, principalFor } from './credentials.ts';
import { type ErrorStyle, renderError } from './errors.ts';
import { log } from './log.ts';
import { compileTemplate, type CompiledTemplate } from './route-match.ts';

/**
 * The middy stack every surface function shares (DESIGN.md §3): request id, body parsing,
 * `.json` suffix, authentication, Idempotency-Key on POST, dispatch on the API Gateway route
 * key, and error rendering in the surface's format. A surface is a table of thin handlers:
 * `surface({ style: 'blazar', ... }, { 'GET /v1/leases': listLeases, ... })`.
 *
 * The surface authenticates its requests itself (no API Gateway authorizer: one invocation per
 * request, docs/api.md "The API edge"): a route not in `anonymous` resolves the request's token
 * (`credentials.ts`, cached in-process) and answers 401 in the surface's own format without one.
 * Every log line of the invocation carries its Lambda request id, trace id and API request id.
 */
export type HttpEvent = APIGatewayProxyEventV2;
export type HttpResult = APIGatewayProxyStructuredResultV2;

/** A surface function: the Lambda handler, and the route keys it serves. */
export type SurfaceHandler = ((event: HttpEvent, context: Context) => Promise<HttpResult>) & { routeKeys: readonly string[] };

export interface Request {
  deps: Ports;
  auth: Principal | undefined;
  method: string;
  rawPath: string;
  path: Record<string, string>;
  query: Record<string, string>;
  headers: Record<string, string>;
  /**
   * Parsed JSON body; undefined when the request had none. On a `rawBody` route, the body as
   * text, unparsed and whatever its Content-Type (undefined when there is none).
   */
  body: unknown;
  requestId: string;
  sourceIp: string;
}

export interface Reply {
  statusCode: number;
  /** Sent as JSON. */
  body?: unknown;
  /**
   * Sent as it is instead of `body`, with its own Content-Type: text as text, bytes base64
   * encoded for API Gateway (`isBase64Encoded`), which hands the client the bytes.
   */
  raw?: { body: string | Uint8Array; contentType: string };
  headers?: Record<string, string>;
  /**
   * The body carries a secret (a new token): the Idempotency-Key store keeps it sealed with the
   * deployment's secret box, never in plaintext.
   */
  secret?: boolean;
}

export type RouteHandler = (req: Request) => Promise<Reply>;

export interface SurfaceOptions {
  style: ErrorStyle;
  /** Blazar and Sahara answer every route with a `.json` suffix as well. */
  jsonSuffix: boolean;
  /** Runs before dispatch (API version headers, path project checks); may add response headers. */
  before?: (req: Request) => Record<string, string> | void;
  /** Route keys that answer without credentials (everything else is 401 without a token). */
  anonymous?: readonly string[];
  /**
   * Roles this surface serves (the agent API: `['agent']`). Without it, a surface serves admins,
   * members and readers (reads only), and never agent tokens.
   */
  roles?: readonly Role[];
  /**
   * Ironic's clients ignore a body without `Content-Type: application/json`, and log an error
   * for an empty one with it: every body (errors included) is typed JSON, empty answers are not.
   */
  alwaysJson?: boolean;
  /**
   * Commissaire routes take an optional trailing slash. API Gateway routes cannot end in `/`, so
   * such a request reaches the surface's catch-all and is dispatched here on the path without it.
   */
  trailingSlash?: boolean;
  /**
   * Route keys whose request body is not JSON (YAML documents, or a body the route checks itself):
   * `req.body` is the text, with no Content-Type check and no parsing.
   */
  rawBody?: readonly string[];
  /** `Basic user:password` with a user's password besides a token (Commissaire: basic-users.ts). */
  basicUsers?: (deps: () => Ports, headers: Record<string, string | undefined>) => Promise<Principal | undefined>;
}

export const ok = (body: unknown, headers?: Record<string, string>): Reply => ({ statusCode: 200, body, headers });
export const created = (body: unknown, headers?: Record<string, string>): Reply => ({ statusCode: 201, body, headers });
export const accepted = (body: unknown, headers?: Record<string, string>): Reply => ({ statusCode: 202, body, headers });
export const noContent = (): Reply => ({ statusCode: 204 });
/** 200 with a non-JSON body (a tarball, plain text). */
export const raw = (body: string | Uint8Array, contentType: string, headers?: Record<string, string>): Reply => ({
  statusCode: 200,
  raw: { body, contentType },
  headers,
});
/** 302 Found to `location`, no body. */
export const redirect = (location: string, headers?: Record<string, string>): Reply => ({ statusCode: 302, headers: { ...headers, Location: location } });

const MAX_BODY_BYTES = 1024 * 1024;

interface State {
  requestId: string;
  started: number;
  extraHeaders: Record<string, string>;
}

function header(event: HttpEvent, name: string): string | undefined {
  return event.headers?.[name] ?? undefined;
}

function parseBody(event: HttpEvent, asText: boolean): unknown {
  if (event.body === undefined || event.body === null || event.body === '') return undefined;
  const raw = event.isBase64Encoded ? Buffer.from(event.body, 'base64').toString('utf8') : event.body;
  if (Buffer.byteLength(raw) > MAX_BODY_BYTES) throw new PayloadTooLargeError('Request body is larger than 1 MiB');
  if (asText) return raw;
  if (raw.trim() === '') return undefined;
  const ctype = header(event, 'content-type');
  if (ctype && !/\bjson\b/i.test(ctype)) {
    throw new ValidationError(`Content-Type must be application/json, not ${ctype}`, 'MALFORMED_REQUEST_BODY');
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new ValidationError('Malformed JSON in request body', 'MALFORMED_REQUEST_BODY');
  }
  // Depth and prototype keys, for every route at once: nothing deeper or `__proto__`-keyed ever
  // reaches a use-case, whatever its schema forgets.
  checkJson(parsed, 'body', 'MALFORMED_REQUEST_BODY');
  return parsed;
}

/**
 * Path parameters and query values bounded for every route before any handler runs: no
 * identifier longer than a DynamoDB key can hold, no control characters. A catch-all's `proxy`
 * is a path, not an identifier: it only ever reaches a 404 or 405.
 */
function checkParams(params: Record<string, string>, query: Record<string, string | undefined>): void {
  for (const [name, value] of Object.entries(params)) {
    if (name === 'proxy' || name.endsWith('+')) continue;
    const p = idProblem(value, MAX_ID_BYTES);
    if (p) throw new ValidationError(`Path parameter ${name} ${p}`);
  }
  for (const [name, value] of Object.entries(query)) {
    if (value === undefined) continue;
    const p = idProblem(name, MAX_ID_BYTES) ?? idProblem(value, MAX_QUERY_BYTES);
    if (p) throw new ValidationError(`Query parameter ${name.slice(0, 64)} ${p}`);
  }
}

function checkAccept(event: HttpEvent): void {
  const accept = header(event, 'accept');
  if (accept && !/json|\*\/\*|application\/\*/i.test(accept)) {
    throw new NotAcceptableError(`Only application/json is served; Accept was ${accept}`);
  }
}

/** A coarse role gate shared by every surface; finer rules live in the use-cases. */
function checkRole(auth: Principal | undefined, method: string, roles: readonly Role[] | undefined): void {
  if (!auth) return; // routes decide whether anonymous access is allowed
  if (roles) {
    if (!auth.roles.some((r) => roles.includes(r))) throw new ForbiddenError(`This API is for ${roles.join(', ')} tokens only`);
    return;
  }
  if (auth.roles.length === 1 && auth.roles[0] === 'agent') {
    throw new ForbiddenError('Agent tokens may only use the agent API');
  }
  if (method !== 'GET' && method !== 'HEAD' && !auth.roles.some((r) => r === 'admin' || r === 'member')) {
    throw new ForbiddenError('This token may only read (role reader)');
  }
}

/**
 * `deps` is called lazily, on the first handler that uses a port, so that a surface which
 * needs none (health) does not load the AWS SDK at all.
 */
export function surface(
  options: SurfaceOptions,
  routes: Record<string, RouteHandler>,
  deps: () => Ports = () => {
    throw new Error('this surface has no ports');
  },
): SurfaceHandler {
  const compiled: { key: string; method: string; tpl: CompiledTemplate }[] = Object.keys(routes).map((key) => {
    const [method, path] = key.split(' ') as [string, string];
    return { key, method, tpl: compileTemplate(path) };
  });

  const withoutSlash = (rawPath: string) => (options.trailingSlash && rawPath.length > 1 && rawPath.endsWith('/') ? rawPath.slice(0, -1) : undefined);

  /** A request with a trailing slash, matched as if it had none (most specific template first). */
  function slashRoute(method: string, rawPath: string): { key: string; params: Record<string, string> } | undefined {
    const path = withoutSlash(rawPath);
    if (path === undefined) return undefined;
    const hits = compiled
      .filter((r) => r.method === method)
      .map((r) => ({ key: r.key, specificity: r.tpl.specificity, params: r.tpl.match(path) }))
      .filter((h) => h.params !== undefined)
      .sort((a, b) => b.specificity - a.specificity);
    return hits[0] && { key: hits[0].key, params: hits[0].params! };
  }

  /** For catch-all routes: 405 when the path exists with other methods, else 404. */
  function fallback(method: string, rawPath: string): never {
    const path = withoutSlash(rawPath) ?? (options.jsonSuffix ? rawPath.replace(/\.json$/, '') : rawPath);
    const allowed = compiled.filter((r) => r.tpl.match(path) !== undefined).map((r) => r.method);
    if (allowed.length > 0) throw new MethodNotAllowedError(`Method ${method} is not allowed on ${rawPath}`, allowed);
    throw new NotFoundError(`The resource could not be found: ${rawPath}`);
  }

  const base = async (event: HttpEvent, context: Context & { state?: State }): Promise<HttpResult> => {
    const state = context.state!;
    const method = event.requestContext.http.method.toUpperCase();
    let key = event.routeKey.replace(/\.json$/, '');
    let params = (event.pathParameters ?? {}) as Record<string, string>;
    if (!routes[key]) {
      const viaSlash = slashRoute(method, event.rawPath);
      if (viaSlash) ({ key, params } = viaSlash);
    }
    // After the slash dispatch: an anonymous route reached with a trailing slash stays anonymous.
    const anonymous = options.anonymous?.includes(key) === true;
    // Anonymous routes authenticate by other means (a node key), whatever token came along.
    const token = anonymous ? undefined : credentialOf(event.headers ?? {});
    const auth = token === undefined ? undefined : ((await principalFor(deps, token)) ?? (await options.basicUsers?.(deps, event.headers ?? {})));
    if (!auth && !anonymous) {
      throw new UnauthorizedError('Authentication required: send a valid X-Auth-Token header');
    }
    const handler = routes[key];
    if (!handler) fallback(method, event.rawPath);

    const path: Record<string, string> = { ...params };
    if (options.jsonSuffix && key.endsWith('}')) {
      const last = key.slice(key.lastIndexOf('{') + 1, -1).replace(/\+$/, '');
      if (path[last]?.endsWith('.json')) path[last] = path[last].slice(0, -5);
    }
    checkAccept(event);
    if (!anonymous) checkRole(auth, method, options.roles);
    checkParams(path, event.queryStringParameters ?? {});
    const req: Request = {
      get deps() {
        return deps();
      },
      auth,
      method,
      rawPath: event.rawPath,
      path,
      query: { ...(event.queryStringParameters ?? {}) } as Record<string, string>,
      headers: { ...(event.headers ?? {}) } as Record<string, string>,
      body: parseBody(event, options.rawBody?.includes(key) === true),
      requestId: state.requestId,
      sourceIp: event.requestContext.http.sourceIp,
    };
    Object.assign(state.extraHeaders, options.before?.(req) ?? {});

    const reply = await withIdempotency(req, event, () => handler!(req));
    return compress(toResult(reply, state, options.alwaysJson === true), req.headers['accept-encoding']);
  };

  const wrapped = middy<HttpEvent, HttpResult, Error, Context>(base)
    .use({
      before: (request) => {
        const upstream = request.event.requestContext?.requestId;
        const requestId = `req-${randomUUID()}`;
        appendLogContext({ request_id: requestId, ...(upstream ? { apigw_request_id: upstream } : {}) });
        (request.context as Context & { state?: State }).state = {
          requestId,
          started: Date.now(),
          extraHeaders: upstream ? { 'X-Amzn-RequestId': upstream } : {},
        };
      },
      after: (request) => {
        const state = (request.context as Context & { state?: State }).state!;
        accessLog(request.event, request.response?.statusCode ?? 0, state);
      },
      onError: (request) => {
        const state = (request.context as Context & { state?: State }).state ?? {
          requestId: `req-${randomUUID()}`,
          started: Date.now(),
          extraHeaders: {},
        };
        const err = request.error;
        if (!(err instanceof DomainError)) {
          log.error('unhandled error', {
            request_id: state.requestId,
            error: err instanceof Error ? err.name : typeof err,
            message: err instanceof Error ? err.message : String(err),
            stack: err instanceof Error ? err.stack : undefined,
          });
        }
        const r = renderError(options.style, err);
        request.response = {
          statusCode: r.statusCode,
          headers: { ...state.extraHeaders, ...r.headers, ...requestIdHeaders(state.requestId) },
          body: r.body,
        };
        accessLog(request.event, r.statusCode, state);
      },
    });
  // Each invocation in its own log scope (the local stack runs many at once in one process).
  const handler = (event: HttpEvent, context: Context) => withLogContext(invocationFields(context), () => wrapped(event, context));
  // The route keys this surface serves, so tests can check them against infra/routes.ts.
  return Object.assign(handler, { routeKeys: Object.keys(routes) });
}

async function storedBody(deps: Ports, reply: Reply): Promise<{ body: string; sealed?: true }> {
  if (reply.body === undefined) return { body: '' };
  const json = JSON.stringify(reply.body);
  return reply.secret ? { body: await deps.secrets.seal('idempotent-reply', json), sealed: true } : { body: json };
}

function requestIdHeaders(id: string): Record<string, string> {
  return { 'x-openstack-request-id': id, 'X-Request-Id': id };
}

function toResult(reply: Reply, state: State, alwaysJson: boolean): HttpResult {
  const headers: Record<string, string> = { ...state.extraHeaders, ...requestIdHeaders(state.requestId), ...(reply.headers ?? {}) };
  if (reply.raw) {
    headers['Content-Type'] = reply.raw.contentType;
    const { body } = reply.raw;
    if (typeof body === 'string') return { statusCode: reply.statusCode, headers, body };
    return { statusCode: reply.statusCode, headers, body: Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('base64'), isBase64Encoded: true };
  }
  if (reply.body === undefined || reply.statusCode === 204) return { statusCode: reply.statusCode, headers, body: '' };
  if (alwaysJson) headers['Content-Type'] = 'application/json';
  headers['Content-Type'] ??= 'application/json';
  return { statusCode: reply.statusCode, headers, body: JSON.stringify(reply.body) };
}

/** JSON and text answers from this size on go gzipped to a client that accepts it. */
export const GZIP_MIN_BYTES = 16 * 1024;

/**
 * Large answers (an admin's whole Blazar lease list, a detailed node list) compressed for the
 * clients that say they take gzip — python-requests, hence every OpenStack client, does. Lambda
 * refuses a response over 6 MB, which a few thousand leases' JSON exceeds; gzip gives lists about
 * ten times the room and costs less transfer. Bodies already encoded (tarballs) stay as they are.
 */
function compress(result: HttpResult, acceptEncoding: string | undefined): HttpResult {
  const body = result.body;
  if (result.isBase64Encoded || typeof body !== 'string' || Buffer.byteLength(body) < GZIP_MIN_BYTES || !acceptsGzip(acceptEncoding)) return result;
  // Keep what the answer already varies on (Blazar's OpenStack-API-Version).
  const headers: Record<string, string> = {};
  let vary = 'Accept-Encoding';
  for (const [k, v] of Object.entries(result.headers ?? {})) {
    if (k.toLowerCase() === 'vary') vary = `${v}, ${vary}`;
    else headers[k] = String(v);
  }
  return { ...result, headers: { ...headers, 'Content-Encoding': 'gzip', Vary: vary }, body: gzipSync(body).toString('base64'), isBase64Encoded: true };
}

/** `gzip` listed without `q=0` (`Accept-Encoding: gzip, deflate`, `gzip;q=0.8`, `*`). */
function acceptsGzip(header: string | undefined): boolean {
  if (!header) return false;
  return header.split(',').some((part) => {
    const [coding = '', ...params] = part.trim().toLowerCase().split(';');
    const q = params.map((p) => p.trim()).find((p) => p.startsWith('q='));
    return (coding.trim() === 'gzip' || coding.trim() === '*') && (q === undefined || Number(q.slice(2)) > 0);
  });
}

function accessLog(event: HttpEvent, status: number, state: State): void {
  log.info('request', {
    request_id: state.requestId,
    method: event.requestContext?.http?.method,
    path: event.rawPath,
    status,
    ms: Date.now() - state.started,
  });
}

/**
 * `Idempotency-Key` on POST (DESIGN.md §6 invariant 5): the first request with a key claims it;
 * a retry with the same key and body replays the stored response; the same key with another
 * body is 422; a retry while the first is still running is 409. Failed requests release the
 * key so that a corrected retry can run.
 *
 * Keys belong to the calling token, not to its user or project: a replay is served only to the
 * token that made the request, which the surface has just resolved again (a revoked or expired
 * token never reaches this point), so a replay grants nothing the caller could not do.
 * A response that carries a secret (`Reply.secret`) is stored sealed.
 */
async function withIdempotency(req: Request, event: HttpEvent, run: () => Promise<Reply>): Promise<Reply> {
  const key = req.headers['idempotency-key'];
  if (req.method !== 'POST' || !key || !req.auth) return run();
  const problem = idProblem(key, MAX_ID_BYTES);
  if (problem) throw new ValidationError(`Idempotency-Key ${problem}`);
  const scope = `TOKEN#${req.auth.token_id}`;
  const fingerprint = createHash('sha256')
    .update(`${event.routeKey}\n${event.rawPath}\n${JSON.stringify(req.body ?? null)}`)
    .digest('hex');
  const store = req.deps.idempotency;
  const existing = await store.begin(scope, key, fingerprint);
  if (existing) {
    if (existing.fingerprint !== fingerprint) {
      throw new IdempotencyMismatchError('This Idempotency-Key was already used with a different request');
    }
    if (existing.state !== 'DONE') {
      throw new ConflictError('A request with this Idempotency-Key is still in progress', 'IDEMPOTENCY_KEY_IN_USE');
    }
    return {
      statusCode: existing.status ?? 200,
      headers: { ...(existing.headers ?? {}), 'Idempotent-Replayed': 'true' },
      body: existing.body ? JSON.parse(existing.sealed ? await req.deps.secrets.open('idempotent-reply', existing.body) : existing.body) : undefined,
    };
  }
  try {
    const reply = await run();
    await store.finish(scope, key, {
      fingerprint,
      state: 'DONE',
      status: reply.statusCode,
      headers: reply.headers ?? {},
      ...(await storedBody(req.deps, reply)),
    });
    return reply;
  } catch (err) {
    await store.abandon(scope, key).catch(() => undefined);
    throw err;
  }
}
