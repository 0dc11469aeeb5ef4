import { randomUUID } from 'node:crypto';
import { StateMachine } from 'aws-local-stepfunctions';
import type { LocalTaskCallbacks } from '#core/agent/callbacks.ts';
import { sweepEvents, type SweepResult } from '#core/leases/engine.ts';
import { type EventRunner, type EventScheduler, executionName, type LeaseEventRef, type Notifier } from '#core/leases/lifecycle.ts';
import { reconcileCalendars } from '#core/leases/reconcile.ts';
import type { Clock, Ports } from '#core/ports.ts';
import { log } from '#core/util/log.ts';
import { runStep } from '../../functions/workflows/lease-events.ts';
import { LEASE_EVENT_TASKS } from '../workflows/lease-events.ts';
import { CLUSTER_OP_TASKS } from '../workflows/cluster-operations.ts';
import { runOperationStep } from '../../functions/workflows/cluster-operations.ts';
import type { OperationRunner } from '#core/ports.ts';
import type { TaskRunner } from '#core/drydock/store.ts';
import { DRYDOCK_TASK_STATES } from '../workflows/drydock-tasks.ts';
import { runDrydockStep } from '../../functions/workflows/drydock-tasks.ts';

/**
 * Lease timing and the lease-event workflow inside `npm start` (DESIGN.md §8), doing what
 * EventBridge Scheduler, the sweeper rule and Step Functions do on AWS:
 *  - a timer per pending event (the one-time schedule), armed when a lease commits and, at
 *    start, for every UNDONE event in the table, so events due while the stack was stopped run
 *    as soon as it is back;
 *  - a sweeper every minute (and at start) for due events still UNDONE;
 *  - the synthesized ASL of the workflow run by aws-local-stepfunctions, every Task state bound
 *    by name to the Lambda handler's own step function; the agent's callback jobs are awaited
 *    through the in-process task-token registry.
 */

/** A clock the tests move: timers are re-armed when it jumps. */
export interface AdjustableClock extends Clock {
  onChange(listener: () => void): void;
}
const isAdjustable = (c: Clock): c is AdjustableClock => typeof (c as Partial<AdjustableClock>).onChange === 'function';

/** Figures for `npm run bench`: what Step Functions would bill (state transitions). */
export interface WorkflowStats {
  executions: number;
  /** Executions whose Begin found nothing to do (repeated or early deliveries). */
  skipped: number;
  failed: number;
  transitions: number;
}

/**
 * One state machine run in-process: the synthesized ASL, with every Task state bound by name to
 * the Lambda handler's own code (`step`), and callback Tasks (`.waitForTaskToken`, whose input is
 * `{FunctionName, Payload}`) answered through the in-process task-token registry.
 */
export interface LocalMachine {
  asl: Record<string, unknown>;
  /** The Task states that invoke the function and return its result. */
  tasks: readonly string[];
  /** The `.waitForTaskToken` Task states. */
  callbackTasks: readonly string[];
  /** The function's handler, called with the Task's payload. */
  step: (input: unknown) => Promise<unknown>;
}

/** Executes LocalMachines, each execution under a unique name (as Step Functions does). */
export class LocalStateMachineRunner {
  private readonly machine: StateMachine;
  private readonly names = new Set<string>();
  private readonly running = new Set<{ abort: () => void; done: Promise<void> }>();
  /** Tokens of callback Tasks still waiting: failed on stop, so their Task timers end too. */
  private readonly waiting = new Set<string>();
  private stopped = false;
  readonly stats: WorkflowStats = { executions: 0, skipped: 0, failed: 0, transitions: 0 };

  constructor(
    private readonly spec: LocalMachine,
    private readonly callbacks: LocalTaskCallbacks,
    /** Says whether an execution's output means it found nothing to do (counted as skipped). */
    private readonly skippedWhen: (output: unknown) => boolean = () => false,
  ) {
    this.machine = new StateMachine(spec.asl as never, { validationOptions: { checkArn: false } });
  }

