import { randomUUID } from 'node:crypto';
import * as z from '../util/zod.ts';
import {
  ConcurrentModificationError,
  ConflictError,
  NotEnoughHostsError,
  NotFoundError,
  ValidationError,
} from '../errors.ts';
import { canSeeProject, isAdmin, type Principal, requireAuth, requireWriter } from '../identity/identity.ts';
import type { AllocationChange, KeysetRange, Ports } from '../ports.ts';
import type { Node } from '../inventory/node.ts';
import { idProblem } from '../util/bounds.ts';
import { parseBlazarDate, truncateToMinute } from '../util/time.ts';
import { CalendarPlan } from './calendar.ts';
import { withAllocationView } from './candidates.ts';
import { pluginFor } from './host-plugin.ts';
import { armLease, disarmLease, notify } from './triggers.ts';
import {
  type Lease,
  type LeaseEvent,
  type EventType,
  type Reservation,
  sortEvents,
  STABLE_LEASE_STATUSES,
} from './model.ts';
import { checkHostCap, checkLeaseDuration, endedEntries, hostCap, peakHosts, type ProjectUsage, type UsageGuard } from './usage.ts';

/**
 * Lease use-cases: create, update, delete, get, list (upstream-apis.md §4.4–4.7). Every write
 * is one transaction that also carries the node calendar changes with a per-node version
 * check, so two requests can never book the same node for overlapping periods; a lost race
 * is retried a bounded number of times with fresh reads, then answered 409.
 */

const dateField = (name: string) => z.unknown().check(z.refine((v) => v !== undefined && v !== null, { message: `Missing parameter ${name}` }));

/** A lease name holds no control characters (it is shown by every client and logged). */
const noControl = (v: string) => idProblem(v, Number.MAX_SAFE_INTEGER) === undefined;
const NAME_CONTROL = 'name must not contain control characters';

// Unknown fields are refused (strict objects): the upstream clients send only these, and a
// misspelt field silently ignored would be a lease other than the one asked for.
export const LeaseCreate = z.strictObject({
  name: z
    .string({ error: (i) => (i.input === undefined ? 'Missing parameter name' : 'name must be a string') })
    .check(z.trim(), z.minLength(1, 'Missing parameter name'), z.maxLength(80, 'name must be at most 80 characters'), z.refine(noControl, NAME_CONTROL)),
  start_date: dateField('start_date'),
  end_date: dateField('end_date'),
  before_end_date: z.optional(z.unknown()),
  reservations: z._default(
    z.array(z.looseObject({ resource_type: z.string({ error: 'Missing parameter resource_type' }) }), { error: 'reservations must be a list of objects' }),
    [],
  ),
  events: z._default(z.array(z.unknown(), { error: 'events must be a list' }), []),
});
export type LeaseCreate = z.infer<typeof LeaseCreate>;

export const LeaseUpdate = z.strictObject({
  name: z.optional(
    z.string({ error: 'name must be a string' }).check(z.trim(), z.minLength(1, 'name must not be empty'), z.maxLength(80), z.refine(noControl, NAME_CONTROL)),
  ),
  start_date: z.optional(z.unknown()),
  end_date: z.optional(z.unknown()),
  before_end_date: z.optional(z.unknown()),
  reservations: z.optional(
    z.array(z.looseObject({ id: z.string({ error: 'Missing parameter reservation ID' }) }), { error: 'reservations must be a list of objects' }),
  ),
});
export type LeaseUpdate = z.infer<typeof LeaseUpdate>;

const iso = (d: Date) => d.toISOString();

function event(leaseId: string, type: EventType, time: Date, now: string): LeaseEvent {
  return { id: randomUUID(), lease_id: leaseId, event_type: type, time: iso(time), status: 'UNDONE', created_at: now, updated_at: null };
}

