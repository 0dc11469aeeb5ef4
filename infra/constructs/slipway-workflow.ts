import { type Duration, Stack, Validations } from 'aws-cdk-lib';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import { type DefinitionBody, LogLevel, StateMachine, StateMachineType } from 'aws-cdk-lib/aws-stepfunctions';
import type { Construct } from 'constructs';

/**
 * The defaults every Slipway workflow shares, in one place: a Standard state machine with a fixed
 * name (other stacks grant on it by name), X-Ray tracing, every state transition logged without
 * inputs and outputs (they name leases, nodes, hosts and sites) to a log group kept three months,
 * and the cdk-nag acknowledgements those imply. A function rather than a construct, so the
 * resources keep the ids (and logical ids) they had as children of their stack.
 */
export function slipwayWorkflow(
  scope: Construct,
  id: string,
  props: { stateMachineName: string; fn: IFunction; definitionBody: DefinitionBody; timeout: Duration },
): StateMachine {
  // Kept on stack deletion (CDK's default), like the functions' logs.
  const logs = new LogGroup(scope, `${id}Logs`, { retention: RetentionDays.THREE_MONTHS });
  const sm = new StateMachine(scope, id, {
    stateMachineName: props.stateMachineName,
    stateMachineType: StateMachineType.STANDARD,
    definitionBody: props.definitionBody,
    timeout: props.timeout,
    tracingEnabled: true,
    logs: { destination: logs, level: LogLevel.ALL, includeExecutionData: false },
  });
  const policy = sm.role.node.findChild('DefaultPolicy');
  Validations.of(policy).acknowledge({
    id: 'AwsSolutions-IAM5[Resource::*]',
    reason: 'Step Functions logging (logs:*LogDelivery*, DescribeLogGroups...) and X-Ray tracing need these actions on *; they support no resource-level permissions.',
  });
  Validations.of(policy).acknowledge({
    id: `AwsSolutions-IAM5[Resource::<${Stack.of(scope).getLogicalId(props.fn.node.defaultChild as never)}.Arn>:*]`,
    reason: 'CDK grants lambda:InvokeFunction on the task function and its versions (ARN:*); it is the only function the workflow invokes.',
  });
  return sm;
}
