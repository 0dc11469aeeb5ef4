import { readFileSync } from 'node:fs';

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
