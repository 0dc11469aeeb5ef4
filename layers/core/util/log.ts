/**
 * Structured logs: one JSON object per line on stdout (CloudWatch parses them). Secrets never
 * reach this module: callers pass no headers or bodies, and `redact` scrubs the ones that might.
 */
type Level = 'debug' | 'info' | 'warn' | 'error';
const ORDER: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

function threshold(): number {
  const lvl = (process.env.SLIPWAY_LOG_LEVEL ?? 'info') as Level;
  return ORDER[lvl] ?? ORDER.info;
}

const SECRET_KEYS = /token|password|secret|key|authorization|credential/i;

/** Replaces values of secret-looking keys with `***` (for fields logged from inputs). */
export function redact(fields: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(fields).map(([k, v]) => [k, SECRET_KEYS.test(k) ? '***' : v]));
}

function emit(level: Level, msg: string, fields: Record<string, unknown>): void {
  if (ORDER[level] < threshold()) return;
  const line = JSON.stringify({ time: new Date().toISOString(), level, msg, ...fields });
  if (level === 'error' || level === 'warn') process.stderr.write(`${line}\n`);
  else process.stdout.write(`${line}\n`);
}

export const log = {
  debug: (msg: string, fields: Record<string, unknown> = {}) => emit('debug', msg, fields),
  info: (msg: string, fields: Record<string, unknown> = {}) => emit('info', msg, fields),
  warn: (msg: string, fields: Record<string, unknown> = {}) => emit('warn', msg, fields),
  error: (msg: string, fields: Record<string, unknown> = {}) => emit('error', msg, fields),
};
