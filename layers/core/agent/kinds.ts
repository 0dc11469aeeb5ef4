import type { Principal } from '../identity/identity.ts';
import type { Ports } from '../ports.ts';
import { onHostJobFinished } from '../commissaire/investigate.ts';
import { onCleanFinished } from '../ironic/clean.ts';
import { onDeployClaimed, onDeployFinished } from '../ironic/deploy.ts';
import { onInspectFinished } from '../ironic/inspect.ts';
import { onJobFinished } from '../ironic/nodes.ts';
import * as queue from './jobs.ts';
import type { Job } from './model.ts';

/**
 * Every agent job kind, in one table, with what the cloud does when a job of that kind becomes
 * final (house-style rule 13). The domain modules queue jobs and export their handlers; this
 * module puts them together and only the entry points import it, so the queue (`jobs.ts`)
 * never imports a domain module. A kind the agent runs is added here and in the agent's
 * executor (`agent/executor.ts`).
 */
export const JOB_KINDS: queue.JobKinds = {
  // The node's power state, target and last error (ironic/nodes.ts).
  power: { onFinished: onJobFinished },
  power_state: { onFinished: onJobFinished },
  // An inspecting node takes the facts the ramdisk found and becomes manageable, or inspect
  // failed (ironic/inspect.ts).
  inspect: { onFinished: onInspectFinished },
  // A cleaning node goes where it was headed (manageable after a manual clean, available after
  // provide), or clean failed with maintenance on (ironic/clean.ts); the sweeper then heals the
  // leases waiting for it onto other nodes (leases/heal-sweep.ts).
  clean: { onFinished: onCleanFinished },
  // The node lock an exclusive vendor method took is released.
  vendor: { onFinished: onJobFinished },
  // Whoever queued these waits for the job itself: the API call (`waitForJob`) or a workflow
  // (its task token).
  boot_device: {},
  boot_device_get: {},
  // A deploying node waits for its ramdisk's call-back once the agent took the job; an Ironic
  // deploy ends active or deploy failed (ironic/deploy.ts); a Drydock deploy's job answers its
  // workflow.
  deploy_node: { onClaimed: onDeployClaimed, onFinished: onDeployFinished },
  // A Commissaire host moves on to bootstrapping, active or failed (commissaire/investigate.ts);
  // an `ssh_run` of a cluster operation only answers its workflow.
  ssh_investigate: { onFinished: onHostJobFinished },
  ssh_run: { onFinished: onHostJobFinished },
  // A GET (or a container manager's call) of a URL inside the site: whoever queued it waits for
  // the answer within its own function's time (agent/fetch.ts), except a container manager's node
  // registration or removal, whose result moves its Commissaire host on (commissaire/investigate.ts).
  fetch: { onFinished: onHostJobFinished },
};

/** `POST …/agent/jobs/claim`: a job given up on the way is settled by its kind's handler. */
export const claimJobs = (deps: Ports, auth: Principal | undefined, req: queue.ClaimRequest, version?: string): Promise<Job[]> =>
  queue.claimJobs(deps, auth, req, JOB_KINDS, version);

/** `POST …/agent/jobs/{job_id}/result`: the job is final, then its kind's handler runs. */
export const finishJob = (deps: Ports, auth: Principal | undefined, id: string, req: queue.ResultRequest): Promise<Job> =>
  queue.finishJob(deps, auth, id, req, JOB_KINDS);
