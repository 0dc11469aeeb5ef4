import { ConcurrentModificationError, PreparedPlanStaleError } from '../errors.ts';
import type { Ports, PreparedGrant } from '../ports.ts';
import { log } from '../util/log.ts';
import { causeText } from '../util/step-error.ts';
import { metric } from '../util/metrics.ts';
import { healLease, needsHealing } from './healing.ts';
import { lifecycleFor } from './lifecycles.ts';
import { runsWholeEvent, WHOLE_EVENT_MAX_NODES } from './whole.ts';
import { executionName, type LeaseEventRef, PREPARE_LEAD_SECONDS } from './lifecycle.ts';
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

export interface BeginInput extends EventInput {
  /**
   * The workflow can carry a prepared event to its time (AtEventTime → Commit). Its definition
   * says so; an execution of an older definition, which cannot, never gets `prepared`.
   */
  can_prepare?: boolean;
}

/**
 * An event run whole, planned from what Begin read (planWhole): written at once when it is due
 * (runWhole), or carried in the workflow's state to its time and written then (prepareEvent,
 * commitEvent). The lease as read: its version is the write's condition, as each grant's
 * node version is.
 */
export interface WholePlan {
  lease: Lease;
  event_id: string;
  status: 'DONE' | 'ERROR';
  reason: string | null;
  grants: PreparedGrant[];
}

export interface BeginResult {
  /**
   * `done`: Begin ran the whole event (runWhole); the workflow ends. `prepared`: the event, not
   * yet due, is planned (prepareEvent); the workflow waits until `due` and commits `plan`.
   */
  outcome: 'run' | 'wait' | 'skip' | 'done' | 'prepared';
  /** For `wait`: how long the workflow waits before trying again. */
  wait_seconds: number;
  /** For `prepared`: the event's time (the workflow's Wait is on this timestamp). */
  due?: string;
  /** For `prepared`: what Commit writes at `due`. */
  plan?: WholePlan;
  reason?: string;
}

/** Commit's answer when the plan is written (when it cannot be, Commit throws PreparedPlanStaleError). */
export interface CommitResult {
  outcome: 'done';
}

/** How long a workflow keeps re-checking a due event that cannot run yet (then the sweeper takes over). */
const WAIT_SECONDS = 2;
/** An event a little early (a trigger firing before the clock says so) is waited for, up to this. */
const EARLY_WAIT_LIMIT_MS = 5 * 60_000;
/** An event this early or less may be prepared: its trigger's lead, and as much again for a clock apart. */
const PREPARE_LIMIT_MS = 2 * PREPARE_LEAD_SECONDS * 1000;
/**
 * The largest plan carried in the workflow's state (Step Functions holds 256 KiB per state): a
 * lease of at most WHOLE_EVENT_MAX_NODES nodes is a few kB; a larger one is not prepared.
 */
const PLAN_MAX_CHARS = 64 * 1024;

/** The longest a blocked event waits between two tries (reached after 200 minutes of waiting). */
const MAX_RETRY_WAIT_SECONDS = 600;

const skip = (reason: string): BeginResult => ({ outcome: 'skip', wait_seconds: 0, reason });
const wait = (seconds: number, reason: string): BeginResult => ({ outcome: 'wait', wait_seconds: Math.max(1, Math.ceil(seconds)), reason });

/**
 * The wait of a due event that cannot run yet, `overdueSeconds` past its time: `seconds` at
 * first, then a twentieth of the time overdue, at most ten minutes. Each try writes 9 events to
 * the execution's history (Begin, Outcome, NotYet): a fixed second or two would pass Step
 * Functions' 25,000 within SLIPWAY_EVENT_RETRY_MINUTES of an hour; backing off, the workflow's
 * whole seven days (a lease end erasing thousands of hosts may keep the next event waiting that
 * long) take about 10,000 events (test/infra/limits.test.ts).
 */
export function retryWaitSeconds(seconds: number, overdueSeconds: number): number {
  return Math.max(seconds, Math.min(MAX_RETRY_WAIT_SECONDS, Math.ceil(Math.max(0, overdueSeconds) / 20)));
}

/**
 * The ports as one step sees them: a lease or a node read twice within the step is read once
 * (each caller gets its own copy). A write through the same repository forgets what was read, so
 * the step still reads its own writes; a change by another writer in between is what the
 * conditional writes catch, as they did when every read went to the table. An event's
 * transition (`leaseEvents`) is the last thing a step writes: nothing is read after it.
 */
