import { Duration } from 'aws-cdk-lib';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import { IntegrationPattern, JsonPath, TaskInput, Timeout } from 'aws-cdk-lib/aws-stepfunctions';
import { LambdaInvoke } from 'aws-cdk-lib/aws-stepfunctions-tasks';
import type { Construct } from 'constructs';

/**
 * The two kinds of Task every Slipway workflow is made of, all invoking one function that
 * dispatches on `step`: a plain step (its result, the function's own output, at `resultPath`)
 * and a callback step (`.waitForTaskToken`: the function queues an agent job carrying the token,
 * and the agent's result answers it). `ids` are the JSONPath parameters every step receives.
 */
export function workflowSteps(scope: Construct, fn: IFunction, ids: Record<string, string>) {
  return {
    step(id: string, step: string, resultPath: string | undefined, extra: Record<string, unknown> = {}): LambdaInvoke {
      return new LambdaInvoke(scope, id, {
        lambdaFunction: fn,
        payload: TaskInput.fromObject({ step, ...ids, ...extra }),
        payloadResponseOnly: true,
        retryOnServiceExceptions: true,
        resultPath: resultPath ?? JsonPath.DISCARD,
      });
    },
    callback(
      id: string,
      step: string,
      opts: { timeoutSeconds: number; heartbeatSeconds: number; resultPath?: string; extra?: Record<string, unknown> },
    ): LambdaInvoke {
      return new LambdaInvoke(scope, id, {
        lambdaFunction: fn,
        integrationPattern: IntegrationPattern.WAIT_FOR_TASK_TOKEN,
        payload: TaskInput.fromObject({ step, ...ids, ...(opts.extra ?? {}), task_token: JsonPath.taskToken }),
        taskTimeout: Timeout.duration(Duration.seconds(opts.timeoutSeconds)),
        heartbeatTimeout: Timeout.duration(Duration.seconds(opts.heartbeatSeconds)),
        resultPath: opts.resultPath ?? JsonPath.DISCARD,
      });
    },
  };
}

/** A lost compare-and-set (the record moved between read and write) is retried with fresh reads. */
export const RETRY_CONFLICTS = { errors: ['ConcurrentModificationError'], interval: Duration.seconds(1), maxAttempts: 5, backoffRate: 2 };
