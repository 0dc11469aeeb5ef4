import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App, type CfnElement, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import type { IConstruct } from 'constructs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveIntrinsics } from '../../infra/workflows/asl.ts';
import { buildApp, type SlipwayApp } from '../../infra/app.ts';
import { METRICS_NAMESPACE, SERVICE_DIMENSION } from '../../infra/constructs/alarms.ts';
import { DEPLOYMENT_DEFAULTS, deploymentOptions } from '../../infra/constructs/deployment.ts';
import { REPO_ROOT, RESERVED_CONCURRENCY, type SlipwayFunction } from '../../infra/constructs/slipway-function.ts';
import { LAMBDA_SERVICE_ERRORS } from '../../infra/workflows/steps.ts';

/**
 * Operations on AWS (issue 12): throttling retries, reserved concurrency, alarms through one
 * topic, dead letters on every asynchronous path, API stage throttling, and what a deployment
 * name, an alarm address and a domain change. One app, synthesized once, with every deployment
 * option set away from its default (the defaults are what test/infra/app.test.ts synthesizes).
 */
const CONTEXT = {
  'aws:cdk:bundling-stacks': [],
  'slipway:deployment': 'lab',
  'slipway:alarmEmail': 'ops@example.com',
  'slipway:agentSilentSeconds': '600',
  'slipway:leaseEventLagSeconds': 240,
  'slipway:reservedConcurrency': '{"agent": 40}',
  'slipway:domainName': 'slipway.example.com',
  'slipway:certificateArn': 'arn:aws:acm:eu-west-1:123456789012:certificate/0a1b2c3d-aaaa-bbbb-cccc-0123456789ab',
  'slipway:apiRateLimit': '50',
  'slipway:apiBurstLimit': '80',
};

type Resource = { Type: string; Properties: Record<string, any>; DependsOn?: unknown };

const outdir = mkdtempSync(join(tmpdir(), 'slipway-ops-'));
afterAll(() => rmSync(outdir, { recursive: true, force: true }));

let built: SlipwayApp;
const templates = new Map<Stack, Record<string, Resource>>();
const stacks = () => [built.stateful, built.lifecycle, built.commissaire, built.api, built.drydock];
const resourcesOf = (s: Stack) => templates.get(s)!;
const ofType = (s: Stack, type: string) => Object.entries(resourcesOf(s)).filter(([, r]) => r.Type === type);
const idOf = (c: IConstruct) => Stack.of(c).getLogicalId(c.node.defaultChild as CfnElement);
const functions = (): SlipwayFunction[] => [
  ...built.api.surfaces.values(),
  built.lifecycle.leaseEventsFunction,
  built.lifecycle.sweeperFunction,
  built.commissaire.clusterOperationsFunction,
  built.drydock.drydockPrepareFunction,
  built.drydock.drydockTasksFunction,
];

beforeAll(() => {
  built = buildApp({ outdir, context: CONTEXT });
  for (const s of stacks()) templates.set(s, Template.fromStack(s).toJSON().Resources as Record<string, Resource>);
});

/** Every state of an ASL definition, Map item processors and Parallel branches included. */
function allStates(def: { States?: Record<string, any> }, out: Record<string, any> = {}): Record<string, any> {
  for (const [name, st] of Object.entries(def.States ?? {})) {
    out[name] = st;
    for (const inner of [st.ItemProcessor, st.Iterator, ...(st.Branches ?? [])]) if (inner) allStates(inner, out);
  }
  return out;
}

describe('Step Functions: Lambda tasks ride out throttling', () => {
  it('every Lambda Task of every workflow retries throttling and the other Lambda service errors first, with backoff and full jitter', () => {
    let tasks = 0;
    for (const s of stacks()) {
      for (const [id, sm] of ofType(s, 'AWS::StepFunctions::StateMachine')) {
        const asl = JSON.parse(resolveIntrinsics(sm.Properties.DefinitionString)) as { States: Record<string, any> };
        for (const [name, st] of Object.entries(allStates(asl))) {
          const lambda = st.Type === 'Task' && (/^arn:aws:lambda:/.test(st.Resource) || /^arn:aws:states:::lambda:invoke/.test(st.Resource));
          if (!lambda) continue;
          tasks++;
          const first = st.Retry?.[0];
          expect(first?.ErrorEquals, `${id} ${name}`).toEqual([...LAMBDA_SERVICE_ERRORS]);
          expect(first, `${id} ${name}`).toMatchObject({ JitterStrategy: 'FULL', BackoffRate: 2, MaxAttempts: 8, IntervalSeconds: 2, MaxDelaySeconds: 60 });
          // No other retrier (a States.ALL one included) shadows it: it comes first.
          for (const r of st.Retry.slice(1)) expect(r.ErrorEquals.some((e: string) => LAMBDA_SERVICE_ERRORS.includes(e)), `${id} ${name}`).toBe(false);
        }
      }
    }
    expect(LAMBDA_SERVICE_ERRORS).toContain('Lambda.TooManyRequestsException');
    expect(tasks).toBeGreaterThan(10);
  });
});

