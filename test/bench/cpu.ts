import { readdirSync, readFileSync } from 'node:fs';

/**
 * Another process's CPU time so far (user + system, ms) from /proc, in clock ticks of 10 ms: how
 * the benches split a burst's CPU between this process and DynamoDB Local's JVM. NaN when the
 * process cannot be read.
 */
export function processCpuMs(pid: number | undefined): number {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(f[11]) + Number(f[12])) * 10;
  } catch {
    return NaN;
  }
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
      const raw = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const name = raw.slice(raw.indexOf('(') + 1, raw.lastIndexOf(')'));
      const f = raw.slice(raw.lastIndexOf(')') + 2).split(' ');
      const kind = /CompilerThre/.test(name) ? 'jit' : /^(VM Thread|GC Thread)/.test(name) ? 'gc' : 'other';
      byKind.set(kind, (byKind.get(kind) ?? 0) + (Number(f[11]) + Number(f[12])) * 10);
    } catch {
      // The thread ended between the listing and the read.
    }
  }
  return byKind;
}
