import { ConcurrentModificationError, NotEnoughHostsError } from '../errors.ts';
import type { Ports } from '../ports.ts';
import { log } from '../util/log.ts';
import type { Node } from '../inventory/node.ts';
import { CalendarPlan } from './calendar.ts';
import { allocationView } from './candidates.ts';
import { pluginFor } from './host-plugin.ts';
import type { Lease, Reservation } from './model.ts';
import { leaseNotice } from './service.ts';
import { notify } from './triggers.ts';

/**
 * Healing (Blazar's `heal_reservations`): a lease that has not started, one of whose nodes went
 * out of service (in maintenance after a failed erase, or failed), gets another free node that
 * matches in its place, in the same transaction that moves the calendar entries (the write is
 * the check, as for a create). Where there is none, the reservation is marked
 * `missing_resources` and the lease `degraded`, keeping its nodes (an operator may yet repair
 * them); the start tries once more and, still short, fails the lease with the reason.
 *
 * It runs when an erase fails (agent/kinds.ts: every lease waiting for the node) and at each
 * lease start (engine.ts `beginEvent`), which also covers nodes put in maintenance by hand.
 * A running lease is never healed: its nodes are never swapped (upstream bug #1692805).
 */
export interface Healed {
  /** The lease as stored after healing. */
  lease: Lease;
  /** Nodes swapped, per reservation. */
  replaced: { reservation_id: string; lost: string[]; added: string[] }[];
  /** Why a reservation is still short of nodes (the start fails with it); undefined when none is. */
  problem?: string;
}

const ATTEMPTS = 5;

export async function healLease(deps: Ports, leaseId: string): Promise<Healed | undefined> {
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    const lease = await deps.leases.get(leaseId);
    // Only a lease that has not started: its start event not yet taken.
    if (!lease || lease.status !== 'PENDING') return undefined;
    const losses = await lossesOf(deps, lease);
    if (losses.every((l) => l.length === 0) && !lease.degraded) return { lease, replaced: [] };
    try {
      return await reallocate(deps, lease, losses, attempt);
    } catch (err) {
      if (!(err instanceof ConcurrentModificationError)) throw err;
    }
  }
  throw new ConcurrentModificationError(`Lease ${leaseId} could not be healed: its nodes kept changing`);
}

/** Per reservation, its nodes out of service. */
const lossesOf = (deps: Ports, lease: Lease) => Promise.all(lease.reservations.map(async (r) => (await pluginFor(r.resource_type).lostResources?.(deps, r)) ?? []));

/**
 * Whether `healLease` would change the lease (a node out of service, or the lease degraded),
 * reading only: a start prepared ahead of its time is prepared only when it would not
 * (engine.ts `prepareEvent`), so that healing stays a step of the start itself.
 */
export async function needsHealing(deps: Ports, lease: Lease): Promise<boolean> {
  if (lease.status !== 'PENDING') return false;
  return lease.degraded || (await lossesOf(deps, lease)).some((l) => l.length > 0);
}

async function reallocate(deps: Ports, lease: Lease, losses: string[][], attempt: number): Promise<Healed> {
  const stamp = deps.clock.now().toISOString();
  const start = new Date(lease.start_date);
  const end = new Date(lease.end_date);
  // The nodes the lease holds and candidates for the lost ones, as a create reads them
  // (candidates.ts); when some reservation is still short, once more with the whole inventory.
  const wants = lease.reservations.flatMap((res, i) =>
    losses[i]!.length === 0
      ? []
      : [{ plugin: pluginFor(res.resource_type), req: { params: res.params, start, end, reservationId: res.id, current: res.node_ids, replace: losses[i]!, active: false, config: deps.config, attempt } }],
  );
  const view = await allocationView(deps, wants, attempt > 0);
  let planned = plan(deps, lease, losses, attempt, stamp, view.nodes);
  if (planned.problems.length > 0 && !view.complete) planned = plan(deps, lease, losses, attempt, stamp, await deps.nodes.list({ consistent: attempt > 0 }));
  const { names, cal, replaced, problems, reservations } = planned;
  const degraded = reservations.some((r) => r.missing_resources);
  const problem = problems.length > 0 ? problems.join('; ') : undefined;
  if (degraded === lease.degraded && reservations.every((r, i) => r === lease.reservations[i])) return { lease, replaced, problem };
  const next: Lease = { ...lease, reservations, degraded, version: lease.version + 1, updated_at: stamp };
  await deps.leases.commit(next, lease, cal.changes());
  const swaps = replaced.map((r) => ({ ...r, lost: r.lost.map((id) => names.get(id) ?? id), added: r.added.map((id) => names.get(id) ?? id) }));
  log.info('lease healed', { lease_id: lease.id, replaced: swaps.length, degraded });
  // Its project hears of it: the lease's machines changed, or it will not start as planned.
  await notify(deps, 'lease.heal', { ...leaseNotice(next), replaced: swaps, ...(problem ? { status_reason: problem } : {}) });
  return { lease: next, replaced, problem };
}

/** The healed reservations planned over `nodes`. */
function plan(deps: Ports, lease: Lease, losses: string[][], attempt: number, stamp: string, nodes: Node[]) {
  const start = new Date(lease.start_date);
  const end = new Date(lease.end_date);
  const names = new Map(nodes.map((n) => [n.id, n.name]));
  const cal = new CalendarPlan(nodes);
  const replaced: Healed['replaced'] = [];
  const problems: string[] = [];
  const reservations = lease.reservations.map((res, i): Reservation => {
    const lost = losses[i]!;
    if (lost.length === 0) return res.missing_resources ? { ...res, missing_resources: false, updated_at: stamp } : res;
    const plugin = pluginFor(res.resource_type);
    try {
      const ids = plugin.allocate({ params: res.params, start, end, nodes: cal.view(), reservationId: res.id, current: res.node_ids, replace: lost, active: false, config: deps.config, attempt });
      cal.assign(res.id, res.node_ids, ids, { lease_id: lease.id, project_id: lease.project_id, start: lease.start_date, end: lease.end_date });
      replaced.push({ reservation_id: res.id, lost, added: ids.filter((id) => !res.node_ids.includes(id)) });
      return { ...res, node_ids: ids, missing_resources: false, updated_at: stamp };
    } catch (err) {
      if (!(err instanceof NotEnoughHostsError)) throw err;
      const which = lost.map((id) => names.get(id) ?? id).join(', ');
      problems.push(`node(s) ${which} of reservation ${res.id} are out of service (maintenance or failed) and no other node can take their place: ${err.message}`);
      return res.missing_resources ? res : { ...res, missing_resources: true, updated_at: stamp };
    }
  });
  return { names, cal, replaced, problems, reservations };
}

/** The leases not yet started that still count on `node` (its calendar entries for them). */
export function leasesWaitingFor(node: Node, now: number): Set<string> {
  return new Set(
    Object.values(node.allocations)
      .filter((a) => !a.granted_at && !a.released_at && Date.parse(a.end) > now)
      .map((a) => a.lease_id),
  );
}

/**
 * After a node went out of service: heals every lease not yet started that holds it. Best
 * effort (the starts heal again): a failure is logged, never the caller's. `node` may come from
 * an index (eventually consistent): each heal reads the lease and the nodes again, and its
 * transaction is the check.
 */
export async function healLeasesOfNode(deps: Ports, node: Node): Promise<void> {
  for (const id of leasesWaitingFor(node, deps.clock.now().getTime())) {
    try {
      await healLease(deps, id);
    } catch (err) {
      log.error('lease not healed', { lease_id: id, node_id: node.id, error: (err as Error).name });
    }
  }
}
