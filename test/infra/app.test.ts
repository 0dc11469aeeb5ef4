import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type CfnElement, Stack, Validations } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { Bucket } from 'aws-cdk-lib/aws-s3';
import { Queue } from 'aws-cdk-lib/aws-sqs';
import aslValidator from 'asl-validator';
import type { IConstruct } from 'constructs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TABLE_INDEXES, TABLE_KEYS, TTL_ATTRIBUTE } from '#aws/dynamo/schema.ts';
import { configFromEnv } from '#core/config.ts';
import { buildApp, type SlipwayApp } from '../../infra/app.ts';
import { BUCKET_PREFIXES } from '../../infra/constructs/access.ts';
import { REPO_ROOT, type SlipwayFunction } from '../../infra/constructs/slipway-function.ts';
import { functionNames, routes } from '../../infra/routes.ts';
import { STALE_EVENT_MS } from '../../functions/workflows/sweeper.ts';
import { BOOTDATA_READERS, CLUSTER_OPERATION_STARTERS, DRYDOCK_TASK_STARTERS, LEASE_WRITERS, NODE_NOTIFIERS, TASK_TOKEN_ANSWERERS } from '../../infra/stacks/api-stack.ts';
import { DRYDOCK_PREPARE_OBJECTS, DRYDOCK_TASKS_OBJECTS, drydockTasksStateMachineArn } from '../../infra/stacks/drydock-stack.ts';
import { LEASE_EVENTS_SCHEDULE_GROUP } from '../../infra/stacks/lifecycle-stack.ts';
import { BOOTDATA_EXPIRY_DAYS, EVENT_BUS_NAME } from '../../infra/stacks/stateful-stack.ts';
import {
  FAKE_ENV,
  fakeArnOf,
  LOCAL_DRYDOCK_PREPARE_FUNCTION_ARN,
  LOCAL_LEASE_EVENTS_FUNCTION_ARN,
  resolveIntrinsics,
  synthClusterOperationsAsl,
  synthDrydockTasksAsl,
  synthLeaseEventsAsl,
} from '../../infra/workflows/asl.ts';
import {
  CLUSTER_OP_TASKS,
  CLUSTER_OPERATIONS_STATE_MACHINE_NAME,
  CLUSTER_OPERATIONS_TIMEOUT,
  HOST_ACTION_HEARTBEAT_SECONDS,
  HOST_ACTION_TIMEOUT_SECONDS,
} from '../../infra/workflows/cluster-operations.ts';
import {
  DRYDOCK_TASK_STATES,
  DRYDOCK_TASKS_STATE_MACHINE_NAME,
  DRYDOCK_TASKS_TIMEOUT,
  NODE_JOB_HEARTBEAT_SECONDS,
} from '../../infra/workflows/drydock-tasks.ts';
import { LEASE_EVENT_TASKS, LEASE_EVENT_WAIT, LEASE_EVENTS_STATE_MACHINE_NAME } from '../../infra/workflows/lease-events.ts';

type Resources = Record<string, { Type: string; Properties: Record<string, unknown>; DeletionPolicy?: string; UpdateReplacePolicy?: string }>;

const outdirs: string[] = [];
/** An app with esbuild skipped and its own temporary cloud assembly directory (and more CDK context, if given). */
function build(context: Record<string, unknown> = {}): SlipwayApp {
  const outdir = mkdtempSync(join(tmpdir(), 'slipway-cdk-'));
  outdirs.push(outdir);
  return buildApp({ outdir, context: { 'aws:cdk:bundling-stacks': [], ...context } });
}
afterAll(() => {
  for (const d of outdirs) rmSync(d, { recursive: true, force: true });
});

/** The logical id of an L2 construct's CloudFormation resource. */
const idOf = (stack: Stack, c: IConstruct) => stack.getLogicalId(c.node.defaultChild as CfnElement);

const templates = new WeakMap<Stack, Resources>();
/** A stack's resources, synthesized once. */
function resourcesOf(stack: Stack): Resources {
  if (!templates.has(stack)) templates.set(stack, Template.fromStack(stack).toJSON().Resources as Resources);
  return templates.get(stack)!;
}

type Statement = { Action: string | string[]; Resource: unknown; Condition?: unknown };
/** The statements of a policy construct (a role's `DefaultPolicy`). */
function statementsOf(stack: Stack, policy: IConstruct): Statement[] {
  const res = resourcesOf(stack)[stack.getLogicalId(policy.node.defaultChild as CfnElement)]!;
  return (res.Properties.PolicyDocument as { Statement: Statement[] }).Statement;
}
const fnStatements = (stack: Stack, f: SlipwayFunction) => statementsOf(stack, f.role.node.findChild('DefaultPolicy'));
/** Statements granting actions with the given prefix, as `{ actions, resource }`. */
const grantsOf = (statements: Statement[], prefix: string) =>
  statements.filter((st) => [st.Action].flat().some((a) => a.startsWith(prefix))).map((st) => ({ actions: [st.Action].flat(), resource: st.Resource }));
const envOf = (stack: Stack, f: SlipwayFunction) =>
  (resourcesOf(stack)[idOf(stack, f.fn)]!.Properties.Environment as { Variables: Record<string, unknown> }).Variables;

/** `arn:<partition>:<service>:<region>:<account>:<rest>` as CDK's formatArn renders it in an environment-agnostic stack. */
const formattedArn = (service: string, rest: string) => ({
  'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, `:${service}:`, { Ref: 'AWS::Region' }, ':', { Ref: 'AWS::AccountId' }, `:${rest}`]],
});

/** Every state of an ASL definition, those inside Map item processors and Parallel branches included. */
function allStates(asl: Record<string, unknown>): Record<string, { Type: string; [k: string]: unknown }> {
  const out: Record<string, { Type: string }> = {};
  const visit = (def: { States?: Record<string, Record<string, unknown>> }) => {
    for (const [name, state] of Object.entries(def.States ?? {})) {
      out[name] = state as { Type: string };
      if (state.ItemProcessor) visit(state.ItemProcessor as never);
      if (state.Iterator) visit(state.Iterator as never);
      for (const b of (state.Branches as never[] | undefined) ?? []) visit(b);
    }
  };
  visit(asl as never);
  return out as never;
}

/** A deployed state machine's definition: its DefinitionString with the intrinsics resolved. */
function deployedAslOf(stack: Stack, sm: IConstruct): Record<string, unknown> {
  const res = resourcesOf(stack)[idOf(stack, sm)]!;
  return JSON.parse(resolveIntrinsics(res.Properties.DefinitionString)) as Record<string, unknown>;
}

/** An ASL definition with one function ARN replaced by a placeholder, to compare definitions that differ only there. */
const withoutFunctionArn = (asl: unknown, fnArn: string, placeholder = '<task function>') =>
  JSON.parse(JSON.stringify(asl, (_k, v: unknown) => (v === fnArn ? placeholder : v))) as unknown;

/** The ARN `synthAsl` gives a workflow's task function in the local definition (named after the state machine). */
const localFunctionArn = (stateMachineName: string) =>
  `arn:${FAKE_ENV.partition}:lambda:${FAKE_ENV.region}:${FAKE_ENV.account}:function:${stateMachineName}`;