  /** Starts an execution unless one with this name was started before (then: no-op). */
  start(input: Record<string, unknown>, name: string, what: Record<string, unknown> = {}): void {
    if (this.stopped) throw new Error('the local workflow runner is stopped');
    if (this.names.has(name)) return;
    this.names.add(name);
    this.stats.executions++;
    const handlers: Record<string, (input: unknown) => Promise<never>> = {};
    for (const t of this.spec.tasks) handlers[t] = (i) => this.spec.step(i) as Promise<never>;
    for (const t of this.spec.callbackTasks) {
      handlers[t] = (i) => {
        const p = this.callbackTask(i as Record<string, unknown>);
        // An execution that timed out, failed or was aborted no longer awaits its Task: its
        // late rejection (the stop fails waiting tokens) must not be an unhandled one.
        p.catch(() => undefined);
        return p;
      };
    }
    const exec = this.machine.run(input as never, {
      noThrowOnAbort: true,
      // `$$.Task.Token` must resolve; each callback Task makes its own token below.
      context: { Task: { Token: 'local' }, Execution: { Name: name } } as never,
      overrides: { taskResourceLocalHandlers: handlers },
    });
    const counting = (async () => {
      for await (const ev of exec.eventLogs) if (ev.type === 'StateEntered') this.stats.transitions++;
    })().catch(() => undefined);
    const entry = {
      abort: exec.abort,
      done: exec.result.then(
        (out) => {
          if (this.skippedWhen(out)) this.stats.skipped++;
        },
        (err: Error) => {
          this.stats.failed++;
          if (!this.stopped) log.error('workflow execution failed', { ...what, execution: name, error: err.message });
        },
      ),
    };
    this.running.add(entry);
    void entry.done.finally(async () => {
      await counting;
      this.running.delete(entry);
    });
  }