export function readOnce(deps: Ports): Ports {
  return { ...deps, leases: memoizedGets(deps.leases), nodes: memoizedGets(deps.nodes) };
}

function memoizedGets<R extends { get(id: string): Promise<unknown> }>(repo: R): R {
  const read = new Map<string, Promise<unknown>>();
  return new Proxy(repo, {
    get(target, prop) {
      const member = Reflect.get(target, prop, target) as unknown;
      if (typeof member !== 'function') return member;
      if (prop === 'get') {
        return async (id: string, ...rest: unknown[]) => {
          // Any other argument (read options) is not what was memoized: read through.
          if (rest.length > 0) return member.call(target, id, ...rest);
          let p = read.get(id);
          if (!p) {
            p = member.call(target, id) as Promise<unknown>;
            read.set(id, p);
            p.catch(() => read.delete(id));
          }
          const value = await p;
          return value === undefined ? undefined : structuredClone(value);
        };
      }
      return (...args: unknown[]) => {
        read.clear();
        return member.apply(target, args);
      };
    },
  });
}

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
export async function beginEvent(ports: Ports, input: BeginInput): Promise<BeginResult> {
  // Begin reads the lease, then healing reads it again with its nodes, then the start check
  // reads those nodes again: one step's reads are made once (readOnce).
  const deps = readOnce(ports);
  const found = await load(deps, input);
  if (!found) return skip('the lease or event is gone');
  let { lease, event } = found;
  if (event.status !== 'UNDONE') return skip(`the event is ${event.status}`);
  const now = deps.clock.now();
  const early = Date.parse(event.time) - now.getTime();
  if (early > 0) {
    if (input.can_prepare && early <= PREPARE_LIMIT_MS) {
      const prepared = await prepareEvent(deps, lease, event);
      if (prepared) return prepared;
    }
    // A trigger for the event's earlier time (the lease was since moved) is not its trigger.
    return early <= EARLY_WAIT_LIMIT_MS ? wait(early / 1000, 'not due yet') : skip('not due yet; its own trigger will run it');
  }
  const withinWindow = now.getTime() - Date.parse(event.time) < deps.config.eventRetryMinutes * 60_000;
  const retry = (seconds: number, reason: string) => wait(retryWaitSeconds(seconds, -early / 1000), reason);
  const blockedBy = eventsBefore(lease, event);
  if (blockedBy.length > 0) {
    const reason = `waiting for ${blockedBy.map((e) => e.event_type).join(', ')} of the same lease`;
    // Usually a before_end due with its end: it takes well under a second.
    return withinWindow ? retry(1, reason) : skip(reason);
  }
  const running = RUNNING_STATUS[event.event_type];
  if (running && !canTransition(LEASE_TRANSITIONS, lease.status, running)) {
    if (lease.status === 'STARTING' || lease.status === 'TERMINATING' || lease.status === 'UPDATING' || lease.status === 'DELETING' || lease.status === 'CREATING') {
      return withinWindow ? retry(WAIT_SECONDS, `the lease is ${lease.status}`) : skip(`the lease is ${lease.status}`);
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
      const busy = await lifecycleFor(res.resource_type).startBlocker(deps, lease, res);
      if (busy) return retry(WAIT_SECONDS, busy);
    }
  }
  const whole = await runWhole(deps, lease, event);
  if (whole) return whole;
  const stamp = now.toISOString();
  const next: Lease = {
    ...lease,
    status: running ?? lease.status,
    version: lease.version + 1,
    updated_at: stamp,
    events: withEvent(lease, event.id, { status: 'IN_PROGRESS', updated_at: stamp }),
  };
  await deps.leaseEvents.transition(lease, next, event.id, 'UNDONE');
  log.info('lease event started', { lease_id: lease.id, event_id: event.id, event_type: event.event_type });
  return { outcome: 'run', wait_seconds: 0 };
}

export { WHOLE_EVENT_MAX_NODES };

/**
 * An event whose every reservation's action is writes only (a start without an image, every
 * before_end: `runsWholeEvent`) runs whole in Begin: the lease goes from UNDONE to DONE (or
 * ERROR) and its nodes are granted in ONE transaction, conditioned on the event still UNDONE,
 * the lease version and each node's version. Nothing is half-done, and a second delivery finds
 * the event DONE (the write is the check, as the IN_PROGRESS claim is for the others). Against
 * Begin → Act → Finish this is one lease read and one write instead of three reads and two
 * writes, one invocation instead of three, and half the state transitions: what makes 500
 * leases due at the same minute start within seconds (issue 16; figures in
 * docs/fleet-scale.md). A lost race throws ConcurrentModificationError: the workflow retries
 * Begin with fresh reads.
 */
