import { ArnFormat, Duration, Stack, type StackProps } from 'aws-cdk-lib';
import type { ITableV2 } from 'aws-cdk-lib/aws-dynamodb';
import { PolicyStatement } from 'aws-cdk-lib/aws-iam';
import type { ITopic } from 'aws-cdk-lib/aws-sns';
import type { StateMachine } from 'aws-cdk-lib/aws-stepfunctions';
import type { Construct } from 'constructs';
import { Alarms } from '../constructs/alarms.ts';
import { deploymentName } from '../constructs/deployment.ts';
import { SlipwayFunction } from '../constructs/slipway-function.ts';
import { slipwayWorkflow } from '../constructs/slipway-workflow.ts';
import {
  CLUSTER_OPERATIONS_STATE_MACHINE_NAME,
  CLUSTER_OPERATIONS_TIMEOUT,
  clusterOperationsBody,
} from '../workflows/cluster-operations.ts';
import { TASK_FUNCTION_ERROR_THRESHOLD } from './lifecycle-stack.ts';

/**
 * The cluster-operation workflow's ARN, built from its fixed name in the stack that needs it: the
 * API stack then holds it without a reference to the state machine (no export, no cycle once a
 * workflow task calls back into the API; toolchain.md §2).
 */
export function clusterOperationsStateMachineArn(scope: Construct): string {
  return Stack.of(scope).formatArn({
    service: 'states',
    resource: 'stateMachine',
    resourceName: deploymentName(scope, CLUSTER_OPERATIONS_STATE_MACHINE_NAME),
    arnFormat: ArnFormat.COLON_RESOURCE_NAME,
  });
}

/** Lets `fn` start cluster-operation executions (`awsOperationRunner` in `layers/aws/sfn-runner.ts`). */
export function allowClusterOperationStarts(fn: SlipwayFunction, stateMachineArn = clusterOperationsStateMachineArn(fn)): void {
  fn.fn.addEnvironment('CLUSTER_OPERATIONS_STATE_MACHINE_ARN', stateMachineArn);
  fn.role.addToPrincipalPolicy(new PolicyStatement({ actions: ['states:StartExecution'], resources: [stateMachineArn] }));
}

export interface CommissaireStackProps extends StackProps {
  /** From the StatefulStack. */
  table: ITableV2;
  /** From the StatefulStack. */
  alarmTopic: ITopic;
}

/**
 * Commissaire's cluster operations (deploy / upgrade / restart, one host at a time): the
 * workflow and its task function. The API stack's `commissaire` surface starts executions
 * (`allowClusterOperationStarts`); the agent API answers the HostAction callbacks with its
 * SendTask* grant on `stateMachine:slipway-*`.
 */
export class CommissaireStack extends Stack {
  readonly clusterOperationsFunction: SlipwayFunction;
  readonly stateMachine: StateMachine;

  constructor(scope: Construct, id: string, props: CommissaireStackProps) {
    super(scope, id, props);

    this.clusterOperationsFunction = new SlipwayFunction(this, 'ClusterOperationsFn', {
      entry: 'functions/workflows/cluster-operations.ts',
      description: 'Slipway: the steps of the Commissaire cluster-operation workflow (next host, host action, host done, finish)',
      // A step reads and writes one operation record and queues at most one agent job.
      timeout: Duration.seconds(60),
    }).grantTable(props.table);
    // Nothing else: SLIPWAY_COMMISSAIRE_SITE / SLIPWAY_COMMISSAIRE_COMMANDS are deployment
    // settings left unset here, and the host jobs' task tokens are answered by the agent API.

    this.stateMachine = slipwayWorkflow(this, 'ClusterOperations', {
      stateMachineName: deploymentName(this, CLUSTER_OPERATIONS_STATE_MACHINE_NAME),
      fn: this.clusterOperationsFunction.fn,
      definitionBody: clusterOperationsBody(this, this.clusterOperationsFunction.fn),
      timeout: CLUSTER_OPERATIONS_TIMEOUT,
    });

    const alarms = new Alarms(this, 'Alarms', props.alarmTopic).set;
    alarms.fn(this.clusterOperationsFunction, TASK_FUNCTION_ERROR_THRESHOLD);
    alarms.stateMachine('ClusterOperations', this.stateMachine, 'Commissaire cluster-operation');
  }
}
