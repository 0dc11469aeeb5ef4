import { enqueueJob } from '../agent/enqueue.ts';
import type { Ports } from '../ports.ts';
import type { CommissaireHost } from './model.ts';

/**
 * Starts the investigation of a newly registered host (upstream-apis.md §2.4 step 5): an agent
 * job `ssh_investigate` for the Commissaire site (`SLIPWAY_COMMISSAIRE_SITE`). The key travels
 * sealed; only the agent API opens it, for the claimed job. The job's result drives the host
 * through `investigating → bootstrapping → disassociated | active` or `failed` (to be built on
 * this contract; the signature stays).
 */
export async function startInvestigation(deps: Ports, host: CommissaireHost): Promise<void> {
  await enqueueJob(deps, {
    site: deps.config.commissaireSite,
    kind: 'ssh_investigate',
    node_id: host.node_id,
    payload: { address: host.address, remote_user: host.remote_user, ssh_priv_key_sealed: host.ssh_priv_key_sealed },
  });
}
