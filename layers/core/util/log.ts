import { AsyncLocalStorage } from 'node:async_hooks';

/**
 * Structured logs: one JSON object per line (CloudWatch Logs parses them; Logs Insights queries
 * them by field). Every line carries the context of the invocation it belongs to — the Lambda
 * request id and the X-Ray trace id under Powertools' field names (`function_request_id`,
 * `xray_trace_id`, `cold_start`, `service`), so the queries and dashboards written for Powertools
 * Logger work on ours — plus what the entry added (the API request id). The context lives in an
 * AsyncLocalStorage: the local stack serves many requests at once in one process, and each line
 * still names its own request.
 *
 * NOTE(C): not Powertools Logger. It costs 24 kB minified per bundle (measured, esbuild, with its
 * commons and lambda-invoke-store) against a 150 kB budget, keeps its context on the Logger
 * instance (mixed up between the local stack's concurrent requests), and would replace ~100
 * lines. We keep its field names and its sources of truth (the Lambda context, and the trace
 * header from the runtime's InvokeStore or `_X_AMZN_TRACE_ID`).
 *
 * Secrets never reach a line: callers pass no headers or bodies, keys that name a secret are
 * masked, and `scrub` masks the secrets a message may quote (API tokens, presigned-URL
 * signatures, URL passwords, Bearer/Basic credentials).
 */
type Level = 'debug' | 'info' | 'warn' | 'error';
const ORDER: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

function threshold(): number {
  // Lambda's advanced logging controls set AWS_LAMBDA_LOG_LEVEL (upper case) for the function.
  const lvl = (process.env.SLIPWAY_LOG_LEVEL ?? process.env.AWS_LAMBDA_LOG_LEVEL ?? 'info').toLowerCase() as Level;
  return ORDER[lvl] ?? ORDER.info;
}

/** Field names whose values are secrets, whatever they hold. `token_id` is a public id. */
const SECRET_KEYS = /^(?!token_id$).*(token|password|passwd|secret|authorization|credential|private_?key|node_?key|bootaction_key|action_key)/i;

/** Secrets a free-text value (an error message, a URL) may quote, with what replaces them. */
const SECRET_TEXT: [RegExp, string][] = [
  // Slipway API tokens (`slp_` + 43 base64url characters).
  [/slp_[A-Za-z0-9_-]{8,}/g, 'slp_***'],
  // Presigned URLs are bearer credentials while they last.
  [/(X-Amz-(?:Signature|Security-Token|Credential)=)[^&\s"']+/gi, '$1***'],
  // scheme://user:password@host
  [/(\b[a-z][a-z0-9+.-]*:\/\/[^/\s:@]*:)[^/\s@]+@/gi, '$1***@'],
  [/\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{6,}/g, '$1 ***'],
  // The agent's boot service: per-registration tokens in its callback, deploy and config-drive paths.
  [/(\/(?:callback|deploy|configdrive)\/)[A-Za-z0-9_-]{16,}/g, '$1***'],
];

/** Masks the secrets a string may quote (see SECRET_TEXT). */
export function scrub(text: string): string {
  let out = text;
  for (const [re, by] of SECRET_TEXT) out = out.replace(re, by);
  return out;
}

function clean(value: unknown, depth: number): unknown {
  if (typeof value === 'string') return scrub(value);
  if (value === null || typeof value !== 'object' || depth > 4) return value;
  if (Array.isArray(value)) return value.map((v) => clean(v, depth + 1));
  if (value instanceof Date) return value.toISOString();
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, SECRET_KEYS.test(k) ? '***' : clean(v, depth + 1)]));
}

/** Replaces values of secret-looking keys with `***` and scrubs the rest (for fields logged from inputs). */
export function redact(fields: Record<string, unknown>): Record<string, unknown> {
  return clean(fields, 0) as Record<string, unknown>;
}

// On Lambda's Node 24 an AsyncLocalStorage is carried by AsyncContextFrame; on Node 22 (the local
// stack's) it installs promise hooks that every promise of the process then pays for, the AWS
// SDK's included: `npm start` and `npm run bench` turn on --experimental-async-context-frame,
// which gives the local server Lambda's implementation (docs/fleet-scale.md, issue 16).
const scope = new AsyncLocalStorage<Record<string, unknown>>();

