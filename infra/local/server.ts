import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Context } from 'aws-lambda';
import { compileTemplate } from '#http/route-match.ts';
import type { HttpEvent } from '#http/surface.ts';
import { type FunctionName, type RouteSpec, routes } from '../routes.ts';
import { type FunctionLoader, type LambdaHandler, loadFunction } from './functions.ts';

/**
 * The local API Gateway: serves `infra/routes.ts` through the same function handlers the CDK
 * stack deploys, building the same HTTP API v2 events. As on AWS there is no authorizer: each
 * surface authenticates its requests itself (one invocation per request). Route selection follows
 * API Gateway (most specific template wins, `ANY` after a concrete method); an unmatched
 * path gets API Gateway's own `{"message":"Not Found"}`.
 */
const compiled = routes.map((r, order) => ({ ...r, order, tpl: compileTemplate(r.path) }));
type CompiledRoute = (typeof compiled)[number];
/** API Gateway's payload limit for Lambda integrations. */
const MAX_BODY = 6 * 1024 * 1024;

/** The first segment of a path (`v1` of `/v1/nodes/x`), where routes are told apart first. */
const firstSegment = (path: string) => {
  const end = path.indexOf('/', 1);
  return end < 0 ? path.slice(1) : path.slice(1, end);
};

/**
 * The routes a request can match, by method and first path segment, so that a request tries a
 * handful of templates instead of all of them (every request did). A template starting with a
 * parameter is a candidate for any first segment (`*`); `ANY` routes join every method's lists.
 * Only the candidates change: the choice among them is matchRoute's, as before.
 */
const candidates = new Map<string, CompiledRoute[]>();
for (const r of compiled) {
  const seg = r.path.startsWith('/{') ? '*' : firstSegment(r.path);
  const key = `${r.method} ${seg}`;
  candidates.set(key, [...(candidates.get(key) ?? []), r]);
}

export function matchRoute(method: string, path: string): { route: RouteSpec; params: Record<string, string> } | undefined {
  let best: { route: CompiledRoute; params: Record<string, string>; score: number } | undefined;
  const seg = firstSegment(path);
  for (const key of [`${method} ${seg}`, `${method} *`, `ANY ${seg}`, `ANY *`]) {
    for (const r of candidates.get(key) ?? []) {
      const params = r.tpl.match(path);
      if (!params) continue;
      const score = r.tpl.specificity * 2 + (r.method === 'ANY' ? 0 : 1);
      // Equal scores: the route listed first wins, as when every route was tried in order.
      if (!best || score > best.score || (score === best.score && r.order < best.route.order)) best = { route: r, params, score };
    }
  }
  return best && { route: best.route, params: best.params };
}

function lambdaContext(name: string): Context {
  const started = Date.now();
  return {
    callbackWaitsForEmptyEventLoop: false,
    functionName: `slipway-${name}`,
    functionVersion: '$LATEST',
    invokedFunctionArn: `arn:aws:lambda:local:000000000000:function:slipway-${name}`,
    memoryLimitInMB: '1024',
    awsRequestId: randomUUID(),
    logGroupName: `/aws/lambda/slipway-${name}`,
    logStreamName: 'local',
    getRemainingTimeInMillis: () => Math.max(0, 29_000 - (Date.now() - started)),
    done: () => undefined,
    fail: () => undefined,
    succeed: () => undefined,
  };
}

async function readBody(req: IncomingMessage): Promise<Buffer | 'too-large'> {
  // A request with neither header has no body (RFC 9112 §6.3): most GETs, read without waiting.
  if (req.headers['content-length'] === undefined && req.headers['transfer-encoding'] === undefined) return EMPTY;
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > MAX_BODY) return 'too-large';
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks);
}

const EMPTY = Buffer.alloc(0);

function isTextual(contentType: string | undefined): boolean {
  return !contentType || /json|text|xml|x-www-form-urlencoded|yaml/i.test(contentType);
}

