import { Annotations, ArnFormat, Duration, Stack, type StackProps, Validations } from 'aws-cdk-lib';
import type { ITableV2 } from 'aws-cdk-lib/aws-dynamodb';
import { PolicyStatement } from 'aws-cdk-lib/aws-iam';
import type { IKey } from 'aws-cdk-lib/aws-kms';
import type { IBucket } from 'aws-cdk-lib/aws-s3';
import type { StateMachine } from 'aws-cdk-lib/aws-stepfunctions';
import type { Construct } from 'constructs';
import { deploymentSettings, SlipwayFunction } from '../constructs/slipway-function.ts';
import { slipwayWorkflow } from '../constructs/slipway-workflow.ts';
import { deadlinesFrom, DRYDOCK_TASKS_STATE_MACHINE_NAME, DRYDOCK_TASKS_TIMEOUT, drydockTasksBody } from '../workflows/drydock-tasks.ts';

/**
 * The Drydock task workflow's ARN, built from its fixed name in the stack that needs it: the API
 * stack then holds it without a reference to the state machine (no export; toolchain.md §2).
 */
export function drydockTasksStateMachineArn(scope: Construct): string {
  return Stack.of(scope).formatArn({
    service: 'states',
    resource: 'stateMachine',
    resourceName: DRYDOCK_TASKS_STATE_MACHINE_NAME,
    arnFormat: ArnFormat.COLON_RESOURCE_NAME,
  });
}

/** Lets `fn` start Drydock task executions (`awsTaskRunner` in `layers/aws/sfn-runner.ts`). */
export function allowDrydockTaskStarts(fn: SlipwayFunction, stateMachineArn = drydockTasksStateMachineArn(fn)): void {
  fn.fn.addEnvironment('DRYDOCK_TASKS_STATE_MACHINE_ARN', stateMachineArn);
  fn.role.addToPrincipalPolicy(new PolicyStatement({ actions: ['states:StartExecution'], resources: [stateMachineArn] }));
}

/**
 * What the task function does to the secrets key (`layers/aws/kms-secrets.ts`): the register step
 * seals BMC passwords and the render step seals node keys, both short enough for a direct
 * kms:Encrypt (no GenerateDataKey envelope); the register step also opens the stored BMC
 * passwords to tell an unchanged registration from a changed one (`design-nodes.ts`), which
 * without kms:Decrypt would rewrite every node's registration on every deploy.
 */
export const DRYDOCK_TASKS_KMS_ACTIONS: readonly string[] = ['kms:Encrypt', 'kms:Decrypt'];

/** Snapshots of designs (`tasks/<id>/design.json`), s3:// designs and the rendered `bootdata/...` tarballs. */
export const DRYDOCK_TASKS_S3_ACTIONS: readonly string[] = ['s3:GetObject', 's3:PutObject'];

export interface DrydockStackProps extends StackProps {
  /** From the StatefulStack. */
  table: ITableV2;
  /** From the StatefulStack: design snapshots and bootdata tarballs. */
  bootdataBucket: IBucket;
  /** From the StatefulStack: seals node keys and BMC passwords. */
  secretsKey: IKey;
}

/**
 * Drydock's tasks (DESIGN.md §7): the task workflow and its task function. The API stack's
 * `drydock` surface starts executions (`allowDrydockTaskStarts`); the agent API answers the
 * agent-job callbacks and the `bootactions` surface the report waits, each with its own
 * SendTask* grant on `stateMachine:slipway-*`.
 */
export class DrydockStack extends Stack {
  readonly drydockTasksFunction: SlipwayFunction;
  readonly stateMachine: StateMachine;

  constructor(scope: Construct, id: string, props: DrydockStackProps) {
    super(scope, id, props);

    const fn = new SlipwayFunction(this, 'DrydockTasksFn', {
      entry: 'functions/workflows/drydock-tasks.ts',
      description: 'Slipway: the steps of the Drydock task workflow (prepare, acquire, site action, node steps, finalize)',
      // Most steps read and write a few items; a render step fetches a node's boot-action assets
      // (30 s per fetch at most), renders them and uploads its two tarballs.
      timeout: Duration.seconds(120),
    }).bindTable(props.table, 'RW');
    this.drydockTasksFunction = fn;

    // Design snapshots, s3:// designs in this bucket, and bootdata tarballs: objects only. The
    // bucket ARN is imported explicitly (the export CDK would make for the reference anyway), so
    // the cdk-nag finding on `<arn>/*`, which names the import, can be acknowledged by name.
    const bucketArn = Stack.of(props.bootdataBucket).exportValue(props.bootdataBucket.bucketArn);
    const imported = (this.resolve(bucketArn) as { 'Fn::ImportValue'?: string })['Fn::ImportValue'];
    fn.fn.addEnvironment('BOOTDATA_BUCKET', props.bootdataBucket.bucketName);
    fn.role.addToPrincipalPolicy(new PolicyStatement({ actions: [...DRYDOCK_TASKS_S3_ACTIONS], resources: [`${bucketArn}/*`] }));
    Validations.of(fn.role).acknowledge({
      id: `AwsSolutions-IAM5[Resource::${imported}/*]`,
      reason: 'One design snapshot per task and two tarballs per node, named at run time in this one bucket; object reads and writes only, no listing or deletes.',
    });

    fn.fn.addEnvironment('SECRETS_KMS_KEY_ID', props.secretsKey.keyArn);
    fn.role.addToPrincipalPolicy(new PolicyStatement({ actions: [...DRYDOCK_TASKS_KMS_ACTIONS], resources: [props.secretsKey.keyArn] }));

    // The report wait answers its own token when the final reports came first. Named state
    // machines (`slipway-*`) rather than this one: a grant on the workflow from its own task
    // function is a circular dependency (toolchain.md §2).
    fn.role.addToPrincipalPolicy(
      new PolicyStatement({
        actions: ['states:SendTaskSuccess'],
        resources: [this.formatArn({ service: 'states', resource: 'stateMachine', resourceName: 'slipway-*', arnFormat: ArnFormat.COLON_RESOURCE_NAME })],
      }),
    );
    Validations.of(fn.role).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:stateMachine:slipway-*]',
      reason: 'The report wait answers its own task token; granted by name (slipway-*) because a grant on the workflow from its own task is a cycle.',
    });

    const settings = deploymentSettings(this);
    if (!settings.SLIPWAY_DRYDOCK_REPORT_URL) {
      // Not an error (the first deploy cannot know the API's URL yet), but deploys would wait out
      // every report deadline: nodes would report to upstream's default, themselves.
      Annotations.of(this).addWarningV2(
        'slipway:drydockReportUrl',
        "SLIPWAY_DRYDOCK_REPORT_URL is not set in 'slipway:settings': deploying nodes cannot report; set it to the API's URL + api/v1.0/bootactions/ and deploy again",
      );
    }

    this.stateMachine = slipwayWorkflow(this, 'DrydockTasks', {
      stateMachineName: DRYDOCK_TASKS_STATE_MACHINE_NAME,
      fn: fn.fn,
      // The agent-step and report deadlines are deployment settings, fixed in the definition.
      definitionBody: drydockTasksBody(this, fn.fn, deadlinesFrom(settings)),
      timeout: DRYDOCK_TASKS_TIMEOUT,
    });
  }
}
