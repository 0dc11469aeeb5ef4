import { Duration } from 'aws-cdk-lib';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import {
  Choice,
  Condition,
  DefinitionBody,
  DistributedMap,
  type IChainable,
  IntegrationPattern,
  JsonPath,
  Pass,
  Result,
  StateMachineType,
  Succeed,
  TaskInput,
  Timeout,
  Wait,
  WaitTime,
} from 'aws-cdk-lib/aws-stepfunctions';
import type { Construct } from 'constructs';
import { configFromEnv } from '../../layers/core/config.ts';
import { TASK_MAX_SECONDS } from '../../layers/core/drydock/tasks/workflow.ts';
import { lambdaTask, RETRY_CONFLICTS, workflowSteps } from './steps.ts';

/**
 * The Drydock task workflow (DESIGN.md §7, upstream-apis.md §1.4): one execution per top-level
 * task.
 *
 *   Init → Prepare ─finish─▶ Finalize        ─skip─▶ Skipped
 *             └run─▶ Acquire ─wait─▶ SiteBusy (Wait) → Acquire
 *                       └acquired─▶ IsNodeAction ─site─▶ SiteAction → Finalize
 *                                        └nodes─▶ Nodes (distributed Map over $.prepare.nodes,
 *                                                 MaxConcurrencyPath) → Finalize
 *   per node, a child execution:
 *              NodeStep ─job─────▶ NodeJob (agent callback job) ──────────────▶ NodeStep
 *                 │     ─reports─▶ NodeReports (callback until the reports deadline) ─▶ NodeStep (a timeout too)
 *                 └done─▶ NodeDone              any other failure ─Catch─▶ NodeFailed ─retry─▶ NodeJob
 *                                                                              └──────▶ NodeDone
 *   (a deploy or clean job that failed or timed out is tried again, 3 attempts in all)
 *   any failure outside the Map ─Catch─▶ Finalize (the task fails with a message, never hangs)
 *
 * Large tasks and Step Functions' limits (25,000 history events per execution, 256 KiB per
 * state's input or output; test/infra/limits.test.ts measures them at 2,000 nodes): each node
 * runs as a child execution of the distributed Map (Standard, for the callbacks), with a
 * history of its own of about 37 events, while the task's own history stays the same size
 * whatever the number of nodes. The Map's items are the nodes' positions in the task's subtask
 * list (Prepare's order), not their names: a node's steps read the rest from the table, so
 * 2,000 nodes are about 9 KB of the task's state. A node's outcome is its subtask's record,
 * which Finalize reads, so each child ends with an empty output (NodeDone) and the Map's result
 * is discarded. A distributed Map needs the workflow's role to start, describe and stop its
 * own executions (CDK grants it, `slipwayWorkflow` acknowledges it).
 *
 * Prepare is the `drydock-prepare` function (`functions/workflows/drydock-prepare.ts` →
 * `layers/core/drydock/tasks/prepare.ts`), every other Task the `drydock-tasks` function
 * dispatching on `step` (`functions/workflows/drydock-tasks.ts` →
 * `layers/core/drydock/tasks/workflow.ts`); locally the same synthesized definition runs in
 * aws-local-stepfunctions, each Task bound by its state's name to its function's step, each node
 * a child execution there too (`local-distributed.ts`). The waits for agents and for boot-action reports are
 * callbacks (`.waitForTaskToken`), not polling. JSONPath only.
 */
export const DRYDOCK_TASKS_STATE_MACHINE_NAME = 'slipway-drydock-tasks';

export const DRYDOCK_TASK_STATES = {
  prepare: 'Prepare',
  acquire: 'Acquire',
  siteAction: 'SiteAction',
  nodeStep: 'NodeStep',
  nodeJob: 'NodeJob',
  nodeReports: 'NodeReports',
  nodeFailed: 'NodeFailed',
  finalize: 'Finalize',
} as const;

/** A task may run this long (deploying 100 nodes in rounds of 10, each up to about an hour); Acquire evicts tasks older than this. */
export const DRYDOCK_TASKS_TIMEOUT = Duration.seconds(TASK_MAX_SECONDS);
/** The agent must report on a running job at least this often (it heartbeats every lease renewal). */
export const NODE_JOB_HEARTBEAT_SECONDS = 300;

