import type { AdjustableClock } from '../../infra/local/lifecycle.ts';

/**
 * A clock the tests move: it runs with real time from an offset, so a test can jump hours
 * ahead without waiting. Listeners (the local lease-event timers) are told of every jump.
 */
export class TestClock implements AdjustableClock {
  private offset = 0;
  private readonly listeners: (() => void)[] = [];

  now(): Date {
    return new Date(Date.now() + this.offset);
  }

  advance(ms: number): void {
    this.offset += ms;
    for (const l of this.listeners) l();
  }

  /** Jumps to `t` (forward only: time never goes back). */
  advanceTo(t: Date | string): void {
    const ms = new Date(t).getTime() - this.now().getTime();
    if (ms > 0) this.advance(ms);
  }

  onChange(listener: () => void): void {
    this.listeners.push(listener);
  }
}
