import { ArnFormat, Duration, RemovalPolicy, Stack, type StackProps, Validations } from 'aws-cdk-lib';
import type { ITableV2 } from 'aws-cdk-lib/aws-dynamodb';
import { type IEventBus, Rule, Schedule } from 'aws-cdk-lib/aws-events';
import { LambdaFunction } from 'aws-cdk-lib/aws-events-targets';
import { type IRole, PolicyStatement, Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import { ScheduleGroup } from 'aws-cdk-lib/aws-scheduler';
import type { StateMachine } from 'aws-cdk-lib/aws-stepfunctions';
import type { Construct } from 'constructs';
import { SlipwayFunction } from '../constructs/slipway-function.ts';
import { slipwayWorkflow } from '../constructs/slipway-workflow.ts';
import { LEASE_EVENTS_STATE_MACHINE_NAME, leaseEventsBody } from '../workflows/lease-events.ts';

/** The schedule group holding one one-time schedule per pending lease event (`layers/aws/scheduler.ts`). */
export const LEASE_EVENTS_SCHEDULE_GROUP = 'slipway-lease-events';

/** How long one lease-event execution may run; the sweeper resets events stuck longer (`STALE_EVENT_MS`). */
export const LEASE_EVENTS_TIMEOUT = Duration.hours(4);

/**
 * The lease-event workflow's ARN, built from its fixed name in the stack that needs it: the
 * workflow's own task function and the API stack can then hold it without a reference to the
 * state machine (a cycle for the former, an export for the latter; toolchain.md §2).
 */
export function leaseEventsStateMachineArn(scope: Construct): string {
  return Stack.of(scope).formatArn({
    service: 'states',
    resource: 'stateMachine',
    resourceName: LEASE_EVENTS_STATE_MACHINE_NAME,
    arnFormat: ArnFormat.COLON_RESOURCE_NAME,
  });
}

/** Every schedule of the lease-event group: `schedule/<group>/<name>` (schedules have no ARN of their own to grant on). */
export function leaseEventSchedulesArn(scope: Construct): string {
  return Stack.of(scope).formatArn({
    service: 'scheduler',
    resource: 'schedule',
    resourceName: `${LEASE_EVENTS_SCHEDULE_GROUP}/*`,
    arnFormat: ArnFormat.SLASH_RESOURCE_NAME,
  });
}

/** What a function that writes leases needs from the lifecycle (passed to the API stack as props). */
export interface LeaseLifecycleRefs {
  /** The role EventBridge Scheduler assumes to start executions; lease writers pass it to CreateSchedule. */
  schedulerRole: IRole;
  /** The stateful stack's bus, where lease notifications go. */
  eventBus: IEventBus;
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
  fn.fn.addEnvironment('SCHEDULER_GROUP', LEASE_EVENTS_SCHEDULE_GROUP);
  fn.fn.addEnvironment('SCHEDULER_ROLE_ARN', refs.schedulerRole.roleArn);
  fn.role.addToPrincipalPolicy(
    new PolicyStatement({
      actions: ['scheduler:CreateSchedule', 'scheduler:UpdateSchedule', 'scheduler:DeleteSchedule', 'scheduler:GetSchedule'],
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
    id: `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:scheduler:<AWS::Region>:<AWS::AccountId>:schedule/${LEASE_EVENTS_SCHEDULE_GROUP}/*]`,
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
  /** Assumed by EventBridge Scheduler; may only start lease-event executions. */
  readonly schedulerRole: Role;

  constructor(scope: Construct, id: string, props: LifecycleStackProps) {
    super(scope, id, props);

    this.leaseEventsFunction = new SlipwayFunction(this, 'LeaseEventsFn', {
      entry: 'functions/workflows/lease-events.ts',
      description: 'Slipway: the steps of the lease-event workflow (begin, act, agent job, complete, finish)',
      // A step reads and writes one lease and queues at most one job; a minute is ample.
      timeout: Duration.seconds(60),
    }).bindTable(props.table, 'RW');
    // Finish publishes `lease.event.*`. The agent_job step only queues a job with its task token:
    // the agent API answers the token, with its own SendTask* grant.
    allowLeaseNotifications(this.leaseEventsFunction, props.eventBus);

    this.stateMachine = slipwayWorkflow(this, 'LeaseEvents', {
      stateMachineName: LEASE_EVENTS_STATE_MACHINE_NAME,
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
    }).bindTable(props.table, 'RW');
    // It needs no notifications: it only starts executions and resets events (no lease.event.* of its own).
    allowLeaseEventStarts(this.sweeperFunction, this.stateMachine.stateMachineArn);

    this.sweepRule = new Rule(this, 'SweepEveryMinute', {
      description: 'Slipway: lease-event sweeper',
      schedule: Schedule.rate(Duration.minutes(1)),
      targets: [new LambdaFunction(this.sweeperFunction.fn)],
    });

    this.scheduleGroup = new ScheduleGroup(this, 'LeaseEventSchedules', {
      scheduleGroupName: LEASE_EVENTS_SCHEDULE_GROUP,
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
  }
}
