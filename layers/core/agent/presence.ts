import type { Ports } from '../ports.ts';

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
