import { randomBytes } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';
import { traceField, traceHeader } from '#core/util/log.ts';

/**
 * AWS SDK calls traced in X-Ray: each call of a client passed through `traceAwsClient` becomes a
 * subsegment of the function's trace (service, operation, table, status, request id, retries,
 * time; error, throttle and fault flags as X-Ray's own SDK sets them), sent to the X-Ray daemon
 * the Lambda runtime runs, and the call carries `X-Amzn-Trace-Id` with that subsegment as parent,
 * so what the call starts downstream (a Step Functions execution) joins the same trace.
 *
 * NOTE(C): not Powertools Tracer. Its `captureAWSv3Client` rests on aws-xray-sdk-core (with
 * cls-hooked and semver), measured at +128 kB minified per bundle (esbuild), nearly the whole
 * 150 kB budget; this is ~2 kB and does the one thing we used it for. The Lambda segment itself
 * comes from active tracing (SlipwayFunction), the invocation's context from the runtime.
 *
 * Only sampled invocations (`Sampled=1` in the trace header) send anything; off Lambda (no trace
 * header) the middleware passes calls through untouched. The segment document format:
 * https://docs.aws.amazon.com/xray/latest/devguide/xray-api-segmentdocuments.html
 */

interface MiddlewareClient {
  middlewareStack: {
    add(
      middleware: (next: (args: { request?: unknown; input?: unknown }) => Promise<{ output?: unknown }>, context: { clientName?: string; commandName?: string }) => (args: { request?: unknown; input?: unknown }) => Promise<{ output?: unknown }>,
      options: { step: 'build'; name: string; priority: 'high'; override: boolean },
    ): void;
  };
}

interface SdkMetadata {
  httpStatusCode?: number;
  requestId?: string;
  attempts?: number;
}

/** `udp:host:port tcp:host:port` or `host:port` (what Lambda sets), else the daemon's default. */
export function daemonAddress(value: string | undefined = process.env.AWS_XRAY_DAEMON_ADDRESS): { host: string; port: number } {
  const parts = (value ?? '').trim().split(/\s+/).filter(Boolean);
  const udp = parts.find((p) => p.startsWith('udp:'))?.slice(4) ?? parts.find((p) => !/^(tcp|udp):/.test(p));
  const m = udp ? /^(.*):(\d+)$/.exec(udp) : null;
  return m ? { host: m[1]!, port: Number(m[2]) } : { host: '127.0.0.1', port: 2000 };
}

let socket: Socket | undefined;

function send(document: Record<string, unknown>): void {
  try {
    socket ??= createSocket('udp4').unref();
    const { host, port } = daemonAddress();
    // A lost datagram loses a subsegment, never the call: errors are dropped on purpose.
    socket.send(Buffer.from(`{"format":"json","version":1}\n${JSON.stringify(document)}`), port, host, () => undefined);
  } catch {
    // no socket (a sandbox without UDP): tracing is best effort
  }
}

const seconds = (ms: number) => ms / 1000;

/** The subsegment of one finished call (exported for its test). */
export function subsegment(
  call: { service: string; operation: string; traceId: string; parentId: string; id: string; start: number; end: number; table?: string },
  meta: SdkMetadata | undefined,
  error?: { name: string; message: string },
): Record<string, unknown> {
  const status = meta?.httpStatusCode;
  return {
    id: call.id,
    trace_id: call.traceId,
    parent_id: call.parentId,
    type: 'subsegment',
    namespace: 'aws',
    name: call.service,
    start_time: seconds(call.start),
    end_time: seconds(call.end),
    aws: {
      operation: call.operation,
      region: process.env.AWS_REGION,
      ...(meta?.requestId ? { request_id: meta.requestId } : {}),
      ...(meta?.attempts ? { retries: meta.attempts - 1 } : {}),
      ...(call.table ? { table_name: call.table } : {}),
    },
    ...(status ? { http: { response: { status } } } : {}),
    // X-Ray's rules: 4xx is an error (429 also a throttle), 5xx or no answer at all a fault.
    ...(error ? (status !== undefined && status < 500 ? { error: true, ...(status === 429 || /Throttl|TooManyRequests/.test(error.name) ? { throttle: true } : {}) } : { fault: true }) : {}),
    ...(error ? { cause: { exceptions: [{ id: randomBytes(8).toString('hex'), type: error.name, message: error.message.slice(0, 512), remote: true }] } } : {}),
  };
}

/**
 * Adds the tracing middleware to an SDK v3 client and returns it.
 *
 * @example
 * const client = traceAwsClient(new SFNClient({}));
 */
export function traceAwsClient<T extends object>(client: T): T {
  // A narrow stand-in for a client (a unit test's seam) has no middleware stack: nothing to trace.
  if (!('middlewareStack' in client)) return client;
  (client as unknown as MiddlewareClient).middlewareStack.add(
    (next, context) => async (args) => {
      const header = traceHeader();
      const traceId = traceField(header, 'Root');
      const parentId = traceField(header, 'Parent');
      if (!traceId || !parentId || traceField(header, 'Sampled') !== '1') return next(args);
      const id = randomBytes(8).toString('hex');
      const request = args.request as { headers?: Record<string, string> } | undefined;
      if (request?.headers) request.headers['X-Amzn-Trace-Id'] = `Root=${traceId};Parent=${id};Sampled=1`;
      const table = (args.input as { TableName?: unknown } | undefined)?.TableName;
      const call = {
        service: (context.clientName ?? 'AWS').replace(/Client$/, ''),
        operation: (context.commandName ?? 'Unknown').replace(/Command$/, ''),
        traceId,
        parentId,
        id,
        start: Date.now(),
        end: 0,
        ...(typeof table === 'string' ? { table } : {}),
      };
      try {
        const result = await next(args);
        send(subsegment({ ...call, end: Date.now() }, (result.output as { $metadata?: SdkMetadata } | undefined)?.$metadata));
        return result;
      } catch (err) {
        const e = err as Error & { $metadata?: SdkMetadata };
        send(subsegment({ ...call, end: Date.now() }, e.$metadata, { name: e.name ?? 'Error', message: String(e.message ?? '') }));
        throw err;
      }
    },
    { step: 'build', name: 'slipwayXRaySubsegment', priority: 'high', override: true },
  );
  return client;
}
