import { randomUUID } from 'node:crypto';
import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { ExecutionError, StateMachine } from 'aws-local-stepfunctions';
import type { LocalTaskCallbacks } from '#core/agent/callbacks.ts';
import { sweepEvents, type SweepResult } from '#core/leases/engine.ts';
import { healAfterFailedErases } from '#core/leases/heal-sweep.ts';
import { type EventRunner, type EventScheduler, executionName, fireTime, type LeaseEventRef, type Notifier } from '#core/leases/lifecycle.ts';
import { reconcileCalendars } from '#core/leases/reconcile.ts';
import type { Clock, Ports } from '#core/ports.ts';
import { log } from '#core/util/log.ts';
import { ExecutionMeter, type Largest, statesOf } from '../workflows/limits.ts';
import { CHILD_FAILED_ERROR, type LocalDefinition, localDefinition } from '../workflows/local-distributed.ts';
import { runStep } from '../../functions/workflows/lease-events.ts';
import { runOperationStep } from '../../functions/workflows/cluster-operations.ts';
import type { OperationRunner } from '#core/ports.ts';
import type { TaskRunner } from '#core/drydock/store.ts';
import { runDrydockStep } from '../../functions/workflows/drydock-tasks.ts';
import { runDrydockPrepare } from '../../functions/workflows/drydock-prepare.ts';

/**
 * Lease timing and the lease-event workflow inside `npm start` (DESIGN.md §8), doing what
 * EventBridge Scheduler, the sweeper rule and Step Functions do on AWS:
 *  - a timer per pending event (the one-time schedule), armed when a lease commits and, at
 *    start, for every UNDONE event in the table, so events due while the stack was stopped run
 *    as soon as it is back;
 *  - a sweeper every minute (and at start) for due events still UNDONE;
 *  - the synthesized ASL of the workflow run by aws-local-stepfunctions, every Task state bound
 *    by name to the Lambda handler's own step function; the agent's callback jobs are awaited
 *    through the in-process task-token registry; the items of a distributed Map run as child
 *    executions of their own, and every execution is held to Step Functions' history and
 *    payload limits (which aws-local-stepfunctions does not know).
 */

/** A clock the tests move: timers are re-armed when it jumps. */
export interface AdjustableClock extends Clock {
  onChange(listener: () => void): void;
}
const isAdjustable = (c: Clock): c is AdjustableClock => typeof (c as Partial<AdjustableClock>).onChange === 'function';

/**
 * Figures for `npm run bench` (what Step Functions would bill: state transitions), and what the
 * executions spent of Step Functions' per-execution limits (`infra/workflows/limits.ts`).
 */
export interface WorkflowStats {
  executions: number;
  /** Executions whose Begin found nothing to do (repeated or early deliveries). */
  skipped: number;
  failed: number;
  /** State transitions of every execution, child executions of distributed Maps included. */
  transitions: number;
  /** Child executions of distributed Maps (on AWS each is an execution with a history of its own). */
  childExecutions: number;
  /** The longest history, in Step Functions events, of a started execution and of a child execution (limit 25,000 each). */
  maxHistoryEvents: { execution: number; child: number };
  /** The largest payload of any execution (limit 256 KiB). */
  largestPayload: Largest & { execution: string };
}

/**
 * One state machine run in-process: the synthesized ASL, every Task state bound to the Lambda
 * handler's own code (`step`); the `.waitForTaskToken` ones (whose input is `{FunctionName,
 * Payload}`) are answered through the in-process task-token registry. Every Task of a Slipway
 * workflow invokes one of the workflow's functions (the Drydock task workflow has two), so every
 * Task of the definition is bound (none can reach for real Lambda).
 */
export interface LocalMachine {
  asl: Record<string, unknown>;
  /** The handler of the function the Task state `state` invokes, called with the Task's payload. */
  step: (input: unknown, state: string) => Promise<unknown>;
  /** What Waits on a timestamp are timed by (the stack's clock); without it, the system clock. */
  clock?: Clock;
}

/** A definition ready to run: its local rendering, the meter's view of it, its Tasks, its children. */
interface Compiled {
  machine: StateMachine;
  states: ReturnType<typeof statesOf>;
  /** Task state → whether it waits for a task token. */
  tasks: Map<string, boolean>;
  /** Stand-in Task → the child execution's definition. */
  children: Map<string, { map: string; compiled: Compiled }>;
  /** Task state → its ResultPath, where it is one (`$.begin`). */
  resultPaths: Map<string, string>;
  /** Wait state → its TimestampPath (`$.begin.due`), for the Waits on a timestamp. */
  timestampWaits: Map<string, string>;
}

