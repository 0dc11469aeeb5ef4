import { ArnFormat, Duration, RemovalPolicy, Stack, type StackProps, Validations } from 'aws-cdk-lib';
import { ComparisonOperator, TreatMissingData } from 'aws-cdk-lib/aws-cloudwatch';
import type { ITableV2 } from 'aws-cdk-lib/aws-dynamodb';
import { type IEventBus, Rule, Schedule } from 'aws-cdk-lib/aws-events';
import { LambdaFunction } from 'aws-cdk-lib/aws-events-targets';
import { type IRole, PolicyStatement, Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import type { IKey } from 'aws-cdk-lib/aws-kms';
import { ScheduleGroup } from 'aws-cdk-lib/aws-scheduler';
import type { ITopic } from 'aws-cdk-lib/aws-sns';
import type { IQueue, Queue } from 'aws-cdk-lib/aws-sqs';
import type { StateMachine } from 'aws-cdk-lib/aws-stepfunctions';
import type { Construct } from 'constructs';
import { AlarmSet, Alarms, deadLetterQueue } from '../constructs/alarms.ts';
import { deploymentName, deploymentOptions } from '../constructs/deployment.ts';
import { SlipwayFunction } from '../constructs/slipway-function.ts';
import { slipwayWorkflow } from '../constructs/slipway-workflow.ts';
import { LEASE_EVENTS_STATE_MACHINE_NAME, leaseEventsBody } from '../workflows/lease-events.ts';

/**
 * The schedule group holding one one-time schedule per pending lease event (`layers/aws/scheduler.ts`);
 * prefixed with the deployment name when there is one (`deploymentName`).
 */
export const LEASE_EVENTS_SCHEDULE_GROUP = 'slipway-lease-events';

/** Task errors in five minutes that are worth an alarm for a workflow's task function (it throws lost compare-and-sets on purpose, for its workflow to retry). */
export const TASK_FUNCTION_ERROR_THRESHOLD = 5;

/**
 * How long one lease-event execution may run; the sweeper resets events stuck longer
 * (`STALE_EVENT_MS`, an hour more). A lease's end erases its nodes AGENT_JOB_CONCURRENCY (10) at
 * a time, so the event lasts about hosts / 10 × one erase: a 2,000-host lease whose disks take
 * 45 minutes each ends in 150 hours. A week holds that; a waiting execution costs nothing.
 */
export const LEASE_EVENTS_TIMEOUT = Duration.days(7);

/**
 * The lease-event workflow's ARN, built from its fixed name in the stack that needs it: the
 * workflow's own task function and the API stack can then hold it without a reference to the
 * state machine (a cycle for the former, an export for the latter; toolchain.md §2).
 */
export function leaseEventsStateMachineArn(scope: Construct): string {
  return Stack.of(scope).formatArn({
    service: 'states',
    resource: 'stateMachine',
    resourceName: deploymentName(scope, LEASE_EVENTS_STATE_MACHINE_NAME),
    arnFormat: ArnFormat.COLON_RESOURCE_NAME,
  });
}

/** Every schedule of the lease-event group: `schedule/<group>/<name>` (schedules have no ARN of their own to grant on). */
export function leaseEventSchedulesArn(scope: Construct): string {
  return Stack.of(scope).formatArn({
    service: 'scheduler',
    resource: 'schedule',
    resourceName: `${deploymentName(scope, LEASE_EVENTS_SCHEDULE_GROUP)}/*`,
    arnFormat: ArnFormat.SLASH_RESOURCE_NAME,
  });
}

/** What a function that writes leases needs from the lifecycle (passed to the API stack as props). */
export interface LeaseLifecycleRefs {
  /** The role EventBridge Scheduler assumes to start executions; lease writers pass it to CreateSchedule. */
  schedulerRole: IRole;
  /** The stateful stack's bus, where lease notifications go. */
  eventBus: IEventBus;
  /** Where EventBridge Scheduler puts a trigger it could not deliver (the schedules' DeadLetterConfig). */
  deadLetters: IQueue;
}

/** Lets `fn` publish lease notifications (`layers/aws/eventbridge-notifier.ts`): EVENT_BUS_NAME and events:PutEvents on that bus. */
export function allowLeaseNotifications(fn: SlipwayFunction, bus: IEventBus): void {
  fn.fn.addEnvironment('EVENT_BUS_NAME', bus.eventBusName);
  fn.role.addToPrincipalPolicy(new PolicyStatement({ actions: ['events:PutEvents'], resources: [bus.eventBusArn] }));
}

/** Lets `fn` start lease-event executions (`layers/aws/sfn-runner.ts`). */
export function allowLeaseEventStarts(fn: SlipwayFunction, stateMachineArn = leaseEventsStateMachineArn(fn)): void {
  fn.fn.addEnvironment('LEASE_EVENTS_STATE_MACHINE_ARN', stateMachineArn);
  fn.role.addToPrincipalPolicy(new PolicyStatement({ actions: ['states:StartExecution'], resources: [stateMachineArn] }));
}

/**
 * Everything `armLease`/`disarmLease` and the lease notices need (`layers/core/leases/triggers.ts`):
 * schedules in the lease-event group (created with the scheduler role, which is why PassRole),
 * executions started at once for events already due, and notifications.
 */
export function allowLeaseWrites(fn: SlipwayFunction, refs: LeaseLifecycleRefs): void {
  fn.fn.addEnvironment('SCHEDULER_GROUP', deploymentName(fn, LEASE_EVENTS_SCHEDULE_GROUP));
  fn.fn.addEnvironment('SCHEDULER_ROLE_ARN', refs.schedulerRole.roleArn);
  fn.fn.addEnvironment('SCHEDULER_DLQ_ARN', refs.deadLetters.queueArn);
  fn.role.addToPrincipalPolicy(
    new PolicyStatement({
      actions: ['scheduler:CreateSchedule', 'scheduler:UpdateSchedule', 'scheduler:DeleteSchedule'],
      resources: [leaseEventSchedulesArn(fn)],
    }),
  );
  fn.role.addToPrincipalPolicy(
    new PolicyStatement({
      actions: ['iam:PassRole'],
      resources: [refs.schedulerRole.roleArn],
      conditions: { StringEquals: { 'iam:PassedToService': 'scheduler.amazonaws.com' } },
    }),
  );
  Validations.of(fn.role).acknowledge({
    id: `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:scheduler:<AWS::Region>:<AWS::AccountId>:schedule/${deploymentName(fn, LEASE_EVENTS_SCHEDULE_GROUP)}/*]`,
    reason: 'One schedule per lease event, named after the event at run time; the grant is limited to the lease-event schedule group.',
  });
  allowLeaseEventStarts(fn);
  allowLeaseNotifications(fn, refs.eventBus);
}

export interface LifecycleStackProps extends StackProps {
  /** From the StatefulStack. */
  table: ITableV2;
  /** From the StatefulStack. */
  eventBus: IEventBus;
  /** From the StatefulStack: a lease's start deploy seals a config drive given in plain. */
  secretsKey: IKey;
  /** From the StatefulStack. */
  alarmTopic: ITopic;
}

/**
 * Lease timing (DESIGN.md §7): the lease-event workflow and its task function, the schedule
 * group and role of the one-time triggers, and the sweeper that runs every minute for whatever a
 * trigger missed. The API stack's lease writers create the triggers (`allowLeaseWrites`).
 */
export class LifecycleStack extends Stack {
  readonly leaseEventsFunction: SlipwayFunction;
  readonly stateMachine: StateMachine;
  readonly sweeperFunction: SlipwayFunction;
  readonly sweepRule: Rule;
  readonly scheduleGroup: ScheduleGroup;
  /** Assumed by EventBridge Scheduler; may only start lease-event executions (and give up a trigger to the dead letters). */
  readonly schedulerRole: Role;
  /**
   * Every asynchronous path of the lease timing ends here when it gives up: a sweep the rule
   * could not deliver or that failed twice, a Scheduler trigger that could not start its
   * execution within its retry policy. An alarm watches its depth.
   */
  readonly deadLetters: Queue;

  constructor(scope: Construct, id: string, props: LifecycleStackProps) {
    super(scope, id, props);

    this.deadLetters = deadLetterQueue(this, 'DeadLetters', 'lease timing: sweeps and Scheduler triggers given up');

    this.leaseEventsFunction = new SlipwayFunction(this, 'LeaseEventsFn', {
      entry: 'functions/workflows/lease-events.ts',
      description: 'Slipway: the steps of the lease-event workflow (begin, act, agent job, complete, finish)',
      // A step reads and writes one lease and queues at most one job; a minute is ample.
      timeout: Duration.seconds(60),
    })
      .grantTable(props.table)
      .grantSecrets(props.secretsKey);
    // Finish publishes `lease.event.*`. The agent_job step only queues a job with its task token:
    // the agent API answers the token, with its own SendTask* grant.
    allowLeaseNotifications(this.leaseEventsFunction, props.eventBus);

    this.stateMachine = slipwayWorkflow(this, 'LeaseEvents', {
      stateMachineName: deploymentName(this, LEASE_EVENTS_STATE_MACHINE_NAME),
      fn: this.leaseEventsFunction.fn,
      definitionBody: leaseEventsBody(this, this.leaseEventsFunction.fn),
      timeout: LEASE_EVENTS_TIMEOUT,
    });

    this.sweeperFunction = new SlipwayFunction(this, 'SweeperFn', {
      entry: 'functions/workflows/sweeper.ts',
      description: 'Slipway: starts due lease events still UNDONE, resets stale ones, reconciles calendars',
      // Runs once a minute: a run longer than that would overlap the next one (harmless: every
      // start is by execution name, every reset a conditional write, but wasteful).
      timeout: Duration.seconds(60),
      asyncFailures: this.deadLetters,
    })
      .grantTable(props.table)
      .grantSecrets(props.secretsKey);
    allowLeaseEventStarts(this.sweeperFunction, this.stateMachine.stateMachineArn);
    // It heals the leases waiting for a node whose erase failed (leases/heal-sweep.ts): `lease.heal`.
    allowLeaseNotifications(this.sweeperFunction, props.eventBus);

    this.sweepRule = new Rule(this, 'SweepEveryMinute', {
      description: 'Slipway: lease-event sweeper',
      schedule: Schedule.rate(Duration.minutes(1)),
      // A sweep EventBridge cannot deliver (throttled past a minute, a missing permission) is
      // given up to the dead letters: the next one comes a minute later.
      targets: [new LambdaFunction(this.sweeperFunction.fn, { deadLetterQueue: this.deadLetters, retryAttempts: 2, maxEventAge: Duration.minutes(1) })],
    });

    this.scheduleGroup = new ScheduleGroup(this, 'LeaseEventSchedules', {
      scheduleGroupName: deploymentName(this, LEASE_EVENTS_SCHEDULE_GROUP),
      // Its schedules only mirror the table's UNDONE events, and the sweeper runs any event whose
      // trigger is lost; retaining a fixed-name group would only make a re-created stack fail.
      removalPolicy: RemovalPolicy.DESTROY,
    });

    this.schedulerRole = new Role(this, 'SchedulerRole', {
      description: 'Slipway: EventBridge Scheduler starts lease-event executions',
      // Confused-deputy guard: only schedules of this account's lease-event group may assume it.
      assumedBy: new ServicePrincipal('scheduler.amazonaws.com', {
        conditions: { StringEquals: { 'aws:SourceAccount': this.account, 'aws:SourceArn': this.scheduleGroup.scheduleGroupArn } },
      }),
    });
    this.schedulerRole.addToPrincipalPolicy(new PolicyStatement({ actions: ['states:StartExecution'], resources: [this.stateMachine.stateMachineArn] }));
    // The schedules' DeadLetterConfig (layers/aws/scheduler.ts): Scheduler sends with this role
    // (SendMessage only; CDK's grantSendMessages adds queue reads nobody here makes).
    this.schedulerRole.addToPrincipalPolicy(new PolicyStatement({ actions: ['sqs:SendMessage'], resources: [this.deadLetters.queueArn] }));

    const alarms = new Alarms(this, 'Alarms', props.alarmTopic).set;
    alarms.fn(this.leaseEventsFunction, TASK_FUNCTION_ERROR_THRESHOLD);
    // Three failed sweeps of five: one failure is retried by the next minute's run.
    alarms.fn(this.sweeperFunction, 3);
    alarms.stateMachine('LeaseEvents', this.stateMachine, 'lease-event');
    alarms.queue('DeadLetters', this.deadLetters, 'lease timing (sweeps, Scheduler triggers)');
    const { leaseEventLagSeconds, agentSilentSeconds } = deploymentOptions(this);
    // The sweeper writes the lag every run: no datapoint means no sweep, which is as bad.
    alarms.alarm(
      'LeaseEventLag',
      `a due lease event has waited more than ${leaseEventLagSeconds} s (or the sweeper reports nothing)`,
      AlarmSet.own('LeaseEventLagSeconds', this.sweeperFunction.service, 'Maximum'),
      leaseEventLagSeconds,
      { comparison: ComparisonOperator.GREATER_THAN_THRESHOLD, missing: TreatMissingData.BREACHING },
    );
    alarms.alarm(
      'AgentSiteSilent',
      `an agent site has not been heard from for more than ${agentSilentSeconds} s`,
      AlarmSet.across('AgentSiteSilentSeconds', 'MAX', ['Service', 'Site'], 'longest agent silence of any site'),
      agentSilentSeconds,
      { comparison: ComparisonOperator.GREATER_THAN_THRESHOLD },
    );
    // Across every function that answers task tokens or publishes notifications (agent API, boot
    // actions, Drydock steps, lease writers...): which one is in the metric's Service dimension.
    alarms.alarm('CallbackFailures', 'a Step Functions task-token answer failed (its workflow waits for its timeout)', AlarmSet.across('CallbackFailures', 'SUM', ['Service'], 'task-token answers that failed'), 1);
    alarms.alarm('NotificationFailures', 'a lease or node notification was not published', AlarmSet.across('NotificationFailures', 'SUM', ['Service'], 'notifications not published'), 1);
  }
}