/** Runs `fn` with `fields` on every line it logs (nested scopes add to the outer one). */
export function withLogContext<T>(fields: Record<string, unknown>, fn: () => T): T {
  return scope.run({ ...scope.getStore(), ...fields }, fn);
}

/** Adds fields to the current scope's lines from here on (no-op outside a scope). */
export function appendLogContext(fields: Record<string, unknown>): void {
  const store = scope.getStore();
  if (store) Object.assign(store, fields);
}

/** The current scope's fields (what every line gets); metrics lines carry them too. */
export function logContext(): Readonly<Record<string, unknown>> {
  return scope.getStore() ?? ambientContext();
}

interface InvokeStoreLike {
  getRequestId?(): string;
  getXRayTraceId?(): string | undefined;
}
const invokeStore = (): InvokeStoreLike | undefined => (globalThis as { awslambda?: { InvokeStore?: InvokeStoreLike } }).awslambda?.InvokeStore;

/**
 * The X-Ray trace header of the running invocation (`Root=1-…;Parent=…;Sampled=1`): from the
 * runtime's InvokeStore when it has one (needed where invocations share a process), else from
 * `_X_AMZN_TRACE_ID`, which the runtime sets before each invocation. Undefined off Lambda.
 */
export function traceHeader(): string | undefined {
  return invokeStore()?.getXRayTraceId?.() ?? (process.env._X_AMZN_TRACE_ID || undefined);
}

/** One field of a trace header (`Root`, `Parent`, `Sampled`). */
export function traceField(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i).trim() === name) return part.slice(i + 1).trim();
  }
  return undefined;
}

/** Outside any scope (module load, a handler not wrapped): what the runtime itself tells. */
function ambientContext(): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const service = process.env.POWERTOOLS_SERVICE_NAME;
  if (service) out.service = service;
  const requestId = invokeStore()?.getRequestId?.();
  if (requestId && requestId !== '-') out.function_request_id = requestId;
  const trace = traceField(traceHeader(), 'Root');
  if (trace) out.xray_trace_id = trace;
  return out;
}

let coldStart = true;

/** What a Lambda handler gets as its second argument, as far as the logs need it. */
export interface InvocationContext {
  awsRequestId?: string;
  functionName?: string;
}

/**
 * The fields of one Lambda invocation, read when it starts: request id, trace id, whether it is
 * the process's first (a cold start), and the service (`POWERTOOLS_SERVICE_NAME`, the function's
 * purpose, which the metrics also use as their `Service` dimension).
 */
export function invocationFields(context: InvocationContext | undefined): Record<string, unknown> {
  const fields: Record<string, unknown> = { ...ambientContext(), cold_start: coldStart };
  coldStart = false;
  if (context?.awsRequestId) fields.function_request_id = context.awsRequestId;
  if (context?.functionName) fields.function_name = context.functionName;
  return fields;
}

/**
 * Wraps a Lambda handler so that everything it logs (and every metric it emits) carries its
 * invocation's request id and trace id.
 *
 * @example
 * export const handler = lambdaHandler((event: unknown) => runStep(getDeps(), event));
 */
export function lambdaHandler<E, R, C extends InvocationContext = InvocationContext>(
  handler: (event: E, context: C) => Promise<R>,
): (event: E, context?: C) => Promise<R> {
  return (event, context) => withLogContext(invocationFields(context), () => handler(event, context as C));
}

/** Whether lines of this level are written (SLIPWAY_LOG_LEVEL, else Lambda's AWS_LAMBDA_LOG_LEVEL). */
export function logs(level: Level): boolean {
  return ORDER[level] >= threshold();
}

function emit(level: Level, msg: string, fields: Record<string, unknown>): void {
  if (!logs(level)) return;
  const line = JSON.stringify({ time: new Date().toISOString(), level, msg: scrub(msg), ...logContext(), ...redact(fields) });
  if (level === 'error' || level === 'warn') process.stderr.write(`${line}\n`);
  else process.stdout.write(`${line}\n`);
}

export const log = {
  debug: (msg: string, fields: Record<string, unknown> = {}) => emit('debug', msg, fields),
  info: (msg: string, fields: Record<string, unknown> = {}) => emit('info', msg, fields),
  warn: (msg: string, fields: Record<string, unknown> = {}) => emit('warn', msg, fields),
  error: (msg: string, fields: Record<string, unknown> = {}) => emit('error', msg, fields),
};
