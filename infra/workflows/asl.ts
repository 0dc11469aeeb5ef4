import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App, Stack } from 'aws-cdk-lib';
import { type Duration } from 'aws-cdk-lib';
import { Function as LambdaFunction, type IFunction } from 'aws-cdk-lib/aws-lambda';
import { type CfnStateMachine, type DefinitionBody, StateMachine } from 'aws-cdk-lib/aws-stepfunctions';
import { LEASE_EVENTS_TIMEOUT } from '../stacks/lifecycle-stack.ts';
import { LEASE_EVENTS_STATE_MACHINE_NAME, leaseEventsBody } from './lease-events.ts';
import { CLUSTER_OPERATIONS_STATE_MACHINE_NAME, CLUSTER_OPERATIONS_TIMEOUT, clusterOperationsBody } from './cluster-operations.ts';
import { deadlinesFrom, DRYDOCK_TASKS_STATE_MACHINE_NAME, DRYDOCK_TASKS_TIMEOUT, drydockTasksBody } from './drydock-tasks.ts';

/**
 * The workflows as plain Amazon States Language, for the runs that are not Step
 * Functions: the local stack executes it in `aws-local-stepfunctions`, and test/infra validates
 * it with `asl-validator`. Both take the definition CDK synthesizes, so what runs locally is
 * what deploys.
 */

/** Placeholders for the pseudo parameters a definition may reference. */
export const FAKE_ENV = { partition: 'aws', region: 'us-east-1', account: '123456789012', urlSuffix: 'amazonaws.com' } as const;

/** A stand-in ARN for `Fn::GetAtt [<logicalId>, Arn]`: only the local runner's bindings by state name matter. */
export const fakeArnOf = (logicalId: string) => `arn:${FAKE_ENV.partition}:lambda:${FAKE_ENV.region}:${FAKE_ENV.account}:function:${logicalId}`;

const PSEUDO: Record<string, string> = {
  'AWS::Partition': FAKE_ENV.partition,
  'AWS::Region': FAKE_ENV.region,
  'AWS::AccountId': FAKE_ENV.account,
  'AWS::URLSuffix': FAKE_ENV.urlSuffix,
};

/**
 * Resolves the CloudFormation intrinsics CDK puts in a `DefinitionString` (`Fn::Join`, `Ref` of
 * the pseudo parameters, `Fn::GetAtt … Arn`) into a string. Anything else is an error rather
 * than a silently wrong definition.
 *
 * @example
 * ```ts
 * resolveIntrinsics({ 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':states:::lambda:invoke']] });
 * // 'arn:aws:states:::lambda:invoke'
 * ```
 */
export function resolveIntrinsics(value: unknown): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (value && typeof value === 'object' && !Array.isArray(value)) {
    const entries = Object.entries(value);
    if (entries.length === 1) {
      const [fn, arg] = entries[0]!;
      if (fn === 'Fn::Join' && Array.isArray(arg) && arg.length === 2 && typeof arg[0] === 'string' && Array.isArray(arg[1])) {
        return (arg[1] as unknown[]).map(resolveIntrinsics).join(arg[0]);
      }
      if (fn === 'Ref' && typeof arg === 'string' && arg in PSEUDO) return PSEUDO[arg]!;
      if (fn === 'Fn::GetAtt' && Array.isArray(arg) && arg.length === 2 && arg[1] === 'Arn' && typeof arg[0] === 'string') return fakeArnOf(arg[0]);
    }
  }
  throw new Error(`resolveIntrinsics: unsupported CloudFormation value ${JSON.stringify(value)}`);
}

/** The ARN `synthLeaseEventsAsl` gives the lease-events function (what every Task invokes). */
export const LOCAL_LEASE_EVENTS_FUNCTION_ARN = `arn:aws:lambda:us-east-1:123456789012:function:${LEASE_EVENTS_STATE_MACHINE_NAME}`;

/**
 * Synthesizes one workflow alone (a throwaway app, no assets, no files left behind) and returns
 * its ASL with every intrinsic resolved. `body` builds the definition CDK deploys.
 */
export function synthAsl(
  name: string,
  body: (scope: Stack, fn: IFunction) => DefinitionBody,
  timeout?: Duration,
): Record<string, unknown> {
  // Every App gets a cloud assembly directory, even one that never synthesizes: use and remove ours.
  const outdir = mkdtempSync(join(tmpdir(), 'slipway-asl-'));
  try {
    const stack = new Stack(new App({ outdir }), 'WorkflowAsl');
    const fn = LambdaFunction.fromFunctionArn(stack, 'WorkflowFn', `arn:aws:lambda:us-east-1:123456789012:function:${name}`);
    // The timeout is part of the definition (TimeoutSeconds); the rest of the deployed props are not.
    const sm = new StateMachine(stack, 'Workflow', { definitionBody: body(stack, fn), ...(timeout ? { timeout } : {}) });
    const definition = stack.resolve((sm.node.defaultChild as CfnStateMachine).definitionString) as unknown;
    return JSON.parse(resolveIntrinsics(definition)) as Record<string, unknown>;
  } finally {
    rmSync(outdir, { recursive: true, force: true });
  }
}

/** The lease-event workflow's ASL (the local stack runs it; the tests validate it). */
export function synthLeaseEventsAsl(): Record<string, unknown> {
  return synthAsl(LEASE_EVENTS_STATE_MACHINE_NAME, leaseEventsBody, LEASE_EVENTS_TIMEOUT);
}

/** The Commissaire cluster-operation workflow's ASL. */
export function synthClusterOperationsAsl(): Record<string, unknown> {
  return synthAsl(CLUSTER_OPERATIONS_STATE_MACHINE_NAME, clusterOperationsBody, CLUSTER_OPERATIONS_TIMEOUT);
}

/** The ARN `synthDrydockTasksAsl` gives the Drydock workflow's Prepare function (its other Tasks invoke the task function's). */
export const LOCAL_DRYDOCK_PREPARE_FUNCTION_ARN = `arn:aws:lambda:us-east-1:123456789012:function:${DRYDOCK_TASKS_STATE_MACHINE_NAME}-prepare`;

/** The Drydock task workflow's ASL, its deadlines from `settings` (the stack's environment). */
export function synthDrydockTasksAsl(settings: Record<string, string | undefined> = {}): Record<string, unknown> {
  const deadlines = deadlinesFrom(settings);
  return synthAsl(
    DRYDOCK_TASKS_STATE_MACHINE_NAME,
    (scope, fn) => drydockTasksBody(scope, { tasks: fn, prepare: LambdaFunction.fromFunctionArn(scope, 'PrepareFn', LOCAL_DRYDOCK_PREPARE_FUNCTION_ARN) }, deadlines),
    DRYDOCK_TASKS_TIMEOUT,
  );
}
