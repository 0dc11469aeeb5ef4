import { createServer, request, type Server } from 'node:http';
import { readdirSync } from 'node:fs';
import { DynamoDBClient, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LAMBDA_ENTRIES } from '../../infra/bundling.ts';
import type { LocalStack } from '../../infra/local/stack.ts';
import { call, tokenFor, unique } from '../support/api.ts';
import { siteDesign } from '../support/drydock-site.ts';
import { blazarIn, hostPool, hostReservation } from '../support/fixtures.ts';
import { agentSite, claim, finish, ironic, mac, registerIpmiNode, type Site, states } from '../support/ironic-agent.ts';
import { startOwnStack } from '../support/own-stack.ts';
import { waitFor } from '../support/wait.ts';

/**
 * The tests run what AWS runs (issue 12): a local stack serving the very Lambda bundles CDK
 * deploys (`npm start -- --bundled`: built with the settings SlipwayFunction gives NodejsFunction,
 * each building its own ports from its environment, the SDK talking to local Step Functions,
 * Scheduler and EventBridge APIs), driven over HTTP. A defect only bundling makes (a class name
 * minified away, an adapter its function's root does not wire, an import the bundle lacks) fails
 * here while the sources pass everywhere else.
 *
 * The lease start meets a real lost compare-and-set: a DynamoDB proxy in front of the bundles lets
 * a competing writer move the lease just before the Begin step's transaction, which DynamoDB then
 * refuses. The function throws ConcurrentModificationError; only if Lambda reports that name as
 * the errorType does the state machine's Retry run Begin again (else its Catch fails the event).
 */
let stack: LocalStack;
let stopStack: () => Promise<void>;
let dynamo: DynamoProxy;
let webhook: Server;
let designs: Server;
const notices: { event_type: string; payload: Record<string, any> }[] = [];
const env: Record<string, string | undefined> = {};
let site: Site;

