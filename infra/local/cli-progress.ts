/**
 * How the `slipway` commands that wait show it (issue 15, "the CLI waits visibly"): a spinner,
 * with a bar when the work has parts (a Drydock task's nodes), redrawn on one line of stderr when
 * stderr is a terminal; otherwise one plain timestamped line per change, so that logs and CI
 * output stay readable. Also what every waiting command shares: `--wait`, `--timeout`, Ctrl-C,
 * and the context (HTTP client, errors, output) that `cli.ts` hands its command modules.
 *
 * `SLIPWAY_PROGRESS=tty|plain` overrides the terminal test: `plain` for a terminal whose output
 * is recorded, `tty` for tests and for `script`-like wrappers whose stderr is no terminal.
 */

/** Flag values as `node:util` parseArgs gives them. */
export type CliValues = Record<string, string | boolean | string[] | undefined>;

export interface Target {
  api: string;
  token: string;
}

/** What `cli.ts` hands a command module (its helpers, so the modules import nothing from it). */
export interface CliContext {
  prog: string;
  targetHelp: string;
  target(v: CliValues): Target;
  request(target: Target, method: string, path: string, body?: unknown): Promise<unknown>;
  /** The project of /v1.1 paths (`--as-project`, else admin). */
  asProject(v: CliValues): string;
  /** A usage error (exit 2) pointing at the command's help. */
  usage(message: string, command: string): Error;
  /** A failure (exit 1, or `exitCode`), printed as `error: <message>`. */
  fail(message: string, exitCode?: number): Error;
  out(s: string): void;
  printJson(v: unknown): void;
  table(headers: string[], rows: unknown[][]): string;
  /** A server-supplied string made safe for a terminal. */
  clean(v: unknown): string;
}

/** A command as `cli.ts` registers it (its `CommandSpec`, with the options of this module). */
export interface CliCommand {
  name: string;
  options: string[];
  args: string[];
  summary: string;
  help: string;
  run: (v: CliValues, args: string[]) => Promise<void>;
}

/** Options every waiting command takes (merged into cli.ts's parseArgs options). */
export const WAIT_OPTIONS = {
  wait: { type: 'boolean' },
  timeout: { type: 'string' },
} as const;

export const WAIT_HELP = `Waiting: a spinner (and a bar for work with parts) on stderr when it is a terminal, else one
timestamped line per change ($SLIPWAY_PROGRESS=tty|plain overrides). Ctrl-C stops waiting
(exit 130); the work goes on on the server.
  --timeout D          give up waiting after D: 90s, 10m, 2h or seconds [no limit] (exit 3)`;

/** Exit status of a wait that ran out of time (the work is still going on). */
export const EXIT_TIMEOUT = 3;
/** Exit status after Ctrl-C (128 + SIGINT), as shells report it. */
export const EXIT_INTERRUPTED = 130;

/** `90s`, `10m`, `2h`, `1d` or plain seconds, as milliseconds. */
export function parseDuration(raw: string, flag: string, ctx: Pick<CliContext, 'usage'>, command: string): number {
  const m = /^(\d+(?:\.\d+)?)(s|m|h|d)?$/.exec(raw.trim());
  const ms = m ? Number(m[1]) * { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }[(m[2] ?? 's') as 's' | 'm' | 'h' | 'd'] : NaN;
  if (!Number.isFinite(ms) || ms <= 0 || ms > 366 * 86_400_000) throw ctx.usage(`${flag} must be a duration like 90s, 10m or 2h, got ${JSON.stringify(raw)}`, command);
  return ms;
}

/** `1h 05m`, `3m 20s`, `12s`. */
export function humanDuration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  const d = Math.floor(s / 86_400);
  const h = Math.floor((s % 86_400) / 3_600);
  const m = Math.floor((s % 3_600) / 60);
  const sec = s % 60;
  const p = (n: number) => String(n).padStart(2, '0');
  if (d > 0) return `${d}d ${p(h)}h`;
  if (h > 0) return `${h}h ${p(m)}m`;
  if (m > 0) return `${m}m ${p(sec)}s`;
  return `${sec}s`;
}

