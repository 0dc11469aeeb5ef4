import { type Duration, Stack, Validations } from 'aws-cdk-lib';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import type { Policy } from 'aws-cdk-lib/aws-iam';
import { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import { type DefinitionBody, LogLevel, StateMachine, StateMachineType } from 'aws-cdk-lib/aws-stepfunctions';
import type { Construct } from 'constructs';

/**
 * The defaults every Slipway workflow shares, in one place: a Standard state machine with a fixed
 * name (other stacks grant on it by name), X-Ray tracing, every state transition logged without
 * inputs and outputs (they name leases, nodes, hosts and sites) to a log group kept three months,
 * and the cdk-nag acknowledgements those imply — with a distributed Map, those of the grants CDK
 * adds for its child executions too. A function rather than a construct, so the
 * resources keep the ids (and logical ids) they had as children of their stack.
 */
export function slipwayWorkflow(
  scope: Construct,
  id: string,
  /** `fn`: the function (or functions) its Tasks invoke. */
  props: { stateMachineName: string; fn: IFunction | readonly IFunction[]; definitionBody: DefinitionBody; timeout: Duration },
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
  for (const fn of [props.fn].flat()) {
    Validations.of(policy).acknowledge({
      id: `AwsSolutions-IAM5[Resource::<${Stack.of(scope).getLogicalId(fn.node.defaultChild as never)}.Arn>:*]`,
      reason: 'CDK grants lambda:InvokeFunction on each task function the workflow invokes and its versions (ARN:*); only those functions.',
    });
  }
  acknowledgeDistributedMaps(sm);
  return sm;
}

/**
 * A distributed Map runs its items as child executions of the state machine itself; CDK then
 * attaches `DistributedMapPolicy` to the workflow's role: states:StartExecution on the state
 * machine, states:DescribeExecution and StopExecution on its executions (`execution:<name>:*`),
 * states:RedriveExecution on each Map's children (`execution:<name>/<label>:*`). The execution
 * names are made at run time, hence the wildcards, each acknowledged by the resource cdk-nag
 * names (its rendering: `<Ref>` for references, JSON for other intrinsics).
 */
function acknowledgeDistributedMaps(sm: StateMachine): void {
  const policy = sm.node.tryFindChild('DistributedMapPolicy') as Policy | undefined;
  if (!policy) return;
  const stack = Stack.of(sm);
  const doc = stack.resolve(policy.document.toJSON()) as { Statement: { Resource: unknown }[] };
  const wildcards = doc.Statement.flatMap((st) => [st.Resource].flat()).map(nagResource).filter((r) => r.includes('*'));
  for (const resource of new Set(wildcards)) {
    Validations.of(policy).acknowledge({
      id: `AwsSolutions-IAM5[Resource::${resource}]`,
      reason:
        "A distributed Map's items are child executions of this workflow, named at run time: Step Functions describes, stops and redrives them for the Map (execution:<name>:*, execution:<name>/<label>:*), CDK's grant for distributed Maps.",
    });
  }
}

/** A policy resource as cdk-nag writes it in a finding's id. */
function nagResource(value: unknown): string {
  if (typeof value === 'string') return value;
  const v = value as Record<string, unknown>;
  if (Array.isArray(v['Fn::Join']) && v['Fn::Join'].length === 2) return (v['Fn::Join'][1] as unknown[]).map(nagResource).join(String(v['Fn::Join'][0]));
  if (typeof v.Ref === 'string') return `<${v.Ref}>`;
  if (Array.isArray(v['Fn::GetAtt'])) return `<${(v['Fn::GetAtt'] as string[]).join('.')}>`;
  return JSON.stringify(value);
}
