import { spawn } from 'node:child_process';
import { JobInputError } from './executor.ts';

/**
 * The Drydock deploy hook (agent config `deploy_hook`): the site's install pipeline learns a
 * node's boot-action key, report URL and packages from it, the way upstream's installer reads
 * the MaaS tag. The info goes on stdin (never in argv or the environment, where `ps` and crash
 * reports show it); the hook's output is not kept, since it may echo the key.
 *
 * The hook runs in a process group of its own, so that at its deadline the whole group is
 * killed: a shell script's children (a `sleep`, a stuck `curl`) die with it instead of holding
 * the job open. A hook that ends in time may leave a daemon running; that is its business.
 */
export class DeployHookError extends Error {
  override name = 'DeployHookError';
}

export function deployHook(cfg: { command: string[]; timeout_seconds: number }) {
  return (info: Record<string, unknown>): Promise<{ exit_code: number }> =>
    new Promise((resolve, reject) => {
      const [cmd, ...args] = cfg.command;
      if (!cmd) return reject(new JobInputError('deploy_hook.command is empty'));
      const child = spawn(cmd, args, { stdio: ['pipe', 'ignore', 'pipe'], detached: true });
      let stderr = '';
      let timedOut = false;
      const killGroup = () => {
        try {
          if (child.pid) process.kill(-child.pid, 'SIGKILL');
        } catch {
          /* already gone */
        }
      };
      const timer = setTimeout(() => {
        timedOut = true;
        killGroup();
      }, cfg.timeout_seconds * 1000);
      child.stderr.on('data', (d: Buffer) => {
        stderr = (stderr + d.toString('utf8')).slice(-500);
      });
      child.on('error', (err) => {
        clearTimeout(timer);
        reject(new DeployHookError(`deploy hook ${cmd} could not run: ${err.message}`));
      });
      // 'exit', not 'close': a leftover grandchild may still hold stderr open.
      child.on('exit', (code, signal) => {
        clearTimeout(timer);
        child.stderr.destroy();
        if (code === 0) return resolve({ exit_code: 0 });
        const how = timedOut ? `was killed after ${cfg.timeout_seconds} s (timed out)` : signal ? `was killed (${signal})` : `exited ${code}`;
        const last = stderr.trim().split('\n').at(-1);
        reject(new DeployHookError(`deploy hook ${cmd} ${how}${last ? `: ${last}` : ''}`));
      });
      child.stdin.on('error', () => undefined); // a hook that does not read its input is not an error
      child.stdin.end(`${JSON.stringify(info)}\n`);
    });
}