const listen = async (server: Server) => {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(server.address() as { port: number }).port}`;
};

interface DynamoProxy {
  url: string;
  /** Runs `hook` before forwarding each TransactWriteItems (with its parsed body). */
  onTransaction(hook: ((body: any) => Promise<void>) | undefined): void;
  close(): Promise<void>;
}

/** A transparent proxy to DynamoDB Local that lets the test act just before a transaction reaches it. */
async function dynamoProxy(target: string): Promise<DynamoProxy> {
  const upstream = new URL(target);
  let hook: ((body: any) => Promise<void>) | undefined;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', async () => {
      const body = Buffer.concat(chunks);
      if (hook && req.headers['x-amz-target'] === 'DynamoDB_20120810.TransactWriteItems') await hook(JSON.parse(body.toString('utf8')));
      const up = request({ host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers }, (r) => {
        res.writeHead(r.statusCode ?? 500, r.headers);
        r.pipe(res);
      });
      up.on('error', () => res.destroy());
      up.end(body);
    });
  });
  const url = await listen(server);
  return {
    url,
    onTransaction: (h) => (hook = h),
    close: () => new Promise((r) => server.close(() => r())),
  };
}

beforeAll(async () => {
  webhook = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      notices.push(JSON.parse(body));
      res.writeHead(204).end();
    });
  });
  env.SLIPWAY_NOTIFY_WEBHOOK = process.env.SLIPWAY_NOTIFY_WEBHOOK;
  process.env.SLIPWAY_NOTIFY_WEBHOOK = `${await listen(webhook)}/`;
  ({ stack, stop: stopStack } = await startOwnStack('bundled', { bundled: true }));
  // The bundles read DYNAMODB_ENDPOINT when they build their ports, at their first invocation (a
  // cold start); none has run yet. The in-process parts of the stack keep the direct endpoint.
  dynamo = await dynamoProxy(stack.dynamoEndpoint);
  env.DYNAMODB_ENDPOINT = process.env.DYNAMODB_ENDPOINT;
  process.env.DYNAMODB_ENDPOINT = dynamo.url;
  site = await agentSite('bundled-site');
}, 60_000);

afterAll(async () => {
  await stopStack?.();
  await dynamo?.close();
  for (const s of [webhook, designs]) if (s) await new Promise((r) => s.close(r));
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
});

/** Claims the site's next job as its agent (the bundled agent function), checking its kind. */
async function answer(kind: string, body: Record<string, unknown>) {
  const job = await waitFor(`a ${kind} job`, async () => (await claim(site.token))[0]);
  expect(job).toMatchObject({ kind });
  const res = await finish(site.token, job, body);
  expect(res.status, res.text).toBe(200);
  return job;
}

describe('the local stack serving the Lambda bundles', () => {
  it('serves every function from its bundle', async () => {
    const files = readdirSync(stack.bundles!.dir);
    expect(files.sort()).toEqual(LAMBDA_ENTRIES.map((e) => `${e.replace(/\.ts$/, '').replaceAll('/', '_')}.mjs`).sort());
    const health = await call('GET', '/healthz', { token: null });
    expect(health.status).toBe(200);
    // The local Step Functions, Scheduler and EventBridge APIs listen on loopback and answer only
    // requests that carry the stack's secret path (the SDK of the bundles, from their environment).
    const endpoint = new URL(process.env.AWS_ENDPOINT_URL_SFN!);
    expect(endpoint.hostname).toBe('127.0.0.1');
    const guessed = await fetch(`${endpoint.origin}/`, { method: 'POST', headers: { 'X-Amz-Target': 'AWSStepFunctions.StartExecution' }, body: '{}' });
    expect(guessed.status).toBe(403);
  });

  it('an Ironic power request is answered by the agent through the bundled agent API', async () => {
    const pool = await hostPool(1);
    const name = pool.hosts[0]!.name;
    await registerIpmiNode(site, { address: '10.9.9.21', password: 'bundled-pw' }, { name, ports: [mac()] });
    const on = await ironic('PUT', `/v1/nodes/${name}/states/power`, { target: 'power on' });
    expect(on.status, on.text).toBe(202);
    expect(await states(name)).toMatchObject({ target_power_state: 'power on' });
    const job = await answer('power', { status: 'succeeded', output: { power_state: 'power on' } });
    // The BMC password was sealed by the bundled Ironic function and opened for the agent by the agent function.
    expect(job.payload).toMatchObject({ target: 'power on', driver_info: { ipmi_password: 'bundled-pw' } });
    expect(await states(name)).toMatchObject({ power_state: 'power on', target_power_state: null });
  });

  it('a lease start runs the bundled lease-event steps: a lost compare-and-set is retried, the deploy job answers its task token', async () => {
    const member = await tokenFor('member');
    const pool = await hostPool(1);
    const name = pool.hosts[0]!.name;
    const m = mac();
    await registerIpmiNode(site, { address: '10.9.9.22', password: 'bundled-pw' }, { name, ports: [m] });
    expect((await ironic('PUT', `/v1/nodes/${name}/states/provision`, { target: 'manage' })).status).toBe(202);
    await answer('power_state', { status: 'succeeded', output: { power_state: 'power off' } });
    expect((await ironic('PUT', `/v1/nodes/${name}/states/provision`, { target: 'provide' })).status).toBe(202);
    await answer('clean', { status: 'succeeded', output: { disks: [], boot_mac: m } });
    expect((await states(name)).provision_state).toBe('available');

    // Begin's transaction moves the start event from UNDONE, guarded by the lease's version. Just
    // before the first one for the start event reaches DynamoDB, a competing writer moves that
    // version on. (Begin itself never retries: a lost race leaves the function as its error.)
    const direct = new DynamoDBClient({ endpoint: stack.dynamoEndpoint, region: process.env.AWS_REGION ?? 'us-east-1', credentials: { accessKeyId: 'local', secretAccessKey: 'local' } });
    let begins = 0;
    dynamo.onTransaction(async (body) => {
      const items = (body.TransactItems ?? []) as any[];
      // The lease's META row holds its events' state: Begin's write is the one that puts the start IN_PROGRESS.
      const meta = items.find((i) => i.Put?.Item?.SK?.S === 'META' && i.Put.ConditionExpression === '#v = :v');
      const states = Object.values(meta?.Put.Item.event_states?.M ?? {}) as any[];
      const fromUndone = states.some((e) => e.M?.event_type?.S === 'start_lease' && e.M?.status?.S === 'IN_PROGRESS');
      if (!fromUndone || !meta) return;
      if (++begins > 1) return;
      await direct.send(
        new UpdateItemCommand({
          TableName: body.TransactItems[0].Put.TableName,
          Key: { PK: meta.Put.Item.PK, SK: meta.Put.Item.SK },
          UpdateExpression: 'SET #v = #v + :one',
          ExpressionAttributeNames: { '#v': 'version' },
          ExpressionAttributeValues: { ':one': { N: '1' } },
        }),
      );
    });
    try {
      const res = await call('POST', '/v1/leases', {
        token: member.token,
        body: { name: unique('lease'), start_date: 'now', end_date: blazarIn(60), reservations: [hostReservation(pool.filter, 1, 1, { 'slipway:image': 'debian-12' })], events: [] },
      });
      expect(res.status, res.text).toBe(201);
      const leaseId = res.body.lease.id as string;
      // The start deploys the node: a callback Task whose token the agent's result answers
      // (the bundled agent function's SendTaskSuccess, through the SDK). Were the refused Begin
      // not retried, the event would fail instead, and the lease with it: say so at once.
      const leaseNow = async () => (await call('GET', `/v1/leases/${leaseId}`)).body.lease;
      const job = await waitFor('the deploy job (or the lease failing)', async () => {
        const l = await leaseNow();
        if (l.status === 'ERROR') throw new Error(`the lease failed: ${JSON.stringify(l.events)}`);
        return (await claim(site.token))[0];
      });
      expect(job).toMatchObject({ kind: 'deploy_node' });
      expect((await finish(site.token, job, { status: 'succeeded', output: { method: 'image' } })).status).toBe(200);
      expect(job.payload).toMatchObject({ image: 'debian-12', require_image: true });
      const lease = await waitFor('the lease to be ACTIVE', async () => {
        const l = await leaseNow();
        return l.status === 'ACTIVE' || l.status === 'ERROR' ? l : undefined;
      });
      expect(lease.status).toBe('ACTIVE');
      expect(lease.events.find((e: any) => e.event_type === 'start_lease')).toMatchObject({ status: 'DONE' });
      // The start's Begin ran twice: once refused, once again by the state machine's Retry (the
      // start's only execution; the other is its before_end, due at the start too).
      expect(begins).toBe(2);
      expect(stack.lifecycle.runner.stats).toMatchObject({ executions: 2, failed: 0 });
      // The notifications went out through EventBridge's PutEvents.
      await waitFor('the start notification', async () => notices.some((n) => n.event_type === 'lease.event.start_lease' && n.payload.lease_id === leaseId));
      expect((await states(name)).provision_state).toBe('active');
    } finally {
      dynamo.onTransaction(undefined);
      direct.destroy();
    }
  });

  it('a Drydock task runs its steps in the bundled task function', async () => {
    const design = siteDesign({ site: unique('dd'), redfishPort: 8000, nodes: ['b01'], root: '/tmp/slipway-bundled' });
    designs = createServer((_req, res) => res.writeHead(200, { 'Content-Type': 'application/x-yaml' }).end(design));
    const base = await listen(designs);
    const created = await call('POST', '/api/v1.0/tasks', { body: { action: 'validate_design', design_ref: `${base}/site.yaml`, node_filter: null } });
    expect(created.status, created.text).toBe(201);
    const task = await waitFor('the task to complete', async () => {
      const t = (await call('GET', `/api/v1.0/tasks/${created.body.task_id}`)).body;
      return t.status === 'complete' ? t : undefined;
    });
    expect(task.result).toMatchObject({ status: 'success' });
    expect(stack.lifecycle.tasks.stats).toMatchObject({ executions: 1, failed: 0 });
  });
});
