import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { TaskCallbacks } from '#core/agent/callbacks.ts';
import { log } from '#core/util/log.ts';

/**
 * The slice of Step Functions, EventBridge Scheduler and EventBridge that the bundles call, for
 * `npm start -- --bundled`: the bundles then run their AWS adapters unchanged (the AWS SDK, its
 * serialization and error parsing included), pointed here by the SDK's own endpoint settings
 * (`AWS_ENDPOINT_URL_SFN`, `_SCHEDULER`, `_EVENTBRIDGE`), and this answers with the local stack's
 * workflow runners, callback registry and notifier:
 *  - Step Functions (JSON 1.0): StartExecution, SendTaskSuccess, SendTaskFailure, SendTaskHeartbeat;
 *  - Scheduler (REST JSON): CreateSchedule, UpdateSchedule, DeleteSchedule of one-time `at()`
 *    schedules whose target starts an execution (what `layers/aws/scheduler.ts` creates);
 *  - EventBridge (JSON 1.1): PutEvents.
 *
 * Exposure: 127.0.0.1 only, and every path starts with a random secret that only this process's
 * environment holds (a request without it is 403), so another user of the machine cannot start
 * workflows or answer task tokens.
 */
export interface LocalAwsTargets {
  /** Starts an execution of the state machine `arn`; a name already used is no error (as on AWS for the same input). */
  startExecution(arn: string, name: string, input: unknown): Promise<void>;
  callbacks: TaskCallbacks;
  publish(detailType: string, detail: Record<string, unknown>): Promise<void>;
}

export interface LocalAwsApis {
  /** The SDK endpoint variables that point the AWS SDK here. */
  endpoints: Record<string, string>;
  /** Schedules waiting to fire. */
  readonly schedules: number;
  close(): Promise<void>;
}

class ApiError extends Error {
  override readonly name: string = 'ApiError';
  constructor(
    readonly status: number,
    readonly type: string,
    message: string,
  ) {
    super(message);
  }
}

interface ScheduleTarget {
  StateMachineArn: string;
  Name: string;
  Input?: string;
}

