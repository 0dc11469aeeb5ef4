import type { CreateScheduleCommand, CreateScheduleCommandInput, DeleteScheduleCommand, UpdateScheduleCommand } from '@aws-sdk/client-scheduler';
import { executionName, type EventScheduler, fireTime, type LeaseEventRef } from '#core/leases/lifecycle.ts';
import { firstUse, lazyClient } from './lazy-client.ts';

type ScheduleCommand = CreateScheduleCommand | UpdateScheduleCommand | DeleteScheduleCommand;
/** What the adapter needs of the client (a narrow seam for the unit test). */
export interface ScheduleClientLike {
  send(command: ScheduleCommand): Promise<unknown>;
}

/** Imported when a schedule is first put or removed, not at the function's cold start (lazy-client.ts). */
const scheduler = firstUse(() => import('@aws-sdk/client-scheduler'));
const defaultClient = lazyClient<ScheduleClientLike>(async () => new (await scheduler()).SchedulerClient({}));

/** Scheduler names allow 64 characters of [0-9a-zA-Z-_.]; a UUID event id needs 39. */
export const scheduleName = (ref: Pick<LeaseEventRef, 'event_id'>) => `ev-${ref.event_id}`;

/** `2030-01-01T10:00:00.000Z` → `at(2030-01-01T10:00:00)`; the zone is given separately (UTC). */
export const atExpression = (time: string) => `at(${new Date(time).toISOString().slice(0, 19)})`;

/**
 * How long Scheduler keeps trying to start the execution (throttling, a Step Functions outage).
 * Past that the sweeper, which starts any due event still UNDONE every minute, has long done it.
 */
export const SCHEDULE_RETRY = { MaximumEventAgeInSeconds: 3600, MaximumRetryAttempts: 20 };

const errorName = (err: unknown) => (err as Error | undefined)?.name;

/**
 * Lease-event triggers on EventBridge Scheduler (DESIGN.md §7): one one-time schedule per event,
 * in the deployment's schedule group, whose universal target starts the lease-event workflow
 * (`sfn:startExecution`) under the event's schedule execution name. A second delivery of the
 * same schedule therefore starts no second execution, and a moved event (new time, new name)
 * starts a fresh one. Schedules delete themselves once they have fired.
 *
 * @example
 * ```ts
 * const scheduler = awsEventScheduler(process.env);
 * await scheduler.put({ lease_id, event_id, event_type: 'start_lease', time: '2030-01-01T10:00:00.000Z' });
 * ```
 */
export function awsEventScheduler(env: Record<string, string | undefined>, client: ScheduleClientLike = defaultClient): EventScheduler {
  const config = () => {
    const group = env.SCHEDULER_GROUP;
    const roleArn = env.SCHEDULER_ROLE_ARN;
    const stateMachineArn = env.LEASE_EVENTS_STATE_MACHINE_ARN;
    if (!group || !roleArn || !stateMachineArn) {
      throw new Error('lease event scheduling is not configured: SCHEDULER_GROUP, SCHEDULER_ROLE_ARN and LEASE_EVENTS_STATE_MACHINE_ARN must be set');
    }
    return { group, roleArn, stateMachineArn, deadLetterArn: env.SCHEDULER_DLQ_ARN || undefined };
  };

  const definition = (ref: LeaseEventRef): CreateScheduleCommandInput => {
    const { group, roleArn, stateMachineArn, deadLetterArn } = config();
    // The universal target's partition is the state machine's (aws, aws-cn, aws-us-gov).
    const partition = stateMachineArn.split(':')[1] || 'aws';
    return {
      Name: scheduleName(ref),
      GroupName: group,
      Description: `lease ${ref.lease_id}: ${ref.event_type}`,
      // Its lead earlier for an event Begin prepares (fireTime); the execution is named by the event's time.
      ScheduleExpression: atExpression(fireTime(ref)),
      ScheduleExpressionTimezone: 'UTC',
      FlexibleTimeWindow: { Mode: 'OFF' },
      ActionAfterCompletion: 'DELETE',
      Target: {
        Arn: `arn:${partition}:scheduler:::aws-sdk:sfn:startExecution`,
        RoleArn: roleArn,
        // The StartExecution request itself, in the API's own field names.
        Input: JSON.stringify({
          StateMachineArn: stateMachineArn,
          Name: executionName(ref, 'schedule'),
          Input: JSON.stringify({ lease_id: ref.lease_id, event_id: ref.event_id }),
        }),
        RetryPolicy: SCHEDULE_RETRY,
        // A trigger given up after its retries lands here (the lifecycle stack's dead letters,
        // watched by an alarm) instead of vanishing; the sweeper still runs its event.
        ...(deadLetterArn ? { DeadLetterConfig: { Arn: deadLetterArn } } : {}),
      },
    };
  };

  return {
    async put(ref) {
      const input = definition(ref);
      const { CreateScheduleCommand, UpdateScheduleCommand } = await scheduler();
      // Most puts are first puts, but a moved event's schedule exists: UpdateSchedule replaces the
      // whole definition, CreateSchedule refuses an existing name. Two racing first puts (a
      // retried request) meet a ConflictException on create; the update then wins.
      try {
        await client.send(new UpdateScheduleCommand(input));
        return;
      } catch (err) {
        if (errorName(err) !== 'ResourceNotFoundException') throw err;
      }
      try {
        await client.send(new CreateScheduleCommand(input));
      } catch (err) {
        if (errorName(err) !== 'ConflictException') throw err;
        await client.send(new UpdateScheduleCommand(input));
      }
    },

    async remove(ref) {
      const { group } = config();
      const { DeleteScheduleCommand } = await scheduler();
      try {
        await client.send(new DeleteScheduleCommand({ Name: scheduleName(ref), GroupName: group }));
      } catch (err) {
        // Already fired (schedules delete themselves after firing) or never created.
        if (errorName(err) !== 'ResourceNotFoundException') throw err;
      }
    },
  };
}
