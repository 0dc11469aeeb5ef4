import { type ChildProcess, spawn } from 'node:child_process';
import { join, resolve } from 'node:path';

/**
 * `npm start` as a user runs it (`infra/local/main.ts` in a child process) on a port of its own
 * and the given data directory, with the caller's environment minus every SLIPWAY_* and PORT:
 * each test says what the stack gets.
 */
const root = resolve(import.meta.dirname, '../..');
const tsx = join(root, 'node_modules/.bin/tsx');

export function callerFreeEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('SLIPWAY_') && k !== 'PORT') env[k] = v;
  return { ...env, ...extra };
}

export interface StartedMain {
  child: ChildProcess;
  url: string;
  output: () => string;
}

/**
 * Resolves once the stack says where it runs; rejects if it exits first or takes over 60 s.
 * `via: 'npm'` runs the package's own `npm start` script instead of tsx on main.ts.
 */
export function startMain(dataDir: string, env: Record<string, string> = {}, via: 'tsx' | 'npm' = 'tsx'): Promise<StartedMain> {
  const child = spawn(via === 'npm' ? 'npm' : tsx, via === 'npm' ? ['start'] : ['infra/local/main.ts'], {
    cwd: root,
    env: callerFreeEnv({ PORT: '0', SLIPWAY_DATA_DIR: dataDir, SLIPWAY_LOG_LEVEL: 'warn', ...env }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (b) => (out += b));
  child.stderr!.on('data', (b) => (out += b));
  return new Promise((res, rej) => {
    const t = setTimeout(() => rej(new Error(`no start within 60 s:\n${out}`)), 60_000);
    child.stdout!.on('data', () => {
      const m = /running at (http:\/\/[\d.]+:\d+)/.exec(out);
      if (m) {
        clearTimeout(t);
        res({ child, url: m[1]!, output: () => out });
      }
    });
    child.on('exit', (code) => {
      clearTimeout(t);
      rej(new Error(`exited ${code}:\n${out}`));
    });
  });
}

/** SIGTERM, as Ctrl-C; resolves with the exit code (at once if it already exited). */
export function stopMain(child: ChildProcess): Promise<number | null> {
  return new Promise((res) => {
    child.removeAllListeners('exit');
    if (child.exitCode !== null) return res(child.exitCode);
    child.on('exit', (code) => res(code));
    child.kill('SIGTERM');
  });
}
