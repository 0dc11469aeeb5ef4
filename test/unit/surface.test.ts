import type { Context } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import { UnauthorizedError } from '../../layers/core/errors.ts';
import { gunzipSync } from 'node:zlib';
import { GZIP_MIN_BYTES, type HttpEvent, ok, raw, redirect, surface } from '../../layers/http/surface.ts';
import { cachedToken } from '../support/principal.ts';

/**
 * The surface machinery beyond JSON in, JSON out: raw (text and binary) replies, redirects,
 * raw request bodies, and anonymous routes reached through a trailing slash. No ports are used.
 */
const AGENT = JSON.stringify({ token_id: 't', project_id: 'site1', user_id: 'agent', roles: ['agent'] });
const ADMIN = JSON.stringify({ token_id: 't', project_id: 'admin', user_id: 'admin', roles: ['admin'] });

function event(
  method: string,
  routeKey: string,
  rawPath: string,
  opts: { body?: string; base64?: boolean; headers?: Record<string, string>; principal?: string; params?: Record<string, string>; query?: Record<string, string> } = {},
): HttpEvent {
  return {
    version: '2.0',
    routeKey,
    rawPath,
    rawQueryString: '',
    headers: { accept: '*/*', ...(opts.principal === undefined ? {} : { 'x-auth-token': cachedToken(opts.principal) }), ...(opts.headers ?? {}) },
    pathParameters: opts.params,
    queryStringParameters: opts.query,
    body: opts.body,
    isBase64Encoded: opts.base64 === true,
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

const BYTES = Uint8Array.from([0x1f, 0x8b, 0x08, 0x00, 0xff, 0x00, 0x80, 0x7f]);

const handler = surface(
  { style: 'falcon', jsonSuffix: false, trailingSlash: true, anonymous: ['GET /files/{name}', 'POST /notes/{id}', 'GET /go'], rawBody: ['POST /notes/{id}', 'POST /yaml'] },
  {
    'GET /files/{name}': async ({ path }) =>
      path.name === 'text' ? raw('plain words\n', 'text/plain; charset=utf-8') : raw(BYTES, 'application/gzip', { 'Cache-Control': 'no-store' }),
    'POST /notes/{id}': async ({ body, path }) => ok({ id: path.id, body }),
    'POST /yaml': async ({ body }) => ok({ body }),
    'POST /json': async ({ body }) => ok({ body }),
    'GET /big': async ({ query }) => ok({ items: Array.from({ length: Number(query.n ?? 1000) }, (_, i) => ({ id: i, name: `item-${i}` })) }, { Vary: 'OpenStack-API-Version' }),
    'GET /go': async () => redirect('https://bucket.example/obj?X-Amz-Expires=300', { 'Cache-Control': 'no-store' }),
    'GET /locked': async () => {
      const err = new UnauthorizedError('No X-Bootaction-Key');
      err.headers = { 'WWW-Authenticate': 'Bootaction-Key' };
      throw err;
    },
  },
);

describe('surface: raw replies', () => {
  it('sends bytes base64-encoded with isBase64Encoded and their own Content-Type', async () => {
    const r = await handler(event('GET', 'GET /files/{name}', '/files/tgz', { params: { name: 'tgz' } }), context);
    expect(r.statusCode).toBe(200);
    expect(r.isBase64Encoded).toBe(true);
    expect(r.headers).toMatchObject({ 'Content-Type': 'application/gzip', 'Cache-Control': 'no-store' });
    expect(Buffer.from(r.body!, 'base64')).toEqual(Buffer.from(BYTES));
  });

  it('sends text as it is', async () => {
    const r = await handler(event('GET', 'GET /files/{name}', '/files/text', { params: { name: 'text' } }), context);
    expect(r.isBase64Encoded).toBeFalsy();
    expect(r.headers!['Content-Type']).toBe('text/plain; charset=utf-8');
    expect(r.body).toBe('plain words\n');
  });

  it('encodes exactly the bytes of a view into a larger buffer', async () => {
    const big = Buffer.concat([Buffer.from('xxxx'), Buffer.from(BYTES), Buffer.from('yyyy')]);
    const view = big.subarray(4, 4 + BYTES.length);
    const h = surface({ style: 'falcon', jsonSuffix: false, anonymous: ['GET /v'] }, { 'GET /v': async () => raw(view, 'application/octet-stream') });
    const r = await h(event('GET', 'GET /v', '/v'), context);
    expect(Buffer.from(r.body!, 'base64')).toEqual(Buffer.from(BYTES));
  });
});

describe('surface: redirects', () => {
  it('answers 302 with Location and no body or Content-Type', async () => {
    const r = await handler(event('GET', 'GET /go', '/go'), context);
    expect(r.statusCode).toBe(302);
    expect(r.headers).toMatchObject({ Location: 'https://bucket.example/obj?X-Amz-Expires=300', 'Cache-Control': 'no-store' });
    expect(r.headers!['Content-Type']).toBeUndefined();
    expect(r.body).toBe('');
  });
});

describe('surface: raw request bodies', () => {
  const yaml = '---\nschema: drydock/Region/v1\nmetadata:\n  name: sitename\n';

  it('hands a rawBody route the text, whatever its Content-Type, decoded from base64 when API Gateway encoded it', async () => {
    const plain = await handler(event('POST', 'POST /yaml', '/yaml', { body: yaml, headers: { 'content-type': 'application/x-yaml' }, principal: ADMIN }), context);
    expect(plain.statusCode).toBe(200);
    expect(JSON.parse(plain.body!)).toEqual({ body: yaml });
    const encoded = await handler(
      event('POST', 'POST /yaml', '/yaml', { body: Buffer.from(yaml).toString('base64'), base64: true, headers: { 'content-type': 'application/octet-stream' }, principal: ADMIN }),
      context,
    );
    expect(JSON.parse(encoded.body!)).toEqual({ body: yaml });
  });

  it('still parses and checks JSON on the other routes', async () => {
    const r = await handler(event('POST', 'POST /json', '/json', { body: yaml, headers: { 'content-type': 'application/x-yaml' }, principal: ADMIN }), context);
    expect(r.statusCode).toBe(400);
    expect(JSON.parse(r.body!)).toEqual({ title: '400 Bad Request', description: expect.stringContaining('Content-Type must be application/json') });
    const j = await handler(event('POST', 'POST /json', '/json', { body: '{"a":1}', headers: { 'content-type': 'application/json' }, principal: ADMIN }), context);
    expect(JSON.parse(j.body!)).toEqual({ body: { a: 1 } });
  });

  it('gives undefined for a request without a body', async () => {
    const r = await handler(event('POST', 'POST /notes/{id}', '/notes/1', { params: { id: '1' } }), context);
    expect(JSON.parse(r.body!)).toEqual({ id: '1' });
  });
});

describe('surface: anonymous routes', () => {
  it('stay anonymous when reached through the catch-all with a trailing slash', async () => {
    const r = await handler(event('POST', 'ANY /notes/{proxy+}', '/notes/7/', { body: '{"x":1}', headers: { 'content-type': 'application/json' } }), context);
    expect(r.statusCode).toBe(200);
    expect(JSON.parse(r.body!)).toEqual({ id: '7', body: '{"x":1}' });
  });

  it('ignore whatever token came along (an agent token is not refused by the role gate)', async () => {
    const r = await handler(event('GET', 'GET /go', '/go', { principal: AGENT }), context);
    expect(r.statusCode).toBe(302);
  });

  it('leave the other routes behind the token: 401 in the surface format', async () => {
    const r = await handler(event('POST', 'ANY /yaml/{proxy+}', '/yaml/'), context);
    expect(r.statusCode).toBe(401);
    expect(JSON.parse(r.body!)).toEqual({ title: '401 Unauthorized', description: expect.any(String) });
  });
});

describe('surface: falcon errors', () => {
  it("render a domain error's headers (WWW-Authenticate) with the falcon body", async () => {
    const r = await handler(event('GET', 'GET /locked', '/locked', { principal: ADMIN }), context);
    expect(r.statusCode).toBe(401);
    expect(r.headers).toMatchObject({ 'WWW-Authenticate': 'Bootaction-Key', 'Content-Type': 'application/json' });
    expect(JSON.parse(r.body!)).toEqual({ title: '401 Unauthorized', description: 'No X-Bootaction-Key' });
  });

  it('answer an unknown path 404 and a wrong method 405 with Allow, trailing slash or not', async () => {
    const nf = await handler(event('GET', 'ANY /x/{proxy+}', '/x/y', { principal: ADMIN }), context);
    expect(nf.statusCode).toBe(404);
    expect(JSON.parse(nf.body!).title).toBe('404 Not Found');
    const na = await handler(event('DELETE', 'ANY /go/{proxy+}', '/go/', { principal: ADMIN }), context);
    expect(na.statusCode).toBe(405);
    expect(na.headers!.Allow).toBe('GET');
  });
});

describe('surface: compression', () => {
  const big = (headers: Record<string, string>, n?: number) => handler(event('GET', 'GET /big', '/big', { principal: ADMIN, headers, ...(n ? { query: { n: String(n) } } : {}) }), context);
  const expected = (n = 1000) => ({ items: Array.from({ length: n }, (_, i) => ({ id: i, name: `item-${i}` })) });

  it('gzips a large JSON answer for a client that accepts gzip (python-requests sends "gzip, deflate")', async () => {
    const r = await big({ 'accept-encoding': 'gzip, deflate' });
    expect(r.statusCode).toBe(200);
    expect(r.isBase64Encoded).toBe(true);
    expect(r.headers).toMatchObject({ 'Content-Encoding': 'gzip', Vary: 'OpenStack-API-Version, Accept-Encoding', 'Content-Type': 'application/json' });
    const bytes = Buffer.from(r.body!, 'base64');
    expect(JSON.parse(gunzipSync(bytes).toString('utf8'))).toEqual(expected());
    expect(bytes.length).toBeLessThan(JSON.stringify(expected()).length / 4);
  });

  it('sends it plain without Accept-Encoding, with gzip;q=0, or when it is small', async () => {
    for (const headers of [{}, { 'accept-encoding': 'gzip;q=0, deflate' }, { 'accept-encoding': 'br' }] as Record<string, string>[]) {
      const r = await big(headers);
      expect(r.isBase64Encoded ?? false).toBe(false);
      expect(r.headers!['Content-Encoding']).toBeUndefined();
      expect(JSON.parse(r.body!)).toEqual(expected());
    }
    const small = await big({ 'accept-encoding': 'gzip' }, 10);
    expect(JSON.stringify(expected(10)).length).toBeLessThan(GZIP_MIN_BYTES);
    expect(small.headers!['Content-Encoding']).toBeUndefined();
    expect(JSON.parse(small.body!)).toEqual(expected(10));
    expect((await big({ 'accept-encoding': '*' })).headers!['Content-Encoding']).toBe('gzip');
  });

  it('leaves encoded bytes (tarballs) as they are', async () => {
    const r = await handler(event('GET', 'GET /files/{name}', '/files/t.tgz', { params: { name: 't.tgz' }, headers: { 'accept-encoding': 'gzip' } }), context);
    expect(r.headers!['Content-Encoding']).toBeUndefined();
    expect(Buffer.from(r.body!, 'base64')).toEqual(Buffer.from(BYTES));
  });
});