/** Default before_end time: end − minutes_before_end_lease, clamped to start; none when 0. */
function defaultBeforeEnd(start: Date, end: Date, minutes: number): Date | undefined {
  if (minutes <= 0) return undefined;
  return new Date(Math.max(start.getTime(), end.getTime() - minutes * 60_000));
}

function parseBeforeEnd(raw: unknown, start: Date, end: Date, now: Date): Date {
  const t = parseBlazarDate(raw, 'before_end_date', now);
  // Upstream answers 403 here; a date outside the lease is a client mistake (DESIGN.md §10).
  if (!(t > start && t < end)) {
    throw new ValidationError(`Datetime is out of lease limits: before_end_date must be after start_date and before end_date`, 'OUT_OF_LEASE_LIMITS');
  }
  return t;
}

/**
 * Runs `op` again with fresh reads when it lost a race, a bounded number of times; then the
 * race is reported as `exhausted()` (a 409).
 */
async function withRetries<T>(deps: Ports, op: (attempt: number) => Promise<T>, exhausted: () => Error): Promise<T> {
  const attempts = deps.config.allocationAttempts;
  for (let attempt = 0; ; attempt++) {
    try {
      return await op(attempt);
    } catch (err) {
      if (!(err instanceof ConcurrentModificationError)) throw err;
      if (attempt + 1 >= attempts) throw exhausted();
      // Jittered backoff so that racing writers do not collide again in lock-step.
      await new Promise((r) => setTimeout(r, Math.random() * 25 * 2 ** Math.min(attempt, 5)));
    }
  }
}

export async function createLease(deps: Ports, auth: Principal | undefined, input: LeaseCreate): Promise<Lease> {
  const who = requireWriter(auth);
  const now = deps.clock.now();
  const nowMinute = truncateToMinute(now);
  const start = parseBlazarDate(input.start_date, 'start_date', now);
  const end = parseBlazarDate(input.end_date, 'end_date', now);
  if (start < nowMinute) throw new ValidationError('Start date must be later than current date', 'INVALID_DATE');
  if (end <= start) throw new ValidationError('End date must be later than start date.', 'INVALID_DATE');
  const plans = input.reservations.map((r) => {
    const plugin = pluginFor(r.resource_type);
    return { plugin, params: plugin.validateCreate(r) };
  });
  for (const p of plans) p.params = (await p.plugin.sealParams?.(deps, p.params)) ?? p.params;
  const beforeEnd =
    input.before_end_date !== undefined && input.before_end_date !== null
      ? parseBeforeEnd(input.before_end_date, start, end, now)
      : defaultBeforeEnd(start, end, deps.config.minutesBeforeEndLease);
  if (input.events.length > 0) {
    throw new ValidationError('Custom lease events are not supported; start, end and before_end events are created from the dates', 'INVALID_EVENTS');
  }
  // Usage enforcement, after the request's own rules (upstream runs it after validation too).
  checkLeaseDuration(deps.config, who.project_id, start, end, 'create');
  const cap = hostCap(deps.config, who.project_id);

  const created = iso(now);
  const leaseId = randomUUID();
  const unsorted = [event(leaseId, 'start_lease', start, created), event(leaseId, 'end_lease', end, created)];
  if (beforeEnd) unsorted.push(event(leaseId, 'before_end_lease', beforeEnd, created));
  const events = sortEvents(unsorted);
  const reservationIds = plans.map(() => randomUUID());

  return withRetries(deps, async (attempt) => {
    // The project's usage is read before the calendars; the commit's version check makes the
    // cap hold at the moment of the write (see usage.ts).
    const usage = cap === undefined ? undefined : await deps.leases.projectUsage(who.project_id);
    const othersPeak = usage ? peakHosts(usage.entries, start, end, deps.clock.now(), leaseId) : 0;
    const plan = (nodes: Node[]) => {
      let taken = 0;
      const cal = new CalendarPlan(nodes);
      const reservations: Reservation[] = plans.map(({ plugin, params }, i) => {
        const id = reservationIds[i]!;
        const limit = cap === undefined ? undefined : cap - othersPeak - taken;
        const nodeIds = plugin.allocate({ params, start, end, nodes: cal.view(), reservationId: id, current: [], active: false, config: deps.config, attempt, limit });
        taken += nodeIds.length;
        cal.assign(id, [], nodeIds, { lease_id: leaseId, project_id: who.project_id, start: iso(start), end: iso(end) });
        return {
          id,
          lease_id: leaseId,
          resource_type: plugin.resourceType,
          resource_id: id,
          status: 'pending' as const,
          missing_resources: false,
          resources_changed: false,
          params,
          node_ids: nodeIds,
          created_at: created,
          updated_at: null,
        };
      });
      return { cal, reservations, taken };
    };
    // The candidates, not the fleet (candidates.ts); the commit's version checks stay the check.
    const wants = plans.map(({ plugin, params }, i) => ({
      plugin,
      req: { params, start, end, reservationId: reservationIds[i]!, current: [], active: false, config: deps.config, attempt },
    }));
    const { cal, reservations, taken } = await withAllocationView(deps, wants, attempt > 0, plan);
    const lease: Lease = {
      id: leaseId,
      name: input.name,
      user_id: who.user_id,
      project_id: who.project_id,
      trust_id: null,
      status: 'PENDING',
      degraded: false,
      start_date: iso(start),
      end_date: iso(end),
      created_at: created,
      updated_at: null,
      version: 1,
      reservations,
      events,
    };
    if (cap !== undefined) checkHostCap(cap, who.project_id, taken, othersPeak, 'create');
    await deps.leases.commit(lease, undefined, cal.changes(), usageGuard(usage, deps.clock.now()));
    return lease;
  }, busyHosts).then(async (lease) => {
    // Only now that the lease and its reservations are stored may its events fire.
    await armLease(deps, lease);
    await notify(deps, 'lease.create', leaseNotice(lease));
    return lease;
  });
}

