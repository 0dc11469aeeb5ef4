import { Duration } from 'aws-cdk-lib';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import {
  Choice,
  Condition,
  DefinitionBody,
  DistributedMap,
  type IChainable,
  Map as MapState,
  Pass,
  StateMachineType,
  Succeed,
  TaskInput,
  Wait,
  WaitTime,
} from 'aws-cdk-lib/aws-stepfunctions';
import type { Construct } from 'constructs';
import { AGENT_JOB_CONCURRENCY } from '../../layers/core/leases/engine.ts';
import { lambdaTask, RETRY_CONFLICTS, workflowSteps } from './steps.ts';

/**
 * The lease-event workflow (DESIGN.md §7, upstream-apis.md §4.8): one execution per lease event.
 *
 *   Init → Begin ─done─▶ Done   (an event with no agent work, run whole in Begin's one write)
 *            ├─prepared─▶ AtEventTime (Wait) → Commit (its one write; the execution's end)
 *            │                                   └─stale (PreparedPlanStaleError): Catch─▶ Begin
 *            │
 *            ├─run──▶ Act → HasAgentJobs ─lanes─▶ AgentJobs (distributed Map: one child execution per lane)
 *            │                         └─none──┐          │
 *            │                                 ▼          ▼
 *            │                          CompleteNeeded ─end─▶ Complete → Finish
 *            │                                 └─start, before_end─────▶ Finish
 *            ├─wait─▶ NotYet (Wait) → Begin
 *            └─skip─▶ Skipped          any failure after Begin ─Catch─▶ Finish (event ERROR)
 *   per lane, a child execution:
 *     LaneJobs (inline Map, one job at a time): AgentJob (callback job) → JobSucceeded
 *                                                      └─Catch─▶ JobFailed (why; settled or not)
 *     → LaneDone (the lane's counts and its first few failures and notes: the child's output)
 *
 * Begin is the conditional `UNDONE → IN_PROGRESS` write, so a repeated delivery (Scheduler and
 * sweeper both firing) finds the event taken and ends in Skipped. Every Task is the
 * `lease-events` function, dispatching on `step` to `layers/core/leases/engine.ts`; locally the
 * same synthesized definition runs in `aws-local-stepfunctions` with each Task bound to that
 * handler (`infra/local/lifecycle.ts`), each lane a child execution there too, so the state names
 * below are a contract. JSONPath only: the local runner ignores JSONata.
 *
 * Large leases and Step Functions' limits (25,000 history events per execution, 256 KiB per
 * state; test/infra/limits.test.ts measures a 2,000-host lease): a lease's jobs are dealt into
 * lanes of at most LANE_MAX_JOBS jobs of one reservation and one action (`lanesOf`), and
 * AGENT_JOB_CONCURRENCY lanes run at once, each a Standard child execution (the jobs are
 * callbacks) with a history of its own; the event's own history stays the same size whatever
 * the number of hosts. Node ids travel once, in the lanes; a job's result travels only as far as
 * its lane, which hands back a bounded summary (`LaneDone`), and Finish gets the notes and
 * summaries, not the lanes. A distributed Map needs the workflow's role to start, describe and
 * stop its own executions (CDK grants it, `slipwayWorkflow` acknowledges it).
 */
export const LEASE_EVENTS_STATE_MACHINE_NAME = 'slipway-lease-events';

export const LEASE_EVENT_TASKS = {
  begin: 'Begin',
  commit: 'Commit',
  act: 'Act',
  agentJob: 'AgentJob',
  jobFailed: 'JobFailed',
  laneDone: 'LaneDone',
  complete: 'Complete',
  finish: 'Finish',
} as const;

/** The Choice states after Act: whether there are lanes for AgentJobs, whether Complete has work. */
export const LEASE_EVENT_CHOICES = { hasAgentJobs: 'HasAgentJobs', completeNeeded: 'CompleteNeeded' } as const;

/** A Wait state whose duration Begin decides (a due event of a busy lease, or one a few seconds early). */
export const LEASE_EVENT_WAIT = 'NotYet';

/**
 * The Wait of an event Begin prepared ahead of its time (engine.ts `prepareEvent`), until the
 * event's time (`$.begin.due`), then Commit. A timestamp, not seconds: Step Functions ends it at
 * that time, so the event is written then, not up to a second later.
 */
