import { createHash } from 'node:crypto';
import * as z from 'zod';

/**
 * The `fetch` job (issue 12 item 4): the control plane, outside the site's network, asks the
 * site's agent to make one HTTP request to an address inside the site — a design_ref, a
 * boot-action asset location, a container manager's API — and answers with the response.
 *
 *   fetch { url, method?, headers?, body?, timeout_seconds, max_bytes, upload_url? }
 *         → { status, content_type, size, sha256, text | base64 }   (the body inline), or
 *         → { status, content_type, size, sha256, uploaded: true }  (the body PUT to upload_url)
 *
 * The body travels inline when its JSON fits the job result (`inline_max_bytes`): as `text` when
 * it is UTF-8, else `base64`. A larger one is PUT to `upload_url` (a presigned URL the payload
 * gives) or, without one, fails with the sizes. The agent's own policy (`fetch.url_prefixes` in
 * its config) may refuse a URL whatever the cloud asked, redirects included; `max_bytes` and the
 * timeout bound what it reads and how long.
 */

export const FetchPayload = z.strictObject({
  url: z.url({ protocol: /^https?$/ }).max(2048),
  method: z.enum(['GET', 'POST', 'DELETE']).default('GET'),
  headers: z.record(z.string().max(256), z.string().max(8192)).refine((h) => Object.keys(h).length <= 32, 'at most 32 headers').optional(),
  body: z.string().max(64 * 1024).optional(),
  timeout_seconds: z.number().min(1).max(900).default(30),
  max_bytes: z.number().int().min(1).max(256 * 1024 * 1024).default(16 * 1024 * 1024),
  upload_url: z.url({ protocol: /^https?$/ }).max(8192).optional(),
  // What the cloud does with the answer (a Commissaire host's step); not the agent's business.
  commissaire: z.looseObject({}).optional(),
});
export type FetchPayload = z.infer<typeof FetchPayload>;

/** What the agent's config allows it to fetch. */
export interface FetchPolicy {
  /** URL prefixes it fetches (absent: any http or https URL the site's control plane sends). */
  urlPrefixes?: string[];
  /** Most bytes of body JSON answered inline (the API takes 64 KiB of job output). */
  inlineMaxBytes: number;
}

/** A fetch the job asked for and the agent will not or cannot make (the message is the job's error). */
export class FetchJobError extends Error {
  override name = 'FetchJobError';
}

const MAX_REDIRECTS = 5;

/** `url` without credentials or query (for errors). */
function display(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return url.slice(0, 200);
  }
}

function allowed(url: string, policy: FetchPolicy): boolean {
  if (!policy.urlPrefixes) return true;
  return policy.urlPrefixes.some((p) => url.startsWith(p));
}

/** Runs one `fetch` job. */
export async function runFetch(p: FetchPayload, policy: FetchPolicy): Promise<unknown> {
  const signal = AbortSignal.timeout(p.timeout_seconds * 1000);
  let url = p.url;
  let res: Response;
  for (let hops = 0; ; hops++) {
    if (!allowed(url, policy)) throw new FetchJobError(`URL ${display(url)} is not allowed by this agent (fetch.url_prefixes)`);
    try {
      res = await fetch(url, { method: p.method, headers: p.headers, body: p.body, redirect: 'manual', signal });
    } catch (err) {
      const e = err as Error & { cause?: { code?: string; message?: string } };
      const why = e.name === 'TimeoutError' ? `timed out after ${p.timeout_seconds} s` : (e.cause?.code ?? e.cause?.message ?? e.message);
      throw new FetchJobError(`${display(url)} could not be fetched: ${why}`);
    }
    const location = res.headers.get('location');
    if (res.status >= 300 && res.status < 400 && location) {
      await res.body?.cancel();
      if (hops >= MAX_REDIRECTS) throw new FetchJobError(`${display(p.url)}: more than ${MAX_REDIRECTS} redirects`);
      url = new URL(location, url).toString();
      if (!/^https?:$/.test(new URL(url).protocol)) throw new FetchJobError(`${display(p.url)} redirects to a ${new URL(url).protocol} URL`);
      continue;
    }
    break;
  }
  const body = await readBounded(res, p.max_bytes, display(url));
  const head = { status: res.status, content_type: res.headers.get('content-type'), size: body.length, sha256: createHash('sha256').update(body).digest('hex') };
  const text = utf8(body);
  if (text !== undefined && Buffer.byteLength(JSON.stringify(text)) <= policy.inlineMaxBytes) return { ...head, text };
  if (Math.ceil(body.length / 3) * 4 + 2 <= policy.inlineMaxBytes) return { ...head, base64: body.toString('base64') };
  if (!p.upload_url) throw new FetchJobError(`${display(url)} answered ${body.length} bytes, more than the ${policy.inlineMaxBytes} a job result carries inline (and the job gave no upload_url)`);
  let put: Response;
  try {
    put = await fetch(p.upload_url, { method: 'PUT', body, headers: { 'Content-Type': head.content_type ?? 'application/octet-stream' }, signal });
  } catch (err) {
    throw new FetchJobError(`the body of ${display(url)} could not be uploaded: ${(err as Error & { cause?: { code?: string } }).cause?.code ?? (err as Error).message}`);
  }
  await put.body?.cancel();
  if (!put.ok) throw new FetchJobError(`the body of ${display(url)} could not be uploaded: HTTP ${put.status}`);
  return { ...head, uploaded: true };
}

/** The body, read up to `max` bytes: more fails without reading the rest. */
async function readBounded(res: Response, max: number, shown: string): Promise<Buffer> {
  const declared = Number(res.headers.get('content-length') ?? '0');
  const tooLarge = () => new FetchJobError(`${shown} answered more than the ${max} bytes the job allows`);
  if (declared > max) {
    await res.body?.cancel();
    throw tooLarge();
  }
  const chunks: Buffer[] = [];
  let total = 0;
  if (!res.body) return Buffer.alloc(0);
  const reader = res.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.length;
    if (total > max) {
      await reader.cancel().catch(() => undefined);
      throw tooLarge();
    }
    chunks.push(Buffer.from(value));
  }
  return Buffer.concat(chunks);
}

/** The body as text when it is valid UTF-8. */
function utf8(body: Buffer): string | undefined {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(body);
  } catch {
    return undefined;
  }
}
