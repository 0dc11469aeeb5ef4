import { createSocket, type Socket } from 'node:dgram';
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { SendTaskHeartbeatCommand, SFNClient } from '@aws-sdk/client-sfn';
import { GetCommand } from '@aws-sdk/lib-dynamodb';
import type { Context } from 'aws-lambda';
import { afterEach, beforeEach, describe, expect, inject, it, vi } from 'vitest';
import { handler as system } from '../../functions/api/system.ts';
import { makeDynamo } from '../../layers/aws/dynamo/client.ts';
import { awsNotifier } from '../../layers/aws/eventbridge-notifier.ts';
import { SfnTaskCallbacks } from '../../layers/aws/sfn-callbacks.ts';
import { traceAwsClient } from '../../layers/aws/xray.ts';
import { enqueueJob } from '../../layers/core/agent/enqueue.ts';
import { ClaimRequest } from '../../layers/core/agent/jobs.ts';
import { claimJobs, finishJob } from '../../layers/core/agent/kinds.ts';
import { reportSiteSilence } from '../../layers/core/agent/presence.ts';
import type { Principal } from '../../layers/core/identity/identity.ts';
import { sweepEvents } from '../../layers/core/leases/engine.ts';
import { notify } from '../../layers/core/leases/triggers.ts';
import type { Ports } from '../../layers/core/ports.ts';
import { lambdaHandler, log } from '../../layers/core/util/log.ts';
import { metric, setMetricSink } from '../../layers/core/util/metrics.ts';
import { type HttpEvent, ok, surface } from '../../layers/http/surface.ts';
import { call, tokenFor, unique } from '../support/api.ts';
import { sharedDeps } from '../support/agent.ts';
import { hostPool, leaseBody } from '../support/fixtures.ts';
import { cachedToken } from '../support/principal.ts';

/**
 * Observability as deployed: log lines carry the Lambda request id and the X-Ray trace id of
 * their invocation (and never a secret), each alarm signal is an EMF line, and SDK calls become
 * X-Ray subsegments sent to the daemon. Handlers are driven as Lambda drives them (an event, a
 * context, `_X_AMZN_TRACE_ID`); the signals come from the real use-cases against the shared
 * local stack, and the failing answers from the real AWS adapters talking to a closed port.
 */
const TRACE_ROOT = '1-6745c0de-0123456789abcdef01234567';
const TRACE = `Root=${TRACE_ROOT};Parent=53995c3f42cd8ad8;Sampled=1`;
/** Nothing listens on port 1 of loopback: the SDK's calls fail at once with ECONNREFUSED. */
const CLOSED = 'http://127.0.0.1:1';
const offline = { region: 'us-east-1', endpoint: CLOSED, credentials: { accessKeyId: 'test', secretAccessKey: 'test' }, maxAttempts: 1 };

const lambdaContext = (awsRequestId: string) => ({ awsRequestId, functionName: 'slipway-test', getRemainingTimeInMillis: () => 29_000 }) as unknown as Context;

function httpEvent(routeKey: string, rawPath: string, headers: Record<string, string> = {}): HttpEvent {
  const [method] = routeKey.split(' ');
  return {
    version: '2.0',
    routeKey,
    rawPath,
    rawQueryString: '',
    headers: { accept: 'application/json', ...headers },
    isBase64Encoded: false,
    requestContext: {
      accountId: '000000000000',
      apiId: 'test',
      domainName: 'test.local',
      domainPrefix: 'test',
      http: { method: method!, path: rawPath, protocol: 'HTTP/1.1', sourceIp: '127.0.0.1', userAgent: 'vitest' },
      requestId: 'apigw-request-1',
      routeKey,
      stage: '$default',
      time: new Date().toISOString(),
      timeEpoch: Date.now(),
    },
  } as HttpEvent;
}

/** Every JSON line written to stdout and stderr while `fn` runs (at info level). */
async function linesOf(fn: () => Promise<unknown>): Promise<Record<string, any>[]> {
  const captured: string[] = [];
  const grab = (chunk: unknown) => {
    captured.push(String(chunk));
    return true;
  };
  const out = vi.spyOn(process.stdout, 'write').mockImplementation(grab);
  const err = vi.spyOn(process.stderr, 'write').mockImplementation(grab);
  const level = process.env.SLIPWAY_LOG_LEVEL;
  process.env.SLIPWAY_LOG_LEVEL = 'info';
  try {
    await fn();
  } finally {
    out.mockRestore();
    err.mockRestore();
    process.env.SLIPWAY_LOG_LEVEL = level;
  }
  return captured
    .join('')
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, any>);
}

