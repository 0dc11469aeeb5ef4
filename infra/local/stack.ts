import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import S3rver from 's3rver';
import { buildDeps, localCallbacks, setDeps, systemClock } from '#aws/deps.ts';
import type { Clock } from '#core/ports.ts';
import { LocalLifecycle } from './lifecycle.ts';
import { synthWorkflowAsls } from './workflow-asl.ts';
import { DEFAULT_TABLE_NAME } from '#aws/dynamo/schema.ts';
import { newTokenSecret } from '#core/identity/identity.ts';
import { ensureToken } from '#core/identity/tokens.ts';
import { reconcileCalendars } from '#core/leases/reconcile.ts';
import { log } from '#core/util/log.ts';
import { ensureTable } from '#aws/dynamo/local-table.ts';
import { freePort, LAUNCHER_CACHED_NOTE, LAUNCHER_PATCHED_NOTE, startDynamoLocal } from './dynamodb.ts';
import { LOCAL_S3_KEY_ID, requireSigV4 } from './s3-auth.ts';
import { type LocalHttpServer, startHttpServer } from './server.ts';
import { startLocalAwsApis } from './aws-apis.ts';
import { buildLambdaBundles, type LambdaBundles } from './bundles.ts';
import { bundledFunctions } from './functions.ts';
import { type Handler, invokeLambda, lambdaContext } from './lambda.ts';
import type { LambdaEntry } from '../bundling.ts';
import type { LeaseEventRef } from '#core/leases/lifecycle.ts';

/**
 * The whole system in one process (DESIGN.md §8): DynamoDB Local, s3rver, and the HTTP server
 * serving the route table through the real handlers. Data lives under `dataDir` and survives
 * restarts unless `ephemeral` (tests) keeps DynamoDB in memory.
 *
 * Exposure: all three listen on 127.0.0.1 only (DynamoDB Local through its loopback launcher,
 * the API unless `host` says otherwise); s3rver answers only requests signed with AWS SigV4
 * (s3-auth.ts) with the stack's own secret; the data directory is made 0700 and what the stack
 * keeps in it (dynamodb/, s3/, s3-secret, secret.key, admin-token) owner-only, also when an older version left it readable.
 */
export interface LocalStackOptions {
  port?: number;
  host?: string;
  dataDir?: string;
  /** Keep DynamoDB in memory (tests); data is lost on stop. */
  ephemeral?: boolean;
  adminToken?: string;
  /** Extra environment for the handlers (settings such as SLIPWAY_CLEANING_MINUTES). */
  env?: Record<string, string>;
  /** The clock of every use-case and of the lease-event timers (tests move it). */
  clock?: Clock;
  /** How often the lease-event sweeper runs (default one minute, as on AWS). */
  sweepIntervalMs?: number;
  /**
   * Serve the Lambda bundles CDK deploys instead of the sources (`npm start -- --bundled`): the
   * surfaces and every workflow step run the bundles' exported handlers, invoked as Lambda invokes
   * them; each bundle builds its own ports from the environment, as on Lambda, and its AWS
   * adapters reach the local stack's workflow runners, timers and notifier through a local slice
   * of the Step Functions, Scheduler and EventBridge APIs (aws-apis.ts). Runs on the system clock.
   */
  bundled?: boolean;
}

export interface LocalStack {
  url: string;
  adminToken: string;
  adminTokenFile?: string;
  dynamoEndpoint: string;
  s3Endpoint: string;
  dataDir: string;
  /** DynamoDB Local's JVM (tests check what it listens on). */
  dynamoPid?: number;
  /** Lease timing and the lease-event workflow runner (tests sweep and wait on it). */
  lifecycle: LocalLifecycle;
  /** With `bundled`: the bundles it serves. */
  bundles?: LambdaBundles;
  stop(): Promise<void>;
}

