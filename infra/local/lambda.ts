import { randomUUID } from 'node:crypto';
import type { Context } from 'aws-lambda';

/**
 * A Lambda invocation as the Node.js runtime makes it, for `npm start -- --bundled`: the event
 * and the result cross as JSON (what does not survive JSON does not reach the function, or come
 * back from it), and a thrown error becomes what the runtime reports, `{errorType, errorMessage,
 * trace}` with `errorType` = the error's `name` (aws-lambda-nodejs-runtime-interface-client,
 * `Errors.js` toRapidResponse). Step Functions' Lambda task fails with that `errorType` as its
 * Error, which Retry and Catch match, and the whole JSON as its Cause.
 */
export type Handler = (event: unknown, context: Context) => Promise<unknown>;

/** A function error as a Lambda task reports it: `name` is the errorType, `message` the Cause. */
export class LambdaFunctionError extends Error {
  override readonly name: string;

  constructor(
    readonly errorType: string,
    readonly errorMessage: string,
    readonly trace: string[],
  ) {
    super(JSON.stringify({ errorType, errorMessage, trace }));
    this.name = errorType;
  }
}

/** What the runtime reports for a thrown value (the same rules as toRapidResponse). */
export function rapidResponse(err: unknown): { errorType: string; errorMessage: string; trace: string[] } {
  if (err instanceof Error || (typeof err === 'object' && err !== null && typeof (err as Error).name === 'string' && typeof (err as Error).message === 'string')) {
    const e = err as Error;
    return { errorType: e.name, errorMessage: e.message, trace: (e.stack ?? '').split('\n') };
  }
  return { errorType: typeof err, errorMessage: String(err), trace: [] };
}

export function lambdaContext(functionName: string, timeoutMs = 29_000): Context {
  const started = Date.now();
  return {
    callbackWaitsForEmptyEventLoop: false,
    functionName,
    functionVersion: '$LATEST',
    invokedFunctionArn: `arn:aws:lambda:local:000000000000:function:${functionName}`,
    memoryLimitInMB: '512',
    awsRequestId: randomUUID(),
    logGroupName: `/aws/lambda/${functionName}`,
    logStreamName: 'local',
    getRemainingTimeInMillis: () => Math.max(0, timeoutMs - (Date.now() - started)),
    done: () => undefined,
    fail: () => undefined,
    succeed: () => undefined,
  };
}

/** JSON in, JSON out; `undefined` comes back as `null`, as from Lambda. */
const viaJson = (v: unknown): unknown => (v === undefined ? null : JSON.parse(JSON.stringify(v)));

/** Invokes `handler` as Lambda would; a thrown error is rethrown as the LambdaFunctionError Lambda reports. */
export async function invokeLambda(handler: Handler, event: unknown, context: Context): Promise<unknown> {
  let result: unknown;
  try {
    result = await handler(viaJson(event), context);
  } catch (err) {
    const r = rapidResponse(err);
    throw new LambdaFunctionError(r.errorType, r.errorMessage, r.trace);
  }
  return viaJson(result);
}