describe('reserved concurrency', () => {
  it('reserves for the workflow functions and the sweeper, caps the agent API (overridden here), and leaves the rest unreserved', () => {
    const want: Record<string, number> = { ...RESERVED_CONCURRENCY, agent: 40 };
    for (const f of functions()) {
      const props = resourcesOf(Stack.of(f))[idOf(f.fn)]!.Properties;
      expect(props.ReservedConcurrentExecutions, f.service).toBe(want[f.service]);
    }
  });

  it('keeps the default reservations below the 100 a default account (1,000) must leave unreserved', () => {
    const sum = Object.values(RESERVED_CONCURRENCY).reduce((a, b) => a + b, 0);
    expect(sum).toBeLessThan(100);
    // Every reserved service is a function of the app (a typo would reserve nothing).
    expect(Object.keys(RESERVED_CONCURRENCY).sort()).toEqual(expect.arrayContaining(['agent', 'cluster-operations', 'drydock-tasks', 'lease-events', 'sweeper']));
    for (const service of Object.keys(RESERVED_CONCURRENCY)) expect(functions().map((f) => f.service), service).toContain(service);
  });
});

describe('alarms', () => {
  const topicArn = () => ({ 'Fn::ImportValue': expect.stringMatching(/^lab-SlipwayStateful:.*AlarmTopic/) });
  const alarms = () =>
    stacks().flatMap((s) => ofType(s, 'AWS::CloudWatch::Alarm').map(([id, r]) => ({ stack: s, id, p: r.Properties })));

  it('all tell one topic, in ALARM and back to OK; the topic is TLS-only and mails the configured address, with undeliverable mail kept', () => {
    expect(alarms().length).toBeGreaterThan(30);
    for (const a of alarms()) {
      const topic = a.stack === built.stateful ? { Ref: idOf(built.stateful.alarmTopic) } : topicArn();
      expect(a.p.AlarmActions, a.id).toEqual([topic]);
      expect(a.p.OKActions, a.id).toEqual([topic]);
      expect(a.p.AlarmDescription, a.id).toMatch(/^Slipway: /);
    }
    const subs = ofType(built.stateful, 'AWS::SNS::Subscription');
    expect(subs).toHaveLength(1);
    expect(subs[0]![1].Properties).toMatchObject({
      Protocol: 'email',
      Endpoint: 'ops@example.com',
      TopicArn: { Ref: idOf(built.stateful.alarmTopic) },
      RedrivePolicy: { deadLetterTargetArn: { 'Fn::GetAtt': [expect.stringMatching(/^AlarmUndelivered/), 'Arn'] } },
    });
    expect(ofType(built.stateful, 'AWS::SNS::TopicPolicy')[0]![1].Properties.PolicyDocument.Statement).toEqual(
      expect.arrayContaining([expect.objectContaining({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } })]),
    );
  });

  it('watch every function for errors and throttles', () => {
    for (const f of functions()) {
      const fnRef = { Ref: idOf(f.fn) };
      const on = (metric: string) => alarms().filter((a) => a.stack === Stack.of(f) && a.p.MetricName === metric && JSON.stringify(a.p.Dimensions) === JSON.stringify([{ Name: 'FunctionName', Value: fnRef }]));
      const errors = on('Errors');
      expect(errors, f.service).toHaveLength(1);
      // A workflow's task function throws lost compare-and-sets on purpose; a surface or the sweeper should not fail at all.
      const threshold: Record<string, number> = { 'lease-events': 5, 'cluster-operations': 5, 'drydock-prepare': 5, 'drydock-tasks': 5, sweeper: 3 };
      expect(errors[0]!.p, f.service).toMatchObject({ Namespace: 'AWS/Lambda', Statistic: 'Sum', Period: 300, Threshold: threshold[f.service] ?? 1 });
      expect(on('Throttles'), f.service).toHaveLength(1);
      expect(on('Throttles')[0]!.p).toMatchObject({ Namespace: 'AWS/Lambda', Statistic: 'Sum', Period: 300, Threshold: 1, ComparisonOperator: 'GreaterThanOrEqualToThreshold' });
    }
  });

  it('watch every workflow for failed and timed-out executions', () => {
    for (const sm of [built.lifecycle.stateMachine, built.commissaire.stateMachine, built.drydock.stateMachine]) {
      const mine = alarms().filter((a) => a.p.Namespace === 'AWS/States' && JSON.stringify(a.p.Dimensions) === JSON.stringify([{ Name: 'StateMachineArn', Value: { Ref: idOf(sm) } }]));
      expect(mine.map((a) => a.p.MetricName).sort(), sm.node.path).toEqual(['ExecutionsFailed', 'ExecutionsTimedOut']);
      for (const a of mine) expect(a.p).toMatchObject({ Statistic: 'Sum', Threshold: 1 });
    }
  });

  it('watch the dead letters and the API\'s 5xx answers (a surface answers its own failures as 500s)', () => {
    const dlq = alarms().filter((a) => a.p.MetricName === 'ApproximateNumberOfMessagesVisible');
    expect(dlq.map((a) => a.p.Dimensions[0].Value)).toEqual([{ 'Fn::GetAtt': [idOf(built.lifecycle.deadLetters), 'QueueName'] }]);
    expect(dlq[0]!.p).toMatchObject({ Namespace: 'AWS/SQS', Statistic: 'Maximum', Threshold: 1 });
    const api5xx = alarms().filter((a) => a.p.MetricName === '5xx');
    expect(api5xx).toHaveLength(1);
    expect(api5xx[0]!.p).toMatchObject({ Namespace: 'AWS/ApiGateway', Dimensions: [{ Name: 'ApiId', Value: { Ref: idOf(built.api.api) } }], Threshold: 5 });
  });

  it('watch the signals Slipway emits itself, with the thresholds the deployment sets, on the metric contract\'s names', () => {
    const own = alarms().filter((a) => a.p.Namespace === METRICS_NAMESPACE || (a.p.Metrics ?? []).some((m: { Expression?: string }) => m.Expression?.includes(`SCHEMA("${METRICS_NAMESPACE}"`)));
    expect(own).toHaveLength(4);
    const lag = own.find((a) => a.p.MetricName === 'LeaseEventLagSeconds')!;
    // The sweeper writes the lag every run, so no datapoint is a sweeper that does not run.
    expect(lag.p).toMatchObject({
      Dimensions: [{ Name: SERVICE_DIMENSION, Value: built.lifecycle.sweeperFunction.service }],
      Statistic: 'Maximum',
      Threshold: 240,
      ComparisonOperator: 'GreaterThanThreshold',
      TreatMissingData: 'breaching',
    });
    const query = (name: string) => own.find((a) => (a.p.Metrics ?? []).some((m: { Expression?: string }) => m.Expression?.includes(`(${name})`)))!;
    expect(query('AgentSiteSilentSeconds').p).toMatchObject({
      Threshold: 600,
      ComparisonOperator: 'GreaterThanThreshold',
      Metrics: [{ Expression: `SELECT MAX(AgentSiteSilentSeconds) FROM SCHEMA("${METRICS_NAMESPACE}", Service, Site)`, Period: 300, ReturnData: true, Id: expect.any(String), Label: expect.any(String) }],
    });
    expect(query('CallbackFailures').p).toMatchObject({ Threshold: 1, Metrics: [expect.objectContaining({ Expression: `SELECT SUM(CallbackFailures) FROM SCHEMA("${METRICS_NAMESPACE}", Service)` })] });
    expect(query('NotificationFailures').p).toMatchObject({ Threshold: 1 });
    // The names and the dimension are those layers/core/util/metrics.ts writes (the metric contract).
    const contract = readFileSync(join(REPO_ROOT, 'layers/core/util/metrics.ts'), 'utf8');
    const emitted = /export type MetricName = ([^;]+);/.exec(contract)![1]!.match(/'(\w+)'/g)!.map((n) => n.slice(1, -1));
    expect(emitted.sort()).toEqual(['AgentSiteSilentSeconds', 'CallbackFailures', 'LeaseEventLagSeconds', 'NotificationFailures']);
    expect(contract).toContain(`export const METRIC_NAMESPACE = '${METRICS_NAMESPACE}';`);
    expect(contract).toMatch(/\{ Service: service, \.\.\.dimensions \}/);
    // Each function's Service is its POWERTOOLS_SERVICE_NAME.
    for (const f of functions()) expect(resourcesOf(Stack.of(f))[idOf(f.fn)]!.Properties.Environment.Variables.POWERTOOLS_SERVICE_NAME).toBe(f.service);
  });
});

