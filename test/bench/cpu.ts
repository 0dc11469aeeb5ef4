import { readdirSync, readFileSync } from 'node:fs';

/**
 * Another process's CPU time so far (user + system, ms) from /proc, in clock ticks of 10 ms: how
 * the benches split a burst's CPU between this process and DynamoDB Local's JVM. NaN when the
 * process cannot be read.
 */
export function processCpuMs(pid: number | undefined): number {
  try {
    return statCpuMs(readFileSync(`/proc/${pid}/stat`, 'utf8')).ms;
  } catch {
    return NaN;
  }
}

/**
 * A /proc `stat` line's name and its user + system time (ms; fields 14 and 15, in ticks of 10 ms).
 * The name is in parentheses and may hold spaces or parentheses itself: the fields start after
 * the last `)`.
 */
function statCpuMs(raw: string): { name: string; ms: number } {
  const close = raw.lastIndexOf(')');
  const f = raw.slice(close + 2).split(' ');
  return { name: raw.slice(raw.indexOf('(') + 1, close), ms: (Number(f[11]) + Number(f[12])) * 10 };
}

/**
 * A JVM's CPU time so far (ms) by kind of thread, from /proc/<pid>/task: `jit` (the C1 and C2
 * compiler threads), `gc` (the VM thread, where the serial collector runs, and any GC threads)
 * and `other` (Jetty's request threads, SQLite's queue). The lifecycle bench prints the first
 * two for a burst: a fresh DynamoDB Local compiles its own code during the first burst, which is
 * the emulator warming up rather than the work asked of it. Threads that ended are not counted.
 */
export function threadCpuMs(pid: number | undefined): Map<string, number> {
  const byKind = new Map<string, number>();
  let tasks: string[] = [];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return byKind;
  }
  for (const tid of tasks) {
    try {
      const { name, ms } = statCpuMs(readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8'));
      const kind = /CompilerThre/.test(name) ? 'jit' : /^(VM Thread|GC Thread)/.test(name) ? 'gc' : 'other';
      byKind.set(kind, (byKind.get(kind) ?? 0) + ms);
    } catch {
      // The thread ended between the listing and the read.
    }
  }
  return byKind;
}
