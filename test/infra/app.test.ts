import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type CfnElement, Stack, Validations } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { Bucket } from 'aws-cdk-lib/aws-s3';
import type { IConstruct } from 'constructs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TABLE_INDEXES, TABLE_KEYS, TTL_ATTRIBUTE } from '#aws/dynamo/schema.ts';
import { buildApp, type SlipwayApp } from '../../infra/app.ts';
import { REPO_ROOT, type SlipwayFunction, TABLE_ACTIONS } from '../../infra/constructs/slipway-function.ts';
import { functionNames, routes } from '../../infra/routes.ts';

type Resources = Record<string, { Type: string; Properties: Record<string, unknown>; DeletionPolicy?: string; UpdateReplacePolicy?: string }>;

const outdirs: string[] = [];
/** An app with esbuild skipped and its own temporary cloud assembly directory. */
function build(): SlipwayApp {
  const outdir = mkdtempSync(join(tmpdir(), 'slipway-cdk-'));
  outdirs.push(outdir);
  return buildApp({ outdir, context: { 'aws:cdk:bundling-stacks': [] } });
}
afterAll(() => {
  for (const d of outdirs) rmSync(d, { recursive: true, force: true });
});

/** The logical id of an L2 construct's CloudFormation resource. */
const idOf = (stack: Stack, c: IConstruct) => stack.getLogicalId(c.node.defaultChild as CfnElement);

