/**
 * The AWS adapters of the lease-lifecycle ports (`layers/core/leases/lifecycle.ts`), built by
 * `layers/aws/deps.ts`: EventBridge Scheduler triggers, Step Functions executions and
 * EventBridge notifications. The CDK lifecycle stack sets their environment:
 * SCHEDULER_GROUP, SCHEDULER_ROLE_ARN, LEASE_EVENTS_STATE_MACHINE_ARN and EVENT_BUS_NAME.
 */
export { awsEventScheduler } from './scheduler.ts';
export { awsEventRunner, awsOperationRunner, awsTaskRunner } from './sfn-runner.ts';
export { awsNotifier } from './eventbridge-notifier.ts';
