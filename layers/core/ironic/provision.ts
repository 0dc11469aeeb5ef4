import * as z from 'zod';
import { enqueueJob } from '../agent/enqueue.ts';
import { ConcurrentModificationError, ConflictError, ValidationError } from '../errors.ts';
import { type Principal, requireAdmin } from '../identity/identity.ts';
import type { BmcInfo } from '../inventory/node.ts';
import type { Ports } from '../ports.ts';
import { checkCleanable, checkCleanSteps, cleanPayload, cleansOnProvide } from './clean.ts';
import { checkInspectable, inspectPayload } from './inspect.ts';
import { getIronicNode, siteOf } from './nodes.ts';

/**
 * Ironic's provision verbs (`PUT /v1/nodes/{node}/states/provision`, upstream-apis.md §3.7) for
 * the part of the state machine that needs no image: enrolment (`manage`: verifying the BMC
 * credentials by reading the power state through the site's agent), `provide` (manageable →
 * available, through automated cleaning when it is on: `clean.ts`), `adopt` (a node already
 * running its workload → active), back to `manageable`, `abort` of a verification still waiting
 * for an agent, `inspect` (the site's agent boots the Slipway ramdisk on the node: `inspect.ts`)
 * and manual `clean` (the ramdisk erases the node's disks: `clean.ts`).
 * Deploying and tearing down are Drydock tasks here, and the verbs for them say so.
 *
 * The version-checked write of the new state is the check: of parallel requests exactly one
 * moves the node, the others find it in a state the verb cannot start from (400, as upstream's
 * InvalidStateRequested), so a verification is queued once.
 */

/**
 * Verb → from-state → to-state (`verifying`, `inspecting` and `cleaning` move on when the agent's
 * job comes back). Upstream's `abort` of an inspection is for `inspect wait` only, and of a
 * cleaning for `clean wait` only, which have no use here. `provide` goes through `cleaning` when
 * automated cleaning is on for the node (`cleansOnProvide`).
 */
const TRANSITIONS: Record<string, Record<string, string>> = {
  manage: { enroll: 'verifying', available: 'manageable', 'clean failed': 'manageable', 'inspect failed': 'manageable', 'adopt failed': 'manageable' },
  provide: { manageable: 'available' },
  adopt: { manageable: 'active', 'adopt failed': 'active' },
  // Ours: a verification waits for the site's agent; while none comes, abort gives the node back.
  abort: { verifying: 'enroll' },
  inspect: { manageable: 'inspecting', 'inspect failed': 'inspecting' },
  clean: { manageable: 'cleaning' },
};
/** States the site's agent moves on from, with where they go when it succeeds, and the job it gets. */
const AGENT_STATES: Record<string, { target: string; kind: string }> = {
  verifying: { target: 'manageable', kind: 'power_state' },
  inspecting: { target: 'manageable', kind: 'inspect' },
  cleaning: { target: 'manageable', kind: 'clean' },
};

/** Upstream verbs that need a deploy ramdisk, an image or cleaning steps: not here. */
const ELSEWHERE: Record<string, string> = {
  active: 'deploying is a Drydock task here: POST /api/v1.0/tasks {"action": "deploy_nodes", ...}',
  deploy: 'deploying is a Drydock task here: POST /api/v1.0/tasks {"action": "deploy_nodes", ...}',
  rebuild: 'deploying is a Drydock task here: POST /api/v1.0/tasks {"action": "deploy_nodes", ...}',
  deleted: 'tearing down is a Drydock task here: POST /api/v1.0/tasks {"action": "destroy_nodes", ...}',
  undeploy: 'tearing down is a Drydock task here: POST /api/v1.0/tasks {"action": "destroy_nodes", ...}',
  rescue: 'there is no rescue ramdisk here',
  unrescue: 'there is no rescue ramdisk here',
  service: 'there are no service steps here',
  unhold: 'there are no hold states here',
};

