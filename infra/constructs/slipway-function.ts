import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type CfnResource, Duration, Validations } from 'aws-cdk-lib';
import type { ITableV2 } from 'aws-cdk-lib/aws-dynamodb';
import { PolicyStatement, Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import type { IKey } from 'aws-cdk-lib/aws-kms';
import { Architecture, Runtime, Tracing } from 'aws-cdk-lib/aws-lambda';
import { NodejsFunction, OutputFormat } from 'aws-cdk-lib/aws-lambda-nodejs';
import { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { IQueue } from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { LAMBDA_BUNDLING, type LambdaEntry } from '../bundling.ts';
import { SECRET_GRANTS, secretStatements, TABLE_GRANTS, tableStatements } from './access.ts';
import { deploymentOptions } from './deployment.ts';

/**
 * Every Lambda of Slipway, with the defaults in one place (house style 8): Node 24 on arm64,
 * one ESM bundle per function, X-Ray, an explicit log group, and a role that holds only what
 * the function is granted (no AWSLambdaBasicExecutionRole with its `logs:*` on `*`).
 */

/** The repository root: entries, package.json `imports` and the lock file are resolved from it. */
export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/**
 * How the function is bundled: the settings of `infra/bundling.ts`, which the local builder
 * (`npm start -- --bundled`), the bundle test and the bench use as well, so that what they run
 * is what this construct packages.
 */
export { ESM_REQUIRE_BANNER, LAMBDA_BUNDLING } from '../bundling.ts';

/** The CDK context key holding deployment settings: `{"SLIPWAY_CLEANING_MINUTES": "15", ...}`. */
export const SETTINGS_CONTEXT = 'slipway:settings';

/**
 * Deployment settings (the `SLIPWAY_*` variables of docs/configuration.md, e.g. the cleaning
 * gap or Commissaire's commands) given as CDK context, set on every function alike so that the
 * API, the workflows and the agent API read the same values:
 * `npx cdk deploy --all -c 'slipway:settings={"SLIPWAY_CLEANING_MINUTES":"15"}'` or cdk.json.
 */
export function deploymentSettings(scope: Construct): Record<string, string> {
  const raw = scope.node.tryGetContext(SETTINGS_CONTEXT) as unknown;
  if (raw === undefined) return {};
  const settings = typeof raw === 'string' ? (JSON.parse(raw) as unknown) : raw;
  if (!settings || typeof settings !== 'object' || Array.isArray(settings)) throw new Error(`${SETTINGS_CONTEXT} must be an object of SLIPWAY_* settings`);
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(settings)) {
    if (!/^SLIPWAY_[A-Z0-9_]+$/.test(k)) throw new Error(`${SETTINGS_CONTEXT}: ${k} is not a SLIPWAY_* setting`);
    // Secrets do not belong in Lambda environment variables (visible to anyone who can read the function).
    if (/SECRET|TOKEN/.test(k)) throw new Error(`${SETTINGS_CONTEXT}: ${k} is a secret and cannot be a deployment setting`);
    out[k] = typeof v === 'string' ? v : JSON.stringify(v);
  }
  return out;
}

/**
 * Reserved concurrency, by service (the entry's file name). A reservation both guarantees and
 * caps: the workflows' task functions and the sweeper always find room however many agents
 * long-poll and clients call (leases cluster on round hours: many events start in the same
 * minute), and the agent API, whose claims hold an invocation for up to 20 s each, cannot take
 * the pool from them. The sum, 87, stays below the 100 a default account (1,000) must keep
 * unreserved, and 913 remain for the API surfaces. Why each number: docs/deploying-to-aws.md.
 * `-c slipway:reservedConcurrency=off` drops them (an account whose quota is still 10), an
 * object overrides some: `{"agent": 60}`.
 */
export const RESERVED_CONCURRENCY: Readonly<Record<string, number>> = {
  'lease-events': 25,
  'drydock-tasks': 25,
  'cluster-operations': 5,
  sweeper: 2,
  agent: 30,
};

export interface SlipwayFunctionProps {
  /** Entry file relative to the repository root, e.g. `functions/api/blazar.ts`. */
  entry: LambdaEntry;
  description?: string;
  /** Default 29 s, API Gateway's integration timeout: past it the client has already been answered. */
  timeout?: Duration;
  /** Default 512 MB: CPU scales with memory, and cold starts are what users feel. */
  memorySize?: number;
  environment?: Record<string, string>;
  /** Default one month. */
  logRetention?: RetentionDays;
  /**
   * Where a failed asynchronous invocation goes (the sweeper, run by an EventBridge rule); with
   * it, Lambda retries once and drops events older than five minutes (a newer run has come).
   * Without it the function is only invoked synchronously (API Gateway, Step Functions), whose
   * callers see every failure, and has no asynchronous path to guard.
   */
  asyncFailures?: IQueue;
}

export class SlipwayFunction extends Construct {
  readonly fn: NodejsFunction;
  readonly role: Role;
  readonly logGroup: LogGroup;
  readonly entry: LambdaEntry;
  /**
   * The function's purpose, from its entry's file name (`agent`, `lease-events`): the `Service`
   * dimension of its metrics (POWERTOOLS_SERVICE_NAME, read by layers/core/util/log.ts) and its
   * key in RESERVED_CONCURRENCY.
   */
  readonly service: string;

  constructor(scope: Construct, id: string, props: SlipwayFunctionProps) {
    super(scope, id);
    this.entry = props.entry;
    this.service = props.entry.replace(/^.*\//, '').replace(/\.ts$/, '');
    const reserved = deploymentOptions(this).reservedConcurrency;
    const reservation = reserved === false ? undefined : (reserved[this.service] ?? RESERVED_CONCURRENCY[this.service]);

    // Kept on stack deletion (CDK's default) for audit; the retention bounds what remains.
    this.logGroup = new LogGroup(this, 'Logs', { retention: props.logRetention ?? RetentionDays.ONE_MONTH });
    this.role = new Role(this, 'Role', { assumedBy: new ServicePrincipal('lambda.amazonaws.com') });
    this.logGroup.grantWrite(this.role);

    this.fn = new NodejsFunction(this, 'Fn', {
      entry: join(REPO_ROOT, props.entry),
      handler: 'handler',
      projectRoot: REPO_ROOT,
      depsLockFilePath: join(REPO_ROOT, 'package-lock.json'),
      description: props.description,
      runtime: Runtime.NODEJS_24_X,
      architecture: Architecture.ARM_64,
      memorySize: props.memorySize ?? 512,
      timeout: props.timeout ?? Duration.seconds(29),
      reservedConcurrentExecutions: reservation || undefined,
      tracing: Tracing.ACTIVE,
      role: this.role,
      logGroup: this.logGroup,
      // No NODE_OPTIONS=--enable-source-maps: no map ships (LAMBDA_BUNDLING.sourcemap).
      environment: { ...deploymentSettings(this), POWERTOOLS_SERVICE_NAME: this.service, ...props.environment },
      bundling: {
        format: OutputFormat.ESM,
        target: LAMBDA_BUNDLING.target,
        minify: LAMBDA_BUNDLING.minify,
        keepNames: LAMBDA_BUNDLING.keepNames,
        sourceMap: LAMBDA_BUNDLING.sourcemap,
        mainFields: [...LAMBDA_BUNDLING.mainFields],
        banner: LAMBDA_BUNDLING.banner,
        externalModules: [...LAMBDA_BUNDLING.external],
        bundleAwsSDK: false,
        forceDockerBundling: false,
      },
    });
    // The function waits for its role's policy (its log grant, its table...), as CDK has it, but
    // not for the role itself, which its `Role: GetAtt` already orders (cfn-lint W3005).
    const policy = this.role.node.tryFindChild('DefaultPolicy')?.node.defaultChild as CfnResource | undefined;
    if (policy) (this.fn.node.defaultChild as CfnResource).addOverride('DependsOn', [policy.logicalId]);
    Validations.of(this.role).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason: 'Active X-Ray tracing needs xray:PutTraceSegments and xray:PutTelemetryRecords, which support no resource-level permissions.',
    });
    if (props.asyncFailures) {
      // The destination by ARN, and SendMessage only (CDK's SqsDestination also grants queue reads Lambda does not make).
      const queue = props.asyncFailures;
      this.fn.configureAsyncInvoke({ onFailure: { bind: () => ({ destination: queue.queueArn }) }, retryAttempts: 1, maxEventAge: Duration.minutes(5) });
      this.role.addToPrincipalPolicy(new PolicyStatement({ actions: ['sqs:SendMessage'], resources: [queue.queueArn] }));
      Validations.of(this.fn).acknowledge({
        id: 'Serverless-LambdaDLQ',
        reason: 'Failed asynchronous invocations go to the on-failure destination queue (configureAsyncInvoke), which records the error with the event; a DeadLetterConfig would duplicate it with the event alone.',
      });
    } else {
      Validations.of(this.fn).acknowledge({
        id: 'Serverless-LambdaDLQ',
        reason: 'Invoked synchronously only (API Gateway, Step Functions): the caller receives every failure (an HTTP 5xx, a Task error its state machine retries); a dead-letter queue only ever receives asynchronous invocations.',
      });
    }
  }

  /**
   * Sets TABLE_NAME (read by the composition roots) and grants this function's TABLE_GRANTS entry
   * (infra/constructs/access.ts): its actions on its partitions only, Query on its indexes only.
   */
  grantTable(table: ITableV2): this {
    const grant = TABLE_GRANTS[this.entry];
    if (!grant) throw new Error(`${this.entry} has no table grant (TABLE_GRANTS)`);
    this.fn.addEnvironment('TABLE_NAME', table.tableName);
    for (const st of tableStatements(table, grant)) this.role.addToPrincipalPolicy(st);
    return this;
  }

  /** Sets SECRETS_KMS_KEY_ID and grants this function's SECRET_GRANTS entry on the key (by kind of secret). */
  grantSecrets(key: IKey): this {
    const grant = SECRET_GRANTS[this.entry];
    if (!grant) throw new Error(`${this.entry} has no secret grant (SECRET_GRANTS)`);
    this.fn.addEnvironment('SECRETS_KMS_KEY_ID', key.keyArn);
    for (const st of secretStatements(key, grant, deploymentOptions(this).legacySecrets)) this.role.addToPrincipalPolicy(st);
    return this;
  }
}
