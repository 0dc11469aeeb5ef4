import { describe, expect, it } from 'vitest';
import { awsEventScheduler } from '../../layers/aws/scheduler.ts';
import { awsEventRunner } from '../../layers/aws/sfn-runner.ts';
import { awsNotifier } from '../../layers/aws/eventbridge-notifier.ts';
import { firstUse, lazyClient } from '../../layers/aws/lazy-client.ts';
import type { LeaseEventRef } from '#core/leases/lifecycle.ts';

/** Requests and error mapping of the lease-lifecycle AWS adapters (fake clients: no AWS here). */
type Sent = { name: string; input: any };
function client(answer: (name: string, n: number) => unknown = () => ({})) {
  const sent: Sent[] = [];
  return {
    sent,
    async send(command: { constructor: { name: string }; input: unknown }): Promise<any> {
      const name = command.constructor.name;
      sent.push({ name, input: command.input });
      const out = answer(name, sent.length);
      if (out instanceof Error) throw out;
      return out;
    },
  };
}
const awsError = (name: string) => Object.assign(new Error(name), { name });

const ENV = {
  SCHEDULER_GROUP: 'slipway-lease-events',
  SCHEDULER_ROLE_ARN: 'arn:aws:iam::123456789012:role/scheduler',
  LEASE_EVENTS_STATE_MACHINE_ARN: 'arn:aws:states:eu-west-1:123456789012:stateMachine:slipway-lease-events',
  EVENT_BUS_NAME: 'slipway',
};
const ref: LeaseEventRef = {
  lease_id: 'l-1',
  event_id: '6f1c2a3b-0000-4000-8000-000000000001',
  event_type: 'start_lease',
  time: '2030-01-02T03:04:05.678Z',
};

describe('awsEventScheduler', () => {
  it('moves the schedule with UpdateSchedule: a one-time UTC schedule starting the workflow under the schedule execution name', async () => {
    const c = client();
    await awsEventScheduler(ENV, c).put(ref);
    expect(c.sent).toHaveLength(1);
    const { name, input } = c.sent[0]!;
    expect(name).toBe('UpdateScheduleCommand');
    expect(input).toEqual({
      Name: 'ev-6f1c2a3b-0000-4000-8000-000000000001',
      GroupName: 'slipway-lease-events',
      Description: 'lease l-1: start_lease',
      ScheduleExpression: 'at(2030-01-02T03:04:05)',
      ScheduleExpressionTimezone: 'UTC',
      FlexibleTimeWindow: { Mode: 'OFF' },
      ActionAfterCompletion: 'DELETE',
      Target: {
        Arn: 'arn:aws:scheduler:::aws-sdk:sfn:startExecution',
        RoleArn: ENV.SCHEDULER_ROLE_ARN,
        Input: expect.any(String),
        RetryPolicy: { MaximumEventAgeInSeconds: 3600, MaximumRetryAttempts: 20 },
      },
    });
    expect(input.Name.length).toBeLessThanOrEqual(64);
    const target = JSON.parse(input.Target.Input);
    expect(target).toEqual({
      StateMachineArn: ENV.LEASE_EVENTS_STATE_MACHINE_ARN,
      Name: '6f1c2a3b-0000-4000-8000-000000000001-20300102T0304',
      Input: expect.any(String),
    });
    expect(JSON.parse(target.Input)).toEqual({ lease_id: 'l-1', event_id: ref.event_id });
  });

  it("fires an event Begin prepares at its fire_at (its lead before the event's time), the execution still named by the event's time", async () => {
    const c = client();
    await awsEventScheduler(ENV, c).put({ ...ref, fire_at: '2030-01-02T03:03:35.678Z' });
    const { input } = c.sent[0]!;
    expect(input.ScheduleExpression).toBe('at(2030-01-02T03:03:35)');
    const target = JSON.parse(input.Target.Input);
    expect(target.Name).toBe('6f1c2a3b-0000-4000-8000-000000000001-20300102T0304');
    expect(JSON.parse(target.Input)).toEqual({ lease_id: 'l-1', event_id: ref.event_id });
  });

  it('gives a trigger it cannot deliver to the dead-letter queue SCHEDULER_DLQ_ARN names, when set', async () => {
    const c = client();
    const dlq = 'arn:aws:sqs:eu-west-1:123456789012:lifecycle-dead-letters';
    await awsEventScheduler({ ...ENV, SCHEDULER_DLQ_ARN: dlq }, c).put(ref);
    expect(c.sent[0]!.input.Target.DeadLetterConfig).toEqual({ Arn: dlq });
  });

  it('takes the universal target partition from the state machine ARN', async () => {
    const c = client();
    await awsEventScheduler({ ...ENV, LEASE_EVENTS_STATE_MACHINE_ARN: 'arn:aws-cn:states:cn-north-1:1:stateMachine:x' }, c).put(ref);
    expect(c.sent[0]!.input.Target.Arn).toBe('arn:aws-cn:scheduler:::aws-sdk:sfn:startExecution');
  });

  it('creates the schedule when there is none to update, with the same definition', async () => {
    const c = client((name) => (name === 'UpdateScheduleCommand' ? awsError('ResourceNotFoundException') : {}));
    await awsEventScheduler(ENV, c).put(ref);
    expect(c.sent.map((s) => s.name)).toEqual(['UpdateScheduleCommand', 'CreateScheduleCommand']);
    expect(c.sent[1]!.input).toEqual(c.sent[0]!.input);
  });

  it('updates after all when a concurrent put created the schedule first', async () => {
    const c = client((name, n) => (n === 1 ? awsError('ResourceNotFoundException') : name === 'CreateScheduleCommand' ? awsError('ConflictException') : {}));
    await awsEventScheduler(ENV, c).put(ref);
    expect(c.sent.map((s) => s.name)).toEqual(['UpdateScheduleCommand', 'CreateScheduleCommand', 'UpdateScheduleCommand']);
  });

  it('passes other errors on', async () => {
    await expect(awsEventScheduler(ENV, client(() => awsError('AccessDeniedException'))).put(ref)).rejects.toThrow('AccessDeniedException');
    const c = client((name) => (name === 'UpdateScheduleCommand' ? awsError('ResourceNotFoundException') : awsError('ValidationException')));
    await expect(awsEventScheduler(ENV, c).put(ref)).rejects.toThrow('ValidationException');
  });

  it('removes the schedule by name and group, a missing one included', async () => {
    const c = client(() => awsError('ResourceNotFoundException'));
    await expect(awsEventScheduler(ENV, c).remove(ref)).resolves.toBeUndefined();
    expect(c.sent).toEqual([{ name: 'DeleteScheduleCommand', input: { Name: 'ev-6f1c2a3b-0000-4000-8000-000000000001', GroupName: 'slipway-lease-events' } }]);
    await expect(awsEventScheduler(ENV, client(() => awsError('ThrottlingException'))).remove(ref)).rejects.toThrow('ThrottlingException');
  });

  it('says what is missing when the deployment did not configure it, without calling AWS', async () => {
    const c = client();
    const { SCHEDULER_GROUP: _, ...partial } = ENV;
    await expect(awsEventScheduler(partial, c).put(ref)).rejects.toThrow(/lease event scheduling is not configured: SCHEDULER_GROUP/);
    await expect(awsEventScheduler({}, c).remove(ref)).rejects.toThrow(/not configured/);
    expect(c.sent).toEqual([]);
  });
});