describe('CDK app', () => {
  let built: SlipwayApp;
  let api: Template;
  let stateful: Template;
  let apiResources: Resources;

  beforeAll(() => {
    built = build();
    api = Template.fromStack(built.api);
    stateful = Template.fromStack(built.stateful);
    apiResources = api.toJSON().Resources as Resources;
  });

  describe('cdk-nag (AwsSolutions)', () => {
    it('synthesizes with no unacknowledged finding', () => {
      expect(() => built.app.synth()).not.toThrow();
    });

    it('fails synth on a finding nobody acknowledged, so the check is live', () => {
      const probe = build();
      new Bucket(new Stack(probe.app, 'Probe'), 'Naked');
      expect(() => probe.app.synth()).toThrow(/AwsSolutions-S10/);
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
      const anonymous = routes.filter((r) => r.auth === 'none').map((r) => `SlipwayApi/Api/${r.method}-${r.path.replaceAll('/', '-')}`);
      expect(acks).toEqual({
        'SlipwayStateful/AccessLogs': ['AwsSolutions-S1'],
        'SlipwayApi/AuthorizerFn/Role': xray,
        ...Object.fromEntries(functionNames.map((n) => [`SlipwayApi/${n[0]!.toUpperCase()}${n.slice(1)}Fn/Role`, xray])),
        // The agent answers Step Functions task tokens of the slipway-* workflows.
        'SlipwayApi/AgentFn/Role': [...xray, 'AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:stateMachine:slipway-*]'],
        ...Object.fromEntries(anonymous.map((p) => [p, ['AwsSolutions-APIG4']])),
      });
    });
  });

  describe('API routes', () => {
    const authorizerRef = () => ({ Ref: Object.keys(api.findResources('AWS::ApiGatewayV2::Authorizer'))[0] });

    it('has exactly one route per routes.ts entry', () => {
      api.resourceCountIs('AWS::ApiGatewayV2::Route', routes.length);
      const keys = Object.values(api.findResources('AWS::ApiGatewayV2::Route')).map((r) => r.Properties.RouteKey as string);
      expect(keys.sort()).toEqual(routes.map((r) => `${r.method} ${r.path}`).sort());
    });

    it.each(routes.map((r) => [`${r.method} ${r.path}`, r] as const))('%s has its auth mode and surface function', (key, r) => {
      const fnLogicalId = idOf(built.api, built.api.surfaces.get(r.fn)!.fn);
      const integrations = api.findResources('AWS::ApiGatewayV2::Integration', {
        Properties: { IntegrationUri: { 'Fn::GetAtt': [fnLogicalId, 'Arn'] } },
      });
      expect(Object.keys(integrations)).toHaveLength(1);
      const target = { 'Fn::Join': ['', ['integrations/', { Ref: Object.keys(integrations)[0] }]] };
      api.hasResourceProperties('AWS::ApiGatewayV2::Route', {
        RouteKey: key,
        Target: target,
        ...(r.auth === 'token'
          ? { AuthorizationType: 'CUSTOM', AuthorizerId: authorizerRef() }
          : { AuthorizationType: 'NONE', AuthorizerId: Match.absent() }),
      });
    });

    it('runs the never-denying authorizer on every request: simple responses, no identity source, no cache', () => {
      api.resourceCountIs('AWS::ApiGatewayV2::Authorizer', 1);
      api.hasResourceProperties('AWS::ApiGatewayV2::Authorizer', {
        AuthorizerType: 'REQUEST',
        AuthorizerPayloadFormatVersion: '2.0',
        EnableSimpleResponses: true,
        IdentitySource: [],
        AuthorizerResultTtlInSeconds: 0,
        AuthorizerUri: Match.objectLike({
          'Fn::Join': ['', Match.arrayWith([{ 'Fn::GetAtt': [idOf(built.api, built.api.authorizerFunction.fn), 'Arn'] }])],
        }),
      });
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
    it('runs every Lambda of every stack on nodejs24.x, arm64, with X-Ray and source maps', () => {
      const fns = [built.api, built.stateful].flatMap((s) => Object.values(Template.fromStack(s).findResources('AWS::Lambda::Function')));
      expect(fns).toHaveLength(functionNames.length + 1);
      for (const f of fns) {
        expect(f.Properties).toMatchObject({
          Runtime: 'nodejs24.x',
          Architectures: ['arm64'],
          Handler: 'index.handler',
          TracingConfig: { Mode: 'Active' },
          Environment: { Variables: { NODE_OPTIONS: '--enable-source-maps' } },
          LoggingConfig: { LogGroup: { Ref: expect.any(String) } },
        });
        expect(f.Properties.Timeout).toBeLessThan(30);
      }
    });

    it('gives each function its own role with no managed policies', () => {
      for (const role of Object.values(api.findResources('AWS::IAM::Role'))) {
        expect(role.Properties.ManagedPolicyArns).toBeUndefined();
      }
    });

    it('lets only Ironic seal (kms:Encrypt) and only the agent API open (kms:Decrypt) BMC secrets, with the stateful key', () => {
      const kmsActions = (f: SlipwayFunction) => {
        const policy = apiResources[idOf(built.api, f.role.node.findChild('DefaultPolicy'))]!;
        const statements = (policy.Properties.PolicyDocument as { Statement: { Action: string | string[]; Resource: unknown }[] }).Statement;
        return statements.filter((st) => [st.Action].flat().some((a) => a.startsWith('kms:'))).map((st) => ({ actions: [st.Action].flat(), resource: st.Resource }));
      };
      const keyRef = { 'Fn::ImportValue': expect.stringContaining('SecretsKey') };
      for (const name of functionNames) {
        const fn = built.api.surfaces.get(name)!;
        const want = name === 'ironic' ? ['kms:Encrypt'] : name === 'agent' ? ['kms:Decrypt'] : undefined;
        expect(kmsActions(fn), name).toEqual(want ? [{ actions: want, resource: keyRef }] : []);
        const env = (apiResources[idOf(built.api, fn.fn)]!.Properties.Environment as { Variables: Record<string, unknown> }).Variables;
        if (want) expect(env.SECRETS_KMS_KEY_ID, name).toEqual(keyRef);
        else expect(env.SECRETS_KMS_KEY_ID, name).toBeUndefined();
      }
      expect(kmsActions(built.api.authorizerFunction)).toEqual([]);
      const keys = stateful.findResources('AWS::KMS::Key');
      expect(Object.values(keys)).toHaveLength(1);
      expect(Object.values(keys)[0]).toMatchObject({ DeletionPolicy: 'Retain', Properties: { EnableKeyRotation: true } });
    });

    it('grants table access by need: authorizer read-only, surfaces as TABLE_ACCESS says', () => {
      const dynamoActions = (f: SlipwayFunction) => {
        const policy = apiResources[idOf(built.api, f.role.node.findChild('DefaultPolicy'))]!;
        const statements = (policy.Properties.PolicyDocument as { Statement: { Action: string | string[] }[] }).Statement;
        return statements
          .flatMap((st) => [st.Action].flat())
          .filter((a) => a.startsWith('dynamodb:'))
          .sort();
      };
      const expected = (mode: 'RO' | 'RW') => TABLE_ACTIONS[mode].map((a) => `dynamodb:${a}`).sort();

      expect(dynamoActions(built.api.authorizerFunction)).toEqual(expected('RO'));
      expect(dynamoActions(built.api.surfaces.get('system')!)).toEqual([]);
      expect(dynamoActions(built.api.surfaces.get('blazar')!)).toEqual(expected('RW'));
      expect(dynamoActions(built.api.surfaces.get('native')!)).toEqual(expected('RW'));
      for (const f of [built.api.authorizerFunction, built.api.surfaces.get('blazar')!, built.api.surfaces.get('native')!]) {
        const env = (apiResources[idOf(built.api, f.fn)]!.Properties.Environment as { Variables: Record<string, unknown> }).Variables;
        expect(env.TABLE_NAME).toEqual({ 'Fn::ImportValue': expect.stringContaining('SlipwayStateful') });
      }
    });

    it('grants RW every DynamoDB action the adapters in layers/aws use', () => {
      // Commands the SDK sends → IAM actions they need (a transaction needs those of its items).
      const needs: Record<string, string[]> = {
        Get: ['GetItem'],
        BatchGet: ['BatchGetItem'],
        TransactGet: ['GetItem'],
        Query: ['Query'],
        Scan: ['Scan'],
        Put: ['PutItem'],
        Update: ['UpdateItem'],
        Delete: ['DeleteItem'],
        BatchWrite: ['BatchWriteItem'],
        TransactWrite: ['PutItem', 'UpdateItem', 'DeleteItem', 'ConditionCheckItem'],
      };
      const dir = join(REPO_ROOT, 'layers/aws');
      // local-table.ts creates the table in DynamoDB Local only; on AWS the stateful stack owns it.
      const files = readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts') && !f.endsWith('local-table.ts'));
      const used = new Set<string>();
      for (const f of files) {
        const src = readFileSync(join(dir, f), 'utf8');
        for (const m of src.matchAll(/import\s*(?:type\s*)?\{([^}]*)\}\s*from\s*'@aws-sdk\/(?:lib|client)-dynamodb'/g)) {
          for (const name of m[1]!.split(',').map((s) => s.trim().replace(/^type\s+/, ''))) {
            const cmd = /^(\w+?)(?:Item)?Command$/.exec(name);
            if (cmd) used.add(cmd[1]!);
          }
        }
      }
      expect(used.size).toBeGreaterThan(0);
      for (const cmd of used) {
        expect(needs[cmd], `IAM actions for ${cmd}Command are unknown to this test`).toBeDefined();
        for (const action of needs[cmd]!) expect(TABLE_ACTIONS.RW, `${cmd}Command needs dynamodb:${action}`).toContain(action);
      }
    });
  });

  describe('stateful resources', () => {
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
      expect(buckets[bootdataId]!.Properties.LifecycleConfiguration).toEqual({
        Rules: [{ ExpirationInDays: 90, AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 }, Status: 'Enabled' }],
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
