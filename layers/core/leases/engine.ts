import { ConcurrentModificationError } from '../errors.ts';
import type { Ports } from '../ports.ts';
import { log } from '../util/log.ts';
import { healLease } from './healing.ts';
import { pluginFor } from './host-plugin.ts';
import { executionName, type LeaseEventRef } from './lifecycle.ts';
import {
  canTransition,
  deriveLeaseStatus,
  type EventStatus,
  eventsBefore,
  EVENT_TRANSITIONS,
  type Lease,
  type LeaseEvent,
  LEASE_TRANSITIONS,
  RESERVATION_TRANSITIONS,
  type Reservation,
  RUNNING_STATUS,
} from './model.ts';
import type { AgentJobSpec, JobResult } from './plugin.ts';
import { notify } from './triggers.ts';

/**
 * The steps of the lease-event workflow (`infra/workflows/lease-events.ts`), one function per
 * Task state. Each is safe to run again: Begin is the conditional `UNDONE → IN_PROGRESS` write,
 * the plugin actions are idempotent, and Finish does nothing to an event already finished.
 *
 *   event:        UNDONE ──Begin──▶ IN_PROGRESS ──Finish──▶ DONE | ERROR
 *   lease:        PENDING ─start─▶ STARTING ─▶ ACTIVE ─end─▶ TERMINATING ─▶ TERMINATED (or ERROR)
 *   reservation:  pending ─start─▶ active ─end─▶ deleted (error on failure)
 */
export interface EventInput {
  lease_id: string;
  event_id: string;
}

export interface BeginResult {
  outcome: 'run' | 'wait' | 'skip';
  /** For `wait`: how long the workflow waits before trying again. */
  wait_seconds: number;
  reason?: string;
}

/** How long a workflow keeps re-checking a due event that cannot run yet (then the sweeper takes over). */
const WAIT_SECONDS = 2;
/** An event a little early (a trigger firing before the clock says so) is waited for, up to this. */
const EARLY_WAIT_LIMIT_MS = 5 * 60_000;

const skip = (reason: string): BeginResult => ({ outcome: 'skip', wait_seconds: 0, reason });
const wait = (seconds: number, reason: string): BeginResult => ({ outcome: 'wait', wait_seconds: Math.max(1, Math.ceil(seconds)), reason });

async function load(deps: Ports, input: EventInput): Promise<{ lease: Lease; event: LeaseEvent } | undefined> {
  const lease = await deps.leases.get(input.lease_id);
  const event = lease?.events.find((e) => e.id === input.event_id);
  return lease && event ? { lease, event } : undefined;
}

function withEvent(lease: Lease, id: string, change: Partial<LeaseEvent>): LeaseEvent[] {
  return lease.events.map((e) => (e.id === id ? { ...e, ...change } : e));
}

/**
 * Begin: takes the event if it is due and may run now. A due event waits while an earlier event
 * of its lease is unfinished (start → before_end → end), while the lease is in a transitional
 * status, or (start) while one of its nodes is still held by the lease before it, which is how
 * back-to-back leases at equal times run end before start (upstream bug #1785841) whatever order
 * their triggers fire in. Past the retry window a blocked start runs anyway and fails visibly.
 */