describe('dead letters on every asynchronous path', () => {
  it('the sweeper\'s rule gives up undeliverable sweeps to the dead letters, and the sweeper its failed runs (one retry, five minutes)', () => {
    const dlqArn = { 'Fn::GetAtt': [idOf(built.lifecycle.deadLetters), 'Arn'] };
    const [[, rule]] = ofType(built.lifecycle, 'AWS::Events::Rule') as [[string, Resource]];
    expect(rule.Properties.Targets).toEqual([
      expect.objectContaining({ DeadLetterConfig: { Arn: dlqArn }, RetryPolicy: { MaximumEventAgeInSeconds: 60, MaximumRetryAttempts: 2 } }),
    ]);
    const configs = stacks().flatMap((s) => ofType(s, 'AWS::Lambda::EventInvokeConfig'));
    // Only the sweeper is invoked asynchronously; every other function is called synchronously (API Gateway, Step Functions).
    expect(configs).toHaveLength(1);
    expect(configs[0]![1].Properties).toMatchObject({
      FunctionName: { Ref: idOf(built.lifecycle.sweeperFunction.fn) },
      MaximumRetryAttempts: 1,
      MaximumEventAgeInSeconds: 300,
      DestinationConfig: { OnFailure: { Destination: dlqArn } },
    });
  });

  it('the Scheduler triggers name the dead letters (SCHEDULER_DLQ_ARN), which the scheduler role may send to', () => {
    const env = resourcesOf(built.api)[idOf(built.api.surfaces.get('blazar')!.fn)]!.Properties.Environment.Variables;
    expect(env.SCHEDULER_DLQ_ARN).toEqual({ 'Fn::ImportValue': expect.stringMatching(/^lab-SlipwayLeaseLifecycle:.*DeadLetters.*Arn/) });
    const policy = resourcesOf(built.lifecycle)[idOf(built.lifecycle.schedulerRole.node.findChild('DefaultPolicy'))]!;
    expect(policy.Properties.PolicyDocument.Statement).toContainEqual(expect.objectContaining({ Action: 'sqs:SendMessage', Resource: { 'Fn::GetAtt': [idOf(built.lifecycle.deadLetters), 'Arn'] } }));
    const src = readFileSync(join(REPO_ROOT, 'layers/aws/scheduler.ts'), 'utf8');
    expect(src).toContain('DeadLetterConfig: { Arn: deadLetterArn }');
  });

  it('dead-letter queues are encrypted, TLS-only and keep messages 14 days', () => {
    const queues = stacks().flatMap((s) => ofType(s, 'AWS::SQS::Queue'));
    expect(queues.map(([id]) => id.replace(/[0-9A-F]{8}$/, '')).sort()).toEqual(['AlarmUndelivered', 'DeadLetters']);
    for (const [, q] of queues) expect(q.Properties).toMatchObject({ SqsManagedSseEnabled: true, MessageRetentionPeriod: 14 * 86400 });
  });
});

