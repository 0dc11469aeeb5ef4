/**
 * Step Functions' limits on one execution, and a meter that counts what an execution spends of
 * them from the event log of `aws-local-stepfunctions`. The local stack enforces the limits
 * with it (`infra/local/lifecycle.ts`), and test/infra/limits.test.ts measures the workflows
 * at 2,000 nodes and hosts with it.
 *
 * The local runner logs far fewer events than Step Functions writes to an execution's history,
 * so the meter translates each local event into the history events Step Functions records for
 * it (Standard workflows, `GetExecutionHistory` event types):
 *
 *   execution start / end                      1 each
 *   Pass, Choice, Wait, Succeed                <Type>StateEntered + <Type>StateExited
 *   Fail                                       FailStateEntered (then ExecutionFailed)
 *   Task (request-response)                    TaskStateEntered + TaskStateExited, and per attempt
 *                                              TaskScheduled + TaskStarted + TaskSucceeded/Failed
 *   Task (.waitForTaskToken)                   the same, plus TaskSubmitted per attempt
 *   Map, inline                                MapStateEntered + MapStateStarted + MapStateSucceeded
 *                                              + MapStateExited, and per item MapIterationStarted +
 *                                              MapIterationSucceeded/Failed around the item's states
 *   Map, distributed                           the four above + MapRunStarted + MapRunSucceeded; the
 *                                              items' states are in each child execution's own history
 *
 * Heartbeats write no history event. Where Step Functions' exact sequence is not documented (a
 * caught Task's exit), the meter counts the larger figure: it errs on the side of the limit.
 */

/** Events in one execution's history (Standard workflows; the execution fails past it). */
export const HISTORY_EVENT_LIMIT = 25_000;
/** Bytes of one state's input or output, a task's parameters or result, an execution's input (256 KiB, UTF-8). */
export const PAYLOAD_BYTE_LIMIT = 256 * 1024;

/** The size Step Functions counts for a payload: its JSON text in UTF-8. */
export function payloadBytes(value: unknown): number {
  return value === undefined ? 0 : Buffer.byteLength(JSON.stringify(value), 'utf8');
}

type Def = { StartAt?: string; States?: Record<string, Record<string, unknown>> };

/** A Map state whose items run as child executions (`ItemProcessor.ProcessorConfig.Mode`). */
export function isDistributedMap(state: Record<string, unknown>): boolean {
  const processor = state.ItemProcessor as { ProcessorConfig?: { Mode?: string } } | undefined;
  return state.Type === 'Map' && processor?.ProcessorConfig?.Mode === 'DISTRIBUTED';
}

/** What the meter needs of a state. */
export interface StateInfo {
  type: string;
  /** A `.waitForTaskToken` Task (one more history event per attempt). */
  callback: boolean;
  /** A distributed Map (its items are other executions). */
  distributed: boolean;
}

/**
 * The states of one execution's definition by name: inline Map item processors and Parallel
 * branches included (their states run in the same execution), distributed Map item processors
 * not (theirs run in child executions). `childStates` collects those (their names are skipped
 * when they show up in this execution's log, as the local child-execution stand-ins do).
 */
export function statesOf(def: Def): { states: Map<string, StateInfo>; childStates: Set<string> } {
  const states = new Map<string, StateInfo>();
  const childStates = new Set<string>();
  const visit = (d: Def, into: Map<string, StateInfo> | undefined) => {
    for (const [name, st] of Object.entries(d.States ?? {})) {
      if (into) into.set(name, { type: String(st.Type), callback: st.Type === 'Task' && String(st.Resource ?? '').endsWith('.waitForTaskToken'), distributed: isDistributedMap(st) });
      else childStates.add(name);
      const inner = (st.ItemProcessor ?? st.Iterator) as Def | undefined;
      if (inner) visit(inner, into && !isDistributedMap(st) ? into : undefined);
      for (const b of (st.Branches as Def[] | undefined) ?? []) visit(b, into);
    }
  };
  visit(def, states);
  return { states, childStates };
}

/** The largest payload seen, and where. */
export interface Largest {
  bytes: number;
  where: string;
}