function compile(local: LocalDefinition): Compiled {
  const states = statesOf(local.definition as never);
  const top = Object.entries((local.definition as { States?: Record<string, Record<string, unknown>> }).States ?? {});
  return {
    machine: new StateMachine(local.definition as never, { validationOptions: { checkArn: false } }),
    states,
    tasks: new Map([...states.states].filter(([, st]) => st.type === 'Task').map(([name, st]) => [name, st.callback])),
    children: new Map([...local.children].map(([stand, c]) => [stand, { map: c.map, compiled: compile(c.child) }])),
    resultPaths: new Map(top.filter(([, st]) => st.Type === 'Task' && typeof st.ResultPath === 'string').map(([name, st]) => [name, st.ResultPath as string])),
    timestampWaits: new Map(top.filter(([, st]) => st.Type === 'Wait' && typeof st.TimestampPath === 'string').map(([name, st]) => [name, st.TimestampPath as string])),
  };
}

/**
 * How long a Wait on a timestamp lasts by the stack's clock, not by aws-local-stepfunctions' own
 * `Date.now()` (a test may have moved the clock; with the system clock both agree). The
 * timestamp's path names a field of a Task's result (`$.begin.due`: Begin's), which the
 * execution keeps by ResultPath (`results`). Undefined: the library times it itself.
 */
function timestampWait(path: string, results: Map<string, unknown>, clock: Clock): number | undefined {
  for (const [at, value] of results) {
    if (!path.startsWith(`${at}.`)) continue;
    let v: unknown = value;
    for (const key of path.slice(at.length + 1).split('.')) v = v && typeof v === 'object' ? (v as Record<string, unknown>)[key] : undefined;
    const due = typeof v === 'string' ? Date.parse(v) : NaN;
    return Number.isNaN(due) ? undefined : Math.max(0, due - clock.now().getTime());
  }
  return undefined;
}

/**
 * Lambda's concurrency, locally: at most `width` Task invocations of one workflow's functions run
 * at once (on AWS the lease-event function has a reserved concurrency of 25, slipway-function.ts),
 * and a free slot goes to the oldest execution waiting (started first), not to the Task that asked
 * first. When many events are due at once (leases cluster on round hours) every execution's first
 * step arrives before any second step: taken in arrival order, or all at once, every execution
 * would finish near the end of the burst; oldest first, they finish one after another, as the
 * first ones would on AWS, while the machine stays as busy. A callback Task holds a slot only
 * while its function queues the job, not while the agent works.
 */
export class TaskSlots {
  private running = 0;
  /** Waiting invocations, by execution age then arrival (a small binary heap). */
  private readonly heap: { rank: number; seq: number; go: () => void }[] = [];
  private arrivals = 0;

  constructor(readonly width: number) {}

  async run<T>(rank: number, fn: () => Promise<T>): Promise<T> {
    if (this.running >= this.width) await new Promise<void>((go) => this.push({ rank, seq: this.arrivals++, go }));
    else this.running++;
    try {
      return await fn();
    } finally {
      const next = this.pop();
      // The slot passes straight to the next invocation (running stays the same) or is freed.
      if (next) next.go();
      else this.running--;
    }
  }

  private less(a: { rank: number; seq: number }, b: { rank: number; seq: number }): boolean {
    return a.rank < b.rank || (a.rank === b.rank && a.seq < b.seq);
  }

  private push(x: { rank: number; seq: number; go: () => void }): void {
    const h = this.heap;
    h.push(x);
    for (let i = h.length - 1; i > 0; ) {
      const parent = (i - 1) >> 1;
      if (!this.less(h[i]!, h[parent]!)) break;
      [h[i], h[parent]] = [h[parent]!, h[i]!];
      i = parent;
    }
  }