describe('the API edge', () => {
  it('throttles the stage as the deployment says', () => {
    const [[, stage]] = ofType(built.api, 'AWS::ApiGatewayV2::Stage') as [[string, Resource]];
    expect(stage.Properties.DefaultRouteSettings).toEqual({ ThrottlingRateLimit: 50, ThrottlingBurstLimit: 80 });
    expect(DEPLOYMENT_DEFAULTS).toMatchObject({ apiRateLimit: 100, apiBurstLimit: 200 });
  });

  it('serves the own domain with its certificate, and nodes report there', () => {
    const [[, domain]] = ofType(built.api, 'AWS::ApiGatewayV2::DomainName') as [[string, Resource]];
    expect(domain.Properties).toEqual({
      DomainName: 'slipway.example.com',
      DomainNameConfigurations: [{ CertificateArn: CONTEXT['slipway:certificateArn'], EndpointType: 'REGIONAL' }],
    });
    const [[, mapping]] = ofType(built.api, 'AWS::ApiGatewayV2::ApiMapping') as [[string, Resource]];
    expect(mapping.Properties).toMatchObject({ ApiId: { Ref: idOf(built.api.api) }, Stage: '$default' });
    // Named, not referenced: the mapping must wait for the stage.
    expect(mapping.DependsOn).toContain(idOf(built.api.stage));
    const outputs = Template.fromStack(built.api).toJSON().Outputs;
    expect(outputs.DomainTarget.Value).toEqual({ 'Fn::GetAtt': [expect.any(String), 'RegionalDomainName'] });
    expect(outputs.ApiUrl.Value).toBe('https://slipway.example.com/');
    const url = 'https://slipway.example.com/api/v1.0/bootactions/';
    expect(resourcesOf(built.drydock)[idOf(built.drydock.drydockTasksFunction.fn)]!.Properties.Environment.Variables.SLIPWAY_DRYDOCK_REPORT_URL).toBe(url);
    expect(resourcesOf(built.api)[idOf(built.api.surfaces.get('bootactions')!.fn)]!.Properties.Environment.Variables.SLIPWAY_DRYDOCK_REPORT_URL).toBe(url);
  });
});

