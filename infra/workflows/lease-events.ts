import { Duration } from 'aws-cdk-lib';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import { Choice, Condition, DefinitionBody, type IChainable, Map as MapState, Pass, Succeed, Wait, WaitTime } from 'aws-cdk-lib/aws-stepfunctions';
import type { Construct } from 'constructs';
import { RETRY_CONFLICTS, workflowSteps } from './steps.ts';

/**
 * The lease-event workflow (DESIGN.md §7, upstream-apis.md §4.8): one execution per lease event.
 *
 *   Init → Begin ─run──▶ Act → AgentJobs (Map: one callback job per node) → Complete → Finish
 *            │ ├─wait─▶ NotYet (Wait) → Begin
 *            │ └─skip─▶ Skipped          any failure after Begin ─Catch─▶ Finish (event ERROR)
 *
 * Begin is the conditional `UNDONE → IN_PROGRESS` write, so a repeated delivery (Scheduler and
 * sweeper both firing) finds the event taken and ends in Skipped. Every Task is the
 * `lease-events` function, dispatching on `step` to `layers/core/leases/engine.ts`; locally the
 * same synthesized definition runs in `aws-local-stepfunctions` with each Task bound to that
 * handler by state name (`infra/local/workflows.ts`), so the state names below are a contract.
 * JSONPath only: the local runner ignores JSONata.
 */
export const LEASE_EVENTS_STATE_MACHINE_NAME = 'slipway-lease-events';

export const LEASE_EVENT_TASKS = {
  begin: 'Begin',
  act: 'Act',
  agentJob: 'AgentJob',
  complete: 'Complete',
  finish: 'Finish',
} as const;

/** A Wait state whose duration Begin decides (a due event of a busy lease, or one a few seconds early). */
export const LEASE_EVENT_WAIT = 'NotYet';

/**
 * How long one agent job of an event may take — erasing a node's disks at the lease's end (the
 * agent's own limit is SLIPWAY_CLEAN_TIMEOUT_SECONDS, 3600 by default) or powering it off — and
 * how often the agent must heartbeat (a lost agent is noticed within that).
 */
export const AGENT_JOB_TIMEOUT_SECONDS = 4200;
export const AGENT_JOB_HEARTBEAT_SECONDS = 300;
/** Nodes handled at once by one event (a 100-node lease ends in 10 rounds of agent jobs). */
export const AGENT_JOB_CONCURRENCY = 10;

const ids = { 'lease_id.$': '$.lease_id', 'event_id.$': '$.event_id' };

export function leaseEventsDefinition(scope: Construct, fn: IFunction): IChainable {
  const { step: task, callback } = workflowSteps(scope, fn, ids);

  // `error`, `act` and `results` exist from the start so that Finish can always read them
  // (JSONPath has no defaults). Empty rather than null: the local runner's JSONPath treats a
  // null value as missing. No error is `{}`; a caught one is `{Error, Cause}`.
  const init = new Pass(scope, 'Init', {
    parameters: { ...ids, error: {}, act: { jobs: [], notes: [] }, results: [] },
  });

  // A lost compare-and-set (the lease moved between read and write) is retried with fresh reads.
  const begin = task(LEASE_EVENT_TASKS.begin, 'begin', '$.begin');
  begin.addRetry(RETRY_CONFLICTS);
  const act = task(LEASE_EVENT_TASKS.act, 'act', '$.act');
  act.addRetry(RETRY_CONFLICTS);
  const complete = task(LEASE_EVENT_TASKS.complete, 'complete', undefined, { 'results.$': '$.results' });
  complete.addRetry(RETRY_CONFLICTS);
  // Finishing is what makes the event DONE or ERROR: it is retried on any error.
  const finish = task(LEASE_EVENT_TASKS.finish, 'finish', '$.finish', { 'error.$': '$.error', 'act.$': '$.act', 'results.$': '$.results' });
  finish.addRetry({ errors: ['States.ALL'], interval: Duration.seconds(2), maxAttempts: 6, backoffRate: 2 });

  // One callback job per node: the function queues the job with the task token and returns; the
  // agent's result answers the token (SendTaskSuccess/Failure), its heartbeats keep it alive.
  const agentJob = callback(LEASE_EVENT_TASKS.agentJob, 'agent_job', {
    timeoutSeconds: AGENT_JOB_TIMEOUT_SECONDS,
    heartbeatSeconds: AGENT_JOB_HEARTBEAT_SECONDS,
    resultPath: '$.output',
    extra: { 'job.$': '$.job' },
  });
  const jobOk = new Pass(scope, 'JobSucceeded', {
    parameters: { 'node_id.$': '$.job.node_id', 'reservation_id.$': '$.job.reservation_id', ok: true },
  });
  const jobFailed = new Pass(scope, 'JobFailed', {
    parameters: { 'node_id.$': '$.job.node_id', 'reservation_id.$': '$.job.reservation_id', ok: false, 'error.$': '$.failure.Cause' },
  });
  agentJob.addCatch(jobFailed, { errors: ['States.ALL'], resultPath: '$.failure' });
  const jobs = new MapState(scope, 'AgentJobs', {
    itemsPath: '$.act.jobs',
    maxConcurrency: AGENT_JOB_CONCURRENCY,
    itemSelector: { ...ids, 'job.$': '$$.Map.Item.Value' },
    resultPath: '$.results',
  });
  jobs.itemProcessor(agentJob.next(jobOk));

  act.addCatch(finish, { errors: ['States.ALL'], resultPath: '$.error' });
  jobs.addCatch(finish, { errors: ['States.ALL'], resultPath: '$.error' });
  complete.addCatch(finish, { errors: ['States.ALL'], resultPath: '$.error' });

  const notYet = new Wait(scope, LEASE_EVENT_WAIT, { time: WaitTime.secondsPath('$.begin.wait_seconds') });
  const skipped = new Succeed(scope, 'Skipped', { comment: 'The event was already taken, is not due, or is gone' });
  const done = new Succeed(scope, 'Done');

  const actChain = act.next(jobs).next(complete).next(finish).next(done);
  // Not chained through `.next()`: Begin's result goes to $.begin and Act's to $.act.
  return init.next(
    begin.next(
      new Choice(scope, 'Outcome')
        .when(Condition.stringEquals('$.begin.outcome', 'run'), actChain)
        .when(Condition.stringEquals('$.begin.outcome', 'wait'), notYet.next(begin))
        .otherwise(skipped),
    ),
  );
}

export function leaseEventsBody(scope: Construct, fn: IFunction): DefinitionBody {
  return DefinitionBody.fromChainable(leaseEventsDefinition(scope, fn));
}
