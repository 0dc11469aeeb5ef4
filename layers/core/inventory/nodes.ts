import { NotFoundError } from '../errors.ts';
import { isAdmin, type Principal, requireAuth } from '../identity/identity.ts';
import type { Ports } from '../ports.ts';
import type { Node } from './node.ts';

/**
 * The node inventory as projects see it: admins see every node; other roles see the nodes an
 * active lease has granted to their project (DESIGN.md §5).
 */
const visible = (who: Principal, n: Node) => isAdmin(who) || n.grants.includes(who.project_id);

export async function listNodes(deps: Ports, auth: Principal | undefined): Promise<Node[]> {
  const who = requireAuth(auth);
  return (await deps.nodes.list()).filter((n) => visible(who, n));
}

/** By uuid or by name. */
export async function getNode(deps: Ports, auth: Principal | undefined, ref: string): Promise<Node> {
  const who = requireAuth(auth);
  const node = (await deps.nodes.get(ref)) ?? (await deps.nodes.getByName(ref));
  if (!node || !visible(who, node)) throw new NotFoundError(`Object with {'id': '${ref}'} not found`);
  return node;
}