describe('a named deployment shares an account and region with others', () => {
  it('prefixes every stack and every fixed name: bus, state machines, schedule group, and the grants and settings that name them', () => {
    expect(stacks().map((s) => s.stackName).sort()).toEqual(['lab-SlipwayApi', 'lab-SlipwayCommissaire', 'lab-SlipwayDrydock', 'lab-SlipwayLeaseLifecycle', 'lab-SlipwayStateful']);
    expect(ofType(built.stateful, 'AWS::Events::EventBus')[0]![1].Properties.Name).toBe('lab-slipway');
    const machines = stacks().flatMap((s) => ofType(s, 'AWS::StepFunctions::StateMachine')).map(([, r]) => r.Properties.StateMachineName);
    expect(machines.sort()).toEqual(['lab-slipway-cluster-operations', 'lab-slipway-drydock-tasks', 'lab-slipway-lease-events']);
    expect(ofType(built.lifecycle, 'AWS::Scheduler::ScheduleGroup')[0]![1].Properties.Name).toBe('lab-slipway-lease-events');
    const blazar = resourcesOf(built.api)[idOf(built.api.surfaces.get('blazar')!.fn)]!.Properties.Environment.Variables;
    expect(blazar.SCHEDULER_GROUP).toBe('lab-slipway-lease-events');
    expect(JSON.stringify(blazar.LEASE_EVENTS_STATE_MACHINE_ARN)).toContain(':stateMachine:lab-slipway-lease-events');
    // Task tokens only of this deployment's workflows.
    const answerers = [built.api.surfaces.get('agent')!, built.api.surfaces.get('bootactions')!, built.drydock.drydockTasksFunction];
    for (const f of answerers) {
      const policy = resourcesOf(Stack.of(f))[idOf(f.role.node.findChild('DefaultPolicy'))]!;
      const sendTask = policy.Properties.PolicyDocument.Statement.filter((st: any) => [st.Action].flat().some((a: string) => a.startsWith('states:SendTask')));
      expect(JSON.stringify(sendTask), f.service).toContain(':stateMachine:lab-slipway-*');
      expect(JSON.stringify(sendTask), f.service).not.toMatch(/:stateMachine:slipway-\*/);
    }
  });

  it('refuses deployment options that would deploy something else than meant', () => {
    const options = (context: Record<string, unknown>) => () => deploymentOptions(new App({ context }));
    expect(options({ 'slipway:deployment': 'Lab_1' })).toThrow(/slipway:deployment/);
    expect(options({ 'slipway:deployment': 'slipway2' })).toThrow(/must not start with "slipway"/);
    expect(options({ 'slipway:alarmEmail': 'ops' })).toThrow(/e-mail/);
    expect(options({ 'slipway:domainName': 'api.example.com' })).toThrow(/go together/);
    expect(options({ 'slipway:agentSilentSeconds': '30' })).toThrow(/at least 60/);
    expect(options({ 'slipway:reservedConcurrency': '{"agent": -1}' })).toThrow(/agent/);
    expect(deploymentOptions(new App({ context: { 'slipway:reservedConcurrency': 'off' } })).reservedConcurrency).toBe(false);
    expect(deploymentOptions(new App()).prefix).toBe('');
  });
});
