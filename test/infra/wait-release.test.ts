import { describe, expect, it } from 'vitest';
import { LocalTaskCallbacks } from '#core/agent/callbacks.ts';
import { LocalStateMachineRunner, WAITS_RELEASED_PER_MS, WaitRelease } from '../../infra/local/lifecycle.ts';

/**
 * The local runner's Waits on a timestamp (infra/local/lifecycle.ts WaitRelease): many executions
 * due at the same instant are released a Task-slot's worth per millisecond, never before their
 * time, so that the event loop turns (and reads the answers of the first ones' Tasks) between
 * groups instead of running every execution's next steps in one pass of the timers phase.
 */
const fn = 'arn:aws:lambda:us-east-1:123456789012:function:steps';
const asl = {
  StartAt: 'Plan',
  States: {
    Plan: { Type: 'Task', Resource: fn, Parameters: { 'step': 'plan', 'n.$': '$.n' }, ResultPath: '$.plan', Next: 'AtTime' },
    AtTime: { Type: 'Wait', TimestampPath: '$.plan.due', Next: 'Act' },
    Act: { Type: 'Task', Resource: fn, Parameters: { 'step': 'act', 'n.$': '$.n' }, End: true },
  },
};

describe('Waits on one timestamp, many executions (local runner)', () => {
  it('releases them a slot-width per millisecond, none before its time, and the event loop turns between groups', async () => {
    const N = 200;
    const due = Date.now() + 1500;
    const acted: { n: number; at: number }[] = [];
    let actedBeforeTurn: number | undefined;
    const callbacks = new LocalTaskCallbacks();
    const runner = new LocalStateMachineRunner(
      {
        asl,
        clock: { now: () => new Date() },
        step: async (input) => {
          const { step, n } = input as { step: string; n: number };
          if (step === 'plan') return { due: new Date(due).toISOString() };
          acted.push({ n, at: Date.now() });
          // The first Act asks when the event loop next turns (I/O and immediates run then).
          if (acted.length === 1) setImmediate(() => (actedBeforeTurn = acted.length));
          return {};
        },
      },
      callbacks,
    );
    for (let n = 0; n < N; n++) runner.start({ n }, `wait-${n}`);
    await runner.idle();
    expect(acted).toHaveLength(N);
    expect(Math.min(...acted.map((a) => a.at))).toBeGreaterThanOrEqual(due);
    // All in one pass of the timers phase, the loop would first turn after all N.
    expect(actedBeforeTurn).toBeDefined();
    expect(actedBeforeTurn!).toBeLessThanOrEqual(2 * WAITS_RELEASED_PER_MS);
    // Oldest first: in the order they were armed (the Plans ran in start order).
    const order = acted.map((a) => a.n);
    expect(order.slice(0, WAITS_RELEASED_PER_MS).every((n) => n < 2 * WAITS_RELEASED_PER_MS)).toBe(true);
  });

  it('delays the n-th Wait ending at one instant by n / WAITS_RELEASED_PER_MS ms, and no other', () => {
    const w = new WaitRelease();
    const now = 1_000_000;
    const delays = Array.from({ length: 3 * WAITS_RELEASED_PER_MS }, () => w.delay(500, now));
    expect(delays.slice(0, WAITS_RELEASED_PER_MS)).toEqual(Array(WAITS_RELEASED_PER_MS).fill(500));
    expect(delays.at(-1)).toBe(502);
    // Another instant is counted on its own; a Wait already due stays at 0.
    expect(w.delay(700, now)).toBe(700);
    expect(w.delay(0, now)).toBe(0);
  });
});
