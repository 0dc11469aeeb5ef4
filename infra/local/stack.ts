import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { join, resolve } from 'node:path';
import S3rver from 's3rver';
import { buildDeps, localCallbacks, setDeps, systemClock } from '#aws/deps.ts';
import type { Clock } from '#core/ports.ts';
import { synthClusterOperationsAsl, synthDrydockTasksAsl, synthLeaseEventsAsl } from '../workflows/asl.ts';
import { LocalLifecycle } from './lifecycle.ts';
import { DEFAULT_TABLE_NAME } from '#aws/dynamo/schema.ts';
import { newTokenSecret } from '#core/identity/identity.ts';
import { ensureToken } from '#core/identity/tokens.ts';
import { reconcileCalendars } from '#core/leases/reconcile.ts';
import { ensureTable } from '#aws/dynamo/local-table.ts';
import { freePort, startDynamoLocal } from './dynamodb.ts';
import { startHttpServer } from './server.ts';

/**
 * The whole system in one process (DESIGN.md §8): DynamoDB Local, s3rver, and the HTTP server
 * serving the route table through the real handlers. Data lives under `dataDir` and survives
 * restarts unless `ephemeral` (tests) keeps DynamoDB in memory.
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
}

export interface LocalStack {
  url: string;
  adminToken: string;
  adminTokenFile?: string;
  dynamoEndpoint: string;
  s3Endpoint: string;
  dataDir: string;
  /** Lease timing and the lease-event workflow runner (tests sweep and wait on it). */
  lifecycle: LocalLifecycle;
  stop(): Promise<void>;
}

export const BOOTDATA_BUCKET = 'slipway-bootdata';

export function defaultDataDir(): string {
  return resolve(process.env.SLIPWAY_DATA_DIR ?? '.slipway');
}

export async function startLocalStack(opts: LocalStackOptions = {}): Promise<LocalStack> {
  const dataDir = resolve(opts.dataDir ?? defaultDataDir());
  mkdirSync(dataDir, { recursive: true });
  const stoppers: (() => Promise<void>)[] = [];
  const stop = async () => {
    for (const s of stoppers.reverse()) await s().catch(() => undefined);
  };
  try {
    const ddb = await startDynamoLocal({ dbPath: opts.ephemeral ? undefined : join(dataDir, 'dynamodb') });
    stoppers.push(ddb.stop);

    const s3Dir = join(dataDir, 's3');
    mkdirSync(s3Dir, { recursive: true });
    const s3 = new S3rver({
      address: '127.0.0.1',
      port: await freePort(),
      silent: true,
      directory: s3Dir,
      configureBuckets: [{ name: BOOTDATA_BUCKET, configs: [] }],
    });
    const s3Addr = (await s3.run()) as unknown as { address: string; port: number };
    stoppers.push(() => s3.close());
    const s3Endpoint = `http://127.0.0.1:${s3Addr.port}`;

    const tableName = DEFAULT_TABLE_NAME;
    await ensureTable(ddb.endpoint, tableName);
    const env: Record<string, string> = {
      TABLE_NAME: tableName,
      DYNAMODB_ENDPOINT: ddb.endpoint,
      S3_ENDPOINT: s3Endpoint,
      BOOTDATA_BUCKET,
      // BMC passwords the cloud holds are sealed with this key (created on first start).
      SLIPWAY_SECRET_KEY_FILE: join(dataDir, 'secret.key'),
      ...(opts.env ?? {}),
    };
    // The handlers read their settings from the environment, as on Lambda.
    Object.assign(process.env, env);
    const clock = opts.clock ?? systemClock;
    const lifecycle = new LocalLifecycle({
      // The workflow definition CDK deploys, synthesized now and run in-process.
      asl: synthLeaseEventsAsl(),
      operationsAsl: synthClusterOperationsAsl(),
      tasksAsl: synthDrydockTasksAsl({ ...process.env, ...env }),
      clock,
      callbacks: localCallbacks,
      webhook: process.env.SLIPWAY_NOTIFY_WEBHOOK || undefined,
      sweepIntervalMs: opts.sweepIntervalMs,
    });
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

    const { server, url } = await startHttpServer(opts.port ?? 8080, opts.host ?? '127.0.0.1');
    stoppers.push(() => closeServer(server));
    // Deploying nodes report to this stack unless the operator named another address.
    if (!env.SLIPWAY_DRYDOCK_REPORT_URL && !process.env.SLIPWAY_DRYDOCK_REPORT_URL) deps.config.drydock.reportUrl = `${url}/api/v1.0/bootactions/`;
    // Events due while the stack was stopped run now; the rest get their timers.
    await lifecycle.start();
    stoppers.push(() => lifecycle.stop());
    return { url, adminToken, adminTokenFile, dynamoEndpoint: ddb.endpoint, s3Endpoint, dataDir, lifecycle, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

function closeServer(server: Server): Promise<void> {
  return new Promise((res) => {
    server.close(() => res());
    server.closeAllConnections();
  });
}
