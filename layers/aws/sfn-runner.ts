import type { StartExecutionCommand } from '@aws-sdk/client-sfn';
import type { EventRunner } from '#core/leases/lifecycle.ts';
import type { OperationRunner } from '#core/ports.ts';
import type { TaskRunner } from '#core/drydock/store.ts';
import { firstUse, lazyClient } from './lazy-client.ts';

/** What the adapter needs of the client (a narrow seam for the unit test). */
export interface StartExecutionClientLike {
  send(command: StartExecutionCommand): Promise<unknown>;
}

/** Imported at the first start, not at the function's cold start (lazy-client.ts). */
const sfn = firstUse(() => import('@aws-sdk/client-sfn'));
const defaultClient = lazyClient<StartExecutionClientLike>(async () => new (await sfn()).SFNClient({}));

/**
 * Starts an execution of the state machine named by `env[armVar]`. The execution name is the
 * idempotency key: a name already used means the execution was started before (the same
 * trigger delivered twice, a repeated request), so `ExecutionAlreadyExists` counts as success.
 */
async function startOnce(
  client: StartExecutionClientLike,
  env: Record<string, string | undefined>,
  armVar: string,
  what: string,
  name: string,
  input: unknown,
): Promise<void> {
  const stateMachineArn = env[armVar];
  if (!stateMachineArn) throw new Error(`the ${what} workflow is not configured: ${armVar} must be set`);
  const { StartExecutionCommand } = await sfn();
  try {
    await client.send(new StartExecutionCommand({ stateMachineArn, name, input: JSON.stringify(input) }));
  } catch (err) {
    if ((err as Error | undefined)?.name !== 'ExecutionAlreadyExists') throw err;
  }
}

/** Lease-event executions (names from `executionName` in `layers/core/leases/lifecycle.ts`). */
export function awsEventRunner(env: Record<string, string | undefined>, client: StartExecutionClientLike = defaultClient): EventRunner {
  return {
    start: (ref, name) => startOnce(client, env, 'LEASE_EVENTS_STATE_MACHINE_ARN', 'lease event', name, { lease_id: ref.lease_id, event_id: ref.event_id }),
  };
}

/** Commissaire cluster-operation executions (named by cluster, kind and start time). */
export function awsOperationRunner(env: Record<string, string | undefined>, client: StartExecutionClientLike = defaultClient): OperationRunner {
  return {
    start: (input, name) => startOnce(client, env, 'CLUSTER_OPERATIONS_STATE_MACHINE_ARN', 'cluster-operation', name, input),
  };
}

/** Drydock task executions (named by task id). */
export function awsTaskRunner(env: Record<string, string | undefined>, client: StartExecutionClientLike = defaultClient): TaskRunner {
  return {
    start: (input, name) => startOnce(client, env, 'DRYDOCK_TASKS_STATE_MACHINE_ARN', 'Drydock task', name, input),
  };
}