/** The EMF lines emitted while `fn` runs, read through the metrics sink. */
async function metricsOf(fn: () => Promise<unknown>): Promise<Record<string, any>[]> {
  const lines: string[] = [];
  setMetricSink((l) => lines.push(l));
  try {
    await fn();
  } finally {
    setMetricSink(undefined);
  }
  return lines.map((l) => JSON.parse(l) as Record<string, any>);
}

const datapoints = (lines: Record<string, any>[], name: string) =>
  lines.filter((l) => l._aws?.CloudWatchMetrics?.[0]?.Metrics?.some((m: { Name: string }) => m.Name === name));

beforeEach(() => {
  process.env._X_AMZN_TRACE_ID = TRACE;
});
afterEach(() => {
  delete process.env._X_AMZN_TRACE_ID;
  delete process.env.POWERTOOLS_SERVICE_NAME;
  delete process.env.AWS_XRAY_DAEMON_ADDRESS;
});

describe('logs', () => {
  it('carry the Lambda request id, the trace id and the API request id on a surface request', async () => {
    let res: Awaited<ReturnType<typeof system>> | undefined;
    const lines = await linesOf(async () => {
      res = await system(httpEvent('GET /healthz', '/healthz'), lambdaContext('lambda-request-1'));
    });
    expect(res!.statusCode).toBe(200);
    const access = lines.find((l) => l.msg === 'request');
    expect(access).toMatchObject({
      level: 'info',
      function_request_id: 'lambda-request-1',
      xray_trace_id: TRACE_ROOT,
      request_id: res!.headers!['X-Request-Id'],
      apigw_request_id: 'apigw-request-1',
      status: 200,
    });
    expect(typeof access!.cold_start).toBe('boolean');
  });

  it('keep each invocation its own ids while several run at once in one process (the local stack)', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const h = surface(
      { style: 'sahara', jsonSuffix: false, anonymous: ['GET /slow/{n}'] },
      {
        'GET /slow/{n}': async ({ path }) => {
          await gate;
          log.info('handled', { n: path.n });
          return ok({ n: path.n });
        },
      },
    );
    const lines = await linesOf(async () => {
      const runs = ['a', 'b', 'c'].map((n) => h({ ...httpEvent('GET /slow/{n}', `/slow/${n}`), pathParameters: { n } }, lambdaContext(`lambda-${n}`)));
      release();
      await Promise.all(runs);
    });
    const handled = lines.filter((l) => l.msg === 'handled');
    expect(handled).toHaveLength(3);
    for (const l of handled) expect(l.function_request_id).toBe(`lambda-${l.n}`);
  });

  it('carry the ids in a wrapped workflow handler too', async () => {
    const step = lambdaHandler(async (event: { x: number }) => {
      log.warn('step ran', { x: event.x });
      return event.x;
    });
    const lines = await linesOf(() => step({ x: 7 }, { awsRequestId: 'lambda-step-1' }));
    expect(lines.find((l) => l.msg === 'step ran')).toMatchObject({ function_request_id: 'lambda-step-1', xray_trace_id: TRACE_ROOT, x: 7 });
  });

  it('never carry a token, a password or a presigned signature', async () => {
    const secretToken = 'slp_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_abcd';
    const admin: Principal = { token_id: 'tok1', project_id: 'admin', user_id: 'admin', roles: ['admin'] };
    const h = surface(
      { style: 'sahara', jsonSuffix: false },
      {
        'GET /boom': async () => {
          throw new Error(`upstream said no to ${secretToken} at https://ops:hunter2@cm.example/api?X-Amz-Signature=deadbeef`);
        },
      },
      sharedDeps,
    );
    const lines = await linesOf(async () => {
      // An unknown token is a 401 without a line that quotes it...
      const refused = await h(httpEvent('GET /boom', '/boom', { 'x-auth-token': secretToken }), lambdaContext('lambda-401'));
      expect(refused.statusCode).toBe(401);
      // ... an internal error's message is scrubbed ...
      const failed = await h(httpEvent('GET /boom', '/boom', { 'x-auth-token': cachedToken(admin) }), lambdaContext('lambda-500'));
      expect(failed.statusCode).toBe(500);
      // ... and so are fields named like secrets.
      log.warn('fields', { password: 'hunter2', task_token: 'AAAA-task-token', token_id: 'tok1', url: 'https://b.s3/x?X-Amz-Credential=AKIA&X-Amz-Signature=abc' });
      // The agent's boot service logs request paths, whose tokens are the boot LAN's secrets.
      log.warn('boot service request failed', { url: '/configdrive/Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MA.tar' });
    });
    const text = lines.map((l) => JSON.stringify(l)).join('\n');
    expect(lines.find((l) => l.msg === 'unhandled error')?.message).toBe('upstream said no to slp_*** at https://ops:***@cm.example/api?X-Amz-Signature=***');
    expect(lines.find((l) => l.msg === 'fields')).toMatchObject({ password: '***', task_token: '***', token_id: 'tok1', url: 'https://b.s3/x?X-Amz-Credential=***&X-Amz-Signature=***' });
    expect(lines.find((l) => l.msg === 'boot service request failed')?.url).toBe('/configdrive/***.tar');
    for (const secret of [secretToken, 'hunter2', 'deadbeef', 'AAAA-task-token', 'AKIA', 'Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MA']) expect(text).not.toContain(secret);
  });
});