async function runWhole(deps: Ports, lease: Lease, event: LeaseEvent): Promise<BeginResult | undefined> {
  const plan = await planWhole(deps, lease, event);
  if (!plan) return undefined;
  await commitPlan(deps, plan);
  return { outcome: 'done', wait_seconds: 0 };
}

/** What an event run whole writes, from the lease and nodes as read; undefined when it does not run whole. */
async function planWhole(deps: Ports, lease: Lease, event: LeaseEvent): Promise<WholePlan | undefined> {
  if (!runsWholeEvent(lease, event.event_type)) return undefined;
  const grants: PreparedGrant[] = [];
  const notes: string[] = [];
  let failure: string | undefined;
  for (const res of lease.reservations) {
    try {
      const step = await lifecycleFor(res.resource_type).wholeStep!(deps, lease, res, event.event_type);
      grants.push(...step.grants);
      notes.push(...step.notes);
    } catch (err) {
      if (err instanceof ConcurrentModificationError) throw err;
      // As Act's failure would be: the event's ERROR, with why (nothing granted).
      failure = (err as Error).message || 'the event failed';
      break;
    }
  }
  const reasons = firstOf(notes, ACT_NOTES_REPORTED, 'notes');
  if (failure) reasons.push(cut(failure));
  return { lease, event_id: event.id, status: failure ? 'ERROR' : 'DONE', reason: reasons.join('; ') || null, grants: failure ? [] : grants };
}

function commitPlan(deps: Ports, plan: WholePlan): Promise<Lease> {
  const event = plan.lease.events.find((e) => e.id === plan.event_id);
  if (!event) throw new Error(`the plan of lease ${plan.lease.id} names no event ${plan.event_id}`);
  return finishWith(deps, plan.lease, event, plan.status, plan.reason, [], plan.grants);
}

/**
 * Begin, ahead of the event's time (its trigger fires PREPARE_LEAD_SECONDS early: triggers.ts):
 * an event that runs whole, and would run cleanly were it due now, is planned now — its reads
 * and checks made, its grants prepared — and the workflow waits for the event's time to write
 * the plan in its one transaction (commitEvent). That transaction is conditioned on the lease
 * and every node being the versions read here, so it writes only what these checks saw: a change
 * in between (the lease moved or deleted, a node booked for a later window, put in maintenance,
 * released by the lease before) makes Commit hand back to Begin, which reads again. Whatever
 * would not run cleanly now — another event first, the lease transitional, healing needed, a
 * node still held or being erased, a failure — is not prepared: Begin waits for the event's
 * time and runs it as a due event, as before. Time only frees what these checks look at, so
 * what is clean now is clean at the event's time unless something is written in between.
 */
async function prepareEvent(deps: Ports, lease: Lease, event: LeaseEvent): Promise<BeginResult | undefined> {
  if (eventsBefore(lease, event).length > 0) return undefined;
  const running = RUNNING_STATUS[event.event_type];
  if (running && !canTransition(LEASE_TRANSITIONS, lease.status, running)) return undefined;
  if (!runsWholeEvent(lease, event.event_type)) return undefined;
  if (event.event_type === 'start_lease') {
    if (await needsHealing(deps, lease)) return undefined;
    for (const res of lease.reservations) if (await lifecycleFor(res.resource_type).startBlocker(deps, lease, res)) return undefined;
  }
  const plan = await planWhole(deps, lease, event);
  if (!plan || plan.status !== 'DONE' || JSON.stringify(plan).length > PLAN_MAX_CHARS) return undefined;
  return { outcome: 'prepared', wait_seconds: 0, due: event.time, plan, reason: 'prepared for its time' };
}

/**
 * Commit: at the event's time, writes what Begin prepared (prepareEvent), one transaction and no
 * reads. When it cannot — the lease or a node changed since it was prepared (the transaction's
 * conditions), or the event is not yet due by this clock — it throws PreparedPlanStaleError, and
 * the workflow's Catch goes back to Begin, which reads again and runs the event as a due one. An
 * error rather than an outcome to test: the written plan, nearly every time, then ends the
 * execution at Commit, without a Choice and a Succeed state after it (two state transitions
 * fewer, which Step Functions bills).
 */