/** `at(2030-01-01T10:00:00)` in UTC (the only kind of schedule Slipway makes) → epoch ms. */
function atTime(expression: unknown, zone: unknown): number {
  const m = typeof expression === 'string' ? /^at\((\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\)$/.exec(expression) : null;
  if (!m || (zone !== undefined && zone !== 'UTC')) throw new ApiError(400, 'ValidationException', `unsupported schedule expression ${String(expression)} (${String(zone)})`);
  return Date.parse(`${m[1]}Z`);
}

export async function startLocalAwsApis(targets: LocalAwsTargets): Promise<LocalAwsApis> {
  const secret = randomBytes(24).toString('base64url');
  const schedules = new Map<string, NodeJS.Timeout>();

  const arm = (key: string, at: number, target: ScheduleTarget) => {
    clearTimeout(schedules.get(key));
    // setTimeout holds at most 2^31-1 ms (24.8 days); a later schedule is re-armed when that fires.
    const timer = setTimeout(() => {
      if (at > Date.now()) return arm(key, at, target);
      // ActionAfterCompletion DELETE: a schedule fires once and is gone.
      schedules.delete(key);
      targets.startExecution(target.StateMachineArn, target.Name, JSON.parse(target.Input ?? '{}')).catch((err: Error) => log.error('schedule target failed', { schedule: key, error: err.message }));
    }, Math.min(Math.max(0, at - Date.now()), 2 ** 31 - 1));
    timer.unref();
    schedules.set(key, timer);
  };

  const putSchedule = (name: string, body: Record<string, unknown>, create: boolean) => {
    const key = `${String(body.GroupName ?? 'default')}/${name}`;
    if (create && schedules.has(key)) throw new ApiError(409, 'ConflictException', `Schedule ${name} already exists.`);
    if (!create && !schedules.has(key)) throw new ApiError(404, 'ResourceNotFoundException', `Schedule ${name} does not exist.`);
    const target = body.Target as { Arn?: string; Input?: string } | undefined;
    if (!target?.Arn?.endsWith(':aws-sdk:sfn:startExecution') || !target.Input) throw new ApiError(400, 'ValidationException', 'only sfn:startExecution targets are served locally');
    arm(key, atTime(body.ScheduleExpression, body.ScheduleExpressionTimezone), JSON.parse(target.Input) as ScheduleTarget);
    return { ScheduleArn: `arn:aws:scheduler:local:000000000000:schedule/${key}` };
  };

  const sfn = async (op: string, body: Record<string, unknown>): Promise<unknown> => {
    switch (op) {
      case 'StartExecution': {
        const arn = String(body.stateMachineArn);
        const name = String(body.name ?? randomUUID());
        await targets.startExecution(arn, name, JSON.parse(typeof body.input === 'string' ? body.input : '{}'));
        return { executionArn: `${arn.replace(':stateMachine:', ':execution:')}:${name}`, startDate: Date.now() / 1000 };
      }
      case 'SendTaskSuccess':
        await targets.callbacks.succeed(String(body.taskToken), JSON.parse(String(body.output ?? 'null')));
        return {};
      case 'SendTaskFailure':
        await targets.callbacks.fail(String(body.taskToken), String(body.error ?? ''), String(body.cause ?? ''));
        return {};
      case 'SendTaskHeartbeat':
        await targets.callbacks.heartbeat(String(body.taskToken));
        return {};
    }
    throw new ApiError(400, 'UnknownOperationException', `Step Functions ${op} is not served locally`);
  };

  const events = async (op: string, body: Record<string, unknown>): Promise<unknown> => {
    if (op !== 'PutEvents') throw new ApiError(400, 'UnknownOperationException', `EventBridge ${op} is not served locally`);
    const entries = (body.Entries ?? []) as { DetailType?: string; Detail?: string }[];
    for (const e of entries) await targets.publish(String(e.DetailType), JSON.parse(e.Detail ?? '{}') as Record<string, unknown>);
    return { FailedEntryCount: 0, Entries: entries.map(() => ({ EventId: randomUUID() })) };
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const raw = Buffer.concat(chunks).toString('utf8');
    const url = new URL(req.url ?? '/', 'http://local');
    let contentType = 'application/json';
    try {
      if (!url.pathname.startsWith(`/${secret}/`) && url.pathname !== `/${secret}`) throw new ApiError(403, 'AccessDeniedException', 'not this stack');
      const body = (raw ? JSON.parse(raw) : {}) as Record<string, unknown>;
      const target = req.headers['x-amz-target'];
      let out: unknown;
      if (typeof target === 'string' && target.startsWith('AWSStepFunctions.')) {
        contentType = 'application/x-amz-json-1.0';
        out = await sfn(target.slice('AWSStepFunctions.'.length), body);
      } else if (typeof target === 'string' && target.startsWith('AWSEvents.')) {
        contentType = 'application/x-amz-json-1.1';
        out = await events(target.slice('AWSEvents.'.length), body);
      } else {
        const m = new RegExp(`^/${secret}/schedules/([^/]+)$`).exec(url.pathname);
        if (!m) throw new ApiError(404, 'UnknownOperationException', `${req.method} ${url.pathname.replace(secret, '…')} is not served locally`);
        const name = decodeURIComponent(m[1]!);
        if (req.method === 'POST') out = putSchedule(name, body, true);
        else if (req.method === 'PUT') out = putSchedule(name, body, false);
        else if (req.method === 'DELETE') {
          const key = `${url.searchParams.get('groupName') ?? 'default'}/${name}`;
          if (!schedules.has(key)) throw new ApiError(404, 'ResourceNotFoundException', `Schedule ${name} does not exist.`);
          clearTimeout(schedules.get(key));
          schedules.delete(key);
          out = {};
        } else throw new ApiError(405, 'UnknownOperationException', `${req.method} is not served locally`);
      }
      res.writeHead(200, { 'Content-Type': contentType, 'x-amzn-RequestId': randomUUID() });
      res.end(JSON.stringify(out));
    } catch (err) {
      const e = err instanceof ApiError ? err : new ApiError(500, 'InternalServerException', (err as Error).message);
      // The SDK reads the error code from this header (REST JSON) or `__type` (JSON 1.0/1.1).
      res.writeHead(e.status, { 'Content-Type': contentType, 'x-amzn-ErrorType': e.type, 'x-amzn-RequestId': randomUUID() });
      res.end(JSON.stringify({ __type: e.type, message: e.message, Message: e.message }));
    }
  };

  const server = createServer((req, res) => void handle(req, res));
  await new Promise<void>((ok, fail) => {
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => ok());
  });
  const base = `http://127.0.0.1:${(server.address() as { port: number }).port}/${secret}`;
  return {
    endpoints: { AWS_ENDPOINT_URL_SFN: base, AWS_ENDPOINT_URL_SCHEDULER: base, AWS_ENDPOINT_URL_EVENTBRIDGE: base },
    get schedules() {
      return schedules.size;
    },
    close: async () => {
      for (const t of schedules.values()) clearTimeout(t);
      schedules.clear();
      await new Promise<void>((ok) => {
        server.close(() => ok());
        server.closeAllConnections();
      });
    },
  };
}
