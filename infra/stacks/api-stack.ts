import { ArnFormat, CfnOutput, Duration, Stack, type StackProps, Validations } from 'aws-cdk-lib';
import { PolicyStatement } from 'aws-cdk-lib/aws-iam';
import { AccessLogFormat } from 'aws-cdk-lib/aws-apigateway';
import { HttpApi, HttpMethod, HttpNoneAuthorizer, HttpStage, LogGroupLogDestination } from 'aws-cdk-lib/aws-apigatewayv2';
import { HttpLambdaAuthorizer, HttpLambdaResponseType } from 'aws-cdk-lib/aws-apigatewayv2-authorizers';
import { HttpLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import type { ITableV2 } from 'aws-cdk-lib/aws-dynamodb';
import { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { IKey } from 'aws-cdk-lib/aws-kms';
import type { IBucket } from 'aws-cdk-lib/aws-s3';
import type { Construct } from 'constructs';
import { IMAGE_PREFIX } from '../../layers/core/agent/images.ts';
import { SlipwayFunction, type TableAccess } from '../constructs/slipway-function.ts';
import { type FunctionName, functionNames, routes } from '../routes.ts';
import { allowClusterOperationStarts } from './commissaire-stack.ts';
import { allowDrydockTaskStarts } from './drydock-stack.ts';
import { allowLeaseNotifications, allowLeaseWrites, type LeaseLifecycleRefs } from './lifecycle-stack.ts';

export interface ApiStackProps extends StackProps {
  /** From the StatefulStack. */
  table: ITableV2;
  /** From the StatefulStack; read by the BOOTDATA_READERS (bootdata tarballs, s3:// designs). */
  bootdataBucket: IBucket;
  /** From the StatefulStack: Ironic seals BMC passwords with it, the agent API opens them. */
  secretsKey: IKey;
  /** From the LifecycleStack (and the StatefulStack's bus): what lease writers need to arm lease events. */
  lifecycle: LeaseLifecycleRefs;
}

/** What each surface may do to the table; a new FunctionName in routes.ts fails to compile here. */
const TABLE_ACCESS: Record<FunctionName, TableAccess | undefined> = {
  system: undefined, // /healthz touches nothing
  blazar: 'RW',
  native: 'RW',
  agent: 'RW', // claims, heartbeats and results are conditional writes on job items
  ironic: 'RW',
  commissaire: 'RW', // hostset changes are transactions over the cluster and its hosts
  bootactions: 'RW', // reports append task messages and finalize actions with conditional writes
  drydock: 'RW', // tasks, designs; the workflow does the rest
};

/**
 * Who may use the KMS key that seals secrets: Ironic seals BMC passwords, the agent API opens
 * them for claimed jobs; Commissaire seals SSH keys and opens them for `GET /host/{IP}/creds`
 * (admins only), which returns the key as upstream does.
 */
const KMS_USE: Partial<Record<FunctionName, string[]>> = {
  ironic: ['kms:Encrypt'],
  agent: ['kms:Decrypt'],
  // SSH keys are longer than KMS Encrypt takes: sealed by envelope (GenerateDataKey), opened for `…/creds`.
  commissaire: ['kms:Encrypt', 'kms:GenerateDataKey', 'kms:Decrypt'],
  // Node keys are stored sealed; the admin view of a node's boot actions opens its key.
  bootactions: ['kms:Decrypt'],
  // A new token's secret is kept sealed in the Idempotency-Key store for its replay.
  native: ['kms:Encrypt', 'kms:Decrypt'],
};

/**
 * The surfaces that read bootdata bucket objects (s3:GetObject): the boot actions serve
 * tarballs, both reading one (`?inline=true`) and presigning the URL a node is redirected to (a
 * presigned URL carries the signer's permissions); Drydock reads `s3://` designs kept in the
 * bucket (`POST /validatedesign`; other buckets are not granted).
 */
export const BOOTDATA_READERS: readonly FunctionName[] = ['bootactions', 'drydock'];

/**
 * The surfaces that answer Step Functions task tokens (SendTask* on the `slipway-*` workflows):
 * the agent API for its jobs (success, failure, heartbeats), the boot-action reports for the
 * deploy step waiting on a node's final reports (success only).
 */
export const TASK_TOKEN_ANSWERERS: Partial<Record<FunctionName, readonly string[]>> = {
  agent: ['states:SendTaskSuccess', 'states:SendTaskFailure', 'states:SendTaskHeartbeat'],
  bootactions: ['states:SendTaskSuccess'],
};

/**
 * The surfaces that create, update or delete leases, and so set and remove lease-event triggers
 * (`armLease`/`disarmLease`) and publish lease notices. test/infra checks this against the
 * lease-writing use-cases each surface imports.
 */
export const LEASE_WRITERS: readonly FunctionName[] = ['blazar'];

/**
 * The surfaces that publish node notifications (`baremetal.node.deploy|clean.end|error`,
 * `layers/core/ironic/events.ts`): the agent API, where deploy and erase results arrive.
 */
export const NODE_NOTIFIERS: readonly FunctionName[] = ['agent'];

/**
 * The surfaces that start Commissaire cluster operations (`PUT …/deploy|upgrade|restart`):
 * states:StartExecution on the cluster-operation workflow, by its fixed name, so this stack
 * imports nothing from the Commissaire stack (app.ts orders the deployment).
 */
export const CLUSTER_OPERATION_STARTERS: readonly FunctionName[] = ['commissaire'];

/**
 * The surfaces that start Drydock tasks (`POST /api/v1.0/tasks`): states:StartExecution on the
 * task workflow, by its fixed name, so this stack imports nothing from the Drydock stack
 * (app.ts orders the deployment).
 */
export const DRYDOCK_TASK_STARTERS: readonly FunctionName[] = ['drydock'];

const pascal = (s: string) => s.replace(/(^|[-_])(\w)/g, (_m, _sep, c: string) => c.toUpperCase());

/**
 * The HTTP API: one Lambda per surface, one route per `infra/routes.ts` entry, and the Lambda
 * authorizer that turns credentials into a principal for the surfaces (DESIGN.md §3).
 */
export class ApiStack extends Stack {
  readonly api: HttpApi;
  readonly stage: HttpStage;
  readonly authorizerFunction: SlipwayFunction;
  readonly surfaces: ReadonlyMap<FunctionName, SlipwayFunction>;

  constructor(scope: Construct, id: string, props: ApiStackProps) {
    super(scope, id, props);

    this.authorizerFunction = new SlipwayFunction(this, 'AuthorizerFn', {
      entry: 'functions/auth/authorizer.ts',
      description: 'Slipway: resolves X-Auth-Token / Bearer / Basic credentials to a principal',
      // API Gateway waits at most 10 s for a Lambda authorizer.
      timeout: Duration.seconds(10),
    }).bindTable(props.table, 'RO');

    // The authorizer never denies (the surfaces answer 401 in their own error formats), so it
    // must run on every request: no identity source (API Gateway would otherwise reject requests
    // without the header with its own 401 body) and no result cache (a cache needs an identity
    // source as its key).
    const authorizer = new HttpLambdaAuthorizer('Principal', this.authorizerFunction.fn, {
      authorizerName: 'slipway-principal',
      responseTypes: [HttpLambdaResponseType.SIMPLE],
      identitySource: [],
      resultsCacheTtl: Duration.seconds(0),
    });

    const surfaces = new Map<FunctionName, SlipwayFunction>();
    for (const name of functionNames) {
      const fn = new SlipwayFunction(this, `${pascal(name)}Fn`, {
        entry: `functions/api/${name}.ts`,
        description: `Slipway: ${name} surface`,
      });
      const access = TABLE_ACCESS[name];
      if (access) fn.bindTable(props.table, access);
      surfaces.set(name, fn);
    }
    this.surfaces = surfaces;

    // BMC passwords and SSH keys: sealed where they are registered, opened only for an agent's
    // job (and Commissaire's creds route); node keys opened for the boot-action admin view.
    for (const [name, actions] of Object.entries(KMS_USE) as [FunctionName, string[]][]) {
      const fn = surfaces.get(name)!.fn;
      fn.addEnvironment('SECRETS_KMS_KEY_ID', props.secretsKey.keyArn);
      fn.addToRolePolicy(new PolicyStatement({ actions, resources: [props.secretsKey.keyArn] }));
    }

    for (const name of LEASE_WRITERS) allowLeaseWrites(surfaces.get(name)!, props.lifecycle);
    for (const name of NODE_NOTIFIERS) allowLeaseNotifications(surfaces.get(name)!, props.lifecycle.eventBus);
    for (const name of CLUSTER_OPERATION_STARTERS) allowClusterOperationStarts(surfaces.get(name)!);
    for (const name of DRYDOCK_TASK_STARTERS) allowDrydockTaskStarts(surfaces.get(name)!);

    // Agent results (and final boot-action reports) answer the Step Functions task tokens their
    // jobs carry (callback pattern). Named state machines (`slipway-*`) rather than the workflows
    // themselves avoid a circular dependency once a workflow's task is this very function
    // (toolchain.md §2).
    for (const [name, actions] of Object.entries(TASK_TOKEN_ANSWERERS) as [FunctionName, string[]][]) {
      const fn = surfaces.get(name)!;
      fn.fn.addToRolePolicy(
        new PolicyStatement({
          actions,
          resources: [Stack.of(this).formatArn({ service: 'states', resource: 'stateMachine', resourceName: 'slipway-*', arnFormat: ArnFormat.COLON_RESOURCE_NAME })],
        }),
      );
      Validations.of(fn.fn.role!).acknowledge({
        id: 'AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:stateMachine:slipway-*]',
        reason: 'Task tokens come from any Slipway workflow; the grant is limited to state machines named slipway-*.',
      });
    }

    // Bootdata: read the tarballs (inline) and presign the redirects to them, read s3:// designs; nothing else.
    // The bucket ARN is imported explicitly (the export CDK would make for the reference anyway),
    // so the cdk-nag finding on `<arn>/*`, which names the import, can be acknowledged by name.
    const bucketArn = Stack.of(props.bootdataBucket).exportValue(props.bootdataBucket.bucketArn);
    const imported = (this.resolve(bucketArn) as { 'Fn::ImportValue'?: string })['Fn::ImportValue'];
    for (const name of BOOTDATA_READERS) {
      const fn = surfaces.get(name)!;
      fn.fn.addEnvironment('BOOTDATA_BUCKET', props.bootdataBucket.bucketName);
      fn.fn.addToRolePolicy(new PolicyStatement({ actions: ['s3:GetObject'], resources: [`${bucketArn}/*`] }));
      Validations.of(fn.fn.role!).acknowledge({
        id: `AwsSolutions-IAM5[Resource::${imported}/*]`,
        reason: 'Bootdata tarballs and s3:// designs are objects of this one bucket, named at run time; object reads only (s3:GetObject), no listing or writes.',
      });
    }

    // OS images for the sites' agents (`GET /api/v1.0/agent/images/{name}`): objects under
    // images/ only, read to presign the agent's download; ListBucket so that a missing image is
    // S3's 404 (NoSuchKey), not a 403 indistinguishable from a wrong grant.
    const agentFn = surfaces.get('agent')!;
    agentFn.fn.addEnvironment('BOOTDATA_BUCKET', props.bootdataBucket.bucketName);
    agentFn.fn.addToRolePolicy(new PolicyStatement({ actions: ['s3:GetObject'], resources: [`${bucketArn}/${IMAGE_PREFIX}*`] }));
    agentFn.fn.addToRolePolicy(new PolicyStatement({ actions: ['s3:ListBucket'], resources: [bucketArn] }));
    Validations.of(agentFn.fn.role!).acknowledge({
      id: `AwsSolutions-IAM5[Resource::${imported}/${IMAGE_PREFIX}*]`,
      reason: 'OS images are the objects under images/ of this one bucket, named at run time by the agents; reads only.',
    });

    // No default stage: the explicit one below carries access logging.
    this.api = new HttpApi(this, 'Api', { apiName: 'slipway', createDefaultStage: false });

    const integrations = new Map<FunctionName, HttpLambdaIntegration>();
    for (const [name, fn] of surfaces) {
      // One invoke permission per function for the whole API instead of one per route: the
      // surface dispatches on the route key itself, and ~30 routes per function would crowd
      // the 20 KB Lambda resource policy.
      integrations.set(name, new HttpLambdaIntegration(`${pascal(name)}Integration`, fn.fn, { scopePermissionToRoute: false }));
    }

    const none = new HttpNoneAuthorizer();
    for (const r of routes) {
      const [route] = this.api.addRoutes({
        path: r.path,
        methods: [HttpMethod[r.method]],
        integration: integrations.get(r.fn)!,
        authorizer: r.auth === 'token' ? authorizer : none,
      });
      if (r.auth === 'none') {
        Validations.of(route!).acknowledge({
          id: 'AwsSolutions-APIG4',
          reason: `${r.method} ${r.path} is anonymous by design in infra/routes.ts (auth: 'none').`,
        });
      }
    }

    const accessLogs = new LogGroup(this, 'AccessLogs', { retention: RetentionDays.THREE_MONTHS });
    this.stage = new HttpStage(this, 'DefaultStage', {
      httpApi: this.api,
      stageName: '$default',
      autoDeploy: true,
      accessLogSettings: {
        destination: new LogGroupLogDestination(accessLogs),
        // No headers: they carry tokens and node keys.
        format: AccessLogFormat.custom(
          JSON.stringify({
            requestId: '$context.requestId',
            ip: '$context.identity.sourceIp',
            time: '$context.requestTime',
            routeKey: '$context.routeKey',
            path: '$context.path',
            status: '$context.status',
            responseLength: '$context.responseLength',
            latency: '$context.responseLatency',
            integrationLatency: '$context.integrationLatency',
            integrationError: '$context.integrationErrorMessage',
            authorizerError: '$context.authorizer.error',
          }),
        ),
      },
    });

    new CfnOutput(this, 'ApiUrl', { value: this.stage.url, description: 'Slipway API base URL' });
  }
}