export async function commitEvent(deps: Ports, input: EventInput & { plan: WholePlan }): Promise<CommitResult> {
  const { plan } = input;
  const event = plan.lease.events.find((e) => e.id === plan.event_id);
  if (plan.lease.id !== input.lease_id || plan.event_id !== input.event_id || !event) throw new Error(`the prepared plan is not that of event ${input.event_id}`);
  if (Date.parse(event.time) > deps.clock.now().getTime()) throw new PreparedPlanStaleError('not due yet');
  try {
    await commitPlan(deps, plan);
  } catch (err) {
    if (!(err instanceof ConcurrentModificationError)) throw err;
    log.info('prepared lease event changed before its time; it runs as a due event', { lease_id: plan.lease.id, event_id: event.id, event_type: event.event_type });
    throw new PreparedPlanStaleError('the lease or a node changed since it was prepared');
  }
  return { outcome: 'done' };
}

/**
 * The agent work of an event runs in lanes: each lane is one child execution of the workflow's
 * distributed Map (AgentJobs), running the jobs of one reservation and one action one after
 * another, and AGENT_JOB_CONCURRENCY lanes run at a time, so that many jobs are in flight at
 * once (a 100-node lease ends in 10 rounds, as before lanes). A lane holds at most
 * LANE_MAX_JOBS jobs, which bounds its history (about 10 events a job) and the results it
 * gathers; it hands back a summary of at most REPORTED_PER_LANE failures and notes, so the
 * parent's state stays far below Step Functions' 256 KiB whatever the number of hosts
 * (test/infra/limits.test.ts measures 2,000).
 */
export const AGENT_JOB_CONCURRENCY = 10;
export const LANE_MAX_JOBS = 100;
export const REPORTED_PER_LANE = 3;
/** Of the notes Act makes (one per node at most), this many are named; the rest are counted. */
export const ACT_NOTES_REPORTED = 20;
/** A failure or a note is cut to this many characters in the event's reason. */
const DETAIL_CHARS = 300;

const cut = (text: string) => (text.length > DETAIL_CHARS ? `${text.slice(0, DETAIL_CHARS - 1)}…` : text);
/** The first `n` of `items` (each cut), then how many more there were. */
const firstOf = (items: readonly string[], n: number, what: string) => [
  ...items.slice(0, n).map(cut),
  ...(items.length > n ? [`and ${items.length - n} more ${what}`] : []),
];

/** The jobs of one reservation and one action, run one after another by one child execution. */
export interface Lane {
  reservation_id: string;
  action: string;
  node_ids: string[];
}

/**
 * Splits the jobs into lanes: each group of one reservation and one action gets its share of the
 * lanes (at least AGENT_JOB_CONCURRENCY lanes in all when there are that many jobs, more when
 * a lane would hold over LANE_MAX_JOBS), its nodes dealt round-robin so lanes are even.
 *
 * @example
 * ```ts
 * lanesOf([{ reservation_id: 'r', node_id: 'a', action: 'clean' }, { reservation_id: 'r', node_id: 'b', action: 'clean' }]);
 * // [{ reservation_id: 'r', action: 'clean', node_ids: ['a'] }, { reservation_id: 'r', action: 'clean', node_ids: ['b'] }]
 * ```
 */
export function lanesOf(jobs: readonly AgentJobSpec[]): Lane[] {
  const groups = new Map<string, Lane>();
  for (const j of jobs) {
    const key = `${j.reservation_id}\u0000${j.action}`;
    const g = groups.get(key) ?? { reservation_id: j.reservation_id, action: j.action, node_ids: [] };
    g.node_ids.push(j.node_id);
    groups.set(key, g);
  }
  const wanted = Math.max(AGENT_JOB_CONCURRENCY, Math.ceil(jobs.length / LANE_MAX_JOBS));
  const lanes: Lane[] = [];
  for (const g of groups.values()) {
    const m = g.node_ids.length;
    const k = Math.min(m, Math.max(1, Math.ceil(m / LANE_MAX_JOBS), Math.round((wanted * m) / jobs.length)));
    for (let l = 0; l < k; l++) lanes.push({ reservation_id: g.reservation_id, action: g.action, node_ids: g.node_ids.filter((_, i) => i % k === l) });
  }
  return lanes;
}

