import * as z from '../util/zod.ts';
import { enqueueJob } from '../agent/enqueue.ts';
import { ConcurrentModificationError, ConflictError, ForbiddenError, ValidationError } from '../errors.ts';
import { isAdmin, type Principal, requireAuth } from '../identity/identity.ts';
import type { BmcInfo, Node } from '../inventory/node.ts';
import type { Ports } from '../ports.ts';
import { checkCleanable, checkCleanSteps, cleanPayload, cleansOnProvide } from './clean.ts';
import { checkConfigDrive, checkDeployable, deployPayload } from './deploy.ts';
import { checkInspectable, inspectPayload } from './inspect.ts';
import { getIronicNode, siteOf } from './nodes.ts';

/**
 * Ironic's provision verbs (`PUT /v1/nodes/{node}/states/provision`, upstream-apis.md §3.7):
 * enrolment (`manage`: verifying the BMC credentials by reading the power state through the
 * site's agent), `provide` (manageable → available, through automated cleaning when it is on:
 * `clean.ts`), `adopt` (a node already running its workload → active), back to `manageable`,
 * `abort` of a verification still waiting for an agent, `inspect` (the site's agent boots the
 * Slipway ramdisk on the node: `inspect.ts`), manual `clean` (the ramdisk erases the node's disks:
 * `clean.ts`), and the deploy verbs: `active`/`deploy` and `rebuild` (the ramdisk writes the
 * image of `instance_info`: `deploy.ts`), `deleted`/`undeploy` (deleting → cleaning →
 * available).
 *
 * Who: administrators every verb; a member of the project whose active lease holds the node the
 * deploy verbs (`active`/`deploy`, `rebuild`, `deleted`/`undeploy`) on that node; readers none.
 *
 * The version-checked write of the new state is the check: of parallel requests exactly one
 * moves the node, the others find it in a state the verb cannot start from (400, as upstream's
 * InvalidStateRequested), so a job is queued once.
 */

/**
 * Verb → from-state → to-state (`verifying`, `inspecting`, `cleaning` and `deploying` move on
 * when the agent's job comes back). Upstream's `abort` of an inspection is for `inspect wait`
 * only, and of a cleaning for `clean wait` only, which have no use here. `provide` and the
 * undeploy go through `cleaning` when automated cleaning is on for the node (`cleansOnProvide`).
 */
const DEPLOY = { available: 'deploying', 'deploy failed': 'deploying' };
const UNDEPLOY = { active: 'deleting', 'deploy failed': 'deleting', 'wait call-back': 'deleting', error: 'deleting' };
const TRANSITIONS: Record<string, Record<string, string>> = {
  manage: { enroll: 'verifying', available: 'manageable', 'clean failed': 'manageable', 'inspect failed': 'manageable', 'adopt failed': 'manageable' },
  provide: { manageable: 'available' },
  adopt: { manageable: 'active', 'adopt failed': 'active' },
  // Ours: a verification waits for the site's agent; while none comes, abort gives the node back.
  abort: { verifying: 'enroll' },
  inspect: { manageable: 'inspecting', 'inspect failed': 'inspecting' },
  clean: { manageable: 'cleaning' },
  active: DEPLOY,
  deploy: DEPLOY,
  rebuild: { active: 'deploying', 'deploy failed': 'deploying', error: 'deploying' },
  deleted: UNDEPLOY,
  undeploy: UNDEPLOY,
};
/** The verbs a lessee (a member of the project whose active lease holds the node) may run. */
const LESSEE_VERBS = new Set(['active', 'deploy', 'rebuild', 'deleted', 'undeploy']);
/** States the site's agent moves on from, with where they go when it succeeds, and the job it gets. */
const AGENT_STATES: Record<string, { target: string; kind: string }> = {
  verifying: { target: 'manageable', kind: 'power_state' },
  inspecting: { target: 'manageable', kind: 'inspect' },
  cleaning: { target: 'manageable', kind: 'clean' },
  deploying: { target: 'active', kind: 'deploy_node' },
};

/** Upstream verbs that need what is not here. */
const ELSEWHERE: Record<string, string> = {
  rescue: 'there is no rescue ramdisk here',
  unrescue: 'there is no rescue ramdisk here',
  service: 'there are no service steps here',
  unhold: 'there are no hold states here',
};

export const ProvisionRequest = z.strictObject({
  target: z.string().check(z.minLength(1)),
  // Upstream's other keys, accepted so that a client sending them gets the verb's own answer.
  configdrive: z.optional(z.unknown()),
  clean_steps: z.optional(z.unknown()),
  deploy_steps: z.optional(z.unknown()),
  service_steps: z.optional(z.unknown()),
  rescue_password: z.optional(z.unknown()),
  disable_ramdisk: z.optional(z.unknown()),
  runbook: z.optional(z.unknown()),
});