/** An event of aws-local-stepfunctions' log, as far as the meter reads it. */
export interface LocalEvent {
  type: string;
  input?: unknown;
  output?: unknown;
  state?: { name: string; type: string; input?: unknown; output?: unknown };
  parentState?: { name: string };
}

/**
 * Counts one execution's history events and watches its payloads, from the events of its own
 * local log (a child execution has a meter of its own). `exceeded` is called once, with the
 * reason, when a limit is passed; the figures keep counting.
 */
export class ExecutionMeter {
  /** History events Step Functions would have written so far. */
  events = 0;
  /** State transitions (what Standard workflows bill). */
  transitions = 0;
  largest: Largest = { bytes: 0, where: '' };
  private violation?: string;
  /** Per Map state being run: the bytes of the array of its items' results so far. */
  private readonly mapResults = new Map<string, number>();

  constructor(
    private readonly definition: { states: Map<string, StateInfo>; childStates: Set<string> },
    /** The execution's name, for the messages. */
    readonly execution: string,
    private readonly exceeded: (reason: string) => void = () => undefined,
  ) {}

  /** Why the execution failed on AWS, if it would have: the first limit it passed. */
  get limitExceeded(): string | undefined {
    return this.violation;
  }

  /** A payload the log does not show (a task's parameters or raw result, measured where it is bound). */
  payload(value: unknown, where: string): void {
    this.bytes(payloadBytes(value), where);
  }

  observe(ev: LocalEvent): void {
    const name = ev.state?.name ?? '';
    // The stand-in states of child executions belong to those executions' histories.
    if (this.definition.childStates.has(name)) return;
    const info = this.definition.states.get(name);
    const attempt = info?.callback ? 4 : 3;
    switch (ev.type) {
      case 'ExecutionStarted':
        this.count(1);
        this.payload(ev.input, 'execution input');
        return;
      case 'ExecutionSucceeded':
        this.count(1);
        this.payload(ev.output, 'execution output');
        return;
      case 'ExecutionFailed':
      case 'ExecutionAborted':
      case 'ExecutionTimeout':
        this.count(1);
        return;
      case 'StateEntered':
        this.transitions++;
        this.payload(ev.state?.input, `${name} input`);
        if (ev.state?.type === 'Task') this.count(1 + attempt);
        else if (ev.state?.type === 'Map') {
          this.mapResults.set(name, 2);
          this.count(info?.distributed ? 4 : 2);
        } else this.count(1);
        return;
      case 'StateRetried':
        if (ev.state?.type === 'Task') this.count(attempt);
        return;
      case 'StateExited':
        this.payload(ev.state?.output, `${name} output`);
        if (ev.state?.type === 'Map') {
          // The array of the items' results, before ResultSelector and ResultPath.
          this.bytes(Math.max(2, (this.mapResults.get(name) ?? 3) - 1), `${name} result (all items)`);
          this.mapResults.delete(name);
          this.count(2);
        } else this.count(1);
        return;
      case 'MapIterationStarted':
      case 'MapIterationSucceeded':
      case 'MapIterationFailed': {
        const map = ev.parentState?.name ?? '';
        if (ev.type === 'MapIterationSucceeded') this.mapResults.set(map, (this.mapResults.get(map) ?? 2) + payloadBytes(ev.output) + 1);
        // A distributed Map's items are child executions: not in this history.
        if (!this.definition.states.get(map)?.distributed) this.count(1);
        return;
      }
      default:
        // StateFailed and StateCaught: the failed attempt's events are counted with the attempt.
        return;
    }
  }

  private count(n: number): void {
    this.events += n;
    if (this.events > HISTORY_EVENT_LIMIT) this.fail(`its history passed ${HISTORY_EVENT_LIMIT} events`);
  }

  private bytes(n: number, where: string): void {
    if (n > this.largest.bytes) this.largest = { bytes: n, where };
    if (n > PAYLOAD_BYTE_LIMIT) this.fail(`${where} is ${n} bytes, over ${PAYLOAD_BYTE_LIMIT}`);
  }

  private fail(reason: string): void {
    if (this.violation) return;
    this.violation = reason;
    this.exceeded(reason);
  }
}