/** The notification payload: what identifies the lease and where it stands. */
export function leaseNotice(lease: Lease): Record<string, unknown> {
  return {
    lease_id: lease.id,
    lease_name: lease.name,
    project_id: lease.project_id,
    user_id: lease.user_id,
    status: lease.status,
    start_date: lease.start_date,
    end_date: lease.end_date,
    reservations: lease.reservations.map((r) => ({ id: r.id, resource_type: r.resource_type, status: r.status, node_ids: r.node_ids })),
  };
}

/** The compare-and-set a booking carries when the project's usage was read for the cap. */
const usageGuard = (usage: ProjectUsage | undefined, now: Date): UsageGuard | undefined =>
  usage && { expectedVersion: usage.version, prune: endedEntries(usage.entries, now) };

const busyHosts = () =>
  new NotEnoughHostsError('Not enough hosts available: the hosts kept changing under concurrent requests; please retry');
const busyLease = () => new ConcurrentModificationError('The lease or its hosts kept changing under concurrent requests; please retry');

/** A lease the caller may see, else 404 (never 403: existence is not disclosed). */
export async function getLease(deps: Ports, auth: Principal | undefined, id: string): Promise<Lease> {
  const who = requireAuth(auth);
  // An id no lease can have (over-long, control characters) is not looked up at all.
  const lease = idProblem(id) ? undefined : await deps.leases.get(id);
  if (!lease || !canSeeProject(who, lease.project_id)) throw new NotFoundError(`Object with {'lease_id': '${clip(id)}'} not found`);
  return lease;
}

/** An identifier as quoted back in a message: at most 64 characters. */
const clip = (id: string) => (id.length > 64 ? `${id.slice(0, 64)}…` : id);

export async function listLeases(deps: Ports, auth: Principal | undefined): Promise<Lease[]> {
  const who = requireAuth(auth);
  return deps.leases.list(isAdmin(who) ? undefined : who.project_id);
}

