import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';

/**
 * AWS Signature Version 4 checks for the local object store. s3rver 3.7.1 serves anonymous
 * requests (any bucket listing or object GET without credentials) and, for SigV4, checks only the
 * access-key id and a presigned URL's expiry, never the signature ("Signature version 4
 * calculation is unimplemeneted" in its source). The local stack puts `requireSigV4` in front of
 * s3rver's own middleware, so the object store answers only requests signed with a key it knows:
 * an Authorization header or a presigned URL (X-Amz-Signature), the signature recomputed and
 * compared, the date checked (15 minutes of skew for headers, X-Amz-Expires for URLs).
 *
 * Not checked: that the body matches the x-amz-content-sha256 the client signed (the store reads
 * the body itself; on loopback nobody but this machine can alter a request in flight).
 */

/** access key id → secret access key */
export type S3Credentials = Readonly<Record<string, string>>;

/**
 * The key id the project's S3 client uses against s3rver (its built-in account, which it checks
 * by id only). The secret is the stack's own (`<data dir>/s3-secret`, random, 0600), so only
 * holders of the data directory, and the presigned URLs the API hands out, can sign.
 */
export const LOCAL_S3_KEY_ID = 'S3RVER';

export interface SigV4Request {
  method: string;
  /** The request target as received: path and query, still percent-encoded. */
  url: string;
  headers: IncomingHttpHeaders;
}

export type SigV4Result = { ok: true; accessKeyId: string } | { ok: false; status: number; code: string; message: string };

const MAX_SKEW_MS = 15 * 60 * 1000;
const MAX_PRESIGN_SECONDS = 7 * 24 * 3600;

const deny = (code: string, message: string, status = 403): SigV4Result => ({ ok: false, status, code, message });

/** RFC 3986 encoding as SigV4 wants it: everything but A-Z a-z 0-9 - _ . ~ percent-encoded. */
function encodeRfc3986(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

function decode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** The path as S3 canonicalizes it: each segment decoded once and encoded once (`/` kept). */
function canonicalPath(rawPath: string): string {
  return (rawPath || '/').split('/').map((seg) => encodeRfc3986(decode(seg))).join('/');
}

function parseQuery(rawQuery: string): [string, string][] {
  if (!rawQuery) return [];
  return rawQuery
    .split('&')
    .filter((p) => p !== '')
    .map((p) => {
      const i = p.indexOf('=');
      return i < 0 ? [decode(p), ''] : [decode(p.slice(0, i)), decode(p.slice(i + 1))];
    });
}

function canonicalQuery(params: [string, string][]): string {
  return params
    .map(([k, v]) => [encodeRfc3986(k), encodeRfc3986(v)] as const)
    .sort(([ka, va], [kb, vb]) => (ka < kb ? -1 : ka > kb ? 1 : va < vb ? -1 : va > vb ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join('&');
}

function headerValue(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name];
  if (v === undefined) return undefined;
  return (Array.isArray(v) ? v.join(',') : v).trim().replace(/\s+/g, ' ');
}

/** YYYYMMDDTHHMMSSZ → epoch ms, or NaN. */
function parseAmzDate(s: string | undefined): number {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(s ?? '');
  if (!m) return Number.NaN;
  return Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6]));
}

const hmac = (key: Buffer | string, data: string) => createHmac('sha256', key).update(data, 'utf8').digest();
const sha256Hex = (data: string) => createHash('sha256').update(data, 'utf8').digest('hex');

interface Parsed {
  accessKeyId: string;
  scopeDate: string;
  region: string;
  service: string;
  signedHeaders: string[];
  signature: string;
  amzDate: string;
  payloadHash: string;
}

function parseCredential(credential: string): { accessKeyId: string; scopeDate: string; region: string; service: string } | undefined {
  const parts = credential.split('/');
  if (parts.length !== 5 || parts[4] !== 'aws4_request' || !/^\d{8}$/.test(parts[1]!)) return undefined;
  return { accessKeyId: parts[0]!, scopeDate: parts[1]!, region: parts[2]!, service: parts[3]! };
}