  private pop(): { go: () => void } | undefined {
    const h = this.heap;
    const top = h[0];
    const last = h.pop();
    if (h.length > 0 && last) {
      h[0] = last;
      for (let i = 0; ; ) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && this.less(h[l]!, h[m]!)) m = l;
        if (r < h.length && this.less(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    return top;
  }
}

/** The periodic in-process sweep leaves just-due events this long to their timers (SWEEP_GRACE_MS of functions/workflows/sweeper.ts). */
const PERIODIC_SWEEP_GRACE_MS = 60_000;

/** How many finished executions' paths the runner keeps, and how many states of each. */
const PATHS_KEPT = 1000;
const PATH_LIMIT = 100;

/** Task invocations in flight at once per workflow, as the lease-event function's reserved concurrency on AWS. */
export const LOCAL_TASK_CONCURRENCY = 25;

/**
 * Waits on a timestamp that end at the same millisecond are released this many per millisecond
 * (WaitRelease), oldest first: as many as there are Task slots.
 */
export const WAITS_RELEASED_PER_MS = LOCAL_TASK_CONCURRENCY;

/**
 * When the Waits of many executions end at the same instant (500 lease starts prepared for the
 * same minute), Node runs every expired timer in one pass of its timers phase: each execution's
 * next steps in aws-local-stepfunctions (cloning its state, JSONPath, our payload meter, about
 * 0.3 ms each) all ran before the stack read a single answer: the first Commit's answer from
 * DynamoDB waited 0.17 s behind the steps of executions that would wait for a Task slot anyway
 * (docs/fleet-scale.md). Released WAITS_RELEASED_PER_MS per millisecond, in the
 * order they were armed, the event loop reads and sends between groups, as long as a group's
 * steps take less than the millisecond: once they take longer, Node's timers phase runs the next
 * groups in the same pass, as every timer already due (a trial with groups 20 ms apart measured
 * no gain beyond the bench's noise, docs/fleet-scale.md "Smaller compilations"). No Wait ends before its
 * time: the n-th Wait ending at an instant ends ⌊n / WAITS_RELEASED_PER_MS⌋ ms after it (500 of
 * them: the last 19 ms after), and by then it would still be waiting for a slot.
 */
export class WaitRelease {
  /** End (ms since the epoch) → Waits armed to end then. */
  private readonly armed = new Map<number, number>();

  /** How long a Wait armed now, due in `ms`, lasts. */
  delay(ms: number, now: number): number {
    if (ms <= 0) return ms;
    const end = Math.round(now + ms);
    const n = this.armed.get(end) ?? 0;
    this.armed.set(end, n + 1);
    if (this.armed.size > 1000) for (const at of this.armed.keys()) if (at < now) this.armed.delete(at);
    return ms + Math.floor(n / WAITS_RELEASED_PER_MS);
  }
}

/** The error an execution fails with when it passes a limit: Step Functions' own for payloads. */
const limitError = (reason: string) =>
  Object.assign(new Error(`Step Functions limit: ${reason}`), { name: reason.includes('history') ? 'HistoryEventLimitExceeded' : 'States.DataLimitExceeded' });

/** One execution being run: how to stop it (and its children), its result, its meter. */
interface Run {
  abort: () => void;
  result: Promise<unknown>;
  meter: ExecutionMeter;
}

/**
 * Executes LocalMachines, each execution under a unique name (as Step Functions does).
 * Distributed Maps run their items as child executions (`infra/workflows/local-distributed.ts`),
 * and every execution is metered against Step Functions' limits: one that passes a limit fails,
 * as it would on AWS, and says which.
 */
export class LocalStateMachineRunner {
  private readonly compiled: Compiled;
  private readonly names = new Set<string>();
  private readonly running = new Set<{ abort: () => void; done: Promise<void> }>();
  /** Tokens of callback Tasks still waiting: failed on stop, so their Task timers end too. */
  private readonly waiting = new Set<string>();
  private stopped = false;
  private children = 0;
  /** Executions started so far: an execution's number is its rank for TaskSlots (its children share it). */
  private started = 0;
  private readonly slots = new TaskSlots(LOCAL_TASK_CONCURRENCY);
  private readonly waits = new WaitRelease();
  /** The states the last PATHS_KEPT finished executions entered, by name (statesEntered). */
  private readonly paths = new Map<string, string[]>();
  readonly stats: WorkflowStats = {
    executions: 0,
    skipped: 0,
    failed: 0,
    transitions: 0,
    childExecutions: 0,
    maxHistoryEvents: { execution: 0, child: 0 },
    largestPayload: { bytes: 0, where: '', execution: '' },
  };

  constructor(
    private readonly spec: LocalMachine,
    private readonly callbacks: LocalTaskCallbacks,
    /** Says whether an execution's output means it found nothing to do (counted as skipped). */
    private readonly skippedWhen: (output: unknown) => boolean = () => false,
  ) {
    this.compiled = compile(localDefinition(spec.asl));
  }

  /** Starts an execution unless one with this name was started before (then: no-op). */
  start(input: Record<string, unknown>, name: string, what: Record<string, unknown> = {}): void {
    if (this.stopped) throw new Error('the local workflow runner is stopped');
    if (this.names.has(name)) return;
    this.names.add(name);
    this.stats.executions++;
    const run = this.execute(this.compiled, input, name, false, this.started++);
    const entry = {
      abort: run.abort,
      done: run.result.then(
        (out) => {
          if (this.skippedWhen(out)) this.stats.skipped++;
        },
        (err: Error) => {
          this.stats.failed++;
          if (!this.stopped) log.error('workflow execution failed', { ...what, execution: name, error: err.name, cause: err.message });
        },
      ),
    };
    this.running.add(entry);
    void entry.done.finally(() => this.running.delete(entry));
  }

  /**
   * Runs one execution of `c`: its Tasks bound to the function, its distributed Maps' stand-ins to
   * child executions, its events counted. The result rejects with the execution's error; it
   * resolves with null when the execution was aborted (the stack stopping).
   */
  private execute(c: Compiled, input: unknown, name: string, child: boolean, rank: number): Run {
    const kids = new Set<() => void>();
    let aborted = false;
    // Assigned once the handlers (which need the meter, whose callback aborts it) exist.
    let exec: ReturnType<StateMachine['run']> | undefined = undefined;
    const abort = () => {
      aborted = true;
      exec?.abort();
      for (const k of kids) k();
    };
    // An execution that passes a limit is stopped where it is, as Step Functions fails it.
    const meter = new ExecutionMeter(c.states, name, () => abort());
    const handlers: Record<string, (input: unknown) => Promise<never>> = {};
    // The latest result at each ResultPath: what a Wait on a timestamp reads its time from.
    const results = new Map<string, unknown>();
    for (const [state, callback] of c.tasks) {
      handlers[state] = async (i) => {
        meter.payload(i, `${state} parameters`);
        const p = callback ? this.callbackTask(i as Record<string, unknown>, state, rank) : this.slots.run(rank, () => this.spec.step(i, state));
        // An execution that timed out, failed or was aborted no longer awaits its Task: its late
        // rejection (the stop fails waiting tokens) must not be an unhandled one.
        p.catch(() => undefined);
        const out = await p;
        meter.payload(out, `${state} result`);
        const at = c.resultPaths.get(state);
        if (at) results.set(at, out);
        return out as never;
      };
    }
    const clock = this.spec.clock;
    // Read by aws-local-stepfunctions when a Wait state starts: each Wait on a timestamp is timed then.
    const waitTimeOverrides = new Proxy({} as Record<string, number>, {
      get: (_, state) => {
        const path = typeof state === 'string' ? c.timestampWaits.get(state) : undefined;
        const ms = path && clock ? timestampWait(path, results, clock) : undefined;
        return ms === undefined || !clock ? ms : this.waits.delay(ms, clock.now().getTime());
      },
    });
    for (const [stand, { map, compiled }] of c.children) {
      handlers[stand] = (i) => this.child(compiled, i, `${name}/${map}-${++this.children}`, kids, rank) as Promise<never>;
    }
    const started = c.machine.run(input as never, {
      noThrowOnAbort: true,
      // `$$.Task.Token` must resolve; each callback Task makes its own token below.
      context: { Task: { Token: 'local' }, Execution: { Name: name } } as never,
      overrides: { taskResourceLocalHandlers: handlers, waitTimeOverrides },
    });
    exec = started;
    // The states it entered, in order (the first PATH_LIMIT): what Step Functions' history shows.
    const path: string[] = [];
    const counting = (async () => {
      for await (const ev of started.eventLogs) {
        meter.observe(ev as never);
        const entered = ev as { type?: string; state?: { name?: string } };
        if (entered.type === 'StateEntered' && entered.state?.name && path.length < PATH_LIMIT) path.push(entered.state.name);
      }
    })().catch(() => undefined);
    const remember = () => {
      if (child) return;
      this.paths.set(name, path);
      if (this.paths.size > PATHS_KEPT) this.paths.delete(this.paths.keys().next().value!);
    };
    const result = started.result.then(
      async (out) => {
        await counting;
        remember();
        this.record(meter, child);
        if (meter.limitExceeded) throw limitError(meter.limitExceeded);
        return aborted ? null : out;
      },
      async (err: Error) => {
        await counting;
        remember();
        this.record(meter, child);
        // aws-local-stepfunctions wraps the state's error (an ExecutionError whose cause it is).
        throw meter.limitExceeded ? limitError(meter.limitExceeded) : err instanceof ExecutionError && err.cause instanceof Error ? err.cause : err;
      },
    );
    return { abort, result, meter };
  }

  /** A distributed Map's item: a child execution; its failure fails the Map (no failure tolerated). */
  private async child(c: Compiled, input: unknown, name: string, siblings: Set<() => void>, rank: number): Promise<unknown> {
    this.stats.childExecutions++;
    const run = this.execute(c, input, name, true, rank);
    siblings.add(run.abort);
    try {
      return await run.result;
    } catch (err) {
      throw Object.assign(new Error(`child execution ${name} failed: ${(err as Error).name}: ${(err as Error).message}`), { name: CHILD_FAILED_ERROR });
    } finally {
      siblings.delete(run.abort);
    }
  }

  private record(meter: ExecutionMeter, child: boolean): void {
    this.stats.transitions += meter.transitions;
    const h = this.stats.maxHistoryEvents;
    if (child) h.child = Math.max(h.child, meter.events);
    else h.execution = Math.max(h.execution, meter.events);
    if (meter.largest.bytes > this.stats.largestPayload.bytes) this.stats.largestPayload = { ...meter.largest, execution: meter.execution };
  }

  /** The callback task: the function queues its job with a token of ours, then we wait for the answer. */
  private async callbackTask(input: Record<string, unknown>, state: string, rank: number): Promise<never> {
    const token = `local-${randomUUID()}`;
    const waiter = this.callbacks.wait(token);
    try {
      await this.slots.run(rank, () => this.spec.step({ ...(input.Payload as Record<string, unknown>), task_token: token }, state));
    } catch (err) {
      waiter.promise.catch(() => undefined);
      await this.callbacks.fail(token, 'QueueFailed', (err as Error).message);
      throw err;
    }
    this.waiting.add(token);
    try {
      return (await waiter.promise) as never;
    } finally {
      this.waiting.delete(token);
    }
  }

  /**
   * The states a finished execution entered, in order, as its history on AWS would list them
   * (`Init, Begin, Outcome, AtEventTime, Commit, …`); undefined for one unknown or still running.
   */
  statesEntered(name: string): string[] | undefined {
    return this.paths.get(name);
  }

  /** Resolves when no execution is running (tests and the bench wait on it). */
  async idle(): Promise<void> {
    while (this.running.size > 0) await Promise.all([...this.running].map((r) => r.done));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const r of this.running) r.abort();
    // An aborted execution leaves its waiting Task (and that Task's timeout timer) behind.
    for (const token of [...this.waiting]) await this.callbacks.fail(token, 'Aborted', 'the local stack stopped');
    await Promise.allSettled([...this.running].map((r) => r.done));
  }
}

/** What a workflow's Task states are bound to: the function's step, called with the Task's payload. */
export type StepHandler = (input: unknown) => Promise<unknown>;

/** The lease-event workflow locally: the EventRunner port on a LocalStateMachineRunner. */
export class LocalWorkflowRunner implements EventRunner {
  private readonly runner: LocalStateMachineRunner;