export interface ActResult {
  /** The agent work (one callback job per node), in lanes: the items of the AgentJobs Map (skipped when none). */
  lanes: Lane[];
  /** What the event should record (an unsupported before_end action, a node not powered off), bounded. */
  notes: string[];
  /** Whether Complete has work for this event (the end: release the nodes); the workflow skips it otherwise. */
  complete: boolean;
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
  const jobs: AgentJobSpec[] = [];
  const notes: string[] = [];
  for (const res of lease.reservations) {
    const plugin = lifecycleFor(res.resource_type);
    const step =
      event.event_type === 'start_lease'
        ? await plugin.onStart(deps, lease, res)
        : event.event_type === 'before_end_lease'
          ? await plugin.onBeforeEnd(deps, lease, res)
          : await plugin.onEnd(deps, lease, res);
    jobs.push(...step.jobs);
    notes.push(...step.notes);
  }
  return actResult(jobs, notes, completes(event));
}

/** Whether Complete does anything for this event (`completeEvent`): only the end has an after-step. */
const completes = (event: LeaseEvent) => event.event_type === 'end_lease';

/** Act's output from the plugins' jobs and notes: the jobs in lanes, the notes bounded. */
export function actResult(jobs: readonly AgentJobSpec[], notes: readonly string[], complete = true): ActResult {
  return { lanes: lanesOf(jobs), notes: firstOf(notes, ACT_NOTES_REPORTED, 'notes'), complete };
}

/** AgentJob: queues one job for the site's agent carrying the workflow's task token. */
export async function queueAgentJob(deps: Ports, input: EventInput & { job: AgentJobSpec; task_token: string }): Promise<{ job_id: string }> {
  const { lease } = await running(deps, input);
  const res = lease.reservations.find((r) => r.id === input.job.reservation_id);
  if (!res) throw new EventGoneError(`Reservation ${input.job.reservation_id} is not part of lease ${lease.id}`);
  return lifecycleFor(res.resource_type).queueJob(deps, input.job, input.task_token, res);
}

/** A lane's record of one job: a failure says why; `note` marks one whose failure settled (see below). */
export interface JobOutcome extends JobResult {
  note?: string;
}

/** Why an agent job failed, from the error the workflow caught. */
function jobErrorText(error: { Error?: string; Cause?: string }): string {
  if (error.Error === 'States.Timeout') return 'the agent did not finish in time';
  if (error.Error === 'States.HeartbeatTimeout') return 'the agent stopped reporting';
  // A job that could not be queued failed in the function: its Cause is the runtime's JSON.
  return causeText(error, 'the agent job failed');
}

/**
 * JobFailed: a lane's job failed (the agent's error, a timeout, a job that could not be queued).
 * A failure that left the resource safely out of the pool (a node whose erase failed is in
 * maintenance, a start deploy that failed) is a note, not the event's failure
 * (`settledFailure`); asked now, right after the job's own handler recorded it on the node.
 */
export async function jobFailed(deps: Ports, input: EventInput & { job: AgentJobSpec; error: { Error?: string; Cause?: string } }): Promise<JobOutcome> {
  const failed = jobOutcome(input.job, input.error);
  const lease = await deps.leases.get(input.lease_id);
  const res = lease?.reservations.find((r) => r.id === input.job.reservation_id);
  const note = res ? await lifecycleFor(res.resource_type).settledFailure?.(deps, failed) : undefined;
  return jobOutcome(input.job, input.error, note);
}

/** A failed job's record in its lane: why (cut short), and the note that settles it, if any. */
export function jobOutcome(job: AgentJobSpec, error: { Error?: string; Cause?: string }, note?: string): JobOutcome {
  const result: JobOutcome = { reservation_id: job.reservation_id, node_id: job.node_id, ok: false, error: cut(jobErrorText(error)) };
  return note ? { ...result, note: cut(note) } : result;
}

/** What a lane hands back to the event: counts, and the first few failures and notes. */
export interface LaneSummary {
  jobs: number;
  /** Jobs that failed the event, and the first REPORTED_PER_LANE of them. */
  failed: number;
  failures: JobResult[];
  /** Jobs whose failure settled (notes), and the first REPORTED_PER_LANE notes. */
  settled: number;
  notes: string[];
}