const ids = { 'task_id.$': '$.task_id' };

/**
 * The two deadlines of a node's waits, fixed in the definition: an agent step
 * (`SLIPWAY_DRYDOCK_AGENT_STEP_SECONDS`) and the wait for final boot-action reports
 * (`SLIPWAY_BOOTACTION_FINAL_STATUS_SECONDS`, upstream's `bootaction_final_status`). They are
 * deployment settings read when the definition is synthesized (CDK context `slipway:settings`
 * on AWS, the environment of `npm start` locally) rather than TimeoutSecondsPath: Step
 * Functions reads that path from the state input, the local runner from the invocation's
 * parameters, so no one path works in both.
 */
export interface TaskDeadlines {
  agentStepSeconds: number;
  finalStatusSeconds: number;
}

/**
 * The workflow's two functions: Prepare's (`functions/workflows/drydock-prepare.ts`: the YAML
 * parser and the design's validation) and the task function every other Task invokes
 * (`functions/workflows/drydock-tasks.ts`: the boot-action template engine). One function would
 * weigh more than the 300 KiB a Drydock function may (issue 12).
 */
export interface DrydockTaskFunctions {
  prepare: IFunction;
  tasks: IFunction;
}

export function drydockTasksDefinition(scope: Construct, fns: DrydockTaskFunctions, deadlines: TaskDeadlines): IChainable {
  const fn = fns.tasks;
  const { step: task } = workflowSteps(scope, fn, ids);
  const S = DRYDOCK_TASK_STATES;

  // `error` and `prepare` exist from the start so that Finalize can always read them.
  const init = new Pass(scope, 'InitTask', {
    parameters: { ...ids, error: {}, prepare: { outcome: 'finish', site: '', nodes: [], node_concurrency: 1 } },
  });
  const prepare = workflowSteps(scope, fns.prepare, ids).step(S.prepare, 'prepare', '$.prepare');
  prepare.addRetry(RETRY_CONFLICTS);
  const acquire = task(S.acquire, 'acquire', '$.acquire', { 'site.$': '$.prepare.site' });
  acquire.addRetry(RETRY_CONFLICTS);
  const siteAction = task(S.siteAction, 'site_action', '$.site', { 'site.$': '$.prepare.site' });
  siteAction.addRetry(RETRY_CONFLICTS);
  const finalize = task(S.finalize, 'finalize', '$.finalize', { 'site.$': '$.prepare.site', 'error.$': '$.error' });
  // Finalizing is what completes the task and frees the site: retried on any error.
  finalize.addRetry({ errors: ['States.ALL'], interval: Duration.seconds(2), maxAttempts: 6, backoffRate: 2 });

  // --- one node: a child execution -------------------------------------------------------
  // Its steps find the node by its position in the task's subtask list (Prepare's order).
  const node = { 'task_id.$': '$.task_id', 'index.$': '$.index' };
  const nodeStep = lambdaTask(scope, S.nodeStep, {
    lambdaFunction: fn,
    payload: TaskInput.fromObject({ step: 'node_step', ...node, 'cursor.$': '$.step.after', 'last.$': '$.last' }),
    payloadResponseOnly: true,
    resultPath: '$.step',
  });
  nodeStep.addRetry(RETRY_CONFLICTS);
  const callback = (id: string, step: string, seconds: number, heartbeat: boolean) =>
    lambdaTask(scope, id, {
      lambdaFunction: fn,
      integrationPattern: IntegrationPattern.WAIT_FOR_TASK_TOKEN,
      payload: TaskInput.fromObject({ step, ...node, 'cursor.$': '$.step.cursor', task_token: JsonPath.taskToken }),
      taskTimeout: Timeout.duration(Duration.seconds(seconds)),
      ...(heartbeat ? { heartbeatTimeout: Timeout.duration(Duration.seconds(NODE_JOB_HEARTBEAT_SECONDS)) } : {}),
      resultPath: '$.last',
    });
  const nodeJob = callback(S.nodeJob, 'node_job', deadlines.agentStepSeconds, true);
  const nodeReports = callback(S.nodeReports, 'node_reports', deadlines.finalStatusSeconds, false);
  const nodeFailed = lambdaTask(scope, S.nodeFailed, {
    lambdaFunction: fn,
    payload: TaskInput.fromObject({ step: 'node_failed', ...node, 'cursor.$': '$.step.cursor', 'attempt.$': '$.step.attempt', 'error.$': '$.error' }),
    payloadResponseOnly: true,
    resultPath: '$.step',
  });
  nodeFailed.addRetry({ errors: ['States.ALL'], interval: Duration.seconds(2), maxAttempts: 5, backoffRate: 2 });
  // The child's output is its item of the Map's result: nothing (the subtask's record is the outcome).
  const nodeDone = new Pass(scope, 'NodeDone', { result: Result.fromObject({}) });
  for (const t of [nodeStep, nodeJob]) t.addCatch(nodeFailed, { errors: ['States.ALL'], resultPath: '$.error' });
  // The reports' deadline is not an error: the step after it judges what was reported.
  nodeReports.addCatch(nodeStep, { errors: ['States.Timeout'], resultPath: '$.timeout' });
  nodeReports.addCatch(nodeFailed, { errors: ['States.ALL'], resultPath: '$.error' });
  nodeJob.next(nodeStep);
  nodeReports.next(nodeStep);
  // A deploy or clean job that failed is tried again (NodeFailed decides: next = job, attempt + 1).
  nodeFailed.next(new Choice(scope, 'NodeRetry').when(Condition.stringEquals('$.step.next', 'job'), nodeJob).otherwise(nodeDone));
  const perNode = nodeStep.next(
    new Choice(scope, 'NodeNext')
      .when(Condition.stringEquals('$.step.next', 'job'), nodeJob)
      .when(Condition.stringEquals('$.step.next', 'reports'), nodeReports)
      .otherwise(nodeDone),
  );

  const nodes = new DistributedMap(scope, 'Nodes', {
    itemsPath: '$.prepare.nodes',
    maxConcurrencyPath: '$.prepare.node_concurrency',
    // Standard children: the node's agent and report waits are callbacks, which Express lacks.
    mapExecutionType: StateMachineType.STANDARD,
    label: 'Nodes',
    itemSelector: {
      ...ids,
      'index.$': '$$.Map.Item.Value',
      step: { after: 0, cursor: 0, attempt: 1 },
      last: {},
      error: {},
    },
    resultPath: JsonPath.DISCARD,
  });
  nodes.itemProcessor(perNode);

  for (const t of [prepare, acquire, siteAction, nodes]) t.addCatch(finalize, { errors: ['States.ALL'], resultPath: '$.error' });
  const done = new Succeed(scope, 'TaskDone');
  finalize.next(done);
  siteAction.next(finalize);
  nodes.next(finalize);

  const siteBusy = new Wait(scope, 'SiteBusy', { time: WaitTime.secondsPath('$.acquire.wait_seconds') });
  const acquired = new Choice(scope, 'Acquired')
    .when(Condition.booleanEquals('$.acquire.acquired', false), siteBusy.next(acquire))
    .otherwise(
      new Choice(scope, 'IsNodeAction')
        .when(Condition.isPresent('$.prepare.nodes[0]'), nodes)
        .otherwise(siteAction),
    );
  return init.next(
    prepare.next(
      new Choice(scope, 'PrepareOutcome')
        .when(Condition.stringEquals('$.prepare.outcome', 'run'), acquire.next(acquired))
        .when(Condition.stringEquals('$.prepare.outcome', 'skip'), new Succeed(scope, 'Skipped', { comment: 'The task is gone, finished or terminated' }))
        .otherwise(finalize),
    ),
  );
}

export function drydockTasksBody(scope: Construct, fns: DrydockTaskFunctions, deadlines: TaskDeadlines): DefinitionBody {
  return DefinitionBody.fromChainable(drydockTasksDefinition(scope, fns, deadlines));
}

/** The deadlines from deployment settings (`SLIPWAY_*` names, as `configFromEnv` reads them). */
export function deadlinesFrom(settings: Record<string, string | undefined>): TaskDeadlines {
  const { drydock } = configFromEnv(settings);
  return { agentStepSeconds: drydock.agentStepSeconds, finalStatusSeconds: drydock.bootactionFinalStatusSeconds };
}
