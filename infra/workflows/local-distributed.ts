import { isDistributedMap } from './limits.ts';

/**
 * The one change the local stack makes to a synthesized definition before
 * `aws-local-stepfunctions` runs it: distributed Map states get their child executions back.
 *
 * aws-local-stepfunctions 3.0.0 knows the `ItemProcessor` of a Map but not its
 * `ProcessorConfig`: a `"Mode": "DISTRIBUTED"` Map runs its items inline, in the parent's own
 * event log, as if it were an inline Map. It implements none of ItemReader, ItemBatcher,
 * ResultWriter or the tolerated-failure fields. So each distributed Map keeps its ItemsPath,
 * ItemSelector, MaxConcurrency(Path), ResultSelector, ResultPath, Retry and Catch, and its item
 * processor is replaced by one stand-in Task, `<Map>ChildExecution`, which the local runner binds
 * to a separate execution of the original item processor: a log, a history and payloads of its
 * own, as on AWS. A child that fails fails the Map with `States.ExceedToleratedFailureThreshold`
 * (no failure is tolerated, the Step Functions default). Definitions using the fields the runner
 * cannot emulate are refused here rather than run differently.
 *
 * What AWS runs, and what test/infra/limits.test.ts counts, is the synthesized definition; this
 * is only the local rendering of it.
 */

/** The error a distributed Map fails with when a child execution fails (no failure tolerated). */
export const CHILD_FAILED_ERROR = 'States.ExceedToleratedFailureThreshold';

/**
 * The longest Task timeout the local runner can keep: it waits with setTimeout, whose delay
 * Node caps at 2^31-1 ms (a longer one fires at once). A Task without TimeoutSeconds times out
 * there after 60 s (Step Functions: never), so the stand-ins get the workflow's own timeout.
 */
const LOCAL_MAX_TIMEOUT_SECONDS = Math.floor((2 ** 31 - 1) / 1000);

/** Distributed Map fields the local runner cannot emulate. */
const UNSUPPORTED = ['ItemReader', 'ItemBatcher', 'ResultWriter', 'ToleratedFailurePercentage', 'ToleratedFailureCount', 'ToleratedFailurePercentagePath', 'ToleratedFailureCountPath'];

/** A definition as the local runner runs it, with the child definitions of its distributed Maps. */
export interface LocalDefinition {
  definition: Record<string, unknown>;
  /** By stand-in Task name: the distributed Map it stands in for and its item processor, itself rendered. */
  children: Map<string, { map: string; child: LocalDefinition }>;
}

/** The name of the stand-in Task of a distributed Map. */
export const childStateOf = (map: string) => `${map}ChildExecution`;

type Def = { StartAt: string; States: Record<string, Record<string, unknown>> };

/**
 * Renders a definition for the local runner (see above); the input is not modified.
 *
 * @example
 * ```ts
 * const { definition, children } = localDefinition(synthDrydockTasksAsl());
 * children.get('NodesChildExecution'); // { map: 'Nodes', child: { definition: <the per-node states>, ... } }
 * ```
 */
export function localDefinition(asl: Record<string, unknown>, timeoutSeconds?: number): LocalDefinition {
  const definition = structuredClone(asl) as unknown as Def;
  // A child execution runs at most as long as the execution that started it.
  const timeout = Math.min(LOCAL_MAX_TIMEOUT_SECONDS, Number(asl.TimeoutSeconds ?? timeoutSeconds ?? LOCAL_MAX_TIMEOUT_SECONDS));
  const children = new Map<string, { map: string; child: LocalDefinition }>();
  const names = new Set<string>();
  const collect = (d: Def) => {
    for (const [name, st] of Object.entries(d.States)) {
      names.add(name);
      const inner = (st.ItemProcessor ?? st.Iterator) as Def | undefined;
      if (inner && !isDistributedMap(st)) collect(inner);
      for (const b of (st.Branches as Def[] | undefined) ?? []) collect(b);
    }
  };
  collect(definition);
  const visit = (d: Def) => {
    for (const [name, st] of Object.entries(d.States)) {
      if (isDistributedMap(st)) {
        const unsupported = UNSUPPORTED.filter((f) => f in st && !(f.startsWith('ToleratedFailure') && st[f] === 0));
        if (unsupported.length > 0) throw new Error(`Distributed Map ${name}: the local runner cannot emulate ${unsupported.join(', ')}`);
        const stand = childStateOf(name);
        if (names.has(stand)) throw new Error(`Distributed Map ${name}: a state is already named ${stand}`);
        const { ProcessorConfig, ...processor } = st.ItemProcessor as Record<string, unknown>;
        children.set(stand, { map: name, child: localDefinition(processor, timeout) });
        st.ItemProcessor = {
          // Kept so that the definition still says which Map is distributed (the meter reads it);
          // the local runner ignores it.
          ProcessorConfig,
          StartAt: stand,
          States: { [stand]: { Type: 'Task', Resource: 'arn:aws:states:::states:startExecution.sync:2', TimeoutSeconds: timeout, End: true } },
        };
        continue;
      }
      const inner = (st.ItemProcessor ?? st.Iterator) as Def | undefined;
      if (inner) visit(inner);
      for (const b of (st.Branches as Def[] | undefined) ?? []) visit(b);
    }
  };
  visit(definition);
  return { definition: definition as unknown as Record<string, unknown>, children };
}
