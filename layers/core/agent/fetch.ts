import { createHash, randomUUID } from 'node:crypto';
import { AgentTimeoutError, ValidationError } from '../errors.ts';
import type { Ports } from '../ports.ts';
import type { Sealed } from '../secrets.ts';
import { reachOf } from '../util/addresses.ts';
import { enqueueJob } from './enqueue.ts';
import type { Job } from './model.ts';
import { noAgentText, sitePresence } from './presence.ts';

/**
 * Fetches the control plane makes on an operator's behalf — a design_ref, a boot-action asset
 * `location`, a container manager's API — from wherever the URL is reachable (issue 12 item 4):
 * a public address by the function itself; an address inside a site (`SLIPWAY_SITE_ADDRESSES`,
 * util/addresses.ts) by that site's agent, as a `fetch` job the function waits for; an internal
 * address no site is named for, by nobody (refused with the setting to change).
 *
 * Timeouts nest: the caller gives the time it can spare (`budgetMs`, below its function's
 * timeout); a cloud fetch is cut there, and an agent fetch gets about half of it for the request
 * itself and the rest for the claim and the answer, so the wait ends before the function does.
 *
 * `fetch` job: { url, method, headers?, body?, timeout_seconds, max_bytes, upload_url? } →
 * { status, content_type, size, sha256, text | base64 | uploaded } (agent/fetch-job.ts). A body up
 * to `MAX_AGENT_INLINE_BYTES` travels in the job's result; a larger one (a design, an asset) the
 * agent PUTs to a presigned URL under `fetched/` in the bootdata bucket, read back here and
 * deleted (the bucket expires what a crash leaves there after a day).
 *
 * A credential a fetch carries (a container manager's bearer token) stays sealed in the job's
 * payload, under `headers`, as `{ $sealed, $prefix }`; the agent API opens it for the claimed job
 * only (jobs.ts), as it opens a BMC password.
 */

/** A fetch could not be made or answered (as opposed to answered with an error status). */
export class SiteFetchError extends ValidationError {
  override readonly name: string = 'SiteFetchError';
  constructor(message: string) {
    super(message, 'SITE_FETCH_ERROR');
  }
}

/** The largest body a `fetch` job answers inline (its JSON must fit the 64 KiB job output). */
export const MAX_AGENT_INLINE_BYTES = 60 * 1024;
/** Redirects a cloud fetch follows, each one classified again (a public URL may not redirect inside). */
const MAX_REDIRECTS = 5;

export interface SiteFetch {
  url: string;
  method?: 'GET' | 'POST' | 'DELETE';
  headers?: Record<string, string>;
  body?: string;
  /** The longest body taken; more fails. */
  maxBytes: number;
  /** The time the caller can give the whole fetch, agent claim and answer included. */
  budgetMs: number;
  /** What the URL is, for messages: `Design`, `Asset location`, `Container manager`. */
  what: string;
  /**
   * Headers that hold a secret: `sealed` for an agent's job (opened at claim, see above), `open`
   * for a fetch the cloud makes itself (called only then).
   */
  secretHeaders?: { sealed: Record<string, SealedHeader>; open: () => Promise<Record<string, string>> };
  /** Where an agent may put a body larger than its job result (fetch-uploads.ts); without, such a body fails. */
  uploads?: Uploads;
}

/** Objects an agent uploads a large answer to, read back and removed by the caller. */
export interface Uploads {
  url(key: string, ttlSeconds: number): Promise<string>;
  read(key: string): Promise<Buffer | undefined>;
  remove(key: string): Promise<void>;
}

/** A header value that is a secret: `$prefix` + the opened value (e.g. `Bearer ` + a token). */
export interface SealedHeader extends Sealed {
  $prefix?: string;
}

export interface FetchAnswer {
  status: number;
  contentType: string | null;
  body: Buffer;
  /** Who fetched it: `cloud`, or the site whose agent did. */
  via: string;
}

/** `url` without credentials or query, for messages and logs. */
export function displayUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return url.slice(0, 200);
  }
}

type FetchDeps = Pick<Ports, 'config' | 'jobs' | 'clock'>;

/** Fetches `req.url` from where it is reachable; SiteFetchError when it cannot (not for an HTTP error status). */
export async function fetchFromSite(deps: FetchDeps, req: SiteFetch): Promise<FetchAnswer> {
  const reach = reachOf(req.url, deps.config.siteAddresses, req.what);
  if (reach.via === 'refused') throw new SiteFetchError(reach.reason);
  if (reach.via === 'agent') return agentFetch(deps, reach.site, req);
  return cloudFetch(deps, req);
}

