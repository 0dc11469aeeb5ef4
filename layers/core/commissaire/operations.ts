import type { Ports } from '../ports.ts';
import type { OperationKind } from './model.ts';

/**
 * Runs a cluster operation (upstream-apis.md §2.5) after `PUT /cluster/{name}/deploy|upgrade|restart`
 * stored its initial record and took the cluster's operation lock.
 *
 * TODO(issue 6, part 2): the workflow. Contract: called once per accepted PUT, after
 * `deps.commissaire.startOperation` succeeded, with the cluster name and kind. It walks the
 * cluster's hostset sequentially (host into `in_process`, the SSH command through the agent, host
 * into `done`), saving progress with `deps.commissaire.updateOperation`; it stops at the first
 * failure (that host stays in `in_process`, status `failed`); and it always ends with
 * `deps.commissaire.finishOperation` (status `finished` | `failed`, `finished_at` set), which
 * releases the lock so that the next operation may start. Until then the record stays
 * `in_process` and further operations on the cluster are refused with 409.
 */
export async function startClusterOperation(_deps: Ports, _clusterName: string, _kind: OperationKind): Promise<void> {}