/** LaneDone: a lane's outcomes, summed up (its child execution's output). */
export function laneSummary(outcomes: readonly JobOutcome[]): LaneSummary {
  const failures = outcomes.filter((o) => !o.ok && !o.note);
  const notes = outcomes.flatMap((o) => (!o.ok && o.note ? [o.note] : []));
  return {
    jobs: outcomes.length,
    failed: failures.length,
    failures: failures.slice(0, REPORTED_PER_LANE).map(({ reservation_id, node_id, ok, error }) => ({ reservation_id, node_id, ok, ...(error ? { error: cut(error) } : {}) })),
    settled: notes.length,
    notes: notes.slice(0, REPORTED_PER_LANE).map(cut),
  };
}

/** Complete: the plugins' action once the agent work is done (end: release the nodes), with the failures the lanes named. */
export async function completeEvent(deps: Ports, input: EventInput & { results: LaneSummary[] | null }): Promise<void> {
  const { lease, event } = await running(deps, input);
  if (!completes(event)) return;
  const failures = (input.results ?? []).flatMap((l) => l.failures);
  for (const res of lease.reservations) {
    await lifecycleFor(res.resource_type).afterEnd(deps, lease, res, failures.filter((r) => r.reservation_id === res.id));
  }
}

export interface FinishInput extends EventInput {
  /** The error a failed step was caught with (Step Functions' `{Error, Cause}`); `{}` or null when none. */
  error: { Error?: string; Cause?: string } | null;
  /** Act's notes (the lanes need not come along). */
  act?: Pick<ActResult, 'notes'> | null;
  /** The lanes' summaries. */
  results?: LaneSummary[] | null;
}

/**
 * Finish: the event becomes DONE or ERROR, its reservations active/deleted (or error), and the
 * lease's stable status is derived from events and reservations; then `lease.event.<type>`.
 * The reason names Act's notes, then each lane's notes and failures (the first few of each lane,
 * and how many more).
 */
export async function finishEvent(deps: Ports, input: FinishInput): Promise<{ event_status: EventStatus | null; lease_status: string | null }> {
  const lanes = input.results ?? [];
  const reasons = [...(input.act?.notes ?? [])];
  for (const l of lanes) reasons.push(...l.notes, ...(l.settled > l.notes.length ? [`and ${l.settled - l.notes.length} more nodes with a note`] : []));
  const caught = input.error?.Error !== undefined ? input.error : null;
  if (caught) reasons.push(causeText(caught, 'the event failed'));
  // A lane is one reservation's, and names at least one failure when it has any: the named
  // failures tell which reservations failed (finishWith marks those in error).
  const failed = lanes.flatMap((l) => l.failures);
  for (const f of failed) reasons.push(`node ${f.node_id}: ${f.error ?? 'the agent job failed'}`);
  const unnamed = lanes.reduce((n, l) => n + l.failed - l.failures.length, 0);
  if (unnamed > 0) reasons.push(`and ${unnamed} more nodes failed`);
  const ok = !caught && lanes.every((l) => l.failed === 0);
  for (let attempt = 0; ; attempt++) {
    const found = await load(deps, input);
    if (!found) return { event_status: null, lease_status: null };
    const { lease, event } = found;
    if (event.status !== 'IN_PROGRESS') return { event_status: event.status, lease_status: lease.status };
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
  grants: readonly PreparedGrant[] = [],
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
  await deps.leaseEvents.transition(lease, next, event.id, event.status, grants);
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
    await deps.leaseEvents.transition(lease, next, event.id, 'IN_PROGRESS');
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
    for (const ref of await deps.leaseEvents.eventsInProgress(new Date(now.getTime() - opts.staleMs))) {
      if (await resetEvent(deps, ref)) reset++;
    }
  }
  const due = await deps.leaseEvents.dueEvents(new Date(now.getTime() - (opts.graceMs ?? 0)), opts.limit ?? 500);
  // The alarm on overdue lease events (metrics.ts): the oldest due event the sweeper has to
  // start (oldest first), 0 when every due event is still within its trigger's grace.
  metric('LeaseEventLagSeconds', due[0] ? Math.max(0, (now.getTime() - Date.parse(due[0].time)) / 1000) : 0, 'Seconds');
  const results = await Promise.allSettled(due.map((ref) => deps.runner.start(ref, executionName(ref, 'sweep', now))));
  let started = 0;
  for (const r of results) {
    if (r.status === 'fulfilled') started++;
    else log.error('sweeper could not start a lease event', { error: (r.reason as Error)?.name });
  }
  if (started > 0 || reset > 0) log.info('lease events swept', { started, reset });
  return { started, reset };
}