  constructor(asl: Record<string, unknown>, deps: () => Ports, callbacks: LocalTaskCallbacks, step?: StepHandler, clock?: Clock) {
    this.runner = new LocalStateMachineRunner(
      {
        asl,
        step: step ?? ((input) => runStep(deps(), input)),
        clock,
      },
      callbacks,
      (out) => !!out && typeof out === 'object' && (out as { begin?: { outcome?: string } }).begin?.outcome === 'skip',
    );
  }

  get stats(): WorkflowStats {
    return this.runner.stats;
  }

  statesEntered(name: string): string[] | undefined {
    return this.runner.statesEntered(name);
  }

  async start(ref: LeaseEventRef, name: string): Promise<void> {
    this.runner.start({ lease_id: ref.lease_id, event_id: ref.event_id }, name, { lease_id: ref.lease_id, event_id: ref.event_id });
  }

  idle(): Promise<void> {
    return this.runner.idle();
  }

  stop(): Promise<void> {
    return this.runner.stop();
  }
}

/** Commissaire cluster operations locally: the OperationRunner port on a LocalStateMachineRunner. */
export class LocalOperationRunner implements OperationRunner {
  readonly runner: LocalStateMachineRunner;

  constructor(asl: Record<string, unknown>, deps: () => Ports, callbacks: LocalTaskCallbacks, step?: StepHandler) {
    this.runner = new LocalStateMachineRunner(
      {
        asl,
        step: step ?? ((input) => runOperationStep(deps(), input)),
      },
      callbacks,
    );
  }