describe('metrics (EMF)', () => {
  it('writes a CloudWatch EMF line: namespace Slipway, dimension Service, the invocation ids as properties', async () => {
    process.env.POWERTOOLS_SERVICE_NAME = 'sweeper';
    const lines = await metricsOf(() => lambdaHandler(async () => metric('AgentSiteSilentSeconds', 42, 'Seconds', { Site: 'site9' }))({}, { awsRequestId: 'lambda-m-1' }));
    expect(lines).toHaveLength(1);
    const [line] = lines;
    expect(line!._aws).toEqual({
      Timestamp: expect.any(Number),
      CloudWatchMetrics: [{ Namespace: 'Slipway', Dimensions: [['Service', 'Site']], Metrics: [{ Name: 'AgentSiteSilentSeconds', Unit: 'Seconds' }] }],
    });
    expect(line).toMatchObject({ Service: 'sweeper', Site: 'site9', AgentSiteSilentSeconds: 42, function_request_id: 'lambda-m-1', xray_trace_id: TRACE_ROOT });
  });

  it('LeaseEventLagSeconds: the sweeper reports how overdue the oldest due event is', async () => {
    const { filter } = await hostPool(1);
    const lease = await call('POST', '/v1/leases', { body: leaseBody(filter) });
    expect(lease.status, lease.text).toBe(201);
    try {
      const start = Date.parse(`${lease.body.lease.start_date}Z`);
      const at = new Date(start + 300_000);
      // The shared stack's own runner starts events; this sweep only records what it would start.
      const started: string[] = [];
      const deps: Ports = { ...sharedDeps(), clock: { now: () => at }, runner: { start: async (ref) => void started.push(ref.event_id) } };
      const lines = await metricsOf(() => sweepEvents(deps, { graceMs: 60_000 }));
      const [oldest] = await deps.leaseEvents.dueEvents(new Date(at.getTime() - 60_000), 1);
      const [lag] = datapoints(lines, 'LeaseEventLagSeconds');
      expect(lag).toMatchObject({ Service: 'slipway', LeaseEventLagSeconds: (at.getTime() - Date.parse(oldest!.time)) / 1000 });
      expect(lag!.LeaseEventLagSeconds).toBeGreaterThanOrEqual(300);
      expect(started.length).toBeGreaterThan(0);
    } finally {
      await call('DELETE', `/v1/leases/${lease.body.lease.id}`);
    }
  });

  it('AgentSiteSilentSeconds: per site with an agent token, since its last contact or its first token', async () => {
    const site = unique('silent-site');
    await tokenFor('agent', site);
    const deps = sharedDeps();
    const later = new Date(Date.now() + 600_000);
    const never = await metricsOf(() => reportSiteSilence(deps, later));
    const mine = datapoints(never, 'AgentSiteSilentSeconds').find((l) => l.Site === site);
    // Never seen: silent since its token was made, a moment before `later` - 600 s.
    expect(mine!.AgentSiteSilentSeconds).toBeGreaterThanOrEqual(600);
    expect(mine!.AgentSiteSilentSeconds).toBeLessThan(900);

    const contact = new Date(later.getTime() - 42_000);
    await deps.jobs.touchAgent(site, 'agent-1', contact);
    const seen = await metricsOf(() => reportSiteSilence(deps, later));
    expect(datapoints(seen, 'AgentSiteSilentSeconds').find((l) => l.Site === site)).toMatchObject({ AgentSiteSilentSeconds: 42, Service: 'slipway' });
  });

  it('CallbackFailures: a task-token answer that fails (Step Functions unreachable) is counted', async () => {
    const deps: Ports = { ...sharedDeps(), callbacks: new SfnTaskCallbacks(new SFNClient(offline)) };
    const site = unique('cb-site');
    const agent: Principal = { token_id: 't', project_id: site, user_id: 'agent', roles: ['agent'] };
    await enqueueJob(deps, { site, kind: 'power_state', payload: {}, task_token: unique('task-token') });
    const [job] = await claimJobs(deps, agent, ClaimRequest.parse({}));
    const lines = await metricsOf(() => finishJob(deps, agent, job!.id, { claim_token: job!.claim_token!, status: 'succeeded', output: {} }));
    expect(datapoints(lines, 'CallbackFailures')).toEqual([expect.objectContaining({ CallbackFailures: 1, Service: 'slipway' })]);
  });

  it('NotificationFailures: a notification that is not published (EventBridge unreachable) is counted', async () => {
    const deps: Ports = { ...sharedDeps(), notifier: awsNotifier({ EVENT_BUS_NAME: 'slipway' }, new EventBridgeClient(offline)) };
    const lines = await metricsOf(() => notify(deps, 'lease.create', { lease_id: 'x' }));
    expect(datapoints(lines, 'NotificationFailures')).toEqual([expect.objectContaining({ NotificationFailures: 1 })]);
  });
});