/** Returns the node's uuid (for the 202's Location). */
export async function setProvisionState(deps: Ports, auth: Principal | undefined, ident: string, req: z.infer<typeof ProvisionRequest>): Promise<string> {
  const who = requireAuth(auth);
  const verb = req.target;
  if (!isAdmin(who)) {
    // The node must be visible (404 otherwise, from getIronicNode below) and the verb a lessee's.
    if (!(LESSEE_VERBS.has(verb) && who.roles.includes('member'))) {
      throw new ForbiddenError(`Access was denied to the following resource: baremetal:node:set_provision_state (${LESSEE_VERBS.has(verb) ? 'needs the member role on the node\'s lease' : `"${verb}" is for administrators`})`);
    }
  }
  // Own keys only: a target such as "toString" is just unknown.
  if (Object.hasOwn(ELSEWHERE, verb)) throw new ValidationError(`The provision action "${verb}" is not supported: ${ELSEWHERE[verb]}`, 'INVALID_PARAMETER_VALUE');
  const table = Object.hasOwn(TRANSITIONS, verb) ? TRANSITIONS[verb] : undefined;
  if (!table) throw new ValidationError(`Invalid provision target "${verb}"; one of: ${[...Object.keys(TRANSITIONS), ...Object.keys(ELSEWHERE)].join(', ')}`, 'INVALID_PARAMETER_VALUE');
  // Upstream checks the steps before the node: 400 whatever its state.
  if (verb === 'clean') checkCleanSteps(req.clean_steps);
  else if (req.clean_steps !== undefined) {
    throw new ValidationError('"clean_steps" is only valid when setting target provision state to clean or service', 'INVALID_PARAMETER_VALUE');
  }
  const deploys = table === DEPLOY || verb === 'rebuild';
  if (req.configdrive !== undefined && !deploys) throw new ValidationError(`"configdrive" is only valid when setting target provision state to active or rebuild`, 'INVALID_PARAMETER_VALUE');
  const configdrive = deploys ? checkConfigDrive(req.configdrive) : undefined;
  for (let attempt = 0; attempt < 5; attempt++) {
    const node = await getIronicNode(deps, auth, ident);
    if (!node.bmc) throw new ValidationError(`Node ${ident} has no BMC registered; POST /v1/nodes registers one`, 'INVALID_PARAMETER_VALUE');
    const from = node.bmc.provision_state;
    let to = Object.hasOwn(table, from) ? table[from] : undefined;
    if (!to) throw new ValidationError(`The requested action "${verb}" can not be performed on node "${node.id}" while it is in state "${from}".`, 'INVALID_STATE_REQUESTED');
    // Automated cleaning: the node erases its disks on the way to `available`.
    const undeploy = to === 'deleting';
    const automated = (verb === 'provide' || undeploy) && cleansOnProvide(deps, node.bmc);
    if (automated) to = 'cleaning';
    else if (undeploy) to = 'available';
    if (to === 'inspecting') checkInspectable({ ...node, bmc: node.bmc });
    if (to === 'cleaning') checkCleanable({ ...node, bmc: node.bmc });
    const image = to === 'deploying' ? checkDeployable({ ...node, bmc: node.bmc }) : undefined;
    const agent = Object.hasOwn(AGENT_STATES, to) ? AGENT_STATES[to] : undefined;
    const at = deps.clock.now().toISOString();
    const bmc: BmcInfo = {
      ...node.bmc,
      provision_state: to,
      target_provision_state: automated ? 'available' : (agent?.target ?? null),
      provision_updated_at: at,
      ...(agent ? { last_error: null } : {}),
    };
    try {
      // An undeploy passes through `deleting` (upstream's tear-down) on its way to cleaning. The
      // first write is the check (a racing request loses); the second only moves on from the
      // `deleting` this request wrote.
      if (undeploy) {
        const deleting = await deps.nodes.update(node.id, node.version, { bmc: { ...node.bmc, provision_state: 'deleting', target_provision_state: 'available', provision_updated_at: at } });
        await leaveDeleting(deps, deleting, bmc, at);
      } else await deps.nodes.update(node.id, node.version, { bmc });
    } catch (err) {
      if (err instanceof ConcurrentModificationError) continue;
      throw err;
    }
    const site = siteOf(bmc);
    if (agent?.kind === 'power_state') {
      await enqueueJob(deps, { site, kind: 'power_state', node_id: node.id, payload: { driver: bmc.driver, driver_info: bmc.driver_info } });
    } else if (agent?.kind === 'inspect') {
      await enqueueJob(deps, { site, kind: 'inspect', node_id: node.id, payload: { ...(await inspectPayload(deps, { ...node, bmc })) } });
    } else if (agent?.kind === 'clean') {
      await enqueueJob(deps, { site, kind: 'clean', node_id: node.id, payload: { ...(await cleanPayload(deps, { ...node, bmc })) } });
    } else if (agent?.kind === 'deploy_node') {
      await enqueueJob(deps, { site, kind: 'deploy_node', node_id: node.id, payload: await deployPayload(deps, { ...node, bmc }, image!, configdrive) });
    } else if (undeploy) {
      // Without cleaning, tearing down is powering off (the disk keeps the tenant's data).
      await enqueueJob(deps, { site, kind: 'power', node_id: node.id, payload: { driver: bmc.driver, driver_info: bmc.driver_info, target: 'power off' } });
    }
    return node.id;
  }
  throw new ConflictError(`Node ${ident} was modified concurrently; please retry`, 'NODE_LOCKED');
}

/**
 * `deleting` → the undeploy's next state, for the `deleting` written at `at`: re-read after a
 * concurrent write (e.g. a power job's result), so the node never stays `deleting`.
 */
async function leaveDeleting(deps: Ports, written: Node, next: BmcInfo, at: string): Promise<void> {
  let node: Node | undefined = written;
  for (let attempt = 0; attempt < 10 && node?.bmc; attempt++) {
    if (node.bmc.provision_state !== 'deleting' || node.bmc.provision_updated_at !== at) return;
    try {
      // The rest of the node as it is now (the power state a job recorded), the provision fields as planned.
      const { provision_state, target_provision_state, provision_updated_at, last_error } = next;
      await deps.nodes.update(node.id, node.version, { bmc: { ...node.bmc, provision_state, target_provision_state, provision_updated_at, last_error } });
      return;
    } catch (err) {
      if (!(err instanceof ConcurrentModificationError)) throw err;
      node = await deps.nodes.get(written.id);
    }
  }
}