/** The state machines and the rest of what the CDK stacks give the functions, for the bundles (local names). */
const LOCAL_ARN = (name: string) => `arn:aws:states:local:000000000000:stateMachine:${name}`;
const BUNDLED_ENV = {
  LEASE_EVENTS_STATE_MACHINE_ARN: LOCAL_ARN('slipway-lease-events'),
  CLUSTER_OPERATIONS_STATE_MACHINE_ARN: LOCAL_ARN('slipway-cluster-operations'),
  DRYDOCK_TASKS_STATE_MACHINE_ARN: LOCAL_ARN('slipway-drydock-tasks'),
  SCHEDULER_GROUP: 'slipway-lease-events',
  SCHEDULER_ROLE_ARN: 'arn:aws:iam::000000000000:role/slipway-scheduler',
  EVENT_BUS_NAME: 'slipway',
  // The AWS SDK signs every request; these credentials only reach the local APIs.
  AWS_ACCESS_KEY_ID: 'local',
  AWS_SECRET_ACCESS_KEY: 'local',
  AWS_EC2_METADATA_DISABLED: 'true',
};

/** Sets `vars` in process.env and returns what puts the previous values back. */
function setEnv(vars: Record<string, string>): () => void {
  const before = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  Object.assign(process.env, vars);
  return () => {
    for (const [k, v] of Object.entries(before)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  };
}

export const BOOTDATA_BUCKET = 'slipway-bootdata';

export function defaultDataDir(): string {
  return resolve(process.env.SLIPWAY_DATA_DIR ?? '.slipway');
}

export async function startLocalStack(opts: LocalStackOptions = {}): Promise<LocalStack> {
  const dataDir = resolve(opts.dataDir ?? defaultDataDir());
  prepareDataDir(dataDir);
  const stoppers: (() => Promise<void>)[] = [];
  const stop = async () => {
    for (const s of stoppers.reverse()) await s().catch(() => undefined);
  };
  try {
    const ddb = await startDynamoLocal({ dbPath: opts.ephemeral ? undefined : join(dataDir, 'dynamodb') });
    stoppers.push(ddb.stop);
    // E.g. a DynamoDB Local whose internals the launcher does not know: slower, still correct.
    for (const note of ddb.launcherNotes()) if (note !== LAUNCHER_CACHED_NOTE && note !== LAUNCHER_PATCHED_NOTE) log.warn('DynamoDB Local launcher', { note });

    const s3Dir = join(dataDir, 's3');
    mkdirSync(s3Dir, { recursive: true, mode: 0o700 });
    const s3 = new S3rver({
      address: '127.0.0.1',
      port: await freePort(),
      silent: true,
      directory: s3Dir,
      configureBuckets: [{ name: BOOTDATA_BUCKET, configs: [] }],
    });
    // s3rver is a Koa application: this check runs before any of its own middleware, so an
    // unsigned (or wrongly signed) request never reaches its router.
    const s3Secret = ownSecret(join(dataDir, 's3-secret'));
    (s3 as unknown as { middleware: unknown[] }).middleware.unshift(requireSigV4({ [LOCAL_S3_KEY_ID]: s3Secret }));
    const s3Addr = (await s3.run()) as unknown as { address: string; port: number };
    stoppers.push(() => s3.close());
    const s3Endpoint = `http://127.0.0.1:${s3Addr.port}`;

    const tableName = DEFAULT_TABLE_NAME;
    await ensureTable(ddb.endpoint, tableName);
    const env: Record<string, string> = {
      TABLE_NAME: tableName,
      DYNAMODB_ENDPOINT: ddb.endpoint,
      S3_ENDPOINT: s3Endpoint,
      S3_SECRET_ACCESS_KEY: s3Secret,
      BOOTDATA_BUCKET,
      // BMC passwords the cloud holds are sealed with this key (created on first start).
      SLIPWAY_SECRET_KEY_FILE: join(dataDir, 'secret.key'),
      ...(opts.env ?? {}),
    };
    // The handlers read their settings from the environment, as on Lambda.
    Object.assign(process.env, env);
    if (opts.bundled && opts.clock) throw new Error('a bundled local stack runs on the system clock (the bundles build their own)');
    const clock = opts.clock ?? systemClock;
    let bundles: LambdaBundles | undefined;
    if (opts.bundled) {
      bundles = await buildLambdaBundles();
      stoppers.push(async () => bundles!.remove());
      // esbuild's service process keeps the memory of the build (about 340 MiB) until it exits;
      // nothing else in this process needs it (a later build would start it again).
      await (await import('esbuild')).stop();
    }
    // A workflow function's bundle, invoked as Step Functions' Lambda task invokes it.
    const bundled = (entry: LambdaEntry, name: string) => async (input: unknown) => invokeLambda(await bundles!.handler<Handler>(entry), input, lambdaContext(name));
    // The workflow definitions CDK deploys, synthesized now (in a child process: workflow-asl.ts)
    // and run in-process.
    const asls = await synthWorkflowAsls({ ...process.env, ...env });
    const lifecycle = new LocalLifecycle({
      asl: asls.leaseEvents,
      operationsAsl: asls.clusterOperations,
      tasksAsl: asls.drydockTasks,
      tasksPrepareFunctionArn: asls.drydockPrepareFunctionArn,
      clock,
      callbacks: localCallbacks,
      webhook: process.env.SLIPWAY_NOTIFY_WEBHOOK || undefined,
      sweepIntervalMs: opts.sweepIntervalMs,
      functions: bundles && {
        leaseEvents: bundled('functions/workflows/lease-events.ts', 'slipway-lease-events'),
        clusterOperations: bundled('functions/workflows/cluster-operations.ts', 'slipway-cluster-operations'),
        drydockPrepare: bundled('functions/workflows/drydock-prepare.ts', 'slipway-drydock-prepare'),
        drydockTasks: bundled('functions/workflows/drydock-tasks.ts', 'slipway-drydock-tasks'),
        sweeper: bundled('functions/workflows/sweeper.ts', 'slipway-sweeper'),
      },
    });
    if (bundles) {
      const apis = await startLocalAwsApis({
        startExecution: async (arn, name, input) => {
          const i = input as Record<string, string>;
          // The execution input is the event's ids, all the runner reads of a LeaseEventRef.
          if (arn === BUNDLED_ENV.LEASE_EVENTS_STATE_MACHINE_ARN) await lifecycle.runner.start({ lease_id: i.lease_id!, event_id: i.event_id! } as LeaseEventRef, name);
          else if (arn === BUNDLED_ENV.CLUSTER_OPERATIONS_STATE_MACHINE_ARN) await lifecycle.operations.start(input as never, name);
          else if (arn === BUNDLED_ENV.DRYDOCK_TASKS_STATE_MACHINE_ARN) await lifecycle.tasks.start(input as never, name);
          else throw new Error(`no state machine ${arn}`);
        },
        callbacks: localCallbacks,
        publish: (type, detail) => lifecycle.notifier.publish(type, detail),
      });
      stoppers.push(() => apis.close());
      const restore = setEnv({ ...BUNDLED_ENV, AWS_REGION: process.env.AWS_REGION || 'us-east-1', ...apis.endpoints });
      stoppers.push(async () => restore());
    }
    const deps = buildDeps({ ...process.env, ...env }, clock, () => lifecycle.ports());
    lifecycle.bind(deps);
    setDeps(deps);

    let adminToken = opts.adminToken ?? process.env.SLIPWAY_ADMIN_TOKEN;
    let adminTokenFile: string | undefined;
    if (!adminToken) {
      adminTokenFile = join(dataDir, 'admin-token');
      if (existsSync(adminTokenFile)) adminToken = readFileSync(adminTokenFile, 'utf8').trim();
      else {
        adminToken = newTokenSecret();
        writeFileSync(adminTokenFile, `${adminToken}\n`, { mode: 0o600 });
      }
    }
    await ensureToken(deps, adminToken, { project_id: 'admin', user_id: 'admin', roles: ['admin'] });
    // A booking interrupted by a stop (a large lease between its steps) is repaired on start.
    await reconcileCalendars(deps);

    const http = await startHttpServer(opts.port ?? 8080, opts.host ?? '127.0.0.1', bundles && bundledFunctions(bundles));
    const { url } = http;
    stoppers.push(() => closeServer(http));
    // Deploying nodes report to this stack unless the operator named another address.
    if (!env.SLIPWAY_DRYDOCK_REPORT_URL && !process.env.SLIPWAY_DRYDOCK_REPORT_URL) {
      deps.config.drydock.reportUrl = `${url}/api/v1.0/bootactions/`;
      // The bundles read it from their environment (at their first invocation, as at a cold start).
      if (bundles) {
        const restore = setEnv({ SLIPWAY_DRYDOCK_REPORT_URL: deps.config.drydock.reportUrl });
        stoppers.push(async () => restore());
      }
    }
    // Events due while the stack was stopped run now; the rest get their timers.
    await lifecycle.start();
    stoppers.push(() => lifecycle.stop());
    return { url, adminToken, adminTokenFile, dynamoEndpoint: ddb.endpoint, s3Endpoint, dataDir, dynamoPid: ddb.pid, lifecycle, bundles, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** What the stack keeps in its data directory; only these are made owner-only when they exist. */
const OWN_ENTRIES = ['dynamodb', 's3', 's3-secret', 'secret.key', 'admin-token'];

/** A random secret kept in `file` (0600), made on first start. */
function ownSecret(file: string): string {
  if (existsSync(file)) return readFileSync(file, 'utf8').trim();
  const secret = randomBytes(32).toString('base64url');
  writeFileSync(file, `${secret}\n`, { mode: 0o600 });
  return secret;
}

/**
 * Creates the data directory 0700, or makes an existing one 0700 and everything the stack keeps
 * in it owner-only (directories 0700, files 0600): an older version left them 0755/0644. Refuses
 * a directory it does not own or a shared one (sticky bit, like /tmp), which it must not chmod.
 */
export function prepareDataDir(dataDir: string): void {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const st = statSync(dataDir);
  if (!st.isDirectory()) throw new Error(`data directory ${dataDir} is not a directory`);
  const uid = process.getuid?.();
  if (uid !== undefined && uid !== 0 && st.uid !== uid) throw new Error(`data directory ${dataDir} belongs to uid ${st.uid}, not to this user (${uid}); set SLIPWAY_DATA_DIR to a directory of your own`);
  if (st.mode & 0o1000) throw new Error(`data directory ${dataDir} is a shared directory (sticky bit); set SLIPWAY_DATA_DIR to a directory of its own inside it`);
  if ((st.mode & 0o777) !== 0o700) chmodSync(dataDir, 0o700);
  for (const name of OWN_ENTRIES) restrictTree(join(dataDir, name));
}

function restrictTree(path: string): void {
  let st;
  try {
    st = lstatSync(path);
  } catch {
    return;
  }
  // Symbolic links are left alone (their mode means nothing; their target is not ours to change).
  if (st.isSymbolicLink()) return;
  if (st.isDirectory()) {
    if ((st.mode & 0o777) !== 0o700) chmodSync(path, 0o700);
    for (const entry of readdirSync(path)) restrictTree(join(path, entry));
  } else if (st.mode & 0o077) {
    chmodSync(path, st.mode & 0o700);
  }
}

/** Stops taking requests, then waits (a few seconds at most) for those still running. */
async function closeServer({ server, drained }: LocalHttpServer): Promise<void> {
  await new Promise<void>((res) => {
    server.close(() => res());
    server.closeAllConnections();
  });
  await drained(5000);
}

