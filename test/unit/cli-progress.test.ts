import { describe, expect, it } from 'vitest';
import { parseWhen } from '../../infra/local/cli-lease.ts';
import { humanDuration, isTerminal, parseDuration, progress } from '../../infra/local/cli-progress.ts';

/** The progress display of the waiting commands, driven through its stream seam (no terminal needed). */
function sink(isTTY?: boolean, columns?: number) {
  const chunks: string[] = [];
  return { chunks, stream: { write: (s: string) => chunks.push(s), isTTY, columns } };
}
const usage = { usage: (m: string) => new Error(m) };
const at = () => new Date('2026-12-07T03:00:00.000Z');

describe('cli progress', () => {
  it('plain: one timestamped line per state key, notes as lines, nothing redrawn', () => {
    const { chunks, stream } = sink(false);
    const p = progress(stream, { now: at });
    expect(p.tty).toBe(false);
    p.update('lease a PENDING: starts in 5m 00s', { key: 'PENDING' });
    p.update('lease a PENDING: starts in 4m 59s', { key: 'PENDING' });
    p.update('lease a STARTING');
    p.update('lease a STARTING');
    p.update('task t running', { done: 1, total: 3 });
    p.note('node n01: success');
    p.stop();
    expect(chunks).toEqual([
      '2026-12-07T03:00:00.000Z lease a PENDING: starts in 5m 00s\n',
      '2026-12-07T03:00:00.000Z lease a STARTING\n',
      '2026-12-07T03:00:00.000Z [1/3] task t running\n',
      '2026-12-07T03:00:00.000Z node n01: success\n',
    ]);
  });

  it('terminal: redraws one line with a spinner and a bar, cut to the width; notes stay above; stop clears', () => {
    const { chunks, stream } = sink(true, 41);
    const p = progress(stream);
    expect(p.tty).toBe(true);
    p.update('task t running', { done: 1, total: 2 });
    expect(chunks.at(-1)).toBe('\r\u001b[2K⠋ [##########..........] 1/2 task t runn');
    p.update('x'.repeat(100));
    expect(Array.from(chunks.at(-1)!.replace('\r\u001b[2K', ''))).toHaveLength(40);
    p.note('node n01: success');
    expect(chunks.slice(-3, -1)).toEqual(['\r\u001b[2K', 'node n01: success\n']);
    p.stop();
    expect(chunks.at(-1)).toBe('\r\u001b[2K');
    const n = chunks.length;
    p.stop();
    expect(chunks).toHaveLength(n);
  });

  it('decides terminal or plain from the stream, SLIPWAY_PROGRESS and TERM=dumb', () => {
    expect(isTerminal({ write: () => 0, isTTY: true }, {})).toBe(true);
    expect(isTerminal({ write: () => 0, isTTY: true }, { TERM: 'dumb' })).toBe(false);
    expect(isTerminal({ write: () => 0, isTTY: true }, { SLIPWAY_PROGRESS: 'plain' })).toBe(false);
    expect(isTerminal({ write: () => 0 }, { SLIPWAY_PROGRESS: 'tty' })).toBe(true);
    expect(isTerminal({ write: () => 0 }, {})).toBe(false);
  });

  it('parses durations and shows them', () => {
    expect(parseDuration('90s', '--timeout', usage, 'x')).toBe(90_000);
    expect(parseDuration('10m', '--timeout', usage, 'x')).toBe(600_000);
    expect(parseDuration('2h', '--timeout', usage, 'x')).toBe(7_200_000);
    expect(parseDuration('45', '--timeout', usage, 'x')).toBe(45_000);
    for (const bad of ['0', '-1s', 'soon', '1w', '400d']) expect(() => parseDuration(bad, '--timeout', usage, 'x')).toThrow(/--timeout must be a duration/);
    expect([12_000, 200_000, 3_900_000, 90_000_000].map(humanDuration)).toEqual(['12s', '3m 20s', '1h 05m', '1d 01h']);
  });

  it('parses lease times: now, +D, ISO with a zone, Blazar format; whole minutes', () => {
    const from = Date.parse('2026-12-07T03:00:30Z');
    expect(parseWhen('now', '--start', from, usage)).toBe('now');
    expect(parseWhen('+90m', '--start', from, usage)).toBe(Date.parse('2026-12-07T04:30:00Z'));
    expect(parseWhen('+1d', '--end', from, usage)).toBe(Date.parse('2026-12-08T03:00:00Z'));
    expect(parseWhen('2026-12-08T09:15:42+01:00', '--start', from, usage)).toBe(Date.parse('2026-12-08T08:15:00Z'));
    expect(parseWhen('2026-12-08 09:15', '--end', from, usage)).toBe(Date.parse('2026-12-08T09:15:00Z'));
    for (const bad of ['tomorrow', '2026-12-08T09:15', '+2w', '2026-13-40 09:00']) expect(() => parseWhen(bad, '--end', from, usage)).toThrow(/--end must be/);
    expect(() => parseWhen('now', '--end', from, usage)).toThrow(/--end must be/);
  });
});