export const LEASE_EVENT_PREPARED_WAIT = 'AtEventTime';

/**
 * How long one agent job of an event may take from the moment it is queued — erasing a node's
 * disks at the lease's end (the agent's own limit is SLIPWAY_CLEAN_TIMEOUT_SECONDS, 3600 by
 * default) or powering it off — its wait for a free slot of the site's agent included: an event
 * has AGENT_JOB_CONCURRENCY jobs in flight and an agent runs 4 at a time by default, so a job may
 * wait for two erases before its own.
 *
 * The heartbeat bound is that same time, not shorter: Step Functions counts it from the moment
 * the task starts, and a job still queued behind long erases has no agent to heartbeat it (a
 * 5-minute bound failed every job that waited for a slot longer than that). A lost agent is
 * noticed by its claim instead: the claim expires (lease_seconds, 60 s), the job is offered
 * again, and after max_attempts claims it fails, which fails the task (agent/jobs.ts).
 */
export const AGENT_JOB_TIMEOUT_SECONDS = 4 * 3600;
export const AGENT_JOB_HEARTBEAT_SECONDS = AGENT_JOB_TIMEOUT_SECONDS;
/** Jobs of one event in flight at once: lanes run at a time, one job each (a 100-node lease ends in 10 rounds). */
export { AGENT_JOB_CONCURRENCY };

const ids = { 'lease_id.$': '$.lease_id', 'event_id.$': '$.event_id' };