  async start(input: { cluster: string; kind: string }, name: string): Promise<void> {
    this.runner.start(input, name, input);
  }
}

/** The Task states of a definition that invoke function `arn` (as their Resource, or the FunctionName of a lambda:invoke). */
export function tasksInvoking(asl: Record<string, unknown>, arn: string): Set<string> {
  const out = new Set<string>();
  const visit = (d: { States?: Record<string, Record<string, unknown>> }) => {
    for (const [name, st] of Object.entries(d.States ?? {})) {
      const params = st.Parameters as { FunctionName?: unknown } | undefined;
      if (st.Type === 'Task' && (st.Resource === arn || params?.FunctionName === arn)) out.add(name);
      const inner = (st.ItemProcessor ?? st.Iterator) as typeof d | undefined;
      if (inner) visit(inner);
      for (const b of (st.Branches as (typeof d)[] | undefined) ?? []) visit(b);
    }
  };
  visit(asl as typeof asl & { States?: Record<string, Record<string, unknown>> });
  return out;
}

/**
 * Drydock tasks locally: the TaskRunner port on a LocalStateMachineRunner. The Tasks that invoke
 * Prepare's function (`prepareArn`) are bound to Prepare, every other Task to the task function,
 * as the definition binds them (`infra/workflows/drydock-tasks.ts`).
 */
export class LocalTaskRunner implements TaskRunner {
  readonly runner: LocalStateMachineRunner;

