import { Duration } from 'aws-cdk-lib';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import { Choice, Condition, DefinitionBody, type IChainable, Pass, Succeed } from 'aws-cdk-lib/aws-stepfunctions';
import type { Construct } from 'constructs';
import { RETRY_CONFLICTS, workflowSteps } from './steps.ts';

/**
 * The Commissaire cluster-operation workflow (deploy / upgrade / restart, upstream-apis.md §2.5):
 * one host at a time, stopping at the first failure.
 *
 *   Init → NextHost ─more─▶ HostAction (callback job: SSH commands or a BMC power cycle) → HostDone ─┐
 *              ▲  └─done─▶ FinishOperation → Done                                               │
 *              └───────────────────────────────────────────────────────────────────────────────┘
 *   a failed HostAction ─Catch─▶ FinishOperation (status failed; the host stays in `in_process`)
 *
 * A loop rather than a Map: sequential by construction, and it stops at the first failure in
 * Step Functions and in the local runner alike. Every Task is the `cluster-operations` function,
 * dispatching on `step` (`functions/workflows/cluster-operations.ts`); locally the same
 * synthesized definition runs in aws-local-stepfunctions with the Tasks bound by these names.
 */
export const CLUSTER_OPERATIONS_STATE_MACHINE_NAME = 'slipway-cluster-operations';

export const CLUSTER_OP_TASKS = {
  next: 'NextHost',
  hostAction: 'HostAction',
  hostDone: 'HostDone',
  finish: 'FinishOperation',
} as const;

/** One host's step (a reboot, a package update) may take this long; the agent heartbeats meanwhile. */
export const HOST_ACTION_TIMEOUT_SECONDS = 3600;
/** A whole operation (Step Functions Standard allows a year; a cluster of 100 hosts at most about 4 days). */
export const CLUSTER_OPERATIONS_TIMEOUT = Duration.days(4);
export const HOST_ACTION_HEARTBEAT_SECONDS = 300;

const ids = { 'cluster.$': '$.cluster', 'kind.$': '$.kind' };

export function clusterOperationsDefinition(scope: Construct, fn: IFunction): IChainable {
  const { step: task, callback } = workflowSteps(scope, fn, ids);

  // `error` exists from the start (`{}` = none) so that FinishOperation can always read it.
  const init = new Pass(scope, 'InitOperation', { parameters: { ...ids, error: {} } });
  const next = task(CLUSTER_OP_TASKS.next, 'next', '$.next');
  next.addRetry(RETRY_CONFLICTS);
  const action = callback(CLUSTER_OP_TASKS.hostAction, 'host_action', {
    timeoutSeconds: HOST_ACTION_TIMEOUT_SECONDS,
    heartbeatSeconds: HOST_ACTION_HEARTBEAT_SECONDS,
    extra: { 'host.$': '$.next.host' },
  });
  const hostDone = task(CLUSTER_OP_TASKS.hostDone, 'host_done', undefined, { 'host.$': '$.next.host' });
  hostDone.addRetry(RETRY_CONFLICTS);
  const finish = task(CLUSTER_OP_TASKS.finish, 'finish', '$.finish', { 'error.$': '$.error' });
  finish.addRetry({ errors: ['States.ALL'], interval: Duration.seconds(2), maxAttempts: 6, backoffRate: 2 });
  const done = new Succeed(scope, 'OperationDone');

  for (const t of [next, action, hostDone]) t.addCatch(finish, { errors: ['States.ALL'], resultPath: '$.error' });
  finish.next(done);
  return init.next(
    next.next(
      new Choice(scope, 'MoreHosts')
        .when(Condition.booleanEquals('$.next.done', true), finish)
        .otherwise(action.next(hostDone.next(next))),
    ),
  );
}

export function clusterOperationsBody(scope: Construct, fn: IFunction): DefinitionBody {
  return DefinitionBody.fromChainable(clusterOperationsDefinition(scope, fn));
}
