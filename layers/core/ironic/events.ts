import type { Node } from '../inventory/node.ts';
import type { Ports } from '../ports.ts';
import { log } from '../util/log.ts';
import { metric } from '../util/metrics.ts';

/**
 * Notifications of a node's deploy and erase outcomes (EventBridge on AWS, the local webhook
 * and log locally), named as Ironic's notifications are (`baremetal.node.<what>.end|error`), so
 * that a site can tell a tenant its machine is ready, or that it failed:
 *
 *   baremetal.node.deploy.end | .error   an Ironic or lease-start deploy finished
 *   baremetal.node.clean.end  | .error   an erase finished (Ironic clean, undeploy, provide, a
 *                                        lease's end, Drydock destroy_nodes)
 *
 * detail: node_id, node_name, provision_state, last_error, and the lease the node is or was
 * last allocated to (lease_id, project_id; null when none). Never blocks the caller: a failure
 * to publish is logged.
 */
export async function notifyNode(deps: Ports, what: 'deploy' | 'clean', ok: boolean, node: Node): Promise<void> {
  const now = deps.clock.now().toISOString();
  // The running allocation, or the one that just ended (a lease's end erases before releasing).
  const allocation = Object.values(node.allocations)
    .filter((a) => a.start <= now)
    .sort((a, b) => (a.start < b.start ? 1 : a.start > b.start ? -1 : 0))[0];
  const type = `baremetal.node.${what}.${ok ? 'end' : 'error'}`;
  try {
    await deps.notifier.publish(type, {
      node_id: node.id,
      node_name: node.name,
      provision_state: node.bmc?.provision_state ?? null,
      last_error: node.bmc?.last_error ?? null,
      lease_id: allocation?.lease_id ?? null,
      project_id: allocation?.project_id ?? null,
    });
  } catch (err) {
    log.error('node notification not published', { type, node_id: node.id, error: (err as Error).name });
    metric('NotificationFailures', 1, 'Count');
  }
}