  constructor(asl: Record<string, unknown>, prepareArn: string, deps: () => Ports, callbacks: LocalTaskCallbacks, functions?: { prepare: StepHandler; tasks: StepHandler }) {
    const prepare = functions?.prepare ?? ((input) => runDrydockPrepare(deps(), input));
    const tasks = functions?.tasks ?? ((input) => runDrydockStep(deps(), input));
    const prepares = tasksInvoking(asl, prepareArn);
    if (prepares.size === 0) throw new Error(`the Drydock task definition has no Task invoking ${prepareArn}`);
    this.runner = new LocalStateMachineRunner(
      {
        asl,
        step: (input, state) => (prepares.has(state) ? prepare : tasks)(input),
      },
      callbacks,
    );
  }

  get stats(): WorkflowStats {
    return this.runner.stats;
  }

  async start(input: { task_id: string }, name: string): Promise<void> {
    this.runner.start(input, name, input);
  }

  idle(): Promise<void> {
    return this.runner.idle();
  }
}

/** One timer per pending event: the local EventBridge Scheduler. */
export class LocalEventScheduler implements EventScheduler {
  private readonly timers = new Map<string, { ref: LeaseEventRef; timer: NodeJS.Timeout }>();
  private stopped = false;

  constructor(
    private readonly clock: Clock,
    private readonly fire: (ref: LeaseEventRef) => void,
  ) {}

  async put(ref: LeaseEventRef): Promise<void> {
    this.arm(ref);
  }

  async remove(ref: LeaseEventRef): Promise<void> {
    const t = this.timers.get(ref.event_id);
    if (t) clearTimeout(t.timer);
    this.timers.delete(ref.event_id);
  }

  get size(): number {
    return this.timers.size;
  }

  arm(ref: LeaseEventRef): void {
    if (this.stopped) return;
    const old = this.timers.get(ref.event_id);
    if (old) clearTimeout(old.timer);
    // At the trigger's time: the event's, or its lead earlier for one Begin prepares (fireTime).
    // setTimeout holds at most 2^31-1 ms (24.8 days); a later event is re-armed when that fires.
    const at = Date.parse(fireTime(ref));
    const delay = Math.min(Math.max(0, at - this.clock.now().getTime()), 2 ** 31 - 1);
    const timer = setTimeout(() => {
      this.timers.delete(ref.event_id);
      if (at > this.clock.now().getTime()) this.arm(ref);
      else this.fire(ref);
    }, delay);
    timer.unref();
    this.timers.set(ref.event_id, { ref, timer });
  }

  /** The clock jumped: every timer is computed again. */
  rearmAll(): void {
    for (const { ref } of [...this.timers.values()]) this.arm(ref);
  }