export const ProvisionRequest = z.strictObject({
  target: z.string().min(1),
  // Upstream's other keys, accepted so that a client sending them gets the verb's own answer.
  configdrive: z.unknown().optional(),
  clean_steps: z.unknown().optional(),
  deploy_steps: z.unknown().optional(),
  service_steps: z.unknown().optional(),
  rescue_password: z.unknown().optional(),
  disable_ramdisk: z.unknown().optional(),
  runbook: z.unknown().optional(),
});

/** Returns the node's uuid (for the 202's Location). */
export async function setProvisionState(deps: Ports, auth: Principal | undefined, ident: string, req: z.infer<typeof ProvisionRequest>): Promise<string> {
  requireAdmin(auth);
  const verb = req.target;
  // Own keys only: a target such as "toString" is just unknown.
  if (Object.hasOwn(ELSEWHERE, verb)) throw new ValidationError(`The provision action "${verb}" is not supported: ${ELSEWHERE[verb]}`, 'INVALID_PARAMETER_VALUE');
  const table = Object.hasOwn(TRANSITIONS, verb) ? TRANSITIONS[verb] : undefined;
  if (!table) throw new ValidationError(`Invalid provision target "${verb}"; one of: ${[...Object.keys(TRANSITIONS), ...Object.keys(ELSEWHERE)].join(', ')}`, 'INVALID_PARAMETER_VALUE');
  // Upstream checks the steps before the node: 400 whatever its state.
  if (verb === 'clean') checkCleanSteps(req.clean_steps);
  else if (req.clean_steps !== undefined) {
    throw new ValidationError('"clean_steps" is only valid when setting target provision state to clean or service', 'INVALID_PARAMETER_VALUE');
  }
  for (let attempt = 0; attempt < 5; attempt++) {
    const node = await getIronicNode(deps, auth, ident);
    if (!node.bmc) throw new ValidationError(`Node ${ident} has no BMC registered; POST /v1/nodes registers one`, 'INVALID_PARAMETER_VALUE');
    const from = node.bmc.provision_state;
    let to = Object.hasOwn(table, from) ? table[from] : undefined;
    if (!to) throw new ValidationError(`The requested action "${verb}" can not be performed on node "${node.id}" while it is in state "${from}".`, 'INVALID_STATE_REQUESTED');
    // Automated cleaning: the node erases its disks on the way to `available`.
    const automated = verb === 'provide' && cleansOnProvide(deps, node.bmc);
    if (automated) to = 'cleaning';
    if (to === 'inspecting') checkInspectable({ ...node, bmc: node.bmc });
    if (to === 'cleaning') checkCleanable({ ...node, bmc: node.bmc });
    const agent = Object.hasOwn(AGENT_STATES, to) ? AGENT_STATES[to] : undefined;
    const bmc: BmcInfo = {
      ...node.bmc,
      provision_state: to,
      target_provision_state: automated ? 'available' : (agent?.target ?? null),
      provision_updated_at: deps.clock.now().toISOString(),
      ...(agent ? { last_error: null } : {}),
    };
    try {
      await deps.nodes.update(node.id, node.version, { bmc });
    } catch (err) {
      if (err instanceof ConcurrentModificationError) continue;
      throw err;
    }
    if (agent?.kind === 'power_state') {
      await enqueueJob(deps, { site: siteOf(bmc), kind: 'power_state', node_id: node.id, payload: { driver: bmc.driver, driver_info: bmc.driver_info } });
    } else if (agent?.kind === 'inspect') {
      const payload = await inspectPayload(deps, { ...node, bmc });
      await enqueueJob(deps, { site: siteOf(bmc), kind: 'inspect', node_id: node.id, payload: { ...payload } });
    } else if (agent?.kind === 'clean') {
      const payload = await cleanPayload(deps, { ...node, bmc });
      await enqueueJob(deps, { site: siteOf(bmc), kind: 'clean', node_id: node.id, payload: { ...payload } });
    }
    return node.id;
  }
  throw new ConflictError(`Node ${ident} was modified concurrently; please retry`, 'NODE_LOCKED');
}
