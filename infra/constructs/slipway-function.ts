import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Duration, Validations } from 'aws-cdk-lib';
import type { ITableV2 } from 'aws-cdk-lib/aws-dynamodb';
import { PolicyStatement, Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import { Architecture, Runtime, Tracing } from 'aws-cdk-lib/aws-lambda';
import { NodejsFunction, OutputFormat, SourceMapMode } from 'aws-cdk-lib/aws-lambda-nodejs';
import { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { TABLE_INDEXES } from '#aws/dynamo/schema.ts';

/**
 * Every Lambda of Slipway, with the defaults in one place (house style 8): Node 24 on arm64,
 * one ESM bundle per function, X-Ray, an explicit log group, and a role that holds only what
 * the function is granted (no AWSLambdaBasicExecutionRole with its `logs:*` on `*`).
 */

/** The repository root: entries, package.json `imports` and the lock file are resolved from it. */
export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

// Shared with test/infra/bundle.test.ts, which bundles every entry with these same settings.
/** Some CJS dependencies `require()` builtins; ESM output has no `require` without this. */
export const ESM_REQUIRE_BANNER = "import { createRequire } from 'module';const require = createRequire(import.meta.url);";
/** Prefer ESM builds so the AWS SDK and zod tree-shake. */
export const MAIN_FIELDS = ['module', 'main'];
/**
 * Nothing external: the AWS SDK is bundled rather than taken from the runtime, so Lambda runs the
 * pinned version the tests and the local stack run (about +350 kB per function, measured).
 */
export const EXTERNAL_MODULES: string[] = [];

export type TableAccess = 'RO' | 'RW';

/** The CDK context key holding deployment settings: `{"SLIPWAY_CLEANING_MINUTES": "15", ...}`. */
export const SETTINGS_CONTEXT = 'slipway:settings';

/**
 * Deployment settings (the `SLIPWAY_*` variables of README "Configuration", e.g. the cleaning
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
 * DynamoDB actions per access mode. The local emulators enforce no IAM, so a repository that
 * starts using another command must add its action here; test/infra checks the adapters' commands
 * against this list. Transactions have no actions of their own: they need those of their items.
 */
export const TABLE_ACTIONS: Record<TableAccess, readonly string[]> = {
  RO: ['GetItem', 'BatchGetItem', 'Query'],
  RW: ['GetItem', 'BatchGetItem', 'Query', 'PutItem', 'UpdateItem', 'DeleteItem', 'BatchWriteItem', 'ConditionCheckItem'],
};

export interface SlipwayFunctionProps {
  /** Entry file relative to the repository root, e.g. `functions/api/blazar.ts`. */
  entry: string;
  description?: string;
  /** Default 29 s, API Gateway's integration timeout: past it the client has already been answered. */
  timeout?: Duration;
  /** Default 512 MB: CPU scales with memory, and cold starts are what users feel. */
  memorySize?: number;
  environment?: Record<string, string>;
  /** Default one month. */
  logRetention?: RetentionDays;
}

export class SlipwayFunction extends Construct {
  readonly fn: NodejsFunction;
  readonly role: Role;
  readonly logGroup: LogGroup;

  constructor(scope: Construct, id: string, props: SlipwayFunctionProps) {
    super(scope, id);

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
      tracing: Tracing.ACTIVE,
      role: this.role,
      logGroup: this.logGroup,
      environment: { NODE_OPTIONS: '--enable-source-maps', ...deploymentSettings(this), ...props.environment },
      bundling: {
        format: OutputFormat.ESM,
        minify: true,
        sourceMap: true,
        sourceMapMode: SourceMapMode.DEFAULT,
        // Stack traces need the mappings, not the sources; keeps the asset small.
        sourcesContent: false,
        mainFields: MAIN_FIELDS,
        banner: ESM_REQUIRE_BANNER,
        externalModules: EXTERNAL_MODULES,
        bundleAwsSDK: true,
        forceDockerBundling: false,
      },
    });
    Validations.of(this.role).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason: 'Active X-Ray tracing needs xray:PutTraceSegments and xray:PutTelemetryRecords, which support no resource-level permissions.',
    });
  }

  /**
   * Sets TABLE_NAME (read by `layers/aws/deps.ts`) and grants TABLE_ACTIONS[access] on the table
   * and its named indexes only (CDK's own grants add `index/*` and stream actions).
   */
  bindTable(table: ITableV2, access: TableAccess): this {
    this.fn.addEnvironment('TABLE_NAME', table.tableName);
    this.role.addToPrincipalPolicy(
      new PolicyStatement({
        actions: TABLE_ACTIONS[access].map((a) => `dynamodb:${a}`),
        resources: [table.tableArn, ...TABLE_INDEXES.map((ix) => `${table.tableArn}/index/${ix.indexName}`)],
      }),
    );
    return this;
  }
}
