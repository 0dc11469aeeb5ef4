import { ArnFormat, CfnOutput, Duration, Stack, type StackProps, Validations } from 'aws-cdk-lib';
import { PolicyStatement } from 'aws-cdk-lib/aws-iam';
import { AccessLogFormat } from 'aws-cdk-lib/aws-apigateway';
import { ApiMapping, DomainName, EndpointType, HttpApi, HttpMethod, HttpNoneAuthorizer, HttpStage, LogGroupLogDestination } from 'aws-cdk-lib/aws-apigatewayv2';
import { HttpLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import { Certificate } from 'aws-cdk-lib/aws-certificatemanager';
import type { ITableV2 } from 'aws-cdk-lib/aws-dynamodb';
import { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { IKey } from 'aws-cdk-lib/aws-kms';
import type { IBucket } from 'aws-cdk-lib/aws-s3';
import type { ITopic } from 'aws-cdk-lib/aws-sns';
import type { Construct } from 'constructs';
import { BUCKET_PREFIXES, FETCHED_ACTIONS, objectsUnder, SECRET_GRANTS, TABLE_GRANTS } from '../constructs/access.ts';
import { Alarms } from '../constructs/alarms.ts';
import { deploymentName, deploymentOptions } from '../constructs/deployment.ts';
import { deploymentSettings, SlipwayFunction } from '../constructs/slipway-function.ts';
import { type FunctionName, functionNames, routes } from '../routes.ts';
import { allowClusterOperationStarts } from './commissaire-stack.ts';
import { allowDrydockTaskStarts } from './drydock-stack.ts';
import { allowLeaseNotifications, allowLeaseWrites, type LeaseLifecycleRefs } from './lifecycle-stack.ts';

export interface ApiStackProps extends StackProps {
  /** From the StatefulStack. */
  table: ITableV2;
  /** From the StatefulStack; read by the BOOTDATA_READERS (bootdata tarballs, s3:// designs). */
  bootdataBucket: IBucket;
  /** From the StatefulStack: each surface seals and opens the kinds of secret SECRET_GRANTS gives it. */
  secretsKey: IKey;
  /** From the LifecycleStack (and the StatefulStack's bus): what lease writers need to arm lease events. */
  lifecycle: LeaseLifecycleRefs;
  /** From the StatefulStack. */
  alarmTopic: ITopic;
}

/** A surface's entry; every surface has its table and secret grants in infra/constructs/access.ts. */
const entryOf = (name: FunctionName) => `functions/api/${name}.ts` as const;

/**
 * The surfaces that read bootdata bucket objects (s3:GetObject), and under which prefix: the
 * boot actions serve rendered tarballs (`bootdata/`), both reading one (`?inline=true`) and
 * presigning the URL a node is redirected to (a presigned URL carries the signer's permissions);
 * Drydock reads `s3://` designs kept under `designs/` (`POST /validatedesign`; other buckets and
 * other prefixes are not granted). The agent API's images are below.
 */
export const BOOTDATA_READERS: Partial<Record<FunctionName, string>> = { bootactions: BUCKET_PREFIXES.bootdata, drydock: BUCKET_PREFIXES.designs };

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
 * The HTTP API: one Lambda per surface, one route per `infra/routes.ts` entry. No authorizer: each
 * surface resolves the request's credentials itself (`layers/http/credentials.ts`), so a request
 * costs one invocation (docs/api.md "The API edge").
 */
export class ApiStack extends Stack {
  readonly api: HttpApi;
  readonly stage: HttpStage;
  readonly surfaces: ReadonlyMap<FunctionName, SlipwayFunction>;
  /** The API's own domain, when `slipway:domainName` is set. */
  readonly domain?: DomainName;
  /** The API's base URL (the own domain's, if any), ending in `/`. */
  readonly url: string;
  /** Where deploying nodes report: `<url>api/v1.0/bootactions/` (SLIPWAY_DRYDOCK_REPORT_URL). */
  readonly reportUrl: string;

  constructor(scope: Construct, id: string, props: ApiStackProps) {
    super(scope, id, props);

    const surfaces = new Map<FunctionName, SlipwayFunction>();
    for (const name of functionNames) {
      const fn = new SlipwayFunction(this, `${pascal(name)}Fn`, {
        entry: entryOf(name),
        description: `Slipway: ${name} surface`,
      });
      // Least privilege per surface (infra/constructs/access.ts): its partitions of the table, its kinds of secret.
      if (TABLE_GRANTS[fn.entry]) fn.grantTable(props.table);
      if (SECRET_GRANTS[fn.entry]) fn.grantSecrets(props.secretsKey);
      surfaces.set(name, fn);
    }
    this.surfaces = surfaces;

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
          resources: [Stack.of(this).formatArn({ service: 'states', resource: 'stateMachine', resourceName: deploymentName(this, 'slipway-*'), arnFormat: ArnFormat.COLON_RESOURCE_NAME })],
        }),
      );
      Validations.of(fn.fn.role!).acknowledge({
        id: `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:stateMachine:${deploymentName(this, 'slipway-*')}]`,
        reason: 'Task tokens come from any Slipway workflow; the grant is limited to state machines named slipway-*.',
      });
    }

    // Bootdata: read the tarballs (inline) and presign the redirects to them, read s3:// designs; nothing else.
    // The bucket ARN is imported explicitly (the export CDK would make for the reference anyway),
    // so the cdk-nag finding on `<arn>/<prefix>*`, which names the import, can be acknowledged by name.
    const bucketArn = Stack.of(props.bootdataBucket).exportValue(props.bootdataBucket.bucketArn);
    const imported = (this.resolve(bucketArn) as { 'Fn::ImportValue'?: string })['Fn::ImportValue'];
    for (const [name, prefix] of Object.entries(BOOTDATA_READERS) as [FunctionName, string][]) {
      const fn = surfaces.get(name)!;
      fn.fn.addEnvironment('BOOTDATA_BUCKET', props.bootdataBucket.bucketName);
      fn.fn.addToRolePolicy(new PolicyStatement({ actions: ['s3:GetObject'], resources: [objectsUnder(bucketArn, prefix)] }));
      Validations.of(fn.fn.role!).acknowledge({
        id: `AwsSolutions-IAM5[Resource::${imported}/${prefix}*]`,
        reason: `Objects under ${prefix} of this one bucket, named at run time; object reads only (s3:GetObject), no listing or writes.`,
      });
    }

    // Designs a site's agent fetched for `POST /validatedesign` and uploaded (agent/fetch.ts).
    const drydockFn = surfaces.get('drydock')!;
    drydockFn.fn.addToRolePolicy(new PolicyStatement({ actions: [...FETCHED_ACTIONS], resources: [objectsUnder(bucketArn, BUCKET_PREFIXES.fetched)] }));
    Validations.of(drydockFn.fn.role!).acknowledge({
      id: `AwsSolutions-IAM5[Resource::${imported}/${BUCKET_PREFIXES.fetched}*]`,
      reason: `Objects under ${BUCKET_PREFIXES.fetched} of this one bucket, one per fetch (a random name): the agent's upload is presigned, read back and deleted.`,
    });

    // OS images for the sites' agents (`GET /api/v1.0/agent/images/{name}`): objects under
    // images/ only, read to presign the agent's download; ListBucket so that a missing image is
    // S3's 404 (NoSuchKey), not a 403 indistinguishable from a wrong grant.
    const agentFn = surfaces.get('agent')!;
    agentFn.fn.addEnvironment('BOOTDATA_BUCKET', props.bootdataBucket.bucketName);
    agentFn.fn.addToRolePolicy(new PolicyStatement({ actions: ['s3:GetObject'], resources: [objectsUnder(bucketArn, BUCKET_PREFIXES.images)] }));
    agentFn.fn.addToRolePolicy(new PolicyStatement({ actions: ['s3:ListBucket'], resources: [bucketArn] }));
    Validations.of(agentFn.fn.role!).acknowledge({
      id: `AwsSolutions-IAM5[Resource::${imported}/${BUCKET_PREFIXES.images}*]`,
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

    // Authentication is the surface's (one invocation per request, and 401s in each upstream
    // client's error format, which an API Gateway authorizer cannot give): no route has an
    // authorizer. An authorizer with a token identity source and a result cache would spare
    // the second invocation only on a cache hit, answer a missing header with its own 401 body,
    // miss `Authorization: Basic` (Commissaire), and keep a revoked token for the cache's TTL.
    const none = new HttpNoneAuthorizer();
    for (const r of routes) {
      const [route] = this.api.addRoutes({
        path: r.path,
        methods: [HttpMethod[r.method]],
        integration: integrations.get(r.fn)!,
        authorizer: none,
      });
      Validations.of(route!).acknowledge({
        id: 'AwsSolutions-APIG4',
        reason:
          r.auth === 'none'
            ? `${r.method} ${r.path} is anonymous by design in infra/routes.ts (auth: 'none').`
            : `${r.method} ${r.path} is authenticated by its surface function (X-Auth-Token, Bearer or Basic resolved in layers/http/credentials.ts; 401 without one).`,
      });
    }

    const accessLogs = new LogGroup(this, 'AccessLogs', { retention: RetentionDays.THREE_MONTHS });
    const options = deploymentOptions(this);
    this.stage = new HttpStage(this, 'DefaultStage', {
      httpApi: this.api,
      stageName: '$default',
      autoDeploy: true,
      // Every route's default: a runaway client gets 429s here instead of spending the Lambda
      // concurrency the workflows and the agents need (`slipway:apiRateLimit`, `slipway:apiBurstLimit`).
      throttle: options.apiThrottle,
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
          }),
        ),
      },
    });

    // The API's own domain (`slipway:domainName` + `slipway:certificateArn`, an ACM certificate of
    // this region): a regional endpoint the operator's DNS points at (the DomainTarget output).
    if (options.domain) {
      this.domain = new DomainName(this, 'Domain', {
        domainName: options.domain.name,
        certificate: Certificate.fromCertificateArn(this, 'Certificate', options.domain.certificateArn),
        endpointType: EndpointType.REGIONAL,
      });
      const mapping = new ApiMapping(this, 'DomainMapping', { api: this.api, domainName: this.domain, stage: this.stage });
      // The mapping names the stage (`$default`) rather than referencing it: it must wait for it.
      mapping.node.addDependency(this.stage);
      new CfnOutput(this, 'DomainTarget', { value: this.domain.regionalDomainName, description: `CNAME (or alias) ${options.domain.name} to this` });
    }
    /** What clients and nodes are told to use: the own domain when there is one. */
    this.url = options.domain ? `https://${options.domain.name}/` : this.stage.url;
    this.reportUrl = `${this.url}api/v1.0/bootactions/`;
    // The boot actions name the report URL in what they serve (bootdata, the admin view), as the Drydock steps do.
    if (!deploymentSettings(this).SLIPWAY_DRYDOCK_REPORT_URL) surfaces.get('bootactions')!.fn.addEnvironment('SLIPWAY_DRYDOCK_REPORT_URL', this.reportUrl);

    const alarms = new Alarms(this, 'Alarms', props.alarmTopic).set;
    for (const fn of surfaces.values()) alarms.fn(fn);
    // A surface answers an unexpected error as a 500 itself (no Lambda error): the API's 5xx count is where those show.
    alarms.alarm('Api5xx', 'the API answered 5 or more 5xx responses in 5 minutes', this.api.metricServerError({ period: Duration.minutes(5), statistic: 'Sum' }), 5);

    new CfnOutput(this, 'ApiUrl', { value: this.url, description: 'Slipway API base URL' });
  }
}
