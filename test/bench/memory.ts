import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

/**
 * Memory at rest (issue 16): `npm start` and `npm run agent` run as a user runs them, each in a
 * process group of its own (npm, the shell npm starts, node, and for the stack DynamoDB Local's
 * JVM), left idle for IDLE_MS after they are up, then every process of the group is read from
 * /proc: RSS (VmRSS, shared pages counted in every process that maps them) and PSS (smaps_rollup:
 * shared pages split between the processes sharing them, so the sum is what the group holds).
 */
const root = resolve(import.meta.dirname, '../..');
const IDLE_MS = Number(process.env.BENCH_MEMORY_IDLE_MS ?? 15_000);
const MiB = (kib: number) => `${(kib / 1024).toFixed(0)} MiB`;

interface Proc {
  pid: number;
  name: string;
  rssKib: number;
  pssKib: number;
}

/** The processes of process group `pgid`, with their memory (a process that exits meanwhile is skipped). */
export function groupMemory(pgid: number): Proc[] {
  const out: Proc[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // Fields after the command name (which may hold spaces), from field 3 (state) on.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[2]) !== pgid) continue;
      const status = readFileSync(`/proc/${entry}/status`, 'utf8');
      const rollup = readFileSync(`/proc/${entry}/smaps_rollup`, 'utf8');
      const kib = (text: string, key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? 0);
      const argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').filter(Boolean);
      out.push({ pid: Number(entry), name: describe(argv), rssKib: kib(status, 'VmRSS'), pssKib: kib(rollup, 'Pss') });
    } catch {
      // Gone, or not ours to read.
    }
  }
  return out.sort((a, b) => a.pid - b.pid);
}

/** A short name for a process: what it runs, not its whole command line. */
function describe(argv: string[]): string {
  const exe = argv[0]?.split('/').pop() ?? '?';
  if (exe === 'java') return 'java (DynamoDB Local)';
  // The first argument that is not an option or an option's value (`--import tsx`).
  const script = argv.slice(1).find((a, i, rest) => !a.startsWith('-') && !['--import', '--require', '-r'].includes(rest[i - 1] ?? '') && /\.(ts|js|mjs|cjs)$|npm|tsx/.test(a));
  const rel = script?.startsWith(root) ? script.slice(root.length + 1) : script;
  return rel ? `${exe} ${rel}` : exe;
}

/** Starts `npm <args>` in a process group of its own; resolves once `ready` matches its output. */
function startGroup(args: string[], env: NodeJS.ProcessEnv, ready: RegExp): Promise<{ child: ChildProcess; output: () => string }> {
  const child = spawn('npm', args, { cwd: root, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  return new Promise((res, rej) => {
    const t = setTimeout(() => rej(new Error(`npm ${args.join(' ')}: not ready within 120 s:\n${out}`)), 120_000);
    const seen = () => {
      if (ready.test(out)) {
        clearTimeout(t);
        res({ child, output: () => out });
      }
    };
    child.stdout!.on('data', (b) => ((out += b), seen()));
    child.stderr!.on('data', (b) => ((out += b), seen()));
    child.on('exit', (code) => {
      clearTimeout(t);
      rej(new Error(`npm ${args.join(' ')} exited ${code}:\n${out}`));
    });
  });
}

/** SIGTERM to the group (as Ctrl-C reaches every process of a terminal's group), then waits for npm. */
async function stopGroup(child: ChildProcess): Promise<void> {
  child.removeAllListeners('exit');
  if (child.exitCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  try {
    process.kill(-child.pid!, 'SIGTERM');
  } catch {
    return;
  }
  const t = setTimeout(() => {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // already gone
    }
  }, 15_000);
  await exited;
  clearTimeout(t);
}

function report(record: (k: string, v: string) => void, what: string, procs: Proc[]): void {
  const rss = procs.reduce((n, p) => n + p.rssKib, 0);
  const pss = procs.reduce((n, p) => n + p.pssKib, 0);
  record(`${what} at rest: the process group (PSS; RSS)`, `${MiB(pss)}; ${MiB(rss)} (${procs.length} processes)`);
  for (const p of procs) record(`  ${p.name}`, `${MiB(p.pssKib)}; ${MiB(p.rssKib)}`);
}

const userEnv = (extra: Record<string, string>): NodeJS.ProcessEnv => {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('SLIPWAY_') && k !== 'PORT' && !k.startsWith('npm_')) env[k] = v;
  return { ...env, ...extra };
};

export async function memoryBench(record: (k: string, v: string) => void): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'slipway-bench-memory-'));
  try {
    for (const bundled of [false, true]) {
      const started = await startGroup(bundled ? ['start', '--', '--bundled'] : ['start'], userEnv({ PORT: '0', SLIPWAY_DATA_DIR: join(dir, bundled ? 'bundled' : 'sources'), SLIPWAY_LOG_LEVEL: 'warn' }), /running at (http:\/\/[\d.]+:\d+)/);
      try {
        const url = /running at (http:\/\/[\d.]+:\d+)/.exec(started.output())![1]!;
        // One request, as a user's first look would make (a route loaded, a token checked).
        const token = readFileSync(join(dir, bundled ? 'bundled' : 'sources', 'admin-token'), 'utf8').trim();
        const res = await fetch(`${url}/v1.1/admin/nodes`, { headers: { 'X-Auth-Token': token } });
        if (res.status !== 200) throw new Error(`GET /v1.1/admin/nodes: ${res.status}`);
        await res.text();
        if (!bundled) {
          // The agent, against this stack, with an agent token of its own.
          const t = await fetch(`${url}/v1.1/admin/tokens`, { method: 'POST', headers: { 'X-Auth-Token': token, 'Content-Type': 'application/json' }, body: JSON.stringify({ project_id: 'bench-site', role: 'agent' }) });
          if (t.status >= 300) throw new Error(`POST /v1.1/admin/tokens: ${t.status}`);
          const agentToken = ((await t.json()) as { token: { token: string } }).token.token;
          const agent = await startGroup(['run', 'agent'], userEnv({ SLIPWAY_API_URL: url, SLIPWAY_AGENT_TOKEN: agentToken, SLIPWAY_LOG_LEVEL: 'info' }), /agent starting/);
          try {
            await new Promise((r) => setTimeout(r, IDLE_MS));
            report(record, '`npm start`', groupMemory(started.child.pid!));
            report(record, '`npm run agent`', groupMemory(agent.child.pid!));
          } finally {
            await stopGroup(agent.child);
          }
        } else {
          await new Promise((r) => setTimeout(r, IDLE_MS));
          report(record, '`npm start -- --bundled`', groupMemory(started.child.pid!));
        }
      } finally {
        await stopGroup(started.child);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