export async function beginEvent(deps: Ports, input: EventInput): Promise<BeginResult> {
  const found = await load(deps, input);
  if (!found) return skip('the lease or event is gone');
  let { lease, event } = found;
  if (event.status !== 'UNDONE') return skip(`the event is ${event.status}`);
  const now = deps.clock.now();
  const early = Date.parse(event.time) - now.getTime();
  if (early > 0) {
    // A trigger for the event's earlier time (the lease was since moved) is not its trigger.
    return early <= EARLY_WAIT_LIMIT_MS ? wait(early / 1000, 'not due yet') : skip('not due yet; its own trigger will run it');
  }
  const withinWindow = now.getTime() - Date.parse(event.time) < deps.config.eventRetryMinutes * 60_000;
  const blockedBy = eventsBefore(lease, event);
  if (blockedBy.length > 0) {
    const reason = `waiting for ${blockedBy.map((e) => e.event_type).join(', ')} of the same lease`;
    // Usually a before_end due with its end: it takes well under a second.
    return withinWindow ? wait(1, reason) : skip(reason);
  }
  const running = RUNNING_STATUS[event.event_type];
  if (running && !canTransition(LEASE_TRANSITIONS, lease.status, running)) {
    if (lease.status === 'STARTING' || lease.status === 'TERMINATING' || lease.status === 'UPDATING' || lease.status === 'DELETING' || lease.status === 'CREATING') {
      return withinWindow ? wait(WAIT_SECONDS, `the lease is ${lease.status}`) : skip(`the lease is ${lease.status}`);
    }
    // E.g. the start of a lease already in ERROR: the event cannot run, and says so.
    await finishWith(deps, lease, event, 'ERROR', `A ${event.event_type} event cannot run while the lease is ${lease.status}`);
    return skip(`the lease is ${lease.status}`);
  }
  if (event.event_type === 'start_lease') {
    // A node booked for the lease went out of service since: another takes its place, or the
    // lease cannot start (healing.ts).
    const healed = await healLease(deps, lease.id);
    if (healed) {
      lease = healed.lease;
      event = lease.events.find((e) => e.id === event.id) ?? event;
    }
    if (healed?.problem) {
      await finishWith(deps, lease, event, 'ERROR', `The lease cannot start: ${healed.problem}`);
      // It never runs: its calendar entries are freed for other leases.
      for (const res of lease.reservations) for (const id of res.node_ids) await deps.nodes.rewriteAllocations(id, [], [res.id]);
      return skip('the lease cannot start: nodes out of service');
    }
  }
  if (event.event_type === 'start_lease' && withinWindow) {
    for (const res of lease.reservations) {
      const busy = await pluginFor(res.resource_type).startBlocker(deps, lease, res);
      if (busy) return wait(WAIT_SECONDS, busy);
    }
  }
  const stamp = now.toISOString();
  const next: Lease = {
    ...lease,
    status: running ?? lease.status,
    version: lease.version + 1,
    updated_at: stamp,
    events: withEvent(lease, event.id, { status: 'IN_PROGRESS', updated_at: stamp }),
  };
  await deps.leases.transition(lease, next, event.id, 'UNDONE');
  log.info('lease event started', { lease_id: lease.id, event_id: event.id, event_type: event.event_type });
  return { outcome: 'run', wait_seconds: 0 };
}

export interface ActResult {
  /** Agent work the workflow runs as callback jobs (Map state), one per node. */
  jobs: AgentJobSpec[];
  /** What happened that the event should record (e.g. an unsupported before_end action). */
  notes: string[];
}

async function running(deps: Ports, input: EventInput): Promise<{ lease: Lease; event: LeaseEvent }> {
  const found = await load(deps, input);
  if (!found) throw new EventGoneError(`Lease ${input.lease_id} or its event ${input.event_id} is gone`);
  if (found.event.status !== 'IN_PROGRESS') throw new EventGoneError(`Event ${input.event_id} is ${found.event.status}, not IN_PROGRESS`);
  return found;
}

/** Raised when an event's lease vanished under a running workflow; Finish then has nothing to do. */
export class EventGoneError extends Error {}

/** Act: the reservation plugins' action for the event (start: grant; before_end; end: revoke and plan power-off). */
export async function actEvent(deps: Ports, input: EventInput): Promise<ActResult> {
  const { lease, event } = await running(deps, input);
  const out: ActResult = { jobs: [], notes: [] };
  for (const res of lease.reservations) {
    const plugin = pluginFor(res.resource_type);
    const step =
      event.event_type === 'start_lease'
        ? await plugin.onStart(deps, lease, res)
        : event.event_type === 'before_end_lease'
          ? await plugin.onBeforeEnd(deps, lease, res)
          : await plugin.onEnd(deps, lease, res);
    out.jobs.push(...step.jobs);
    out.notes.push(...step.notes);
  }
  return out;
}

