import { type ChildProcess, spawn } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The `slipway` CLI as a user runs it: a child process (tsx, Node 22 from node_modules/.bin),
 * judged by its exit code, stdout and stderr. The variables that would aim it at a target are
 * taken out of the test environment, so each test names its own (`--api`, `--token`, or `env`).
 */
export const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const bin = join(repo, 'node_modules/.bin');

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

const TARGET_VARS = ['SLIPWAY_API_URL', 'SLIPWAY_TOKEN', 'SLIPWAY_ADMIN_TOKEN', 'SLIPWAY_DATA_DIR', 'PORT', 'SLIPWAY_PROGRESS'];

export interface CliOptions {
  /** Added to the cleaned environment. */
  env?: Record<string, string>;
  /** Standard input (closed empty when given as ''; not connected when absent). */
  input?: string;
  /** Sees stderr as it comes, with the child (to signal it). */
  onStderr?: (soFar: string, child: ChildProcess) => void;
}

export function runCli(args: string[], opts: CliOptions = {}): Promise<Run> {
  const base: Record<string, string | undefined> = { ...process.env, PATH: `${bin}:${process.env.PATH ?? ''}` };
  for (const k of TARGET_VARS) delete base[k];
  return new Promise((res, rej) => {
    const child = spawn(join(bin, 'tsx'), ['infra/local/cli.ts', ...args], {
      cwd: repo,
      env: { ...base, ...opts.env },
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => {
      stderr += d.toString();
      opts.onStderr?.(stderr, child);
    });
    child.on('error', rej);
    child.on('close', (code) => res({ code, stdout, stderr }));
    if (opts.input !== undefined) child.stdin!.end(opts.input);
  });
}
