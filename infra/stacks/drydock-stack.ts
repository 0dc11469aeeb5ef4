import { ArnFormat, Duration, Stack, type StackProps, Validations } from 'aws-cdk-lib';
import type { ITableV2 } from 'aws-cdk-lib/aws-dynamodb';
import { PolicyStatement } from 'aws-cdk-lib/aws-iam';
import type { IKey } from 'aws-cdk-lib/aws-kms';
import type { IBucket } from 'aws-cdk-lib/aws-s3';
import type { ITopic } from 'aws-cdk-lib/aws-sns';
import type { StateMachine } from 'aws-cdk-lib/aws-stepfunctions';
import type { Construct } from 'constructs';
import { BUCKET_PREFIXES, FETCHED_ACTIONS, objectsUnder } from '../constructs/access.ts';
import { Alarms } from '../constructs/alarms.ts';
import { deploymentName } from '../constructs/deployment.ts';
import { deploymentSettings, SlipwayFunction } from '../constructs/slipway-function.ts';
import { slipwayWorkflow } from '../constructs/slipway-workflow.ts';
import { deadlinesFrom, DRYDOCK_TASKS_STATE_MACHINE_NAME, DRYDOCK_TASKS_TIMEOUT, drydockTasksBody } from '../workflows/drydock-tasks.ts';
import { TASK_FUNCTION_ERROR_THRESHOLD } from './lifecycle-stack.ts';

/**
 * The Drydock task workflow's ARN, built from its fixed name in the stack that needs it: the API
 * stack then holds it without a reference to the state machine (no export; toolchain.md §2).
 */
export function drydockTasksStateMachineArn(scope: Construct): string {
  return Stack.of(scope).formatArn({
    service: 'states',
    resource: 'stateMachine',
    resourceName: deploymentName(scope, DRYDOCK_TASKS_STATE_MACHINE_NAME),
    arnFormat: ArnFormat.COLON_RESOURCE_NAME,
  });
}

/** Lets `fn` start Drydock task executions (`awsTaskRunner` in `layers/aws/sfn-runner.ts`). */
export function allowDrydockTaskStarts(fn: SlipwayFunction, stateMachineArn = drydockTasksStateMachineArn(fn)): void {
  fn.fn.addEnvironment('DRYDOCK_TASKS_STATE_MACHINE_ARN', stateMachineArn);
  fn.role.addToPrincipalPolicy(new PolicyStatement({ actions: ['states:StartExecution'], resources: [stateMachineArn] }));
}

/**
 * The Prepare function's objects (infra/constructs/access.ts BUCKET_PREFIXES): it reads `s3://`
 * designs kept under `designs/` and writes the task's design snapshot (`tasks/`).
 */
export const DRYDOCK_PREPARE_OBJECTS = {
  read: [BUCKET_PREFIXES.designs],
  write: [BUCKET_PREFIXES.taskSnapshots],
} as const;

/**
 * The task function's objects: it reads the design snapshots Prepare wrote (`tasks/`) and writes
 * the rendered tarballs (`bootdata/`), which only the boot actions read.
 */
export const DRYDOCK_TASKS_OBJECTS = {
  read: [BUCKET_PREFIXES.taskSnapshots],
  write: [BUCKET_PREFIXES.bootdata],
} as const;

export interface DrydockStackProps extends StackProps {
  /** From the StatefulStack. */
  table: ITableV2;
  /** From the StatefulStack: design snapshots and bootdata tarballs. */
  bootdataBucket: IBucket;
  /** From the StatefulStack: seals node keys and BMC passwords. */
  secretsKey: IKey;
  /** From the StatefulStack. */
  alarmTopic: ITopic;
  /**
   * Where deploying nodes report (SLIPWAY_DRYDOCK_REPORT_URL): the API stack's bootactions URL,
   * so one `cdk deploy --all` needs no URL set by hand. A `SLIPWAY_DRYDOCK_REPORT_URL` given in
   * `slipway:settings` wins (nodes that reach the API through a proxy of their own).
   */
  reportUrl: string;
}

/**
 * Drydock's tasks (DESIGN.md §7): the task workflow and its two functions, Prepare's and the
 * task function of every later step (one would weigh more than the 300 KiB a Drydock function
 * may: issue 12, `infra/workflows/drydock-tasks.ts`). The API stack's
 * `drydock` surface starts executions (`allowDrydockTaskStarts`); the agent API answers the
 * agent-job callbacks and the `bootactions` surface the report waits, each with its own
 * SendTask* grant on `stateMachine:slipway-*`. Deployed after the API stack, whose URL the
 * nodes' report URL is (the surface starts executions by name, so nothing orders it the other way).
 */
export class DrydockStack extends Stack {
  readonly drydockTasksFunction: SlipwayFunction;
  readonly drydockPrepareFunction: SlipwayFunction;
  readonly stateMachine: StateMachine;