  stop(): void {
    this.stopped = true;
    for (const { timer } of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
  }
}

/**
 * Notifications locally: a log line, and a POST to `SLIPWAY_NOTIFY_WEBHOOK` when set. Sent with
 * node:http(s) over kept-alive connections rather than fetch: a burst of lease starts sends one
 * notice each, and fetch's web streams cost about a tenth of the stack's CPU per start
 * (docs/fleet-scale.md).
 */
export class LocalNotifier implements Notifier {
  private readonly url?: URL;
  private readonly agent?: HttpAgent;
  private readonly listeners = new Set<(type: string, detail: Record<string, unknown>) => void>();

  constructor(webhook?: string) {
    if (!webhook) return;
    this.url = new URL(webhook);
    if (this.url.protocol !== 'http:' && this.url.protocol !== 'https:') throw new Error(`SLIPWAY_NOTIFY_WEBHOOK must be an http(s) URL, not ${this.url.protocol}`);
    this.agent = this.url.protocol === 'https:' ? new HttpsAgent({ keepAlive: true, maxSockets: 16 }) : new HttpAgent({ keepAlive: true, maxSockets: 16 });
  }

  /**
   * Calls `listener` with each notice as it leaves, in this process (the lifecycle bench times
   * the events by it: a webhook of its own in the same process would add its HTTP work to the
   * burst it measures). Returns the unsubscribe.
   */
  subscribe(listener: (type: string, detail: Record<string, unknown>) => void): () => void {
    this.listeners.add(listener);
    return () => void this.listeners.delete(listener);
  }

  async publish(type: string, detail: Record<string, unknown>): Promise<void> {
    for (const listener of this.listeners) listener(type, detail);
    log.info('notification', { event_type: type, lease_id: detail.lease_id, status: detail.lease_status ?? detail.status });
    if (!this.url) return;
    const body = JSON.stringify({ event_type: type, payload: detail, timestamp: new Date().toISOString() });
    let status: number;
    try {
      status = await this.post(body);
    } catch (err) {
      // A kept-alive connection the webhook closed as this request went out (its idle timeout):
      // nothing reached it, so the notice goes once more, on a new connection.
      if (!(err as { reusedSocket?: boolean }).reusedSocket) throw err;
      status = await this.post(body);
    }
    if (status < 200 || status >= 300) throw new Error(`notification webhook answered ${status}`);
  }

  private post(body: string): Promise<number> {
    const send = this.url!.protocol === 'https:' ? httpsRequest : httpRequest;
    return new Promise<number>((resolve, reject) => {
      const req = send(this.url!, { method: 'POST', agent: this.agent, headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) }, timeout: 5000 }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new Error('notification webhook did not answer within 5 s')));
      // Node's advice for kept-alive agents: a reset on a reused socket may be retried.
      req.on('error', (err: NodeJS.ErrnoException) => reject(Object.assign(err, { reusedSocket: req.reusedSocket && (err.code === 'ECONNRESET' || err.code === 'EPIPE') })));
      req.end(body);
    });
  }

  /** Closes the kept-alive connections (the stack's stop). */
  close(): void {
    this.agent?.destroy();
  }
}

export interface LocalLifecycleOptions {
  asl: Record<string, unknown>;
  /** The cluster-operation workflow's ASL. */
  operationsAsl: Record<string, unknown>;
  /** The Drydock task workflow's ASL. */
  tasksAsl: Record<string, unknown>;
  /** The function its Prepare Task invokes (`LOCAL_DRYDOCK_PREPARE_FUNCTION_ARN`). */
  tasksPrepareFunctionArn: string;
  clock: Clock;
  callbacks: LocalTaskCallbacks;
  webhook?: string;
  /** Default one minute, as the sweeper rule on AWS. */
  sweepIntervalMs?: number;
  /**
   * What the Task states and the periodic sweep are bound to instead of the in-process step
   * functions (`npm start -- --bundled`: the bundles' exported handlers, invoked as Lambda invokes
   * them, so that a step's error reaches Retry and Catch under the errorType Lambda reports).
   */
  functions?: { leaseEvents: StepHandler; clusterOperations: StepHandler; drydockPrepare: StepHandler; drydockTasks: StepHandler; sweeper: StepHandler };
}

/** The three together, with the start-up catch-up and the periodic sweep. */
export class LocalLifecycle {
  readonly runner: LocalWorkflowRunner;
  readonly scheduler: LocalEventScheduler;
  readonly notifier: LocalNotifier;
  readonly operations: LocalOperationRunner;
  readonly tasks: LocalTaskRunner;
  private deps?: Ports;
  private sweepTimer?: NodeJS.Timeout;
  private sweeps = 0;