describe('awsEventRunner', () => {
  it('starts an execution of the lease-event workflow under the given name with the event ids', async () => {
    const c = client();
    await awsEventRunner(ENV, c).start(ref, 'n-1');
    expect(c.sent).toEqual([
      {
        name: 'StartExecutionCommand',
        input: { stateMachineArn: ENV.LEASE_EVENTS_STATE_MACHINE_ARN, name: 'n-1', input: JSON.stringify({ lease_id: 'l-1', event_id: ref.event_id }) },
      },
    ]);
  });

  it('treats ExecutionAlreadyExists as success: the name is the idempotency key', async () => {
    await expect(awsEventRunner(ENV, client(() => awsError('ExecutionAlreadyExists'))).start(ref, 'n-1')).resolves.toBeUndefined();
  });

  it('passes other errors on, and refuses to run unconfigured', async () => {
    await expect(awsEventRunner(ENV, client(() => awsError('StateMachineDoesNotExist'))).start(ref, 'n-1')).rejects.toThrow('StateMachineDoesNotExist');
    await expect(awsEventRunner({}, client()).start(ref, 'n-1')).rejects.toThrow(/LEASE_EVENTS_STATE_MACHINE_ARN/);
  });
});

describe('awsNotifier', () => {
  it('puts one event on the bus with the type as detail-type and the detail as JSON', async () => {
    const c = client(() => ({ FailedEntryCount: 0, Entries: [{ EventId: 'e' }] }));
    await awsNotifier(ENV, c).publish('lease.event.start_lease', { lease_id: 'l-1', event_status: 'DONE' });
    expect(c.sent).toEqual([
      {
        name: 'PutEventsCommand',
        input: {
          Entries: [{ EventBusName: 'slipway', Source: 'slipway.leases', DetailType: 'lease.event.start_lease', Detail: '{"lease_id":"l-1","event_status":"DONE"}' }],
        },
      },
    ]);
  });

  it('fails when EventBridge rejected the entry (PutEvents answers 200 all the same)', async () => {
    const c = client(() => ({ FailedEntryCount: 1, Entries: [{ ErrorCode: 'InternalFailure', ErrorMessage: 'try again' }] }));
    await expect(awsNotifier(ENV, c).publish('lease.create', {})).rejects.toThrow(/lease\.create rejected by EventBridge: InternalFailure \(try again\)/);
  });

  it('publishes nothing without EVENT_BUS_NAME', async () => {
    const c = client();
    await awsNotifier({}, c).publish('lease.create', {});
    expect(c.sent).toEqual([]);
  });
});

describe('lazyClient', () => {
  it('builds the SDK client on first use only, and once', async () => {
    let built = 0;
    const c = lazyClient<{ send(x: string): Promise<unknown> }>(() => {
      built++;
      return { send: async (x: string) => `sent ${x}` };
    });
    expect(built).toBe(0);
    expect(await c.send('a')).toBe('sent a');
    expect(await c.send('b')).toBe('sent b');
    expect(built).toBe(1);
  });
});

describe('firstUse', () => {
  it('loads on the first call only, once for calls made while it loads', async () => {
    let loads = 0;
    const sdk = firstUse(async () => {
      loads++;
      await new Promise((r) => setTimeout(r, 5));
      return { module: loads };
    });
    expect(loads).toBe(0);
    const [a, b] = await Promise.all([sdk(), sdk()]);
    expect(a).toBe(b);
    expect(await sdk()).toBe(a);
    expect(loads).toBe(1);
  });

  it('keeps no failed load: the next call loads again', async () => {
    let loads = 0;
    const sdk = firstUse(async () => {
      if (++loads === 1) throw new Error('Cannot find package');
      return 'module';
    });
    await expect(sdk()).rejects.toThrow('Cannot find package');
    expect(await sdk()).toBe('module');
    expect(loads).toBe(2);
  });
});