/** AgentJob: queues one job for the site's agent carrying the workflow's task token. */
export async function queueAgentJob(deps: Ports, input: EventInput & { job: AgentJobSpec; task_token: string }): Promise<{ job_id: string }> {
  const { lease } = await running(deps, input);
  const res = lease.reservations.find((r) => r.id === input.job.reservation_id);
  if (!res) throw new EventGoneError(`Reservation ${input.job.reservation_id} is not part of lease ${lease.id}`);
  return pluginFor(res.resource_type).queueJob(deps, input.job, input.task_token, res);
}

/** Complete: the plugins' action once the agent work is done (end: release the nodes). */
export async function completeEvent(deps: Ports, input: EventInput & { results: JobResult[] | null }): Promise<void> {
  const { lease, event } = await running(deps, input);
  if (event.event_type !== 'end_lease') return;
  for (const res of lease.reservations) {
    await pluginFor(res.resource_type).afterEnd(deps, lease, res, (input.results ?? []).filter((r) => r.reservation_id === res.id));
  }
}

export interface FinishInput extends EventInput {
  /** The error a failed step was caught with (Step Functions' `{Error, Cause}`); `{}` or null when none. */
  error: { Error?: string; Cause?: string } | null;
  act?: ActResult | null;
  results?: JobResult[] | null;
}

function causeOf(err: NonNullable<FinishInput['error']>): string {
  // A Lambda error's Cause is its JSON `{errorType, errorMessage, trace}`: keep the message only.
  try {
    const parsed = JSON.parse(err.Cause ?? '') as { errorMessage?: string };
    if (parsed.errorMessage) return parsed.errorMessage;
  } catch {
    // not JSON: a plain cause
  }
  return err.Cause ?? err.Error ?? 'the event failed';
}

/**
 * Finish: the event becomes DONE or ERROR, its reservations active/deleted (or error), and the
 * lease's stable status is derived from events and reservations; then `lease.event.<type>`.
 */
export async function finishEvent(deps: Ports, input: FinishInput): Promise<{ event_status: EventStatus | null; lease_status: string | null }> {
  for (let attempt = 0; ; attempt++) {
    const found = await load(deps, input);
    if (!found) return { event_status: null, lease_status: null };
    const { lease, event } = found;
    if (event.status !== 'IN_PROGRESS') return { event_status: event.status, lease_status: lease.status };
    const reasons = [...(input.act?.notes ?? [])];
    const failed: JobResult[] = [];
    for (const r of (input.results ?? []).filter((x) => !x.ok)) {
      const res = lease.reservations.find((x) => x.id === r.reservation_id);
      const note = res ? await pluginFor(res.resource_type).settledFailure?.(deps, r) : undefined;
      if (note) reasons.push(note);
      else failed.push(r);
    }
    const caught = input.error?.Error !== undefined ? input.error : null;
    if (caught) reasons.push(causeOf(caught));
    for (const f of failed) reasons.push(`node ${f.node_id}: ${f.error ?? 'the agent job failed'}`);
    const ok = !caught && failed.length === 0;
    try {
      const lease2 = await finishWith(deps, lease, event, ok ? 'DONE' : 'ERROR', reasons.join('; ') || null, failed);
      return { event_status: ok ? 'DONE' : 'ERROR', lease_status: lease2.status };
    } catch (err) {
      if (!(err instanceof ConcurrentModificationError) || attempt >= 5) throw err;
    }
  }
}

const RESERVATION_AFTER: Record<string, Reservation['status'] | undefined> = { start_lease: 'active', end_lease: 'deleted' };