/** Most leases one name resolves to in a `?name=` list (names are not unique; clients want one). */
const MAX_NAMED = 100;

/**
 * The visible leases of one name (`GET /v1/leases?name=`): the name index, not the project's
 * whole list, which is what the `blazar` client reads to resolve a name.
 */
export async function findLeasesByName(deps: Ports, auth: Principal | undefined, name: string): Promise<Lease[]> {
  const who = requireAuth(auth);
  // A name no lease can have (over-long, control characters) is not looked up at all.
  if (name === '' || name.length > 80 || idProblem(name, Number.MAX_SAFE_INTEGER)) return [];
  return deps.leases.findByName(isAdmin(who) ? undefined : who.project_id, name, MAX_NAMED);
}

/** A window of the visible leases in id order (paging without reading them all). */
export async function pageLeases(deps: Ports, auth: Principal | undefined, range: KeysetRange): Promise<Lease[]> {
  const who = requireAuth(auth);
  // A marker no lease id can be is refused before it reaches a key condition.
  for (const marker of [range.after, range.before]) {
    if (marker !== undefined && idProblem(marker)) throw new ValidationError(`Invalid marker: ${idProblem(marker)}`, 'INVALID_MARKER');
  }
  return deps.leases.page(isAdmin(who) ? undefined : who.project_id, range);
}

export async function leaseVisible(deps: Ports, auth: Principal | undefined, id: string): Promise<boolean> {
  const who = requireAuth(auth);
  if (idProblem(id)) return false;
  const lease = await deps.leases.get(id);
  return lease !== undefined && canSeeProject(who, lease.project_id);
}

const eventRunning = (lease: Lease) => !STABLE_LEASE_STATUSES.includes(lease.status) || lease.events.some((e) => e.status === 'IN_PROGRESS');

/**
 * How long an update or delete waits for a running lease event to finish before answering 409.
 * A start takes well under a second, so a client that creates a lease starting now and changes
 * it at once is not refused; a long end (nodes powering off) still gets its 409.
 */
const SETTLE_MS = 5_000;