export async function handleRequest(
  req: IncomingMessage,
  res: ServerResponse,
  fns: Map<FunctionName, Promise<LambdaHandler>>,
  load: FunctionLoader = loadFunction,
): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://local');
  const method = (req.method ?? 'GET').toUpperCase();
  const matched = matchRoute(method, url.pathname);
  const send = (status: number, body: string, headers: Record<string, string> = {}) => {
    res.writeHead(status, { 'Content-Type': 'application/json', ...headers });
    res.end(body);
  };
  if (!matched) return send(404, JSON.stringify({ message: 'Not Found' }));
  const raw = await readBody(req);
  if (raw === 'too-large') return send(413, JSON.stringify({ message: 'Request Entity Too Large' }));

  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(req.headers)) {
    if (v !== undefined) headers[k.toLowerCase()] = Array.isArray(v) ? v.join(',') : v;
  }
  const query: Record<string, string> = {};
  for (const [k, v] of url.searchParams) query[k] = k in query ? `${query[k]},${v}` : v;
  const textual = isTextual(headers['content-type']);
  const requestId = randomUUID();
  const sourceIp = (req.socket.remoteAddress ?? '127.0.0.1').replace(/^::ffff:/, '');
  const routeKey = matched.route.method === 'ANY' ? `ANY ${matched.route.path}` : `${matched.route.method} ${matched.route.path}`;

  const event: HttpEvent = {
    version: '2.0',
    routeKey,
    rawPath: url.pathname,
    rawQueryString: url.search.slice(1),
    headers,
    queryStringParameters: Object.keys(query).length ? query : undefined,
    pathParameters: Object.keys(matched.params).length ? matched.params : undefined,
    body: raw.length === 0 ? undefined : textual ? raw.toString('utf8') : raw.toString('base64'),
    isBase64Encoded: raw.length > 0 && !textual,
    requestContext: {
      accountId: '000000000000',
      apiId: 'local',
      domainName: headers.host ?? 'localhost',
      domainPrefix: 'local',
      http: { method, path: url.pathname, protocol: 'HTTP/1.1', sourceIp, userAgent: headers['user-agent'] ?? '' },
      requestId,
      routeKey,
      stage: '$default',
      time: new Date().toISOString(),
      timeEpoch: Date.now(),
    },
  } as HttpEvent;

  let fn = fns.get(matched.route.fn);
  if (!fn) {
    fn = load(matched.route.fn);
    fns.set(matched.route.fn, fn);
  }
  const result = await (await fn)(event, lambdaContext(matched.route.fn));
  const outHeaders: Record<string, string> = {};
  let typed = false;
  for (const [k, v] of Object.entries(result.headers ?? {})) {
    outHeaders[k] = String(v);
    typed ||= k.toLowerCase() === 'content-type';
  }
  // Text goes out as it is (no copy into a Buffer first); base64 is decoded as API Gateway does.
  const body = result.body === undefined ? '' : result.isBase64Encoded ? Buffer.from(result.body, 'base64') : result.body;
  if (!typed && body.length > 0) outHeaders['Content-Type'] = 'application/json';
  res.writeHead(result.statusCode ?? 200, outHeaders);
  res.end(body);
}

export interface LocalHttpServer {
  server: Server;
  url: string;
  /**
   * Resolves when the requests in flight have finished (at most `ms`): on stop, the stack waits
   * for them before it stops DynamoDB Local, so that a request still running (an agent's
   * long-poll) does not fail against a database that is gone.
   */
  drained(ms: number): Promise<void>;
}

/** `load` gives each surface's handler: the sources by default, the bundles with `npm start -- --bundled`. */
export async function startHttpServer(port: number, host = '127.0.0.1', load: FunctionLoader = loadFunction): Promise<LocalHttpServer> {
  const fns = new Map<FunctionName, Promise<LambdaHandler>>();
  const inFlight = new Set<Promise<void>>();
  const server = createServer((req, res) => {
    const handled = handleRequest(req, res, fns, load).catch((err) => {
      // The handlers render their own errors; this is the local "API Gateway" failing.
      process.stderr.write(`${JSON.stringify({ level: 'error', msg: 'local gateway error', error: String(err) })}\n`);
      if (!res.headersSent) res.writeHead(500, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ message: 'Internal Server Error' }));
    });
    inFlight.add(handled);
    void handled.finally(() => inFlight.delete(handled));
  });
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolveListen, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolveListen());
  });
  const addr = server.address() as { port: number };
  const drained = async (ms: number) => {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((r) => (timer = setTimeout(r, ms)));
    await Promise.race([Promise.allSettled([...inFlight]).then(() => undefined), timeout]);
    clearTimeout(timer);
  };
  return { server, url: `http://${host}:${addr.port}`, drained };
}