  constructor(private readonly opts: LocalLifecycleOptions) {
    this.runner = new LocalWorkflowRunner(opts.asl, () => this.requireDeps(), opts.callbacks, opts.functions?.leaseEvents, opts.clock);
    this.scheduler = new LocalEventScheduler(opts.clock, (ref) => {
      this.runner.start(ref, executionName(ref, 'schedule')).catch((err: Error) => log.error('lease event not started', { event_id: ref.event_id, error: err.message }));
    });
    this.notifier = new LocalNotifier(opts.webhook);
    this.operations = new LocalOperationRunner(opts.operationsAsl, () => this.requireDeps(), opts.callbacks, opts.functions?.clusterOperations);
    this.tasks = new LocalTaskRunner(opts.tasksAsl, opts.tasksPrepareFunctionArn, () => this.requireDeps(), opts.callbacks, opts.functions && { prepare: opts.functions.drydockPrepare, tasks: opts.functions.drydockTasks });
    if (isAdjustable(opts.clock)) opts.clock.onChange(() => this.scheduler.rearmAll());
  }

  ports(): Pick<Ports, 'scheduler' | 'runner' | 'notifier' | 'operations' | 'tasks'> {
    return { scheduler: this.scheduler, runner: this.runner, notifier: this.notifier, operations: this.operations, tasks: this.tasks };
  }

  bind(deps: Ports): void {
    this.deps = deps;
  }

  private requireDeps(): Ports {
    if (!this.deps) throw new Error('LocalLifecycle used before bind()');
    return this.deps;
  }

  /**
   * Catch-up at start: no execution survived the last stop, so events left IN_PROGRESS go back
   * to UNDONE; every pending event gets its timer; due ones start at once.
   */
  async start(): Promise<SweepResult> {
    const deps = this.requireDeps();
    for (const ref of await deps.leaseEvents.pendingEvents()) {
      if (Date.parse(ref.time) > deps.clock.now().getTime()) this.scheduler.arm(ref);
    }
    const result = await sweepEvents(deps, { staleMs: 0 });
    if (result.started > 0) log.info('lease events due while the stack was stopped are running now', { started: result.started });
    // Drydock tasks whose workflow the stop interrupted run again (every step is safe to
    // repeat); otherwise they would hold their site's slot, and block its queue, for ever.
    const interrupted = (await deps.drydock.listTasks()).filter((t) => t.parent_task_id === null && (t.status === 'queued' || t.status === 'running'));
    for (const t of interrupted) await this.tasks.start({ task_id: t.task_id }, `${t.task_id}-resumed-${deps.clock.now().getTime()}`);
    if (interrupted.length > 0) log.info('drydock tasks interrupted by the last stop are running again', { tasks: interrupted.length });
    // As the EventBridge rule on AWS: the sweeper function with the rule's event (bundled), or its use-cases in-process.
    const sweeper = this.opts.functions?.sweeper;
    // In-process, with the grace the sweeper function has on AWS (SWEEP_GRACE_MS, a minute): with 5 s,
    // a burst of due events still queued for a Task slot (TaskSlots) was started a second time.
    const tick = sweeper ? () => void sweeper({ time: new Date().toISOString() }).catch((err: Error) => log.error('sweep failed', { error: err.message })) : () => void this.sweep(PERIODIC_SWEEP_GRACE_MS);
    this.sweepTimer = setInterval(tick, this.opts.sweepIntervalMs ?? 60_000);
    this.sweepTimer.unref();
    return result;
  }

  /** One sweeper run (the tests call it to play the AWS rule). */
  async sweep(graceMs = 5_000): Promise<SweepResult> {
    const deps = this.requireDeps();
    try {
      const result = await sweepEvents(deps, { graceMs });
      // As on AWS: leases waiting for a node whose erase failed are healed (heal-sweep.ts), a
      // failure of which does not hide the sweep's own result…
      await healAfterFailedErases(deps).catch((err: Error) => log.error('leases of nodes whose erase failed not healed', { error: err.message }));
      // …and calendars are reconciled every 15th run.
      if (++this.sweeps % 15 === 0) await reconcileCalendars(deps);
      return result;
    } catch (err) {
      log.error('sweep failed', { error: (err as Error).message });
      return { started: 0, reset: 0 };
    }
  }

  async stop(): Promise<void> {
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.scheduler.stop();
    await this.runner.stop();
    await this.operations.runner.stop();
    await this.tasks.runner.stop();
    this.notifier.close();
  }
}