  constructor(scope: Construct, id: string, props: DrydockStackProps) {
    super(scope, id, props);

    const fn = new SlipwayFunction(this, 'DrydockTasksFn', {
      entry: 'functions/workflows/drydock-tasks.ts',
      description: 'Slipway: the steps of the Drydock task workflow after Prepare (acquire, site action, node steps, finalize)',
      // Most steps read and write a few items; a render step fetches a node's boot-action assets
      // (30 s per fetch at most), renders them and uploads its two tarballs.
      timeout: Duration.seconds(120),
    })
      .grantTable(props.table)
      .grantSecrets(props.secretsKey);
    this.drydockTasksFunction = fn;

    const prepare = new SlipwayFunction(this, 'DrydockPrepareFn', {
      entry: 'functions/workflows/drydock-prepare.ts',
      description: 'Slipway: the Prepare step of the Drydock task workflow (read, snapshot and validate the design; make the subtasks)',
      // A design fetched from inside a site waits for that site's agent (75 s at most).
      timeout: Duration.seconds(120),
    }).grantTable(props.table);
    this.drydockPrepareFunction = prepare;

    // Design snapshots, s3:// designs and bootdata tarballs: objects under their prefixes only.
    // The bucket ARN is imported explicitly (the export CDK would make for the reference anyway),
    // so the cdk-nag findings on `<arn>/<prefix>*`, which name the import, can be acknowledged by name.
    const bucketArn = Stack.of(props.bootdataBucket).exportValue(props.bootdataBucket.bucketArn);
    const imported = (this.resolve(bucketArn) as { 'Fn::ImportValue'?: string })['Fn::ImportValue'];
    const grantObjects = (f: SlipwayFunction, objects: { read: readonly string[]; write: readonly string[] }) => {
      f.fn.addEnvironment('BOOTDATA_BUCKET', props.bootdataBucket.bucketName);
      f.role.addToPrincipalPolicy(new PolicyStatement({ actions: ['s3:GetObject'], resources: objects.read.map((p) => objectsUnder(bucketArn, p)) }));
      f.role.addToPrincipalPolicy(new PolicyStatement({ actions: ['s3:PutObject'], resources: objects.write.map((p) => objectsUnder(bucketArn, p)) }));
      for (const prefix of new Set<string>([...objects.read, ...objects.write])) {
        Validations.of(f.role).acknowledge({
          id: `AwsSolutions-IAM5[Resource::${imported}/${prefix}*]`,
          reason: `Objects under ${prefix} of this one bucket, named at run time (per task and node); object reads or writes only, no listing or deletes.`,
        });
      }
    };
    grantObjects(fn, DRYDOCK_TASKS_OBJECTS);
    grantObjects(prepare, DRYDOCK_PREPARE_OBJECTS);
    // Designs (Prepare) and asset locations (rendering) an agent fetched and uploaded (agent/fetch.ts).
    for (const f of [fn, prepare]) {
      f.role.addToPrincipalPolicy(new PolicyStatement({ actions: [...FETCHED_ACTIONS], resources: [objectsUnder(bucketArn, BUCKET_PREFIXES.fetched)] }));
      Validations.of(f.role).acknowledge({
        id: `AwsSolutions-IAM5[Resource::${imported}/${BUCKET_PREFIXES.fetched}*]`,
        reason: `Objects under ${BUCKET_PREFIXES.fetched} of this one bucket, one per fetch (a random name): the agent's upload is presigned, read back and deleted.`,
      });
    }

    // The report wait answers its own token when the final reports came first. Named state
    // machines (`slipway-*`) rather than this one: a grant on the workflow from its own task
    // function is a circular dependency (toolchain.md §2).
    fn.role.addToPrincipalPolicy(
      new PolicyStatement({
        actions: ['states:SendTaskSuccess'],
        resources: [this.formatArn({ service: 'states', resource: 'stateMachine', resourceName: deploymentName(this, 'slipway-*'), arnFormat: ArnFormat.COLON_RESOURCE_NAME })],
      }),
    );
    Validations.of(fn.role).acknowledge({
      id: `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:stateMachine:${deploymentName(this, 'slipway-*')}]`,
      reason: 'The report wait answers its own task token; granted by name (slipway-*) because a grant on the workflow from its own task is a cycle.',
    });

    const settings = deploymentSettings(this);
    if (!settings.SLIPWAY_DRYDOCK_REPORT_URL) fn.fn.addEnvironment('SLIPWAY_DRYDOCK_REPORT_URL', props.reportUrl);

    this.stateMachine = slipwayWorkflow(this, 'DrydockTasks', {
      stateMachineName: deploymentName(this, DRYDOCK_TASKS_STATE_MACHINE_NAME),
      fn: [prepare.fn, fn.fn],
      // The agent-step and report deadlines are deployment settings, fixed in the definition.
      definitionBody: drydockTasksBody(this, { prepare: prepare.fn, tasks: fn.fn }, deadlinesFrom(settings)),
      timeout: DRYDOCK_TASKS_TIMEOUT,
    });

    const alarms = new Alarms(this, 'Alarms', props.alarmTopic).set;
    alarms.fn(fn, TASK_FUNCTION_ERROR_THRESHOLD);
    alarms.fn(prepare, TASK_FUNCTION_ERROR_THRESHOLD);
    alarms.stateMachine('DrydockTasks', this.stateMachine, 'Drydock task');
  }
}
