import { SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import type { EventRunner } from '#core/leases/lifecycle.ts';
import type { OperationRunner } from '#core/commissaire/operations.ts';
import { lazyClient } from './lazy-client.ts';

/** What the adapter needs of the client (a narrow seam for the unit test). */
export interface StartExecutionClientLike {
  send(command: StartExecutionCommand): Promise<unknown>;
}

const defaultClient = lazyClient<StartExecutionClientLike>(() => new SFNClient({}));

/**
 * Starts lease-event workflow executions on Step Functions. The execution name is the
 * idempotency key (`executionName` in `layers/core/leases/lifecycle.ts`): a name already used
 * means the execution was started before, by the same trigger or a repeated request, so
 * `ExecutionAlreadyExists` counts as success.
 */
export function awsEventRunner(env: Record<string, string | undefined>, client: StartExecutionClientLike = defaultClient): EventRunner {
  return {
    async start(ref, name) {
      const stateMachineArn = env.LEASE_EVENTS_STATE_MACHINE_ARN;
      if (!stateMachineArn) throw new Error('lease event workflow is not configured: LEASE_EVENTS_STATE_MACHINE_ARN must be set');
      try {
        await client.send(
          new StartExecutionCommand({ stateMachineArn, name, input: JSON.stringify({ lease_id: ref.lease_id, event_id: ref.event_id }) }),
        );
      } catch (err) {
        if ((err as Error | undefined)?.name !== 'ExecutionAlreadyExists') throw err;
      }
    },
  };
}

/**
 * Starts Commissaire cluster-operation executions (`CLUSTER_OPERATIONS_STATE_MACHINE_ARN`); the
 * name (cluster, kind, start time) makes a repeated start harmless, as for lease events.
 */
export function awsOperationRunner(env: Record<string, string | undefined>, client: StartExecutionClientLike = defaultClient): OperationRunner {
  return {
    async start(input, name) {
      const stateMachineArn = env.CLUSTER_OPERATIONS_STATE_MACHINE_ARN;
      if (!stateMachineArn) throw new Error('the cluster-operation workflow is not configured: CLUSTER_OPERATIONS_STATE_MACHINE_ARN must be set');
      try {
        await client.send(new StartExecutionCommand({ stateMachineArn, name, input: JSON.stringify(input) }));
      } catch (err) {
        if ((err as Error | undefined)?.name !== 'ExecutionAlreadyExists') throw err;
      }
    },
  };
}
