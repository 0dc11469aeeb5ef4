import { Duration, Validations } from 'aws-cdk-lib';
import { Alarm, ComparisonOperator, type IMetric, MathExpression, Metric, TreatMissingData } from 'aws-cdk-lib/aws-cloudwatch';
import { SnsAction } from 'aws-cdk-lib/aws-cloudwatch-actions';
import type { ITopic } from 'aws-cdk-lib/aws-sns';
import { Queue, QueueEncryption } from 'aws-cdk-lib/aws-sqs';
import type { StateMachine } from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import type { SlipwayFunction } from './slipway-function.ts';

/**
 * Alarms, all through the deployment's one alarm topic (StatefulStack.alarmTopic, whose
 * subscription is the `slipway:alarmEmail` setting), each telling both ALARM and back to OK. What
 * they watch and why their thresholds are what they are: docs/deploying-to-aws.md, *Alarms*.
 * Alarm names are CloudFormation's (stack and construct), so that deployments never collide.
 */

/** The namespace and dimension of Slipway's own metrics (layers/core/util/metrics.ts writes them). */
export const METRICS_NAMESPACE = 'Slipway';
export const SERVICE_DIMENSION = 'Service';

/** Five minutes: every alarm looks at one period of this length. */
const PERIOD = Duration.minutes(5);

export class AlarmSet {
  constructor(
    private readonly scope: Construct,
    private readonly topic: ITopic,
  ) {}

  /** One alarm: `metric` compared with `threshold` over one period. */
  alarm(id: string, description: string, metric: IMetric, threshold: number, opts: { missing?: TreatMissingData; comparison?: ComparisonOperator } = {}): Alarm {
    const alarm = new Alarm(this.scope, id, {
      alarmDescription: `Slipway: ${description}`,
      metric,
      threshold,
      evaluationPeriods: 1,
      comparisonOperator: opts.comparison ?? ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      treatMissingData: opts.missing ?? TreatMissingData.NOT_BREACHING,
    });
    alarm.addAlarmAction(new SnsAction(this.topic));
    alarm.addOkAction(new SnsAction(this.topic));
    return alarm;
  }

  /**
   * A function's errors and throttles. `errors` is how many failed invocations in five minutes
   * are worth a message: 1 where a failure is always a defect (an API surface answers its own
   * errors as HTTP responses, so a failed invocation is a crash or a timeout), more for a
   * workflow's task function, which throws a lost compare-and-set on purpose for its workflow to
   * retry. Any throttle means the function's reserved concurrency (or the account's) was full.
   */
  fn(f: SlipwayFunction, errors = 1): void {
    const id = f.node.id;
    this.alarm(`${id}Errors`, `${f.service} function: ${errors > 1 ? `${errors} or more` : 'an'} invocation error(s) in 5 minutes`, f.fn.metricErrors({ period: PERIOD, statistic: 'Sum' }), errors);
    this.alarm(`${id}Throttles`, `${f.service} function: throttled (reserved or account concurrency full)`, f.fn.metricThrottles({ period: PERIOD, statistic: 'Sum' }), 1);
  }

  /** Executions that failed or timed out (their ERROR ends are in the workflow's logs). */
  stateMachine(id: string, sm: StateMachine, what: string): void {
    this.alarm(`${id}Failed`, `${what} workflow: failed executions`, sm.metricFailed({ period: PERIOD, statistic: 'Sum' }), 1);
    this.alarm(`${id}TimedOut`, `${what} workflow: timed-out executions`, sm.metricTimedOut({ period: PERIOD, statistic: 'Sum' }), 1);
  }

  /** Anything in a dead-letter queue: an asynchronous delivery that was given up. */
  queue(id: string, q: Queue, what: string): void {
    this.alarm(`${id}Depth`, `${what}: messages in the dead-letter queue (read them, then purge)`, q.metricApproximateNumberOfMessagesVisible({ period: PERIOD, statistic: 'Maximum' }), 1);
  }

  /** One of Slipway's own metrics of one service. */
  static own(metricName: string, service: string, statistic: string): Metric {
    return new Metric({ namespace: METRICS_NAMESPACE, metricName, dimensionsMap: { [SERVICE_DIMENSION]: service }, statistic, period: PERIOD });
  }

  /**
   * One of Slipway's own metrics over all its dimension values (every service, every site), by a
   * CloudWatch Metrics Insights query: sites come and go at run time, which no static alarm per
   * dimension value could follow.
   */
  static across(metricName: string, aggregate: 'SUM' | 'MAX', dimensions: string[], label: string): MathExpression {
    return new MathExpression({
      expression: `SELECT ${aggregate}(${metricName}) FROM SCHEMA("${METRICS_NAMESPACE}", ${dimensions.join(', ')})`,
      usingMetrics: {},
      period: PERIOD,
      label,
    });
  }
}

/**
 * A dead-letter queue: SQS-managed encryption, TLS only, messages kept the maximum 14 days, and
 * the cdk-nag findings a DLQ raises by being one acknowledged on it.
 */
export function deadLetterQueue(scope: Construct, id: string, what: string): Queue {
  const q = new Queue(scope, id, {
    encryption: QueueEncryption.SQS_MANAGED,
    enforceSSL: true,
    retentionPeriod: Duration.days(14),
  });
  for (const rule of ['AwsSolutions-SQS3', 'Serverless-SQSRedrivePolicy']) {
    Validations.of(q).acknowledge({ id: rule, reason: `This queue is itself a dead-letter queue (${what}); a queue of last resort has no queue behind it, and an alarm watches its depth.` });
  }
  return q;
}

/** A construct to hang a stack's alarms under, so their ids do not mingle with the resources'. */
export class Alarms extends Construct {
  readonly set: AlarmSet;
  constructor(scope: Construct, id: string, topic: ITopic) {
    super(scope, id);
    this.set = new AlarmSet(this, topic);
  }
}