/**
 * Starts a fetch whose answer nobody waits for in this call: inside a site, a queued `fetch` job
 * carrying `context` in its payload (the job kind's handler reads the answer and the context when
 * the job is final: `answerOf`); elsewhere the answer, fetched now. For a call whose answer moves
 * a record on (a container manager's node registration), made where an agent's result is being
 * posted and no wait for another job can fit.
 */
export async function startSiteFetch(
  deps: FetchDeps,
  req: SiteFetch,
  context: Record<string, unknown>,
): Promise<{ job: Job; answer?: never } | { answer: FetchAnswer; job?: never }> {
  const reach = reachOf(req.url, deps.config.siteAddresses, req.what);
  if (reach.via === 'refused') throw new SiteFetchError(reach.reason);
  if (reach.via === 'cloud') return { answer: await cloudFetch(deps, req) };
  await requireAgent(deps, reach.site, req);
  const job = await enqueueJob(deps as Ports, { site: reach.site, kind: 'fetch', max_attempts: 1, payload: { ...agentPayload(req), ...context } });
  return { job };
}

/** The answer of a final `fetch` job, or the reason it has none. */
export function answerOf(job: Job): { answer: FetchAnswer; error?: never } | { error: string; answer?: never } {
  if (job.status !== 'succeeded') return { error: job.error ?? 'the job failed' };
  const out = (job.output ?? {}) as FetchJobOutput;
  if (out.uploaded) return { error: 'the answer was uploaded, and only a waiting caller reads an upload' };
  const body = out.text !== undefined ? Buffer.from(out.text, 'utf8') : Buffer.from(out.base64 ?? '', 'base64');
  return { answer: { status: Number(out.status), contentType: out.content_type ?? null, body, via: job.site } };
}

async function cloudFetch(deps: Pick<Ports, 'config'>, req: SiteFetch): Promise<FetchAnswer> {
  const signal = AbortSignal.timeout(Math.max(1, req.budgetMs));
  const headers = req.secretHeaders ? { ...req.headers, ...(await req.secretHeaders.open()) } : req.headers;
  let url = req.url;
  for (let hops = 0; ; hops++) {
    let res: Response;
    try {
      // A credential goes to the first address only: a redirect is followed without it.
      res = await fetch(url, { method: req.method ?? 'GET', headers: hops === 0 ? headers : req.headers, body: req.body, redirect: 'manual', signal });
    } catch (err) {
      // fetch says only "fetch failed"; the reason (ECONNREFUSED, ENOTFOUND…) is its cause.
      const e = err as Error & { cause?: { code?: string; message?: string } };
      const why = e.name === 'TimeoutError' ? `timed out after ${Math.round(req.budgetMs / 1000)} s` : (e.cause?.code ?? e.cause?.message ?? e.message);
      throw new SiteFetchError(`${req.what} ${displayUrl(url)} could not be fetched: ${why}`);
    }
    const location = res.headers.get('location');
    if (res.status >= 300 && res.status < 400 && location) {
      await res.body?.cancel();
      if (hops >= MAX_REDIRECTS) throw new SiteFetchError(`${req.what} ${displayUrl(req.url)} could not be fetched: more than ${MAX_REDIRECTS} redirects`);
      url = new URL(location, url).toString();
      // A public address may redirect only to another public one: the cloud never fetches inside a site.
      const next = reachOf(url, deps.config.siteAddresses, req.what);
      if (next.via !== 'cloud') throw new SiteFetchError(`${req.what} ${displayUrl(req.url)} redirects to ${displayUrl(url)}, which the control plane does not fetch itself`);
      continue;
    }
    const declared = Number(res.headers.get('content-length') ?? '0');
    if (declared > req.maxBytes) {
      await res.body?.cancel();
      throw new SiteFetchError(`${req.what} ${displayUrl(url)} is larger than ${req.maxBytes} bytes`);
    }
    const body = Buffer.from(await res.arrayBuffer());
    if (body.length > req.maxBytes) throw new SiteFetchError(`${req.what} ${displayUrl(url)} is larger than ${req.maxBytes} bytes`);
    return { status: res.status, contentType: res.headers.get('content-type'), body, via: 'cloud' };
  }
}