describe('CDK app', () => {
  let built: SlipwayApp;
  let api: Template;
  let stateful: Template;
  let lifecycle: Template;
  let commissaire: Template;
  let drydock: Template;

  beforeAll(() => {
    built = build();
    api = Template.fromStack(built.api);
    stateful = Template.fromStack(built.stateful);
    lifecycle = Template.fromStack(built.lifecycle);
    commissaire = Template.fromStack(built.commissaire);
    drydock = Template.fromStack(built.drydock);
  });

  describe('cdk-nag (AwsSolutions and Serverless)', () => {
    it('synthesizes with no unacknowledged finding', () => {
      expect(() => built.app.synth()).not.toThrow();
    });

    it('fails synth on a finding nobody acknowledged, of either pack, so the checks are live', () => {
      const probe = build();
      const stack = new Stack(probe.app, 'Probe');
      new Bucket(stack, 'Naked');
      new Queue(stack, 'NoRedrive', { enforceSSL: true });
      let report = '';
      try {
        probe.app.synth();
      } catch {
        report = readFileSync(join(probe.app.outdir, 'validation-report.json'), 'utf8');
      }
      expect(report).toMatch(/AwsSolutions-S10/);
      expect(report).toMatch(/Serverless-SQSRedrivePolicy/);
    });

    it('acknowledges only the expected findings, each on the construct it concerns', () => {
      const acks: Record<string, string[]> = {};
      for (const c of built.app.node.findAll()) {
        for (const m of c.node.metadata) {
          if (m.type !== Validations.ACKNOWLEDGED_RULES_METADATA_KEY) continue;
          for (const [id, reason] of Object.entries(m.data as Record<string, string>)) {
            expect(reason.length, `reason for ${id} on ${c.node.path}`).toBeGreaterThan(30);
            (acks[c.node.path] ??= []).push(id.replace(/^Annotation::/, ''));
          }
        }
      }
      const xray = ['AwsSolutions-IAM5[Resource::*]'];
      // Every function: invoked synchronously only, or (the sweeper) with an on-failure destination instead.
      const dlq = ['Serverless-LambdaDLQ'];
      // CDK names a route `<METHOD><path with each / as -->`. Every route is acknowledged: anonymous, or authenticated by its surface.
      const routePaths = routes.map((r) => `SlipwayApi/Api/${r.method}${r.path.replaceAll('/', '--')}`);
      const leaseEventsFnId = idOf(built.lifecycle, built.lifecycle.leaseEventsFunction.fn);
      const callbacks = 'AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:stateMachine:slipway-*]';
      // The bootdata bucket's objects, named by the stateful stack's export of its ARN.
      const bootdataExport = (
        grantsOf(fnStatements(built.api, built.api.surfaces.get('bootactions')!), 's3:')[0]!.resource as { 'Fn::Join': [string, [{ 'Fn::ImportValue': string }, string]] }
      )['Fn::Join'][1][0]['Fn::ImportValue'];
      const clusterOperationsFnId = idOf(built.commissaire, built.commissaire.clusterOperationsFunction.fn);
      const drydockTasksFnId = idOf(built.drydock, built.drydock.drydockTasksFunction.fn);
      const drydockPrepareFnId = idOf(built.drydock, built.drydock.drydockPrepareFunction.fn);
      const objects = (prefix: string) => `AwsSolutions-IAM5[Resource::${bootdataExport}/${prefix}*]`;
      // Acknowledgements inside the Distributed Map states' own policies belong to the workflow
      // definitions (test/infra/limits.test.ts); everything else is listed here.
      for (const path of Object.keys(acks)) if (path.includes('/DistributedMap')) delete acks[path];
      expect(acks).toEqual({
        'SlipwayStateful/AccessLogs': ['AwsSolutions-S1'],
        // Alarm text only; CloudWatch cannot publish to an SNS topic under the AWS-managed key.
        'SlipwayStateful/AlarmTopic': ['AwsSolutions-SNS2'],
        ...Object.fromEntries(functionNames.map((n) => [`SlipwayApi/${n[0]!.toUpperCase()}${n.slice(1)}Fn/Role`, xray])),
        ...Object.fromEntries(functionNames.map((n) => [`SlipwayApi/${n[0]!.toUpperCase()}${n.slice(1)}Fn/Fn`, dlq])),
        // The agent answers Step Functions task tokens of the slipway-* workflows, and presigns
        // the OS images under images/.
        'SlipwayApi/AgentFn/Role': [...xray, callbacks, objects(BUCKET_PREFIXES.images)],
        // Boot-action reports answer the deploy step's token; rendered bootdata is read from (and presigned for) bootdata/.
        'SlipwayApi/BootactionsFn/Role': [...xray, callbacks, objects(BUCKET_PREFIXES.bootdata)],
        // Drydock reads s3:// designs kept under designs/, and designs its agents uploaded under fetched/.
        'SlipwayApi/DrydockFn/Role': [...xray, objects(BUCKET_PREFIXES.designs), objects(BUCKET_PREFIXES.fetched)],
        // Lease writers manage one schedule per lease event in the lease-event group.
        'SlipwayApi/BlazarFn/Role': [...xray, `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:scheduler:<AWS::Region>:<AWS::AccountId>:schedule/${LEASE_EVENTS_SCHEDULE_GROUP}/*]`],
        ...Object.fromEntries(routePaths.map((p) => [p, ['AwsSolutions-APIG4']])),
        'SlipwayLeaseLifecycle/LeaseEventsFn/Role': xray,
        'SlipwayLeaseLifecycle/LeaseEventsFn/Fn': dlq,
        'SlipwayLeaseLifecycle/SweeperFn/Role': xray,
        'SlipwayLeaseLifecycle/SweeperFn/Fn': dlq,
        // A dead-letter queue has no queue behind it.
        'SlipwayLeaseLifecycle/DeadLetters': ['AwsSolutions-SQS3', 'Serverless-SQSRedrivePolicy'],
        // Step Functions logging and tracing (no resource-level permissions), and CDK's invoke grant on the task function's versions.
        'SlipwayLeaseLifecycle/LeaseEvents/Role/DefaultPolicy': ['AwsSolutions-IAM5[Resource::*]', `AwsSolutions-IAM5[Resource::<${leaseEventsFnId}.Arn>:*]`],
        'SlipwayCommissaire/ClusterOperationsFn/Role': xray,
        'SlipwayCommissaire/ClusterOperationsFn/Fn': dlq,
        // The same two for the cluster-operation workflow.
        'SlipwayCommissaire/ClusterOperations/Role/DefaultPolicy': ['AwsSolutions-IAM5[Resource::*]', `AwsSolutions-IAM5[Resource::<${clusterOperationsFnId}.Arn>:*]`],
        // Drydock's task steps read design snapshots, write tarballs, and answer their own report waits.
        'SlipwayDrydock/DrydockTasksFn/Role': [...xray, objects(BUCKET_PREFIXES.taskSnapshots), objects(BUCKET_PREFIXES.bootdata), objects(BUCKET_PREFIXES.fetched), callbacks],
        'SlipwayDrydock/DrydockTasksFn/Fn': dlq,
        // Its Prepare reads s3:// designs and writes the snapshots.
        'SlipwayDrydock/DrydockPrepareFn/Role': [...xray, objects(BUCKET_PREFIXES.designs), objects(BUCKET_PREFIXES.taskSnapshots), objects(BUCKET_PREFIXES.fetched)],
        'SlipwayDrydock/DrydockPrepareFn/Fn': dlq,
        // The same two as the other workflows, for the Drydock task workflow (which invokes two functions).
        'SlipwayDrydock/DrydockTasks/Role/DefaultPolicy': [
          'AwsSolutions-IAM5[Resource::*]',
          `AwsSolutions-IAM5[Resource::<${drydockPrepareFnId}.Arn>:*]`,
          `AwsSolutions-IAM5[Resource::<${drydockTasksFnId}.Arn>:*]`,
        ],
      });
    });
  });

  describe('API routes', () => {
    it('has exactly one route per routes.ts entry', () => {
      api.resourceCountIs('AWS::ApiGatewayV2::Route', routes.length);
      const keys = Object.values(api.findResources('AWS::ApiGatewayV2::Route')).map((r) => r.Properties.RouteKey as string);
      expect(keys.sort()).toEqual(routes.map((r) => `${r.method} ${r.path}`).sort());
    });

    it.each(routes.map((r) => [`${r.method} ${r.path}`, r] as const))('%s goes to its surface function, which authenticates it', (key, r) => {
      const fnLogicalId = idOf(built.api, built.api.surfaces.get(r.fn)!.fn);
      const integrations = api.findResources('AWS::ApiGatewayV2::Integration', {
        Properties: { IntegrationUri: { 'Fn::GetAtt': [fnLogicalId, 'Arn'] } },
      });
      expect(Object.keys(integrations)).toHaveLength(1);
      const target = { 'Fn::Join': ['', ['integrations/', { Ref: Object.keys(integrations)[0] }]] };
      api.hasResourceProperties('AWS::ApiGatewayV2::Route', {
        RouteKey: key,
        Target: target,
        // No API Gateway authorizer: one invocation per request, the surface resolves the credentials.
        AuthorizationType: 'NONE',
        AuthorizerId: Match.absent(),
      });
      api.resourceCountIs('AWS::ApiGatewayV2::Authorizer', 0);
    });

    it('logs access on the $default stage and outputs the API URL', () => {
      api.hasResourceProperties('AWS::ApiGatewayV2::Stage', {
        StageName: '$default',
        AutoDeploy: true,
        AccessLogSettings: { DestinationArn: Match.anyValue(), Format: Match.stringLikeRegexp('\\$context\\.requestId') },
      });
      api.hasOutput('ApiUrl', {});
    });
  });

  describe('functions', () => {
    it('sets the deployment settings given as CDK context on every function, and refuses secrets and other names', () => {
      const outdir = mkdtempSync(join(tmpdir(), 'slipway-cdk-'));
      outdirs.push(outdir);
      const settings = { SLIPWAY_CLEANING_MINUTES: '15', SLIPWAY_COMMISSAIRE_SITE: 'dc1' };
      const app = buildApp({ outdir, context: { 'aws:cdk:bundling-stacks': [], 'slipway:settings': JSON.stringify(settings) } });
      const fns = [app.api, app.stateful, app.lifecycle, app.commissaire, app.drydock].flatMap((st) => Object.values(Template.fromStack(st).findResources('AWS::Lambda::Function')));
      expect(fns.length).toBeGreaterThan(5);
      for (const f of fns) expect(f.Properties).toMatchObject({ Environment: { Variables: settings } });
      const bad = (ctx: unknown) => () => buildApp({ outdir, context: { 'aws:cdk:bundling-stacks': [], 'slipway:settings': ctx } });
      expect(bad({ PATH: '/tmp' })).toThrow(/not a SLIPWAY_\* setting/);
      expect(bad({ SLIPWAY_SECRET_KEY: 'x' })).toThrow(/is a secret/);
    });

    it('runs every Lambda of every stack on nodejs24.x, arm64, with X-Ray, named as a service for its metrics', () => {
      const fns = [built.api, built.stateful, built.lifecycle, built.commissaire, built.drydock].flatMap((s) =>
        Object.values(Template.fromStack(s).findResources('AWS::Lambda::Function')),
      );
      // The surfaces, the lease-event steps, the sweeper, the cluster-operation steps, Drydock's Prepare and task steps.
      expect(fns).toHaveLength(functionNames.length + 5);
      for (const f of fns) {
        expect(f.Properties).toMatchObject({
          Runtime: 'nodejs24.x',
          Architectures: ['arm64'],
          Handler: 'index.handler',
          TracingConfig: { Mode: 'Active' },
          Environment: { Variables: { POWERTOOLS_SERVICE_NAME: expect.stringMatching(/^[a-z-]+$/) } },
          LoggingConfig: { LogGroup: { Ref: expect.any(String) } },
        });
      }
    });

    it('keeps API functions within API Gateway\'s 29 s, workflow functions within a minute, Drydock\'s (rendering) within two', () => {
      for (const f of Object.values(api.findResources('AWS::Lambda::Function'))) expect(f.Properties.Timeout).toBeLessThan(30);
      for (const t of [lifecycle, commissaire]) {
        for (const f of Object.values(t.findResources('AWS::Lambda::Function'))) expect(f.Properties.Timeout).toBe(60);
      }
      const drydockFns = Object.values(drydock.findResources('AWS::Lambda::Function'));
      expect(drydockFns).toHaveLength(2);
      for (const f of drydockFns) expect(f.Properties).toMatchObject({ Timeout: 120, MemorySize: 512 });
    });

    it('gives each function its own role with no managed policies', () => {
      for (const role of [api, lifecycle, commissaire, drydock].flatMap((t) => Object.values(t.findResources('AWS::IAM::Role')))) {
        expect(role.Properties.ManagedPolicyArns).toBeUndefined();
      }
    });

    // Table and secrets-key grants per function: test/infra/least-privilege.test.ts.

    it('lets only the bootdata readers read (and presign) objects, s3:GetObject under their prefix, named by BOOTDATA_BUCKET', () => {
      // The boot actions serve rendered tarballs; Drydock reads s3:// designs (POST /validatedesign).
      expect(BOOTDATA_READERS).toEqual({ bootactions: 'bootdata/', drydock: 'designs/' });
      const bucketArn = { 'Fn::ImportValue': expect.stringMatching(/^SlipwayStateful:.*Bootdata.*Arn/) };
      for (const name of functionNames) {
        const f = built.api.surfaces.get(name)!;
        const s3 = grantsOf(fnStatements(built.api, f), 's3:');
        const env = envOf(built.api, f);
        if (name === 'agent') {
          // OS images for the agents: objects under images/ only, and the listing that makes a
          // missing one a 404.
          expect(s3, name).toEqual([
            { actions: ['s3:GetObject'], resource: { 'Fn::Join': ['', [bucketArn, '/images/*']] } },
            { actions: ['s3:ListBucket'], resource: bucketArn },
          ]);
          expect(env.BOOTDATA_BUCKET, name).toEqual({ 'Fn::ImportValue': expect.stringMatching(/^SlipwayStateful:.*Bootdata/) });
          continue;
        }
        const prefix = BOOTDATA_READERS[name];
        if (!prefix) {
          expect(s3, name).toEqual([]);
          expect(env.BOOTDATA_BUCKET, name).toBeUndefined();
          continue;
        }
        expect(s3, name).toEqual([
          { actions: ['s3:GetObject'], resource: { 'Fn::Join': ['', [bucketArn, `/${prefix}*`]] } },
          // Drydock: a design a site's agent fetched and uploaded is read back and deleted (agent/fetch.ts).
          ...(name === 'drydock' ? [{ actions: ['s3:PutObject', 's3:GetObject', 's3:DeleteObject'], resource: { 'Fn::Join': ['', [bucketArn, '/fetched/*']] } }] : []),
        ]);
        expect(env.BOOTDATA_BUCKET, name).toEqual({ 'Fn::ImportValue': expect.stringMatching(/^SlipwayStateful:.*Bootdata/) });
      }
    });

    it('lets exactly the task-token answerers answer tokens, the boot actions with success only', () => {
      const arn = formattedArn('states', 'stateMachine:slipway-*');
      for (const name of functionNames) {
        const want = TASK_TOKEN_ANSWERERS[name];
        expect(grantsOf(fnStatements(built.api, built.api.surfaces.get(name)!), 'states:SendTask'), name).toEqual(want ? [{ actions: [...want], resource: arn }] : []);
      }
      expect(TASK_TOKEN_ANSWERERS.bootactions).toEqual(['states:SendTaskSuccess']);
    });
  });

  describe('lease lifecycle', () => {
    const smArn = formattedArn('states', `stateMachine:${LEASE_EVENTS_STATE_MACHINE_NAME}`);
    const smRef = () => ({ Ref: idOf(built.lifecycle, built.lifecycle.stateMachine) });
    const busArn = { 'Fn::ImportValue': expect.stringMatching(/^SlipwayStateful:.*EventBus.*Arn/) };
    const busName = { 'Fn::ImportValue': expect.stringMatching(/^SlipwayStateful:.*EventBus/) };
    const schedulerRoleArn = { 'Fn::ImportValue': expect.stringMatching(/^SlipwayLeaseLifecycle:.*SchedulerRole.*Arn/) };

    it('runs the lease-event workflow as a Standard state machine with its fixed name, tracing and logs without data', () => {
      lifecycle.resourceCountIs('AWS::StepFunctions::StateMachine', 1);
      lifecycle.hasResourceProperties('AWS::StepFunctions::StateMachine', {
        StateMachineName: LEASE_EVENTS_STATE_MACHINE_NAME,
        StateMachineType: 'STANDARD',
        TracingConfiguration: { Enabled: true },
        LoggingConfiguration: {
          Level: 'ALL',
          IncludeExecutionData: false,
          Destinations: [{ CloudWatchLogsLogGroup: { LogGroupArn: { 'Fn::GetAtt': [Match.stringLikeRegexp('^LeaseEventsLogs'), 'Arn'] } } }],
        },
      });
    });

    it('invokes only the lease-events function from the workflow', () => {
      const fnId = idOf(built.lifecycle, built.lifecycle.leaseEventsFunction.fn);
      const statements = statementsOf(built.lifecycle, built.lifecycle.stateMachine.role.node.findChild('DefaultPolicy'));
      expect(grantsOf(statements, 'lambda:')).toEqual([
        { actions: ['lambda:InvokeFunction'], resource: [{ 'Fn::GetAtt': [fnId, 'Arn'] }, { 'Fn::Join': ['', [{ 'Fn::GetAtt': [fnId, 'Arn'] }, ':*']] }] },
      ]);
    });

    it('sweeps every minute: an EventBridge rule on the sweeper, which may start executions of the workflow', () => {
      const sweeperId = idOf(built.lifecycle, built.lifecycle.sweeperFunction.fn);
      lifecycle.resourceCountIs('AWS::Events::Rule', 1);
      lifecycle.hasResourceProperties('AWS::Events::Rule', {
        ScheduleExpression: 'rate(1 minute)',
        State: 'ENABLED',
        Targets: [Match.objectLike({ Arn: { 'Fn::GetAtt': [sweeperId, 'Arn'] } })],
      });
      const statements = fnStatements(built.lifecycle, built.lifecycle.sweeperFunction);
      expect(grantsOf(statements, 'states:')).toEqual([{ actions: ['states:StartExecution'], resource: smRef() }]);
      expect(grantsOf(statements, 'scheduler:')).toEqual([]);
      // lease.heal, for the leases it heals after a failed erase (leases/heal-sweep.ts).
      expect(grantsOf(statements, 'events:')).toEqual([{ actions: ['events:PutEvents'], resource: busArn }]);
      expect(envOf(built.lifecycle, built.lifecycle.sweeperFunction)).toMatchObject({ LEASE_EVENTS_STATE_MACHINE_ARN: smRef(), EVENT_BUS_NAME: busName });
    });

    it('lets the workflow steps publish lease notices on the bus, and nothing of the lifecycle besides', () => {
      const f = built.lifecycle.leaseEventsFunction;
      const statements = fnStatements(built.lifecycle, f);
      expect(grantsOf(statements, 'events:')).toEqual([{ actions: ['events:PutEvents'], resource: busArn }]);
      for (const prefix of ['states:', 'scheduler:', 'iam:']) expect(grantsOf(statements, prefix), prefix).toEqual([]);
      expect(envOf(built.lifecycle, f).EVENT_BUS_NAME).toEqual(busName);
    });

    it('holds the triggers in a fixed schedule group that the scheduler role serves, starting the workflow only', () => {
      lifecycle.resourceCountIs('AWS::Scheduler::ScheduleGroup', 1);
      lifecycle.hasResourceProperties('AWS::Scheduler::ScheduleGroup', { Name: LEASE_EVENTS_SCHEDULE_GROUP });
      const groupId = idOf(built.lifecycle, built.lifecycle.scheduleGroup);
      const role = resourcesOf(built.lifecycle)[idOf(built.lifecycle, built.lifecycle.schedulerRole)]!;
      expect(role.Properties.AssumeRolePolicyDocument).toEqual({
        Version: '2012-10-17',
        Statement: [
          {
            Action: 'sts:AssumeRole',
            Effect: 'Allow',
            Principal: { Service: 'scheduler.amazonaws.com' },
            Condition: { StringEquals: { 'aws:SourceAccount': { Ref: 'AWS::AccountId' }, 'aws:SourceArn': { 'Fn::GetAtt': [groupId, 'Arn'] } } },
          },
        ],
      });
      expect(statementsOf(built.lifecycle, built.lifecycle.schedulerRole.node.findChild('DefaultPolicy'))).toEqual([
        { Action: 'states:StartExecution', Effect: 'Allow', Resource: smRef() },
        // A trigger Scheduler gives up goes to the lifecycle's dead letters (the schedules' DeadLetterConfig).
        { Action: 'sqs:SendMessage', Effect: 'Allow', Resource: { 'Fn::GetAtt': [idOf(built.lifecycle, built.lifecycle.deadLetters), 'Arn'] } },
      ]);
    });

    it('lets exactly the lease writers set triggers, start due events and publish notices, configured by environment', () => {
      for (const name of functionNames) {
        const f = built.api.surfaces.get(name)!;
        const statements = fnStatements(built.api, f);
        const env = envOf(built.api, f);
        if (!LEASE_WRITERS.includes(name)) {
          for (const prefix of ['scheduler:', 'iam:']) expect(grantsOf(statements, prefix), `${name} ${prefix}`).toEqual([]);
          // Other workflows' starts are checked with Commissaire below.
          expect(grantsOf(statements, 'states:StartExecution').filter((g) => JSON.stringify(g.resource) === JSON.stringify(smArn)), name).toEqual([]);
          for (const v of ['SCHEDULER_GROUP', 'SCHEDULER_ROLE_ARN', 'LEASE_EVENTS_STATE_MACHINE_ARN']) expect(env[v], `${name} ${v}`).toBeUndefined();
          // Node notifications (deploy and erase outcomes) come from where agent results arrive.
          if (NODE_NOTIFIERS.includes(name)) {
            expect(grantsOf(statements, 'events:'), name).toEqual([{ actions: ['events:PutEvents'], resource: busArn }]);
            expect(env.EVENT_BUS_NAME, name).toEqual(busName);
          } else {
            expect(grantsOf(statements, 'events:'), name).toEqual([]);
            expect(env.EVENT_BUS_NAME, name).toBeUndefined();
          }
          continue;
        }
        expect(grantsOf(statements, 'scheduler:'), name).toEqual([
          {
            actions: ['scheduler:CreateSchedule', 'scheduler:UpdateSchedule', 'scheduler:DeleteSchedule'],
            resource: formattedArn('scheduler', `schedule/${LEASE_EVENTS_SCHEDULE_GROUP}/*`),
          },
        ]);
        expect(statements.filter((st) => st.Action === 'iam:PassRole'), name).toEqual([
          { Action: 'iam:PassRole', Effect: 'Allow', Resource: schedulerRoleArn, Condition: { StringEquals: { 'iam:PassedToService': 'scheduler.amazonaws.com' } } },
        ]);
        expect(grantsOf(statements, 'states:StartExecution'), name).toEqual([{ actions: ['states:StartExecution'], resource: smArn }]);
        expect(grantsOf(statements, 'events:'), name).toEqual([{ actions: ['events:PutEvents'], resource: busArn }]);
        expect(env, name).toMatchObject({
          SCHEDULER_GROUP: LEASE_EVENTS_SCHEDULE_GROUP,
          SCHEDULER_ROLE_ARN: schedulerRoleArn,
          SCHEDULER_DLQ_ARN: { 'Fn::ImportValue': expect.stringMatching(/^SlipwayLeaseLifecycle:.*DeadLetters.*Arn/) },
          LEASE_EVENTS_STATE_MACHINE_ARN: smArn,
          EVENT_BUS_NAME: busName,
        });
      }
    });

    it('counts as lease writers exactly the surfaces that import a lease-writing use-case', () => {
      const writers = functionNames.filter((name) => {
        const src = readFileSync(join(REPO_ROOT, `functions/api/${name}.ts`), 'utf8');
        const imports = [...src.matchAll(/import\s*\{([^}]*)\}\s*from\s*'#core\/leases\/service\.ts'/g)].flatMap((m) => m[1]!.split(',').map((x) => x.trim()));
        return imports.some((i) => ['createLease', 'updateLease', 'deleteLease'].includes(i));
      });
      expect([...LEASE_WRITERS].sort()).toEqual(writers.sort());
    });

    it('deploys after the stateful stack and before the API stack', () => {
      expect(built.lifecycle.dependencies.map((s) => s.stackName)).toEqual([built.stateful.stackName]);
      expect(built.api.dependencies.map((s) => s.stackName)).toContain(built.lifecycle.stackName);
    });
  });

  describe('Commissaire cluster operations', () => {
    const smArn = formattedArn('states', `stateMachine:${CLUSTER_OPERATIONS_STATE_MACHINE_NAME}`);
    const leaseSmArn = formattedArn('states', `stateMachine:${LEASE_EVENTS_STATE_MACHINE_NAME}`);
    const drydockSmArn = formattedArn('states', `stateMachine:${DRYDOCK_TASKS_STATE_MACHINE_NAME}`);

    it('runs the cluster-operation workflow as a Standard state machine with its fixed name, tracing and logs without data', () => {
      commissaire.resourceCountIs('AWS::StepFunctions::StateMachine', 1);
      commissaire.hasResourceProperties('AWS::StepFunctions::StateMachine', {
        StateMachineName: CLUSTER_OPERATIONS_STATE_MACHINE_NAME,
        StateMachineType: 'STANDARD',
        TracingConfiguration: { Enabled: true },
        LoggingConfiguration: {
          Level: 'ALL',
          IncludeExecutionData: false,
          Destinations: [{ CloudWatchLogsLogGroup: { LogGroupArn: { 'Fn::GetAtt': [Match.stringLikeRegexp('^ClusterOperationsLogs'), 'Arn'] } } }],
        },
      });
      // Both workflow log groups (the function's own and the state machine's) have a retention.
      for (const g of Object.values(commissaire.findResources('AWS::Logs::LogGroup'))) expect(g.Properties.RetentionInDays, JSON.stringify(g)).toBeGreaterThan(0);
      commissaire.hasResourceProperties('AWS::Logs::LogGroup', { RetentionInDays: 90 });
    });

    it('invokes only the cluster-operations function from the workflow', () => {
      const fnId = idOf(built.commissaire, built.commissaire.clusterOperationsFunction.fn);
      const statements = statementsOf(built.commissaire, built.commissaire.stateMachine.role.node.findChild('DefaultPolicy'));
      expect(grantsOf(statements, 'lambda:')).toEqual([
        { actions: ['lambda:InvokeFunction'], resource: [{ 'Fn::GetAtt': [fnId, 'Arn'] }, { 'Fn::Join': ['', [{ 'Fn::GetAtt': [fnId, 'Arn'] }, ':*']] }] },
      ]);
    });

    it('gives the task function the table (RW) and nothing else: no starts, callbacks, keys, schedules or notices; no optional settings', () => {
      const f = built.commissaire.clusterOperationsFunction;
      const actions = fnStatements(built.commissaire, f).flatMap((st) => [st.Action].flat());
      const services = [...new Set(actions.map((a) => a.split(':')[0]))].sort();
      // logs: its own log group; xray: tracing.
      expect(services).toEqual(['dynamodb', 'logs', 'xray']);
      const env = envOf(built.commissaire, f);
      expect(Object.keys(env).sort()).toEqual(['POWERTOOLS_SERVICE_NAME', 'TABLE_NAME']);
      for (const v of ['SLIPWAY_COMMISSAIRE_SITE', 'SLIPWAY_COMMISSAIRE_COMMANDS', 'CLUSTER_OPERATIONS_STATE_MACHINE_ARN']) expect(env[v], v).toBeUndefined();
      expect(resourcesOf(built.commissaire)[idOf(built.commissaire, f.fn)]!.Properties.Timeout).toBe(60);
    });

    it('lets exactly the cluster-operation starters start executions, by the fixed ARN, configured by environment', () => {
      expect(CLUSTER_OPERATION_STARTERS).toEqual(['commissaire']);
      for (const name of functionNames) {
        const f = built.api.surfaces.get(name)!;
        const starts = grantsOf(fnStatements(built.api, f), 'states:StartExecution');
        const env = envOf(built.api, f);
        const want = [
          ...(LEASE_WRITERS.includes(name) ? [{ actions: ['states:StartExecution'], resource: leaseSmArn }] : []),
          ...(CLUSTER_OPERATION_STARTERS.includes(name) ? [{ actions: ['states:StartExecution'], resource: smArn }] : []),
          // Drydock's starts are checked with the Drydock stack below.
          ...(DRYDOCK_TASK_STARTERS.includes(name) ? [{ actions: ['states:StartExecution'], resource: drydockSmArn }] : []),
        ];
        expect(starts, name).toEqual(want);
        if (CLUSTER_OPERATION_STARTERS.includes(name)) expect(env.CLUSTER_OPERATIONS_STATE_MACHINE_ARN, name).toEqual(smArn);
        else expect(env.CLUSTER_OPERATIONS_STATE_MACHINE_ARN, name).toBeUndefined();
      }
      for (const f of [built.lifecycle.leaseEventsFunction, built.lifecycle.sweeperFunction, built.drydock.drydockPrepareFunction, built.drydock.drydockTasksFunction]) {
        const stack = Stack.of(f);
        expect(grantsOf(fnStatements(stack, f), 'states:').filter((g) => JSON.stringify(g.resource) === JSON.stringify(smArn)), f.node.path).toEqual([]);
      }
    });

    it('counts as starters exactly the surfaces that import startOperation', () => {
      const starters = functionNames.filter((name) => {
        const src = readFileSync(join(REPO_ROOT, `functions/api/${name}.ts`), 'utf8');
        const imports = [...src.matchAll(/import\s*\{([^}]*)\}\s*from\s*'#core\/commissaire\/clusters\.ts'/g)].flatMap((m) => m[1]!.split(',').map((x) => x.trim()));
        return imports.includes('startOperation');
      });
      expect([...CLUSTER_OPERATION_STARTERS].sort()).toEqual(starters.sort());
    });

    it('lets the agent API answer the workflow\'s host-action callbacks (SendTask* on slipway-*)', () => {
      expect(CLUSTER_OPERATIONS_STATE_MACHINE_NAME).toMatch(/^slipway-/);
      const statements = fnStatements(built.api, built.api.surfaces.get('agent')!);
      expect(grantsOf(statements, 'states:SendTask')).toEqual([
        {
          actions: ['states:SendTaskSuccess', 'states:SendTaskFailure', 'states:SendTaskHeartbeat'],
          resource: formattedArn('states', 'stateMachine:slipway-*'),
        },
      ]);
    });

    it('deploys after the stateful stack and before the API stack, with no reference either way between workflow stacks', () => {
      expect(built.commissaire.dependencies.map((s) => s.stackName)).toEqual([built.stateful.stackName]);
      expect(built.api.dependencies.map((s) => s.stackName).sort()).toEqual([built.lifecycle.stackName, built.commissaire.stackName, built.stateful.stackName].sort());
      // The API names the workflow by its fixed name: nothing is exported from the Commissaire stack.
      expect(commissaire.toJSON().Outputs ?? {}).toEqual({});
    });
  });

  describe('Drydock tasks', () => {
    const smArn = formattedArn('states', `stateMachine:${DRYDOCK_TASKS_STATE_MACHINE_NAME}`);
    const keyRef = { 'Fn::ImportValue': expect.stringContaining('SecretsKey') };
    const bucketArn = { 'Fn::ImportValue': expect.stringMatching(/^SlipwayStateful:.*Bootdata.*Arn/) };
    const bucketName = { 'Fn::ImportValue': expect.stringMatching(/^SlipwayStateful:.*Bootdata/) };

    it('runs the task workflow as a Standard state machine with its fixed name, tracing and logs without data', () => {
      drydock.resourceCountIs('AWS::StepFunctions::StateMachine', 1);
      drydock.hasResourceProperties('AWS::StepFunctions::StateMachine', {
        StateMachineName: DRYDOCK_TASKS_STATE_MACHINE_NAME,
        StateMachineType: 'STANDARD',
        TracingConfiguration: { Enabled: true },
        LoggingConfiguration: {
          Level: 'ALL',
          IncludeExecutionData: false,
          Destinations: [{ CloudWatchLogsLogGroup: { LogGroupArn: { 'Fn::GetAtt': [Match.stringLikeRegexp('^DrydockTasksLogs'), 'Arn'] } } }],
        },
      });
      // The log groups (the two functions' own and the state machine's) have a retention.
      const groups = Object.values(drydock.findResources('AWS::Logs::LogGroup'));
      expect(groups).toHaveLength(3);
      for (const g of groups) expect(g.Properties.RetentionInDays, JSON.stringify(g)).toBeGreaterThan(0);
      drydock.hasResourceProperties('AWS::Logs::LogGroup', { RetentionInDays: 90 });
    });

    it('invokes only the Drydock functions from the workflow: Prepare\'s from Prepare, the task function from every other Task', () => {
      const fnIds = [built.drydock.drydockPrepareFunction, built.drydock.drydockTasksFunction].map((f) => idOf(built.drydock, f.fn));
      const statements = statementsOf(built.drydock, built.drydock.stateMachine.role.node.findChild('DefaultPolicy'));
      const invokable = (id: string) => [{ 'Fn::GetAtt': [id, 'Arn'] }, { 'Fn::Join': ['', [{ 'Fn::GetAtt': [id, 'Arn'] }, ':*']] }];
      const grants = grantsOf(statements, 'lambda:');
      expect(grants.flatMap((g) => g.actions).every((a) => a === 'lambda:InvokeFunction')).toBe(true);
      expect(grants.flatMap((g) => g.resource)).toEqual(fnIds.flatMap(invokable));
      // Which function each Task invokes: the deployed definition, read back.
      const [prepareArn, tasksArn] = fnIds.map(fakeArnOf);
      const invoked = Object.entries(allStates(deployedAslOf(built.drydock, built.drydock.stateMachine)))
        .filter(([, st]) => st.Type === 'Task')
        .map(([name, st]) => [name, (st.Parameters as { FunctionName?: string } | undefined)?.FunctionName ?? st.Resource]);
      expect(Object.fromEntries(invoked)).toEqual(
        Object.fromEntries(Object.values(DRYDOCK_TASK_STATES).map((name) => [name, name === DRYDOCK_TASK_STATES.prepare ? prepareArn : tasksArn])),
      );
    });

    it('gives the task function the table, its bucket prefixes (snapshots read, tarballs written), the secrets key and its own report callbacks, nothing else', () => {
      const f = built.drydock.drydockTasksFunction;
      const statements = fnStatements(built.drydock, f);
      const services = [...new Set(statements.flatMap((st) => [st.Action].flat()).map((a) => a.split(':')[0]))].sort();
      // logs: its own log group; xray: tracing. Table and key grants: least-privilege.test.ts.
      expect(services).toEqual(['dynamodb', 'kms', 'logs', 's3', 'states', 'xray']);
      // One prefix each: CDK renders a one-element Resource list as the element.
      const under = ([prefix]: readonly string[]) => ({ 'Fn::Join': ['', [bucketArn, `/${prefix}*`]] });
      expect(DRYDOCK_TASKS_OBJECTS).toEqual({ read: ['tasks/'], write: ['bootdata/'] });
      expect(grantsOf(statements, 's3:')).toEqual([
        { actions: ['s3:GetObject'], resource: under(DRYDOCK_TASKS_OBJECTS.read) },
        { actions: ['s3:PutObject'], resource: under(DRYDOCK_TASKS_OBJECTS.write) },
        // Asset locations a site's agent fetched and uploaded: read back and deleted (agent/fetch.ts).
        { actions: ['s3:PutObject', 's3:GetObject', 's3:DeleteObject'], resource: under(['fetched/']) },
      ]);
      // Success only, by name (a grant on its own workflow would be a cycle); no starts.
      expect(grantsOf(statements, 'states:')).toEqual([{ actions: ['states:SendTaskSuccess'], resource: formattedArn('states', 'stateMachine:slipway-*') }]);
      const env = envOf(built.drydock, f);
      expect(Object.keys(env).sort()).toEqual(['BOOTDATA_BUCKET', 'POWERTOOLS_SERVICE_NAME', 'SECRETS_KMS_KEY_ID', 'SLIPWAY_DRYDOCK_REPORT_URL', 'TABLE_NAME']);
      expect(env).toMatchObject({ BOOTDATA_BUCKET: bucketName, SECRETS_KMS_KEY_ID: keyRef, TABLE_NAME: { 'Fn::ImportValue': expect.stringContaining('SlipwayStateful') } });
    });

    it('gives Prepare\'s function the table and its bucket prefixes (s3:// designs read, snapshots written), nothing else: no key', () => {
      const f = built.drydock.drydockPrepareFunction;
      const statements = fnStatements(built.drydock, f);
      const services = [...new Set(statements.flatMap((st) => [st.Action].flat()).map((a) => a.split(':')[0]))].sort();
      // No callbacks, no starts, no secrets. Table grants: least-privilege.test.ts.
      expect(services).toEqual(['dynamodb', 'logs', 's3', 'xray']);
      const under = ([prefix]: readonly string[]) => ({ 'Fn::Join': ['', [bucketArn, `/${prefix}*`]] });
      expect(DRYDOCK_PREPARE_OBJECTS).toEqual({ read: ['designs/'], write: ['tasks/'] });
      expect(grantsOf(statements, 's3:')).toEqual([
        { actions: ['s3:GetObject'], resource: under(DRYDOCK_PREPARE_OBJECTS.read) },
        { actions: ['s3:PutObject'], resource: under(DRYDOCK_PREPARE_OBJECTS.write) },
        // Designs a site's agent fetched and uploaded: read back and deleted (agent/fetch.ts).
        { actions: ['s3:PutObject', 's3:GetObject', 's3:DeleteObject'], resource: under(['fetched/']) },
      ]);
      const env = envOf(built.drydock, f);
      expect(Object.keys(env).sort()).toEqual(['BOOTDATA_BUCKET', 'POWERTOOLS_SERVICE_NAME', 'TABLE_NAME']);
      expect(env).toMatchObject({ BOOTDATA_BUCKET: bucketName });
      expect(resourcesOf(built.drydock)[idOf(built.drydock, f.fn)]!.Properties.Timeout).toBe(120);
    });

    it('keeps its objects where the code puts them: snapshots under tasks/, tarballs under bootdata/, images under images/', () => {
      const src = (f: string) => readFileSync(join(REPO_ROOT, f), 'utf8');
      expect(src('layers/core/drydock/tasks/common.ts')).toMatch(/const snapshotKey = \(taskId: string\) => `tasks\/\$\{taskId\}\/design\.json`/);
      expect(src('layers/core/drydock/tasks/workflow.ts')).toMatch(/export const bootdataObject = \([^)]*\) => `bootdata\//);
      expect(src('layers/core/agent/images.ts')).toContain("export const IMAGE_PREFIX = 'images/';");
      expect(BUCKET_PREFIXES).toEqual({ bootdata: 'bootdata/', taskSnapshots: 'tasks/', designs: 'designs/', images: 'images/', fetched: 'fetched/' });
      expect(src('layers/core/agent/fetch.ts')).toContain("export const FETCHED_PREFIX = 'fetched/';");
    });

    it('lets exactly the task starters start executions, by the fixed ARN, configured by environment', () => {
      expect(DRYDOCK_TASK_STARTERS).toEqual(['drydock']);
      expect(built.api.resolve(drydockTasksStateMachineArn(built.api))).toEqual(smArn);
      for (const name of functionNames) {
        const f = built.api.surfaces.get(name)!;
        const starts = grantsOf(fnStatements(built.api, f), 'states:StartExecution').filter((g) => JSON.stringify(g.resource) === JSON.stringify(smArn));
        const env = envOf(built.api, f);
        if (DRYDOCK_TASK_STARTERS.includes(name)) {
          expect(starts, name).toEqual([{ actions: ['states:StartExecution'], resource: smArn }]);
          expect(env.DRYDOCK_TASKS_STATE_MACHINE_ARN, name).toEqual(smArn);
        } else {
          expect(starts, name).toEqual([]);
          expect(env.DRYDOCK_TASKS_STATE_MACHINE_ARN, name).toBeUndefined();
        }
      }
      for (const f of [built.lifecycle.leaseEventsFunction, built.lifecycle.sweeperFunction, built.commissaire.clusterOperationsFunction]) {
        const stack = Stack.of(f);
        expect(grantsOf(fnStatements(stack, f), 'states:').filter((g) => JSON.stringify(g.resource) === JSON.stringify(smArn)), f.node.path).toEqual([]);
      }
    });

    it('counts as starters exactly the surfaces that import createTask', () => {
      const starters = functionNames.filter((name) => {
        const src = readFileSync(join(REPO_ROOT, `functions/api/${name}.ts`), 'utf8');
        const imports = [...src.matchAll(/import\s*\{([^}]*)\}\s*from\s*'#core\/drydock\/tasks\/service\.ts'/g)].flatMap((m) => m[1]!.split(',').map((x) => x.trim()));
        return imports.includes('createTask');
      });
      expect([...DRYDOCK_TASK_STARTERS].sort()).toEqual(starters.sort());
    });

    it('deploys after the API stack, whose URL its nodes report to (one `cdk deploy --all`, nothing set by hand), exporting nothing', () => {
      expect(built.drydock.dependencies.map((s) => s.stackName).sort()).toEqual([built.stateful.stackName, built.api.stackName].sort());
      expect(built.api.dependencies.map((s) => s.stackName)).not.toContain(built.drydock.stackName);
      expect(drydock.toJSON().Outputs ?? {}).toEqual({});
      const reportUrl = envOf(built.drydock, built.drydock.drydockTasksFunction).SLIPWAY_DRYDOCK_REPORT_URL;
      // The stage URL (https://<api id>.execute-api.<region>.<suffix>/), imported from the API stack, + the bootactions path.
      expect(reportUrl).toEqual({
        'Fn::Join': ['', ['https://', { 'Fn::ImportValue': expect.stringMatching(/^SlipwayApi:.*Api/) }, '.execute-api.', { Ref: 'AWS::Region' }, '.', { Ref: 'AWS::URLSuffix' }, '/api/v1.0/bootactions/']],
      });
    });
  });

  describe('lease-event workflow definition (ASL)', () => {
    const deployedAsl = () => deployedAslOf(built.lifecycle, built.lifecycle.stateMachine);

    it('is valid Amazon States Language (asl-validator, paths and ARNs checked)', () => {
      const asl = deployedAsl();
      // The validator annotates the definition it is given (QueryLanguage); give it a copy.
      const result = aslValidator(structuredClone(asl), { checkPaths: true, checkArn: true });
      expect(result.errors).toEqual([]);
      expect(result.isValid).toBe(true);
    });

    it('has the Task and Wait states the local runner binds by name', () => {
      const states = allStates(deployedAsl());
      for (const name of Object.values(LEASE_EVENT_TASKS)) expect(states[name]?.Type, name).toBe('Task');
      expect(states[LEASE_EVENT_WAIT]?.Type).toBe('Wait');
      // Every Task is one of them (an unbound Task would call real Lambda locally).
      const tasks = Object.entries(states).filter(([, st]) => st.Type === 'Task').map(([n]) => n);
      expect(tasks.sort()).toEqual(Object.values(LEASE_EVENT_TASKS).sort());
    });

    it('times out after 7 days (a lease end erasing thousands of hosts), within the sweeper\'s stale-event reset', () => {
      expect(deployedAsl().TimeoutSeconds).toBe(7 * 24 * 3600);
      expect(STALE_EVENT_MS).toBeGreaterThan(7 * 24 * 3600_000);
    });

    it('is what synthLeaseEventsAsl gives the local stack, but for the function ARN', () => {
      const deployedFn = fakeArnOf(idOf(built.lifecycle, built.lifecycle.leaseEventsFunction.fn));
      const local = synthLeaseEventsAsl();
      expect(LOCAL_LEASE_EVENTS_FUNCTION_ARN).toBe(localFunctionArn(LEASE_EVENTS_STATE_MACHINE_NAME));
      expect(JSON.stringify(local)).toContain(LOCAL_LEASE_EVENTS_FUNCTION_ARN);
      expect(JSON.stringify(deployedAsl())).toContain(deployedFn);
      expect(withoutFunctionArn(local, LOCAL_LEASE_EVENTS_FUNCTION_ARN)).toEqual(withoutFunctionArn(deployedAsl(), deployedFn));
    });

    it('resolves the intrinsics CDK uses and refuses others', () => {
      expect(resolveIntrinsics({ 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':states:::lambda:invoke']] })).toBe('arn:aws:states:::lambda:invoke');
      expect(resolveIntrinsics({ 'Fn::Join': [':', [{ Ref: 'AWS::Region' }, { Ref: 'AWS::AccountId' }, { Ref: 'AWS::URLSuffix' }]] })).toBe('us-east-1:123456789012:amazonaws.com');
      expect(resolveIntrinsics({ 'Fn::GetAtt': ['Fn1', 'Arn'] })).toBe('arn:aws:lambda:us-east-1:123456789012:function:Fn1');
      expect(() => resolveIntrinsics({ Ref: 'SomeBucket' })).toThrow(/unsupported/);
      expect(() => resolveIntrinsics({ 'Fn::Sub': 'x' })).toThrow(/unsupported/);
    });
  });

  describe('cluster-operation workflow definition (ASL)', () => {
    const deployedAsl = () => deployedAslOf(built.commissaire, built.commissaire.stateMachine);

    it('is valid Amazon States Language (asl-validator, paths and ARNs checked)', () => {
      const result = aslValidator(structuredClone(deployedAsl()), { checkPaths: true, checkArn: true });
      expect(result.errors).toEqual([]);
      expect(result.isValid).toBe(true);
    });

    it('has the Task states the local runner binds by name, and no other Task', () => {
      const states = allStates(deployedAsl());
      for (const name of Object.values(CLUSTER_OP_TASKS)) expect(states[name]?.Type, name).toBe('Task');
      const tasks = Object.entries(states).filter(([, st]) => st.Type === 'Task').map(([n]) => n);
      expect(tasks.sort()).toEqual(Object.values(CLUSTER_OP_TASKS).sort());
    });

    it('waits for the host job\'s callback, with its timeout and heartbeat', () => {
      const action = allStates(deployedAsl())[CLUSTER_OP_TASKS.hostAction]!;
      expect(action.Resource).toBe('arn:aws:states:::lambda:invoke.waitForTaskToken');
      expect(action).toMatchObject({ TimeoutSeconds: HOST_ACTION_TIMEOUT_SECONDS, HeartbeatSeconds: HOST_ACTION_HEARTBEAT_SECONDS });
    });

    it('times out after CLUSTER_OPERATIONS_TIMEOUT', () => {
      expect(deployedAsl().TimeoutSeconds).toBe(CLUSTER_OPERATIONS_TIMEOUT.toSeconds());
    });

    it('is what synthClusterOperationsAsl gives the local stack, but for the function ARN', () => {
      const deployedFn = fakeArnOf(idOf(built.commissaire, built.commissaire.clusterOperationsFunction.fn));
      const localFn = localFunctionArn(CLUSTER_OPERATIONS_STATE_MACHINE_NAME);
      const local = synthClusterOperationsAsl();
      expect(JSON.stringify(local)).toContain(localFn);
      expect(JSON.stringify(deployedAsl())).toContain(deployedFn);
      expect(withoutFunctionArn(local, localFn)).toEqual(withoutFunctionArn(deployedAsl(), deployedFn));
    });
  });

  describe('Drydock task workflow definition (ASL)', () => {
    const deployedAsl = () => deployedAslOf(built.drydock, built.drydock.stateMachine);
    const deployedFn = () => fakeArnOf(idOf(built.drydock, built.drydock.drydockTasksFunction.fn));
    const localFn = localFunctionArn(DRYDOCK_TASKS_STATE_MACHINE_NAME);
    /** A definition with both function ARNs as placeholders, each its own: Prepare's cannot pass for the task function's. */
    const withoutFunctionArns = (asl: unknown, tasksFn: string, prepareFn: string) => withoutFunctionArn(withoutFunctionArn(asl, tasksFn), prepareFn, '<prepare function>');
    const deployedPrepareFn = (app: SlipwayApp = built) => fakeArnOf(idOf(app.drydock, app.drydock.drydockPrepareFunction.fn));

    it('is valid Amazon States Language (asl-validator, paths and ARNs checked)', () => {
      const result = aslValidator(structuredClone(deployedAsl()), { checkPaths: true, checkArn: true });
      expect(result.errors).toEqual([]);
      expect(result.isValid).toBe(true);
    });

    it('has the Task states the local runner binds by name, and no other Task', () => {
      const states = allStates(deployedAsl());
      for (const name of Object.values(DRYDOCK_TASK_STATES)) expect(states[name]?.Type, name).toBe('Task');
      const tasks = Object.entries(states).filter(([, st]) => st.Type === 'Task').map(([n]) => n);
      expect(tasks.sort()).toEqual(Object.values(DRYDOCK_TASK_STATES).sort());
    });

    it('waits for agent jobs and final reports by callback, with the default deadlines', () => {
      const { drydock: defaults } = configFromEnv({});
      const states = allStates(deployedAsl());
      expect(states[DRYDOCK_TASK_STATES.nodeJob]).toMatchObject({
        Resource: 'arn:aws:states:::lambda:invoke.waitForTaskToken',
        TimeoutSeconds: defaults.agentStepSeconds,
        HeartbeatSeconds: NODE_JOB_HEARTBEAT_SECONDS,
      });
      expect(states[DRYDOCK_TASK_STATES.nodeReports]).toMatchObject({
        Resource: 'arn:aws:states:::lambda:invoke.waitForTaskToken',
        TimeoutSeconds: defaults.bootactionFinalStatusSeconds,
      });
      expect(states[DRYDOCK_TASK_STATES.nodeReports]!.HeartbeatSeconds).toBeUndefined();
    });

    it('times out after DRYDOCK_TASKS_TIMEOUT', () => {
      expect(deployedAsl().TimeoutSeconds).toBe(DRYDOCK_TASKS_TIMEOUT.toSeconds());
    });

    it('is what synthDrydockTasksAsl({}) gives the local stack for default settings, but for the function ARNs', () => {
      const local = synthDrydockTasksAsl({});
      expect(JSON.stringify(local)).toContain(localFn);
      expect(JSON.stringify(local)).toContain(LOCAL_DRYDOCK_PREPARE_FUNCTION_ARN);
      expect(JSON.stringify(deployedAsl())).toContain(deployedFn());
      expect(JSON.stringify(deployedAsl())).toContain(deployedPrepareFn());
      expect(withoutFunctionArns(local, localFn, LOCAL_DRYDOCK_PREPARE_FUNCTION_ARN)).toEqual(withoutFunctionArns(deployedAsl(), deployedFn(), deployedPrepareFn()));
    });

    it('takes its deadlines from the slipway:settings context', () => {
      const settings = { SLIPWAY_BOOTACTION_FINAL_STATUS_SECONDS: '120' };
      const app = build({ 'slipway:settings': settings });
      const asl = deployedAslOf(app.drydock, app.drydock.stateMachine);
      const states = allStates(asl);
      expect(states[DRYDOCK_TASK_STATES.nodeReports]!.TimeoutSeconds).toBe(120);
      expect(states[DRYDOCK_TASK_STATES.nodeJob]!.TimeoutSeconds).toBe(configFromEnv({}).drydock.agentStepSeconds);
      const fn = fakeArnOf(idOf(app.drydock, app.drydock.drydockTasksFunction.fn));
      const local = (s: Record<string, string>) => withoutFunctionArns(synthDrydockTasksAsl(s), localFn, LOCAL_DRYDOCK_PREPARE_FUNCTION_ARN);
      expect(local(settings)).toEqual(withoutFunctionArns(asl, fn, deployedPrepareFn(app)));
      // The default-settings definition differs from it there only.
      expect(local({})).not.toEqual(withoutFunctionArns(asl, fn, deployedPrepareFn(app)));
    });

    it('takes an explicit SLIPWAY_DRYDOCK_REPORT_URL of slipway:settings over the API stack\'s URL (nodes behind a proxy)', () => {
      const url = 'https://proxy.site.example/api/v1.0/bootactions/';
      const app = build({ 'slipway:settings': { SLIPWAY_DRYDOCK_REPORT_URL: url } });
      expect(envOf(app.drydock, app.drydock.drydockTasksFunction).SLIPWAY_DRYDOCK_REPORT_URL).toBe(url);
      expect(envOf(app.api, app.api.surfaces.get('bootactions')!).SLIPWAY_DRYDOCK_REPORT_URL).toBe(url);
      // Nothing imported from the API stack then.
      expect(app.drydock.dependencies.map((s) => s.stackName)).toEqual([app.stateful.stackName]);
    });
  });

  describe('stateful resources', () => {
    it('has the event bus for lease notices, with its fixed name', () => {
      stateful.resourceCountIs('AWS::Events::EventBus', 1);
      stateful.hasResourceProperties('AWS::Events::EventBus', { Name: EVENT_BUS_NAME });
    });

    it('builds the table from layers/aws/dynamo/schema.ts', () => {
      const str = (n: string) => ({ AttributeName: n, AttributeType: 'S' });
      const keys = (pk: string, sk: string) => [
        { AttributeName: pk, KeyType: 'HASH' },
        { AttributeName: sk, KeyType: 'RANGE' },
      ];
      stateful.resourceCountIs('AWS::DynamoDB::GlobalTable', 1);
      stateful.hasResourceProperties('AWS::DynamoDB::GlobalTable', {
        BillingMode: 'PAY_PER_REQUEST',
        KeySchema: keys(TABLE_KEYS.partitionKey, TABLE_KEYS.sortKey),
        AttributeDefinitions: Match.arrayEquals(
          [TABLE_KEYS.partitionKey, TABLE_KEYS.sortKey, ...TABLE_INDEXES.flatMap((ix) => [ix.partitionKey, ix.sortKey])].map(str),
        ),
        GlobalSecondaryIndexes: TABLE_INDEXES.map((ix) => ({
          IndexName: ix.indexName,
          KeySchema: keys(ix.partitionKey, ix.sortKey),
          Projection: { ProjectionType: 'ALL' },
        })),
        TimeToLiveSpecification: { AttributeName: TTL_ATTRIBUTE, Enabled: true },
        Replicas: [
          Match.objectLike({
            PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
            DeletionProtectionEnabled: true,
          }),
        ],
      });
      stateful.hasResource('AWS::DynamoDB::GlobalTable', { DeletionPolicy: 'Retain', UpdateReplacePolicy: 'Retain' });
    });

    it('keeps both buckets private, TLS-only, encrypted and retained; bootdata access is logged', () => {
      const buckets = stateful.findResources('AWS::S3::Bucket');
      expect(Object.keys(buckets)).toHaveLength(2);
      for (const b of Object.values(buckets)) {
        expect(b.DeletionPolicy).toBe('Retain');
        expect(b.Properties).toMatchObject({
          BucketEncryption: { ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }] },
          PublicAccessBlockConfiguration: { BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true },
        });
      }
      const logsId = idOf(built.stateful, built.stateful.accessLogsBucket);
      const bootdataId = idOf(built.stateful, built.stateful.bootdataBucket);
      expect(buckets[bootdataId]!.Properties.LoggingConfiguration).toEqual({ DestinationBucketName: { Ref: logsId }, LogFilePrefix: 'bootdata/' });
      // Only rendered bootdata and agents' uploads expire; designs/, task snapshots (tasks/) and images/ stay.
      expect(BOOTDATA_EXPIRY_DAYS).toBe(90);
      expect(buckets[bootdataId]!.Properties.LifecycleConfiguration).toEqual({
        Rules: [
          { Id: 'ExpireRenderedBootdata', Prefix: 'bootdata/', ExpirationInDays: BOOTDATA_EXPIRY_DAYS, Status: 'Enabled' },
          { Id: 'ExpireFetchedUploads', Prefix: 'fetched/', ExpirationInDays: 1, Status: 'Enabled' },
          { Id: 'AbortIncompleteUploads', AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 }, Status: 'Enabled' },
        ],
      });
      for (const id of [logsId, bootdataId]) {
        stateful.hasResourceProperties('AWS::S3::BucketPolicy', {
          Bucket: { Ref: id },
          PolicyDocument: {
            Statement: Match.arrayWith([
              Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
            ]),
          },
        });
      }
    });
  });
});