/** The lease once no event of it runs, or as it is after SETTLE_MS. */
async function settledLease(deps: Ports, auth: Principal | undefined, id: string): Promise<Lease> {
  const until = Date.now() + SETTLE_MS;
  for (;;) {
    const lease = await getLease(deps, auth, id);
    if (!eventRunning(lease) || Date.now() >= until) return lease;
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Updates and deletes wait for a running event (upstream bugs #1791741, #1820476): 409 meanwhile. */
function requireStable(lease: Lease, action: string): void {
  if (!STABLE_LEASE_STATUSES.includes(lease.status)) {
    throw new ConflictError(`Lease ${lease.id} is ${lease.status}; it cannot be ${action} until that finishes`, 'INVALID_STATUS');
  }
  const running = lease.events.find((e) => e.status === 'IN_PROGRESS');
  if (running) {
    throw new ConflictError(`Lease ${lease.id} is running its ${running.event_type} event; it cannot be ${action} until that finishes`, 'INVALID_STATUS');
  }
}

export async function updateLease(deps: Ports, auth: Principal | undefined, id: string, input: LeaseUpdate): Promise<Lease> {
  requireWriter(auth);
  let before: Lease | undefined;
  const updated = await withRetries(deps, async (attempt) => {
    const renameOnly = Object.keys(input).every((k) => k === 'name' || (input as Record<string, unknown>)[k] === undefined);
    const lease = renameOnly ? await getLease(deps, auth, id) : await settledLease(deps, auth, id);
    before = lease;
    const now = deps.clock.now();
    const nowMinute = truncateToMinute(now);
    const stamp = iso(now);
    const keys = Object.keys(input).filter((k) => (input as Record<string, unknown>)[k] !== undefined);
    if (keys.length === 0) return lease;

    const next: Lease = { ...lease, version: lease.version + 1, updated_at: stamp };
    if (input.name !== undefined) next.name = input.name;
    if (keys.length === 1 && keys[0] === 'name') {
      // Renaming is allowed in any state, even after termination (upstream).
      await deps.leases.commit(next, lease, []);
      return next;
    }
    requireStable(lease, 'updated');

    const oldStart = new Date(lease.start_date);
    const oldEnd = new Date(lease.end_date);
    const started = lease.status === 'ACTIVE' || oldStart <= nowMinute;
    const ended = lease.status === 'TERMINATED' || oldEnd < nowMinute;
    if (ended) throw new ValidationError('Terminated leases can only be renamed', 'INVALID_UPDATE');

    let start = oldStart;
    if (input.start_date !== undefined) {
      const s = parseBlazarDate(input.start_date, 'start_date', now);
      if (started && s.getTime() !== oldStart.getTime()) {
        throw new ValidationError('Cannot modify the start date of already started leases', 'INVALID_UPDATE');
      }
      if (!started && s < nowMinute) throw new ValidationError('Start date must be later than current date', 'INVALID_DATE');
      start = s;
    }
    let end = oldEnd;
    if (input.end_date !== undefined) end = parseBlazarDate(input.end_date, 'end_date', now);
    // Equal start and end are accepted on update (upstream), unlike on create.
    if (end < nowMinute || end < start) {
      throw new ValidationError('End date must be later than current and start date', 'INVALID_DATE');
    }
    checkLeaseDuration(deps.config, lease.project_id, start, end, 'update', { start: oldStart, end: oldEnd });

    // Events follow the dates; before_end keeps its distance to the end unless given.
    const events = lease.events.map((e) => ({ ...e }));
    const startEvent = events.find((e) => e.event_type === 'start_lease');
    const endEvent = events.find((e) => e.event_type === 'end_lease');
    if (startEvent && startEvent.time !== iso(start)) Object.assign(startEvent, { time: iso(start), updated_at: stamp });
    if (endEvent && endEvent.time !== iso(end)) Object.assign(endEvent, { time: iso(end), updated_at: stamp });
    let be = events.find((e) => e.event_type === 'before_end_lease');
    let beTime: Date | undefined;
    if (input.before_end_date !== undefined && input.before_end_date !== null) {
      beTime = parseBeforeEnd(input.before_end_date, start, end, now);
    } else if (be) {
      const distance = oldEnd.getTime() - Date.parse(be.time);
      beTime = new Date(Math.max(start.getTime(), end.getTime() - distance));
    }
    if (beTime) {
      if (!be) {
        be = event(lease.id, 'before_end_lease', beTime, stamp);
        events.push(be);
      } else if (be.time !== iso(beTime)) {
        // A before_end that already ran fires again at its new time (prolonged lease).
        Object.assign(be, { time: iso(beTime), updated_at: stamp, status: be.status === 'DONE' ? 'UNDONE' : be.status });
      }
    }
    next.start_date = iso(start);
    next.end_date = iso(end);
    next.events = sortEvents(events);

    // Reservation parameter changes.
    const changes = new Map<string, Record<string, unknown>>();
    for (const r of input.reservations ?? []) {
      const current = lease.reservations.find((x) => x.id === r.id);
      if (!current) throw new ValidationError(`Please enter valid reservation IDs. Reservation ${r.id} is not part of lease ${lease.id}`, 'INVALID_RESERVATION');
      if (r.resource_type !== undefined && r.resource_type !== current.resource_type) {
        throw new ConflictError('resource_type cannot be updated', 'INVALID_UPDATE');
      }
      const { id: _id, resource_type: _t, ...params } = r;
      const plugin = pluginFor(current.resource_type);
      const checked = plugin.validateUpdate(current.params, params);
      changes.set(r.id, (await plugin.sealParams?.(deps, checked)) ?? checked);
    }

    const datesChanged = next.start_date !== lease.start_date || next.end_date !== lease.end_date;
    let nodeChanges: AllocationChange[] = [];
    let guard: UsageGuard | undefined;
    if (datesChanged || changes.size > 0) {
      const cap = hostCap(deps.config, lease.project_id);
      const usage = cap === undefined ? undefined : await deps.leases.projectUsage(lease.project_id);
      const othersPeak = usage ? peakHosts(usage.entries, start, end, now, lease.id) : 0;
      const plan = (nodes: Node[]) => {
        let taken = 0;
        const cal = new CalendarPlan(nodes);
        const reservations = lease.reservations.map((res) => {
          const plugin = pluginFor(res.resource_type);
          const params = changes.get(res.id) ?? res.params;
          const limit = cap === undefined ? undefined : cap - othersPeak - taken;
          const nodeIds = plugin.allocate({
            params,
            start,
            end,
            nodes: cal.view(),
            reservationId: res.id,
            current: res.node_ids,
            active: res.status === 'active' || started,
            config: deps.config,
            attempt,
            limit,
          });
          taken += nodeIds.length;
          cal.assign(
            res.id,
            res.node_ids,
            nodeIds,
            { lease_id: lease.id, project_id: lease.project_id, start: iso(start), end: iso(end) },
            res.status === 'active' ? stamp : undefined,
          );
          const changed = changes.has(res.id) || nodeIds.join() !== res.node_ids.join();
          return changed ? { ...res, params, node_ids: nodeIds, updated_at: stamp } : res;
        });
        return { cal, reservations, taken };
      };
      // The nodes it holds and candidates for more, not the fleet (candidates.ts).
      const wants = lease.reservations.map((res) => ({
        plugin: pluginFor(res.resource_type),
        req: {
          params: changes.get(res.id) ?? res.params,
          start,
          end,
          reservationId: res.id,
          current: res.node_ids,
          active: res.status === 'active' || started,
          config: deps.config,
          attempt,
        },
      }));
      const { cal, reservations, taken } = await withAllocationView(deps, wants, attempt > 0, plan);
      next.reservations = reservations;
      nodeChanges = cal.changes();
      if (cap !== undefined) {
        // Only a change that can raise usage is held to the cap: more hosts, or a wider window.
        const before = lease.reservations.reduce((n, r) => n + r.node_ids.length, 0);
        if (taken > before || start < oldStart || end > oldEnd) checkHostCap(cap, lease.project_id, taken, othersPeak, 'update');
      }
      guard = usageGuard(usage, now);
    }
    await deps.leases.commit(next, lease, nodeChanges, guard);
    return next;
  }, busyHosts);
  if (before && updated !== before) {
    await armLease(deps, updated, before);
    await notify(deps, 'lease.update', leaseNotice(updated));
  }
  return updated;
}

export async function deleteLease(deps: Ports, auth: Principal | undefined, id: string): Promise<void> {
  requireWriter(auth);
  const deleted = await withRetries(
    deps,
    async () => {
      const lease = await settledLease(deps, auth, id);
      requireStable(lease, 'deleted');
      // Releasing can never double-book, so it needs no node reads and no version checks; only
      // the lease's own version guards against a concurrent update or delete.
      const byNode = new Map<string, string[]>();
      for (const r of lease.reservations) for (const n of r.node_ids) byNode.set(n, [...(byNode.get(n) ?? []), r.id]);
      await deps.leases.delete(lease, [...byNode].map(([nodeId, remove]) => ({ nodeId, set: [], remove })));
      return lease;
    },
    busyLease,
  );
  await disarmLease(deps, deleted);
  // A running lease ends when deleted (upstream runs its end processing): the grant went with the
  // allocations; its nodes are powered off.
  if (deleted.status === 'ACTIVE') {
    for (const res of deleted.reservations) await pluginFor(res.resource_type).afterDeleteActive(deps, deleted, res);
  }
  await notify(deps, 'lease.delete', leaseNotice(deleted));
}