describe('SDK calls traced (X-Ray subsegments)', () => {
  async function daemon(): Promise<{ socket: Socket; next: () => Promise<Record<string, any>> }> {
    const socket = createSocket('udp4');
    const queue: Record<string, any>[] = [];
    const waiting: ((d: Record<string, any>) => void)[] = [];
    socket.on('message', (msg) => {
      const [header, body] = msg.toString('utf8').split('\n');
      expect(JSON.parse(header!)).toEqual({ format: 'json', version: 1 });
      const doc = JSON.parse(body!) as Record<string, any>;
      const w = waiting.shift();
      if (w) w(doc);
      else queue.push(doc);
    });
    await new Promise<void>((r) => socket.bind(0, '127.0.0.1', r));
    process.env.AWS_XRAY_DAEMON_ADDRESS = `127.0.0.1:${socket.address().port}`;
    return { socket, next: () => (queue.length ? Promise.resolve(queue.shift()!) : new Promise((r) => waiting.push(r))) };
  }

  it('sends a subsegment per call of a sampled invocation, under the function segment, with status and errors', async () => {
    const d = await daemon();
    try {
      const dynamo = makeDynamo({ tableName: 'slipway', endpoint: inject('dynamoEndpoint'), region: 'us-east-1' });
      // Not sampled: nothing is sent (the first datagram is the sampled call's, on another table).
      process.env._X_AMZN_TRACE_ID = `Root=${TRACE_ROOT};Parent=53995c3f42cd8ad8;Sampled=0`;
      await expect(dynamo.doc.send(new GetCommand({ TableName: 'unsampled-table', Key: { PK: 'NONE' } }))).rejects.toThrow();
      process.env._X_AMZN_TRACE_ID = TRACE;
      await dynamo.doc.send(new GetCommand({ TableName: 'slipway', Key: { PK: 'NONE', SK: 'NONE' } }));
      const ok = await d.next();
      expect(ok).toMatchObject({
        type: 'subsegment',
        namespace: 'aws',
        name: 'DynamoDB',
        trace_id: TRACE_ROOT,
        parent_id: '53995c3f42cd8ad8',
        id: expect.stringMatching(/^[0-9a-f]{16}$/),
        aws: { operation: 'GetItem', table_name: 'slipway', region: 'us-east-1', request_id: expect.any(String) },
        http: { response: { status: 200 } },
      });
      expect(ok.end_time).toBeGreaterThanOrEqual(ok.start_time);
      expect(ok.error ?? ok.fault).toBeUndefined();

      await expect(dynamo.doc.send(new GetCommand({ TableName: 'no-such-table', Key: { PK: 'x' } }))).rejects.toThrow();
      const failed = await d.next();
      expect(failed).toMatchObject({ name: 'DynamoDB', error: true, http: { response: { status: 400 } }, aws: { table_name: 'no-such-table' } });
      expect(failed.cause.exceptions[0]).toMatchObject({ type: 'ResourceNotFoundException', remote: true });

      // No answer at all (connection refused) is a fault.
      await expect(traceAwsClient(new SFNClient(offline)).send(new SendTaskHeartbeatCommand({ taskToken: 't' }))).rejects.toThrow();
      expect(await d.next()).toMatchObject({ name: 'SFN', fault: true, aws: { operation: 'SendTaskHeartbeat' } });
    } finally {
      d.socket.close();
    }
  });
});