export function leaseEventsDefinition(scope: Construct, fn: IFunction): IChainable {
  const { step: task, callback } = workflowSteps(scope, fn, ids);
  // A step whose result becomes the whole state. Its ResultPath is left out (`$`, the default):
  // aws-local-stepfunctions 3.0.0 reads an explicit "$" as a key named "$".
  const replacing = (id: string, step: string, extra: Record<string, unknown>) =>
    lambdaTask(scope, id, { lambdaFunction: fn, payload: TaskInput.fromObject({ step, ...ids, ...extra }), payloadResponseOnly: true });

  // `error`, `act` and `results` exist from the start so that Finish can always read them
  // (JSONPath has no defaults). Empty rather than null: the local runner's JSONPath treats a
  // null value as missing. No error is `{}`; a caught one is `{Error, Cause}`.
  const init = new Pass(scope, 'Init', {
    parameters: { ...ids, error: {}, act: { lanes: [], notes: [] }, results: [] },
  });

  // A lost compare-and-set (the lease moved between read and write) is retried with fresh reads.
  // `can_prepare`: this definition carries a prepared event to its time (AtEventTime → Commit).
  const begin = task(LEASE_EVENT_TASKS.begin, 'begin', '$.begin', { can_prepare: true });
  begin.addRetry(RETRY_CONFLICTS);
  // The plan's write at the event's time, and the execution's last state: its result ({outcome:
  // 'done'}) is the execution's output. A lost compare-and-set is not retried here but thrown as
  // PreparedPlanStaleError (the plan is out of date), and the Catch below sends the execution back
  // to Begin, which reads again; so does any other failure.
  const commit = replacing(LEASE_EVENT_TASKS.commit, 'commit', { 'plan.$': '$.begin.plan' });
  const act = task(LEASE_EVENT_TASKS.act, 'act', '$.act');
  act.addRetry(RETRY_CONFLICTS);
  const complete = task(LEASE_EVENT_TASKS.complete, 'complete', undefined, { 'results.$': '$.results' });
  complete.addRetry(RETRY_CONFLICTS);
  // Finishing is what makes the event DONE or ERROR: it is retried on any error. It gets Act's
  // notes and the lanes' summaries, not the lanes themselves (every node id of the lease).
  const finish = task(LEASE_EVENT_TASKS.finish, 'finish', '$.finish', { 'error.$': '$.error', act: { 'notes.$': '$.act.notes' }, 'results.$': '$.results' });
  finish.addRetry({ errors: ['States.ALL'], interval: Duration.seconds(2), maxAttempts: 6, backoffRate: 2 });

  // --- one lane: a child execution ---------------------------------------------------------
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
  // Why it failed, cut short, and whether the failure settled (a note rather than the event's failure).
  const jobFailed = replacing(LEASE_EVENT_TASKS.jobFailed, 'job_failed', { 'job.$': '$.job', 'error.$': '$.failure' });
  jobFailed.addRetry({ errors: ['States.ALL'], interval: Duration.seconds(2), maxAttempts: 5, backoffRate: 2 });
  agentJob.addCatch(jobFailed, { errors: ['States.ALL'], resultPath: '$.failure' });
  const laneJobs = new MapState(scope, 'LaneJobs', {
    itemsPath: '$.lane.node_ids',
    // One at a time: the lanes are what run side by side.
    maxConcurrency: 1,
    itemSelector: {
      ...ids,
      job: { 'reservation_id.$': '$.lane.reservation_id', 'action.$': '$.lane.action', 'node_id.$': '$$.Map.Item.Value' },
    },
    resultPath: '$.results',
  });
  laneJobs.itemProcessor(agentJob.next(jobOk));
  // The lane's output (its item of AgentJobs' result) is its summary.
  const laneDone = replacing(LEASE_EVENT_TASKS.laneDone, 'lane_done', { 'results.$': '$.results' });
  laneDone.addRetry({ errors: ['States.ALL'], interval: Duration.seconds(2), maxAttempts: 5, backoffRate: 2 });

  const jobs = new DistributedMap(scope, 'AgentJobs', {
    itemsPath: '$.act.lanes',
    maxConcurrency: AGENT_JOB_CONCURRENCY,
    // Standard children: the agent jobs are callbacks, which Express lacks.
    mapExecutionType: StateMachineType.STANDARD,
    label: 'AgentJobs',
    itemSelector: { ...ids, 'lane.$': '$$.Map.Item.Value' },
    resultPath: '$.results',
  });
  jobs.itemProcessor(laneJobs.next(laneDone));

  act.addCatch(finish, { errors: ['States.ALL'], resultPath: '$.error' });
  jobs.addCatch(finish, { errors: ['States.ALL'], resultPath: '$.error' });
  complete.addCatch(finish, { errors: ['States.ALL'], resultPath: '$.error' });

  const notYet = new Wait(scope, LEASE_EVENT_WAIT, { time: WaitTime.secondsPath('$.begin.wait_seconds') });
  const atEventTime = new Wait(scope, LEASE_EVENT_PREPARED_WAIT, { time: WaitTime.timestampPath('$.begin.due') });
  commit.addCatch(begin, { errors: ['States.ALL'], resultPath: '$.commit' });
  const skipped = new Succeed(scope, 'Skipped', { comment: 'The event was already taken, is not due, or is gone' });
  const done = new Succeed(scope, 'Done');

  // Most events have no agent work (a start without an image, every before_end) and only the
  // end has a Complete: those states are skipped rather than run empty. A distributed Map with no
  // items still starts and ends a Map Run on AWS, and Complete costs an invoke and a lease read.
  const completeIfNeeded = new Choice(scope, LEASE_EVENT_CHOICES.completeNeeded)
    .when(Condition.and(Condition.isPresent('$.act.complete'), Condition.booleanEquals('$.act.complete', true)), complete.next(finish).next(done))
    .otherwise(finish);
  const actChain = act.next(
    new Choice(scope, LEASE_EVENT_CHOICES.hasAgentJobs)
      .when(Condition.isPresent('$.act.lanes[0]'), jobs.next(completeIfNeeded))
      .otherwise(completeIfNeeded),
  );
  // Not chained through `.next()`: Begin's result goes to $.begin and Act's to $.act.
  return init.next(
    begin.next(
      new Choice(scope, 'Outcome')
        .when(Condition.stringEquals('$.begin.outcome', 'run'), actChain)
        .when(Condition.stringEquals('$.begin.outcome', 'wait'), notYet.next(begin))
        // A start without agent work or a before_end, not yet due: written at its time.
        .when(
          Condition.stringEquals('$.begin.outcome', 'prepared'),
          atEventTime.next(commit),
        )
        // A start without agent work, a before_end: Begin ran the whole event (engine.ts runWhole).
        .when(Condition.stringEquals('$.begin.outcome', 'done'), done)
        .otherwise(skipped),
    ),
  );
}

export function leaseEventsBody(scope: Construct, fn: IFunction): DefinitionBody {
  return DefinitionBody.fromChainable(leaseEventsDefinition(scope, fn));
}