/** The agent's answer to a `fetch` job. */
interface FetchJobOutput {
  status: number;
  content_type?: string | null;
  size: number;
  sha256?: string;
  text?: string;
  base64?: string;
  uploaded?: boolean;
}

/** How often the wait for the agent looks at the job (one read per look). */
const POLL_MS = 200;
/** Where the agent uploads a body too large for its job result (bootdata bucket; expires after a day). */
export const FETCHED_PREFIX = 'fetched/';

/** Nobody would run the job: say so now rather than after the whole wait. */
async function requireAgent(deps: Pick<Ports, 'jobs' | 'clock'>, site: string, req: SiteFetch): Promise<void> {
  const presence = await sitePresence(deps as Ports, site);
  if (presence.connected === 0) throw new SiteFetchError(`${req.what} ${displayUrl(req.url)} is inside site ${site}, fetched by its agent: ${noAgentText(site, presence.lastSeen)}`);
}

/** The `fetch` job's payload for `req`, the agent getting about half of `budgetMs` for the request. */
function agentPayload(req: SiteFetch, uploadUrl?: string): Record<string, unknown> {
  const headers = { ...req.headers, ...req.secretHeaders?.sealed };
  return {
    url: req.url,
    method: req.method ?? 'GET',
    // Plain headers, and secret ones still sealed (opened at claim for the agent only).
    ...(Object.keys(headers).length > 0 ? { headers } : {}),
    ...(req.body !== undefined ? { body: req.body } : {}),
    // Half the budget for the request itself, the rest for the claim (a long-poll already waiting
    // takes it at once) and the answer; never under a second.
    timeout_seconds: Math.max(1, Math.floor(req.budgetMs / 2000)),
    max_bytes: uploadUrl ? req.maxBytes : Math.min(req.maxBytes, MAX_AGENT_INLINE_BYTES),
    ...(uploadUrl ? { upload_url: uploadUrl } : {}),
  };
}

async function agentFetch(deps: FetchDeps, site: string, req: SiteFetch): Promise<FetchAnswer> {
  const end = Date.now() + req.budgetMs;
  await requireAgent(deps, site, req);
  // A body that may not fit the job's result goes up to the bucket instead, through a URL good
  // for this fetch's budget only.
  const uploadKey = req.uploads && req.maxBytes > MAX_AGENT_INLINE_BYTES ? `${FETCHED_PREFIX}${randomUUID()}` : undefined;
  const uploadUrl = uploadKey ? await req.uploads!.url(uploadKey, Math.max(60, Math.ceil(req.budgetMs / 1000))) : undefined;
  const job = await enqueueJob(deps as Ports, {
    site,
    kind: 'fetch',
    // Not retried: a container manager's POST is not to be repeated behind the caller's back, and
    // nobody waits past this call anyway.
    max_attempts: 1,
    payload: agentPayload(req, uploadUrl),
  });
  let done: Job | undefined;
  for (;;) {
    const j = await deps.jobs.get(job.id);
    if (j && (j.status === 'succeeded' || j.status === 'failed')) {
      done = j;
      break;
    }
    if (Date.now() + POLL_MS >= end) break;
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
  if (!done) {
    throw new AgentTimeoutError(`${req.what} ${displayUrl(req.url)}: the agent of site ${site} did not answer within ${Math.round(req.budgetMs / 1000)} s (job ${job.id})`);
  }
  if (done.status === 'failed') throw new SiteFetchError(`${req.what} ${displayUrl(req.url)} could not be fetched by the agent of site ${site}: ${done.error ?? 'the job failed'}`);
  const out = done.output as FetchJobOutput;
  if (!out.uploaded) return answerOf(done).answer!;
  const body = uploadKey ? await req.uploads!.read(uploadKey) : undefined;
  if (uploadKey) await req.uploads!.remove(uploadKey).catch(() => undefined); // the bucket's expiry is the fallback
  // What the agent said it uploaded is what was uploaded: a shorter object is a broken upload.
  if (!body || body.length !== Number(out.size) || (out.sha256 && createHash('sha256').update(body).digest('hex') !== out.sha256)) throw new SiteFetchError(`${req.what} ${displayUrl(req.url)}: the agent of site ${site} uploaded the body, but it could not be read back whole`);
  if (body.length > req.maxBytes) throw new SiteFetchError(`${req.what} ${displayUrl(req.url)} is larger than ${req.maxBytes} bytes`);
  return { status: out.status, contentType: out.content_type ?? null, body, via: site };
}
