import { Duration } from 'aws-cdk-lib';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import { IntegrationPattern, JitterType, JsonPath, type RetryProps, TaskInput, Timeout } from 'aws-cdk-lib/aws-stepfunctions';
import { LambdaInvoke, type LambdaInvokeProps } from 'aws-cdk-lib/aws-stepfunctions-tasks';
import type { Construct } from 'constructs';

/**
 * What Lambda answers when the invoke itself failed, not the function: throttling (the
 * function's reserved concurrency or the account's pool is full — leases cluster on round hours)
 * and the transient service errors AWS documents for Step Functions' Lambda integration. The
 * function never ran (or its answer was lost), so the step is retried as it was.
 */
export const LAMBDA_SERVICE_ERRORS: readonly string[] = [
  'Lambda.TooManyRequestsException',
  'Lambda.ServiceException',
  'Lambda.AWSLambdaException',
  'Lambda.SdkClientException',
  'Lambda.ClientExecutionTimeoutException',
];

/**
 * Exponential backoff with full jitter (a random wait between 0 and the backoff): a burst of
 * executions throttled together (a round hour's lease starts) does not retry together. Eight
 * attempts over up to about four minutes ride out a burst the reservations cannot absorb.
 */
export const RETRY_LAMBDA_SERVICE: RetryProps = {
  errors: [...LAMBDA_SERVICE_ERRORS],
  interval: Duration.seconds(2),
  maxAttempts: 8,
  backoffRate: 2,
  maxDelay: Duration.seconds(60),
  jitterStrategy: JitterType.FULL,
};

/**
 * Every Lambda Task of every Slipway workflow: a LambdaInvoke whose first retrier is
 * RETRY_LAMBDA_SERVICE (instead of CDK's `retryOnServiceExceptions`, which leaves out
 * throttling and has no jitter). Workflows add their own retriers after it.
 */
export function lambdaTask(scope: Construct, id: string, props: Omit<LambdaInvokeProps, 'retryOnServiceExceptions'>): LambdaInvoke {
  const task = new LambdaInvoke(scope, id, { ...props, retryOnServiceExceptions: false });
  task.addRetry(RETRY_LAMBDA_SERVICE);
  return task;
}

/**
 * The two kinds of Task every Slipway workflow is made of, all invoking one function that
 * dispatches on `step`: a plain step (its result, the function's own output, at `resultPath`)
 * and a callback step (`.waitForTaskToken`: the function queues an agent job carrying the token,
 * and the agent's result answers it). `ids` are the JSONPath parameters every step receives.
 */
export function workflowSteps(scope: Construct, fn: IFunction, ids: Record<string, string>) {
  return {
    step(id: string, step: string, resultPath: string | undefined, extra: Record<string, unknown> = {}): LambdaInvoke {
      return lambdaTask(scope, id, {
        lambdaFunction: fn,
        payload: TaskInput.fromObject({ step, ...ids, ...extra }),
        payloadResponseOnly: true,
        resultPath: resultPath ?? JsonPath.DISCARD,
      });
    },
    callback(
      id: string,
      step: string,
      opts: { timeoutSeconds: number; heartbeatSeconds: number; resultPath?: string; extra?: Record<string, unknown> },
    ): LambdaInvoke {
      return lambdaTask(scope, id, {
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

/**
 * A lost compare-and-set (the record moved between read and write) is retried with fresh reads;
 * with jitter, so that the writers that collided do not collide again on the retry.
 */
export const RETRY_CONFLICTS: RetryProps = {
  errors: ['ConcurrentModificationError'],
  interval: Duration.seconds(1),
  maxAttempts: 5,
  backoffRate: 2,
  jitterStrategy: JitterType.FULL,
};
