import { isExpired, type Principal, requireAdmin, type TokenRecord } from '../identity/identity.ts';
import type { Ports } from '../ports.ts';
import { AGENT_SEEN_SECONDS } from './presence.ts';

/**
 * `GET /v1.1/{project_id}/sites` (admins): every site with its agents — each agent token, when
 * its agent last made contact (claim or heartbeat) and the version it reported — and how many of
 * its jobs are queued and running. A site is the project of its agent tokens; what the web
 * console's sites view and `slipway sites list` show.
 */

/** Most unfinished jobs counted per site: one bounded query of the site's offer index. */
export const SITE_JOB_COUNT_LIMIT = 200;

/** A later time than any job's availability, for a query of every unfinished job of a site. */
const END_OF_TIME = new Date('9999-12-31T23:59:59.999Z');

/** Sites read at once (each is two queries). */
const SITE_CONCURRENCY = 8;

export interface SiteAgent {
  id: string;
  description: string | null;
  created_at: string | null;
  expires_at: string | null;
  /** False when the contact is on record but the token is expired or revoked. */
  token_active: boolean;
  last_contact_at: string | null;
  connected: boolean;
  version: string | null;
}

export interface Site {
  name: string;
  connected: boolean;
  last_contact_at: string | null;
  agents: SiteAgent[];
  jobs: { queued: number; running: number; truncated: boolean };
}

async function readSite(deps: Pick<Ports, 'jobs'>, name: string, tokens: TokenRecord[], at: Date): Promise<Site> {
  const [seen, open] = await Promise.all([deps.jobs.agentsSeen(name), deps.jobs.offered(name, END_OF_TIME, SITE_JOB_COUNT_LIMIT + 1)]);
  const contact = new Map(seen.map((s) => [s.agent, s]));
  const connected = (t: string | null) => t !== null && at.getTime() - Date.parse(t) <= AGENT_SEEN_SECONDS * 1000;
  const agents: SiteAgent[] = tokens.map((t) => {
    const c = contact.get(t.token_id);
    const last = c?.at ?? null;
    return {
      id: t.token_id,
      description: t.description ?? null,
      created_at: t.created_at,
      expires_at: t.expires_at,
      token_active: !isExpired(t, at),
      last_contact_at: last,
      connected: connected(last),
      version: c?.version ?? null,
    };
  });
  // Contact of a token since revoked: still worth showing (which agent was it, and when).
  for (const s of seen) {
    if (tokens.some((t) => t.token_id === s.agent)) continue;
    agents.push({ id: s.agent, description: null, created_at: null, expires_at: null, token_active: false, last_contact_at: s.at, connected: connected(s.at), version: s.version ?? null });
  }
  agents.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const counted = open.slice(0, SITE_JOB_COUNT_LIMIT);
  // A claimed job whose claim expired is offered again: it waits for an agent, so it is queued.
  const running = counted.filter((j) => j.status === 'claimed' && j.claim_expires_at !== undefined && Date.parse(j.claim_expires_at) > at.getTime()).length;
  const last = agents.map((a) => a.last_contact_at).filter((t): t is string => t !== null).sort().at(-1) ?? null;
  return {
    name,
    connected: agents.some((a) => a.connected),
    last_contact_at: last,
    agents,
    jobs: { queued: counted.length - running, running, truncated: open.length > SITE_JOB_COUNT_LIMIT },
  };
}

export async function listSites(deps: Pick<Ports, 'tokens' | 'jobs' | 'clock'>, auth: Principal | undefined): Promise<Site[]> {
  requireAdmin(auth);
  const at = deps.clock.now();
  const bySite = new Map<string, TokenRecord[]>();
  for (const t of await deps.tokens.list()) {
    if (!t.roles.includes('agent')) continue;
    bySite.set(t.project_id, [...(bySite.get(t.project_id) ?? []), t]);
  }
  const names = [...bySite.keys()].sort();
  const sites: Site[] = [];
  for (let i = 0; i < names.length; i += SITE_CONCURRENCY) {
    sites.push(...(await Promise.all(names.slice(i, i + SITE_CONCURRENCY).map((n) => readSite(deps, n, bySite.get(n)!, at)))));
  }
  return sites;
}
