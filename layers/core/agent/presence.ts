import { isExpired } from '../identity/identity.ts';
import type { Ports } from '../ports.ts';
import { metric } from '../util/metrics.ts';

/** An agent that claimed (or long-polled) within this many seconds counts as connected. */
export const AGENT_SEEN_SECONDS = 90;

/**
 * Which agents of a site are connected now, and when one was last seen: what Drydock's
 * `verify_site` and Ironic's node validation report, so that an operator learns that nobody
 * would carry out a power or boot job before queueing one.
 */
export async function sitePresence(deps: Ports, site: string, at: Date = deps.clock.now()): Promise<{ connected: number; lastSeen?: string }> {
  const seen = await deps.jobs.agentsSeen(site);
  const connected = seen.filter((a) => at.getTime() - Date.parse(a.at) <= AGENT_SEEN_SECONDS * 1000).length;
  const lastSeen = seen.map((a) => a.at).sort().at(-1);
  return { connected, ...(lastSeen ? { lastSeen } : {}) };
}

/** The operator-facing sentence for a site without a connected agent. */
export const noAgentText = (site: string, lastSeen?: string) =>
  `Site ${site}: no agent connected${lastSeen ? ` (last seen ${lastSeen})` : ''}; start one with an agent token of project ${site}`;

/**
 * How long each site has gone without agent contact, emitted as `AgentSiteSilentSeconds` (one
 * datapoint per site, dimension `Site`) for the alarm on silent sites; the sweeper calls it every
 * minute. The known sites are the projects of the agent tokens in force. A site is silent since
 * its agents' last contact or, when none is on record (none ever connected, or the presence
 * records expired after 30 days), since its oldest agent token was made: never less than the
 * truth, so the alarm errs toward telling.
 */
export async function reportSiteSilence(deps: Pick<Ports, 'tokens' | 'jobs' | 'clock'>, at: Date = deps.clock.now()): Promise<Record<string, number>> {
  const since = new Map<string, number>();
  for (const t of await deps.tokens.list()) {
    if (!t.roles.includes('agent') || isExpired(t, at)) continue;
    const made = Date.parse(t.created_at);
    since.set(t.project_id, Math.min(since.get(t.project_id) ?? made, made));
  }
  const silent: Record<string, number> = {};
  for (const [site, made] of since) {
    const seen = await deps.jobs.agentsSeen(site);
    const last = seen.reduce((m, a) => Math.max(m, Date.parse(a.at)), -Infinity);
    const seconds = Math.max(0, Math.round((at.getTime() - (Number.isFinite(last) ? last : made)) / 1000));
    silent[site] = seconds;
    metric('AgentSiteSilentSeconds', seconds, 'Seconds', { Site: site });
  }
  return silent;
}