  /** The callback task: the function queues its job with a token of ours, then we wait for the answer. */
  private async callbackTask(input: Record<string, unknown>): Promise<never> {
    const token = `local-${randomUUID()}`;
    const waiter = this.callbacks.wait(token);
    try {
      await this.spec.step({ ...(input.Payload as Record<string, unknown>), task_token: token });
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

/** The lease-event workflow locally: the EventRunner port on a LocalStateMachineRunner. */
export class LocalWorkflowRunner implements EventRunner {
  private readonly runner: LocalStateMachineRunner;

  constructor(asl: Record<string, unknown>, deps: () => Ports, callbacks: LocalTaskCallbacks) {
    this.runner = new LocalStateMachineRunner(
      {
        asl,
        tasks: [LEASE_EVENT_TASKS.begin, LEASE_EVENT_TASKS.act, LEASE_EVENT_TASKS.complete, LEASE_EVENT_TASKS.finish],
        callbackTasks: [LEASE_EVENT_TASKS.agentJob],
        step: (input) => runStep(deps(), input),
      },
      callbacks,
      (out) => !!out && typeof out === 'object' && (out as { begin?: { outcome?: string } }).begin?.outcome === 'skip',
    );
  }

  get stats(): WorkflowStats {
    return this.runner.stats;
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

  constructor(asl: Record<string, unknown>, deps: () => Ports, callbacks: LocalTaskCallbacks) {
    this.runner = new LocalStateMachineRunner(
      {
        asl,
        tasks: [CLUSTER_OP_TASKS.next, CLUSTER_OP_TASKS.hostDone, CLUSTER_OP_TASKS.finish],
        callbackTasks: [CLUSTER_OP_TASKS.hostAction],
        step: (input) => runOperationStep(deps(), input),
      },
      callbacks,
    );
  }

  async start(input: { cluster: string; kind: string }, name: string): Promise<void> {
    this.runner.start(input, name, input);
  }
}

/** Drydock tasks locally: the TaskRunner port on a LocalStateMachineRunner. */
export class LocalTaskRunner implements TaskRunner {
  readonly runner: LocalStateMachineRunner;

  constructor(asl: Record<string, unknown>, deps: () => Ports, callbacks: LocalTaskCallbacks) {
    const S = DRYDOCK_TASK_STATES;
    this.runner = new LocalStateMachineRunner(
      {
        asl,
        tasks: [S.prepare, S.acquire, S.siteAction, S.nodeStep, S.nodeFailed, S.finalize],
        callbackTasks: [S.nodeJob, S.nodeReports],
        step: (input) => runDrydockStep(deps(), input),
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
    // setTimeout holds at most 2^31-1 ms (24.8 days); a later event is re-armed when that fires.
    const delay = Math.min(Math.max(0, Date.parse(ref.time) - this.clock.now().getTime()), 2 ** 31 - 1);
    const timer = setTimeout(() => {
      this.timers.delete(ref.event_id);
      if (Date.parse(ref.time) > this.clock.now().getTime()) this.arm(ref);
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

/** Notifications locally: a log line, and a POST to `SLIPWAY_NOTIFY_WEBHOOK` when set. */
export class LocalNotifier implements Notifier {
  constructor(private readonly webhook?: string) {}

  async publish(type: string, detail: Record<string, unknown>): Promise<void> {
    log.info('notification', { event_type: type, lease_id: detail.lease_id, status: detail.lease_status ?? detail.status });
    if (!this.webhook) return;
    const res = await fetch(this.webhook, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ event_type: type, payload: detail, timestamp: new Date().toISOString() }),
      signal: AbortSignal.timeout(5000),
    });
    if (!res.ok) throw new Error(`notification webhook answered ${res.status}`);
  }
}

export interface LocalLifecycleOptions {
  asl: Record<string, unknown>;
  /** The cluster-operation workflow's ASL. */
  operationsAsl: Record<string, unknown>;
  /** The Drydock task workflow's ASL. */
  tasksAsl: Record<string, unknown>;
  clock: Clock;
  callbacks: LocalTaskCallbacks;
  webhook?: string;
  /** Default one minute, as the sweeper rule on AWS. */
  sweepIntervalMs?: number;
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
    this.runner = new LocalWorkflowRunner(opts.asl, () => this.requireDeps(), opts.callbacks);
    this.scheduler = new LocalEventScheduler(opts.clock, (ref) => {
      this.runner.start(ref, executionName(ref, 'schedule')).catch((err: Error) => log.error('lease event not started', { event_id: ref.event_id, error: err.message }));
    });
    this.notifier = new LocalNotifier(opts.webhook);
    this.operations = new LocalOperationRunner(opts.operationsAsl, () => this.requireDeps(), opts.callbacks);
    this.tasks = new LocalTaskRunner(opts.tasksAsl, () => this.requireDeps(), opts.callbacks);
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
    for (const ref of await deps.leases.pendingEvents()) {
      if (Date.parse(ref.time) > deps.clock.now().getTime()) this.scheduler.arm(ref);
    }
    const result = await sweepEvents(deps, { staleMs: 0 });
    if (result.started > 0) log.info('lease events due while the stack was stopped are running now', { started: result.started });
    // Drydock tasks whose workflow the stop interrupted run again (every step is safe to
    // repeat); otherwise they would hold their site's slot, and block its queue, for ever.
    const interrupted = (await deps.drydock.listTasks()).filter((t) => t.parent_task_id === null && (t.status === 'queued' || t.status === 'running'));
    for (const t of interrupted) await this.tasks.start({ task_id: t.task_id }, `${t.task_id}-resumed-${deps.clock.now().getTime()}`);
    if (interrupted.length > 0) log.info('drydock tasks interrupted by the last stop are running again', { tasks: interrupted.length });
    this.sweepTimer = setInterval(() => void this.sweep(), this.opts.sweepIntervalMs ?? 60_000);
    this.sweepTimer.unref();
    return result;
  }

  /** One sweeper run (the tests call it to play the AWS rule). */
  async sweep(graceMs = 5_000): Promise<SweepResult> {
    const deps = this.requireDeps();
    try {
      const result = await sweepEvents(deps, { graceMs });
      // As on AWS, calendars are reconciled every 15th run.
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
  }
}