/**
 * Verifies a request signed with AWS SigV4 (header or presigned URL) against `credentials`.
 * Anything else (no signature, SigV2, a malformed or wrong signature, an unknown key, a stale
 * date, an expired URL) is refused.
 */
export function verifySigV4(req: SigV4Request, credentials: S3Credentials, now: number = Date.now()): SigV4Result {
  const q = req.url.indexOf('?');
  const rawPath = q < 0 ? req.url : req.url.slice(0, q);
  const params = parseQuery(q < 0 ? '' : req.url.slice(q + 1));
  const param = (name: string) => params.find(([k]) => k === name)?.[1];
  const authorization = headerValue(req.headers, 'authorization');
  const presigned = params.some(([k]) => k === 'X-Amz-Signature' || k === 'X-Amz-Algorithm');
  const v2 = params.some(([k]) => k === 'Signature' || k === 'AWSAccessKeyId');

  if (!authorization && !presigned) {
    return deny('AccessDenied', v2 ? 'Only AWS Signature Version 4 is accepted' : 'Anonymous requests are not accepted: sign the request (AWS Signature Version 4)');
  }
  if (authorization && presigned) {
    return deny('InvalidArgument', 'Only one auth mechanism allowed: the Authorization header or the X-Amz-* query parameters', 400);
  }

  let parsed: Parsed;
  if (authorization) {
    const m = /^AWS4-HMAC-SHA256 (.*)$/.exec(authorization);
    if (!m) return deny('AccessDenied', 'Only AWS Signature Version 4 (AWS4-HMAC-SHA256) is accepted');
    const fields = new Map(
      m[1]!.split(',').map((f) => {
        const t = f.trim();
        const i = t.indexOf('=');
        return [i < 0 ? t : t.slice(0, i), i < 0 ? '' : t.slice(i + 1)] as const;
      }),
    );
    const cred = parseCredential(fields.get('Credential') ?? '');
    const signedHeaders = fields.get('SignedHeaders');
    const signature = fields.get('Signature');
    if (!cred || !signedHeaders || !signature) return deny('AuthorizationHeaderMalformed', 'The authorization header is malformed', 400);
    const payloadHash = headerValue(req.headers, 'x-amz-content-sha256');
    if (!payloadHash) return deny('InvalidRequest', 'Missing required header for this request: x-amz-content-sha256', 400);
    const amzDate = headerValue(req.headers, 'x-amz-date');
    if (!amzDate) return deny('AccessDenied', 'AWS authentication requires a valid x-amz-date header');
    parsed = { ...cred, signedHeaders: signedHeaders.split(';'), signature, amzDate, payloadHash };
  } else {
    if (param('X-Amz-Algorithm') !== 'AWS4-HMAC-SHA256') return deny('AuthorizationQueryParametersError', 'X-Amz-Algorithm only supports "AWS4-HMAC-SHA256"', 400);
    const cred = parseCredential(param('X-Amz-Credential') ?? '');
    const signedHeaders = param('X-Amz-SignedHeaders');
    const signature = param('X-Amz-Signature');
    const amzDate = param('X-Amz-Date');
    const expires = param('X-Amz-Expires');
    if (!cred || !signedHeaders || !signature || !amzDate || expires === undefined) {
      return deny(
        'AuthorizationQueryParametersError',
        'Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters.',
        400,
      );
    }
    const seconds = Number(expires);
    if (!/^\d+$/.test(expires) || seconds < 1 || seconds > MAX_PRESIGN_SECONDS) {
      return deny('AuthorizationQueryParametersError', 'X-Amz-Expires must be between 1 and 604800 seconds', 400);
    }
    const signedAt = parseAmzDate(amzDate);
    if (Number.isNaN(signedAt)) return deny('AuthorizationQueryParametersError', 'X-Amz-Date must be in the ISO8601 Long Format "yyyyMMdd\'T\'HHmmss\'Z\'"', 400);
    if (now > signedAt + seconds * 1000) return deny('AccessDenied', 'Request has expired');
    if (signedAt - now > MAX_SKEW_MS) return deny('AccessDenied', 'Request is not yet valid');
    parsed = { ...cred, signedHeaders: signedHeaders.split(';'), signature, amzDate, payloadHash: param('X-Amz-Content-Sha256') ?? 'UNSIGNED-PAYLOAD' };
  }

  const secret = Object.hasOwn(credentials, parsed.accessKeyId) ? credentials[parsed.accessKeyId] : undefined;
  if (secret === undefined) return deny('InvalidAccessKeyId', 'The AWS Access Key Id you provided does not exist in our records.');
  if (parsed.service !== 's3') return deny('AuthorizationHeaderMalformed', `The credential scope names service '${parsed.service}', not 's3'`, 400);
  if (parsed.amzDate.slice(0, 8) !== parsed.scopeDate) return deny('AuthorizationHeaderMalformed', 'The credential scope date does not match X-Amz-Date', 400);
  if (authorization) {
    const at = parseAmzDate(parsed.amzDate);
    if (Number.isNaN(at)) return deny('AccessDenied', 'AWS authentication requires a valid x-amz-date header');
    if (Math.abs(now - at) > MAX_SKEW_MS) return deny('RequestTimeTooSkewed', 'The difference between the request time and the current time is too large.');
  }
  const signedHeaders = parsed.signedHeaders;
  if (!signedHeaders.includes('host') || signedHeaders.some((h) => h !== h.toLowerCase() || h === '')) {
    return deny('AccessDenied', 'SignedHeaders must include host (lower-case names)');
  }
  if ([...signedHeaders].sort().join(';') !== signedHeaders.join(';')) return deny('AccessDenied', 'SignedHeaders must be sorted');
  const canonicalHeaders: string[] = [];
  for (const name of signedHeaders) {
    const value = headerValue(req.headers, name);
    if (value === undefined) return deny('AccessDenied', `Signed header ${name} is missing from the request`);
    canonicalHeaders.push(`${name}:${value}\n`);
  }

  const canonicalRequest = [
    req.method.toUpperCase(),
    canonicalPath(rawPath),
    canonicalQuery(params.filter(([k]) => k !== 'X-Amz-Signature')),
    canonicalHeaders.join(''),
    signedHeaders.join(';'),
    parsed.payloadHash,
  ].join('\n');
  const scope = `${parsed.scopeDate}/${parsed.region}/${parsed.service}/aws4_request`;
  const stringToSign = ['AWS4-HMAC-SHA256', parsed.amzDate, scope, sha256Hex(canonicalRequest)].join('\n');
  const key = hmac(hmac(hmac(hmac(`AWS4${secret}`, parsed.scopeDate), parsed.region), parsed.service), 'aws4_request');
  const expected = createHmac('sha256', key).update(stringToSign, 'utf8').digest();
  const given = /^[0-9a-f]{64}$/.test(parsed.signature) ? Buffer.from(parsed.signature, 'hex') : undefined;
  if (!given || !timingSafeEqual(given, expected)) {
    return deny('SignatureDoesNotMatch', 'The request signature we calculated does not match the signature you provided. Check your key and signing method.');
  }
  return { ok: true, accessKeyId: parsed.accessKeyId };
}

const xmlEscape = (s: string) => s.replace(/[<>&'"]/g, (c) => `&#${c.charCodeAt(0)};`);

/** The slice of a Koa context the middleware uses (s3rver is a Koa application). */
interface KoaLikeContext {
  req: { method?: string; url?: string; headers: IncomingHttpHeaders };
  status: number;
  type: string;
  body: unknown;
  set(name: string, value: string): void;
}

/**
 * Koa middleware for s3rver: put it first (`app.middleware.unshift(...)`) so that nothing
 * unsigned reaches s3rver's router. Refusals are S3 XML errors.
 */
export function requireSigV4(credentials: S3Credentials): (ctx: KoaLikeContext, next: () => Promise<unknown>) => Promise<unknown> {
  return async (ctx, next) => {
    const result = verifySigV4({ method: ctx.req.method ?? 'GET', url: ctx.req.url ?? '/', headers: ctx.req.headers }, credentials);
    if (result.ok) return next();
    ctx.status = result.status;
    ctx.type = 'application/xml';
    ctx.set('Cache-Control', 'no-store');
    ctx.body = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${result.code}</Code><Message>${xmlEscape(result.message)}</Message></Error>\n`;
    return undefined;
  };
}