async function finishWith(
  deps: Ports,
  lease: Lease,
  event: LeaseEvent,
  status: 'DONE' | 'ERROR',
  reason: string | null,
  failed: JobResult[] = [],
): Promise<Lease> {
  if (!canTransition(EVENT_TRANSITIONS, event.status, status)) throw new Error(`Event ${event.id} cannot go from ${event.status} to ${status}`);
  const stamp = deps.clock.now().toISOString();
  const failedRes = new Set(failed.map((f) => f.reservation_id));
  const target = RESERVATION_AFTER[event.event_type];
  const reservations = lease.reservations.map((r) => {
    if (!target) return r;
    const want = status === 'ERROR' && (failedRes.size === 0 || failedRes.has(r.id)) ? 'error' : target;
    return r.status === want || !canTransition(RESERVATION_TRANSITIONS, r.status, want) ? r : { ...r, status: want, updated_at: stamp };
  });
  const events = withEvent(lease, event.id, { status, status_reason: reason, updated_at: stamp });
  const next: Lease = { ...lease, events, reservations, status: deriveLeaseStatus(events, reservations), version: lease.version + 1, updated_at: stamp };
  await deps.leases.transition(lease, next, event.id, event.status);
  log.info('lease event finished', { lease_id: lease.id, event_type: event.event_type, status, lease_status: next.status });
  await notify(deps, `lease.event.${event.event_type}`, {
    lease_id: lease.id,
    lease_name: lease.name,
    project_id: lease.project_id,
    event_id: event.id,
    event_type: event.event_type,
    event_status: status,
    status_reason: reason,
    lease_status: next.status,
    time: event.time,
  });
  return next;
}


/** An event whose execution died is put back to UNDONE and its lease to the status its events give. */
export async function resetEvent(deps: Ports, ref: LeaseEventRef): Promise<boolean> {
  const found = await load(deps, ref);
  if (!found || found.event.status !== 'IN_PROGRESS' || !canTransition(EVENT_TRANSITIONS, 'IN_PROGRESS', 'UNDONE')) return false;
  const { lease, event } = found;
  const stamp = deps.clock.now().toISOString();
  const events = withEvent(lease, event.id, { status: 'UNDONE', updated_at: stamp });
  const next: Lease = { ...lease, events, status: deriveLeaseStatus(events, lease.reservations), version: lease.version + 1, updated_at: stamp };
  try {
    await deps.leases.transition(lease, next, event.id, 'IN_PROGRESS');
  } catch (err) {
    if (err instanceof ConcurrentModificationError) return false;
    throw err;
  }
  log.warn('lease event found in progress without a running workflow; it will run again', { lease_id: lease.id, event_type: event.event_type });
  return true;
}

export interface SweepResult {
  /** Due events an execution was started for. */
  started: number;
  /** Events found IN_PROGRESS without a live execution and put back to UNDONE. */
  reset: number;
}

/**
 * The sweeper (every minute on AWS; at start and every minute locally): starts an execution for
 * every due `UNDONE` event (at most `limit` per run, oldest first), after putting back events
 * left `IN_PROGRESS` longer than `staleMs` (their execution died). `graceMs` leaves the trigger
 * of a just-due event time to fire before the sweeper doubles it.
 */
export async function sweepEvents(deps: Ports, opts: { graceMs?: number; staleMs?: number; limit?: number } = {}): Promise<SweepResult> {
  const now = deps.clock.now();
  let reset = 0;
  if (opts.staleMs !== undefined) {
    for (const ref of await deps.leases.eventsInProgress(new Date(now.getTime() - opts.staleMs))) {
      if (await resetEvent(deps, ref)) reset++;
    }
  }
  const due = await deps.leases.dueEvents(new Date(now.getTime() - (opts.graceMs ?? 0)), opts.limit ?? 500);
  const results = await Promise.allSettled(due.map((ref) => deps.runner.start(ref, executionName(ref, 'sweep', now))));
  let started = 0;
  for (const r of results) {
    if (r.status === 'fulfilled') started++;
    else log.error('sweeper could not start a lease event', { error: (r.reason as Error)?.name });
  }
  if (started > 0 || reset > 0) log.info('lease events swept', { started, reset });
  return { started, reset };
}
