import type { Ports } from '../ports.ts';
import { log } from '../util/log.ts';
import { healLeasesOfNode, leasesWaitingFor } from './healing.ts';

/** Nodes read per sweep at most (a page of the index each): failed erases are few, and the next sweep goes on. */
const MAX_NODES_PER_SWEEP = 500;
const PAGE = 100;

/**
 * The sweeper's part of healing (healing.ts): every minute, the leases still waiting for a node
 * whose erase failed (`clean failed`, read from the provision-state index) are healed onto other
 * nodes. The agent API, which learns of the failure, only records it: healing needs the lease
 * and allocation code, which would put the agent function over its bundle budget (issue 12), and
 * a lease start heals again anyway. So a waiting lease is healed within a minute of the failure.
 * Healing is idempotent: a lease already healed, or with nothing lost, is left as it is.
 */
export async function healAfterFailedErases(deps: Ports): Promise<{ healed_nodes: number }> {
  const now = deps.clock.now().getTime();
  let cursor: unknown;
  let read = 0;
  let healed = 0;
  do {
    const page = await deps.nodes.listByCreation({ by: 'provision_state', value: 'clean failed', desc: false, limit: PAGE }, cursor);
    read += page.nodes.length;
    for (const node of page.nodes) {
      // Only a node some lease that has not started still counts on.
      if (leasesWaitingFor(node, now).size === 0) continue;
      await healLeasesOfNode(deps, node);
      healed++;
    }
    cursor = page.cursor;
  } while (cursor !== undefined && read < MAX_NODES_PER_SWEEP);
  if (healed > 0) log.info('leases of nodes whose erase failed healed', { nodes: healed });
  return { healed_nodes: healed };
}
