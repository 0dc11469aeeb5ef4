import { spawn } from 'node:child_process';
import { JobInputError } from './executor.ts';

/**
 * The Drydock deploy hook (agent config `deploy_hook`): the site's install pipeline learns a
 * node's boot-action key, report URL and packages from it, the way upstream's installer reads
 * the MaaS tag. The info goes on stdin (never in argv or the environment, where `ps` and crash
 * reports show it); the hook's output is not kept, since it may echo the key.
 */
export class DeployHookError extends Error {
  override name = 'DeployHookError';
}

export function deployHook(cfg: { command: string[]; timeout_seconds: number }) {
  return (info: Record<string, unknown>): Promise<{ exit_code: number }> =>
    new Promise((resolve, reject) => {
      const [cmd, ...args] = cfg.command;
      if (!cmd) return reject(new JobInputError('deploy_hook.command is empty'));
      const child = spawn(cmd, args, { stdio: ['pipe', 'ignore', 'pipe'], timeout: cfg.timeout_seconds * 1000, killSignal: 'SIGKILL' });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => {
        stderr = (stderr + d.toString('utf8')).slice(-500);
      });
      child.on('error', (err) => reject(new DeployHookError(`deploy hook ${cmd} could not run: ${err.message}`)));
      child.on('close', (code, signal) => {
        if (code === 0) resolve({ exit_code: 0 });
        else reject(new DeployHookError(`deploy hook ${cmd} ${signal ? `was killed (${signal}${signal === 'SIGKILL' ? ', timed out' : ''})` : `exited ${code}`}${stderr ? `: ${stderr.trim().split('\n').at(-1)}` : ''}`));
      });
      child.stdin.on('error', () => undefined); // a hook that does not read its input is not an error
      child.stdin.end(`${JSON.stringify(info)}\n`);
    });
}