export interface ProgressStream {
  write(s: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export interface Progress {
  /**
   * The current state. On a terminal the line is redrawn; otherwise a line is printed when `key`
   * (default: the text) changes, so that a countdown in the text does not print every second.
   */
  update(text: string, opts?: { key?: string; done?: number; total?: number }): void;
  /** A line that stays (a node finished), above the spinner on a terminal. */
  note(text: string): void;
  /** Clears the spinner; the final outcome is printed by the command. */
  stop(): void;
  readonly tty: boolean;
}

const FRAMES = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

/** Whether progress is drawn for a terminal: `SLIPWAY_PROGRESS`, else whether the stream is one. */
export function isTerminal(stream: ProgressStream, env: NodeJS.ProcessEnv = process.env): boolean {
  const forced = env.SLIPWAY_PROGRESS;
  if (forced === 'tty') return true;
  if (forced === 'plain') return false;
  return stream.isTTY === true && env.TERM !== 'dumb';
}

export function progress(stream: ProgressStream = process.stderr, opts: { tty?: boolean; now?: () => Date } = {}): Progress {
  const tty = opts.tty ?? isTerminal(stream);
  const now = opts.now ?? (() => new Date());
  let text = '';
  let key: string | undefined;
  let bar = '';
  let frame = 0;
  let timer: ReturnType<typeof setInterval> | undefined;
  const width = () => Math.max(40, (stream.columns ?? 80) - 1);
  const draw = () => {
    const line = `${FRAMES[frame++ % FRAMES.length]} ${bar}${text}`;
    // Cut to the terminal's width: a wrapped line could not be redrawn in place.
    stream.write(`\r\x1b[2K${Array.from(line).slice(0, width()).join('')}`);
  };
  const clear = () => stream.write('\r\x1b[2K');
  return {
    tty,
    update(t, o = {}) {
      text = t;
      if (tty) {
        bar = o.total ? `[${'#'.repeat(Math.round((20 * (o.done ?? 0)) / o.total)).padEnd(20, '.')}] ${o.done ?? 0}/${o.total} ` : '';
        timer ??= setInterval(draw, 100);
        // The spinner must never keep the process alive on its own.
        timer.unref?.();
        draw();
        return;
      }
      const k = o.key ?? t;
      if (k === key) return;
      key = k;
      stream.write(`${now().toISOString()} ${o.total ? `[${o.done ?? 0}/${o.total}] ` : ''}${t}\n`);
    },
    note(t) {
      if (tty) {
        clear();
        stream.write(`${t}\n`);
        if (timer) draw();
        return;
      }
      stream.write(`${now().toISOString()} ${t}\n`);
    },
    stop() {
      if (timer) clearInterval(timer);
      timer = undefined;
      if (tty && text) clear();
      text = '';
    },
  };
}

/**
 * Runs `step` until it says it is done, sleeping `intervalMs` (or what it asks for) between
 * steps: gives up with exit 3 after `timeoutMs`, and on Ctrl-C clears the spinner, says what
 * goes on without us and exits 130.
 */
export async function waitLoop(
  ctx: Pick<CliContext, 'fail'>,
  p: Progress,
  o: { what: string; resume: string; timeoutMs?: number; intervalMs: number; step: () => Promise<{ done: boolean; nextMs?: number }> },
): Promise<void> {
  const started = Date.now();
  const onInt = () => {
    p.stop();
    process.stderr.write(`interrupted: stopped waiting for ${o.what}; it goes on on the server (${o.resume} waits again)\n`);
    process.exit(EXIT_INTERRUPTED);
  };
  process.once('SIGINT', onInt);
  try {
    for (;;) {
      const { done, nextMs } = await o.step();
      if (done) return;
      const elapsed = Date.now() - started;
      if (o.timeoutMs !== undefined && elapsed >= o.timeoutMs) {
        p.stop();
        throw ctx.fail(`timed out after ${humanDuration(o.timeoutMs)} waiting for ${o.what}; it goes on on the server (${o.resume} waits again)`, EXIT_TIMEOUT);
      }
      const left = o.timeoutMs === undefined ? Infinity : o.timeoutMs - elapsed;
      await new Promise((r) => setTimeout(r, Math.max(50, Math.min(nextMs ?? o.intervalMs, left))));
    }
  } finally {
    process.removeListener('SIGINT', onInt);
    p.stop();
  }
}
