import { AgentTimeoutError, ValidationError } from '../errors.ts';
import type { Ports } from '../ports.ts';
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
 * `fetch` job: { url, method, headers?, body?, timeout_seconds, max_bytes } → { status,
 * content_type, size, text | base64 } (agent/fetch-job.ts). The answer travels in the job's result,
 * so a body is at most `MAX_AGENT_INLINE_BYTES`; a larger one fails with that limit named.
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

/** Fetches `req.url` from where it is reachable; SiteFetchError when it cannot (not for an HTTP error status). */
export async function fetchFromSite(deps: Pick<Ports, 'config' | 'jobs' | 'clock'>, req: SiteFetch): Promise<FetchAnswer> {
  const reach = reachOf(req.url, deps.config.siteAddresses, req.what);
  if (reach.via === 'refused') throw new SiteFetchError(reach.reason);
  if (reach.via === 'agent') return agentFetch(deps, reach.site, req);
  return cloudFetch(deps, req);
}

async function cloudFetch(deps: Pick<Ports, 'config'>, req: SiteFetch): Promise<FetchAnswer> {
  const signal = AbortSignal.timeout(Math.max(1, req.budgetMs));
  let url = req.url;
  for (let hops = 0; ; hops++) {
    let res: Response;
    try {
      res = await fetch(url, { method: req.method ?? 'GET', headers: req.headers, body: req.body, redirect: 'manual', signal });
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
  text?: string;
  base64?: string;
}

/** How often the wait for the agent looks at the job (one read per look). */
const POLL_MS = 200;

async function agentFetch(deps: Pick<Ports, 'jobs' | 'clock'>, site: string, req: SiteFetch): Promise<FetchAnswer> {
  const end = Date.now() + req.budgetMs;
  // Nobody would run the job: say so now rather than after the whole wait.
  const presence = await sitePresence(deps as Ports, site);
  if (presence.connected === 0) throw new SiteFetchError(`${req.what} ${displayUrl(req.url)} is inside site ${site}, fetched by its agent: ${noAgentText(site, presence.lastSeen)}`);
  // Half the budget for the request itself, the rest for the claim (a long-poll already waiting
  // takes it at once) and the answer; never under a second.
  const timeoutSeconds = Math.max(1, Math.floor(req.budgetMs / 2000));
  const job = await enqueueJob(deps as Ports, {
    site,
    kind: 'fetch',
    // Not retried: a container manager's POST is not to be repeated behind the caller's back, and
    // nobody waits past this call anyway.
    max_attempts: 1,
    payload: {
      url: req.url,
      method: req.method ?? 'GET',
      // Plain headers only: a job's payload is not a place for credentials (none is sealed here).
      ...(req.headers ? { headers: req.headers } : {}),
      ...(req.body !== undefined ? { body: req.body } : {}),
      timeout_seconds: timeoutSeconds,
      max_bytes: Math.min(req.maxBytes, MAX_AGENT_INLINE_BYTES),
    },
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
  const body = out.text !== undefined ? Buffer.from(out.text, 'utf8') : Buffer.from(out.base64 ?? '', 'base64');
  return { status: out.status, contentType: out.content_type ?? null, body, via: site };
}
