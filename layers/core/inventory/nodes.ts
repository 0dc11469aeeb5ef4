import { NotFoundError } from '../errors.ts';
import { isAdmin, type Principal, requireAuth } from '../identity/identity.ts';
import type { KeysetRange, Ports } from '../ports.ts';
import { grantsOf, type Node } from './node.ts';

/**
 * The node inventory as projects see it: admins see every node; other roles see the nodes an
 * active lease has granted to their project (DESIGN.md §5).
 */
/** Admins see every node; a project the nodes its active leases granted it. */
export const nodeVisible = (who: Principal, n: Node) => isAdmin(who) || grantsOf(n).includes(who.project_id);

export async function listNodes(deps: Ports, auth: Principal | undefined): Promise<Node[]> {
  const who = requireAuth(auth);
  if (isAdmin(who)) return deps.nodes.list();
  return grantedNodes(deps, who);
}

/**
 * The nodes granted to the caller's project (issue 16): its grants index (GSI10, in creation
 * order), plus any node granted to two projects at once (indexed for one of them), never the
 * whole inventory.
 */
async function grantedNodes(deps: Ports, who: Principal): Promise<Node[]> {
  const out: Node[] = [];
  let cursor: unknown;
  do {
    const page = await deps.nodes.listByCreation({ by: 'lessee', value: who.project_id, desc: false, limit: 1000 }, cursor);
    out.push(...page.nodes);
    cursor = page.cursor;
  } while (cursor !== undefined);
  const seen = new Set(out.map((n) => n.id));
  out.push(...(await deps.nodes.unindexed()).filter((n) => !seen.has(n.id)));
  return out.filter((n) => nodeVisible(who, n));
}

/**
 * A window of all nodes in id order, for admins (whose view is unfiltered); undefined for
 * other roles, whose view is filtered by grants and must be listed whole.
 */
export function nodePager(deps: Ports, auth: Principal | undefined): ((range: KeysetRange) => Promise<Node[]>) | undefined {
  const who = requireAuth(auth);
  return isAdmin(who) ? (range) => deps.nodes.page(range) : undefined;
}

/** By uuid or by name. */
export async function getNode(deps: Ports, auth: Principal | undefined, ref: string): Promise<Node> {
  const who = requireAuth(auth);
  const node = (await deps.nodes.get(ref)) ?? (await deps.nodes.getByName(ref));
  if (!node || !nodeVisible(who, node)) throw new NotFoundError(`Object with {'id': '${ref}'} not found`);
  return node;
}
