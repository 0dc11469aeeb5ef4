import { type CliCommand, type CliContext, type CliValues, humanDuration, parseDuration, progress, type Target, WAIT_HELP, waitLoop } from './cli-progress.ts';

/**
 * `slipway lease create` and `slipway lease wait`: a Blazar lease of physical hosts (POST
 * /v1/leases, as the token's project) and, with `--wait`, its start followed on the terminal
 * until it is ACTIVE (exit 0) or ERROR (exit 1, with the reason Blazar recorded).
 */

export const LEASE_OPTIONS = {
  name: { type: 'string' },
  start: { type: 'string' },
  end: { type: 'string' },
  hosts: { type: 'string' },
  min: { type: 'string' },
  max: { type: 'string' },
  'resource-properties': { type: 'string' },
} as const;

interface BlazarLease {
  id: string;
  name: string;
  project_id?: string;
  status: string;
  start_date: string;
  end_date: string;
  events?: { event_type: string; status: string; status_reason?: string | null }[];
  reservations?: { min?: number; max?: number; status?: string; missing_resources?: boolean }[];
}

/** Blazar's answer dates are UTC without a zone (`2030-01-06T09:00:00.000000`). */
const blazarTime = (s: string): number => Date.parse(`${s.slice(0, 23)}Z`);
const pad = (n: number) => String(n).padStart(2, '0');
/** Blazar's input format, `YYYY-MM-DD HH:MM` in UTC. */
const blazarInput = (t: number): string => {
  const d = new Date(t);
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}`;
};
const shown = (s: string) => `${s.slice(0, 16).replace('T', ' ')} UTC`;

/**
 * `now`, `+30m` (from now; for --end: from the start), an ISO 8601 datetime or Blazar's
 * `YYYY-MM-DD HH:MM` (UTC). Blazar counts whole minutes: seconds are dropped.
 */
export function parseWhen(raw: string, flag: string, from: number, ctx: Pick<CliContext, 'usage'>): number | 'now' {
  const s = raw.trim();
  if (s === 'now' && flag === '--start') return 'now';
  const rel = /^\+(\d+)(m|h|d)$/.exec(s);
  if (rel) return Math.floor((from + Number(rel[1]) * { m: 60_000, h: 3_600_000, d: 86_400_000 }[rel[2] as 'm' | 'h' | 'd']) / 60_000) * 60_000;
  const blazar = /^(\d{4})-(\d\d)-(\d\d) (\d\d):(\d\d)$/.exec(s);
  let t = blazar ? Date.UTC(+blazar[1]!, +blazar[2]! - 1, +blazar[3]!, +blazar[4]!, +blazar[5]!) : /^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:?\d\d)$/i.test(s) ? Date.parse(s) : NaN;
  // Date.UTC rolls a 13th month or a 40th day over: such a date is a typo, not a later one.
  if (blazar && new Date(t).toISOString().slice(0, 16) !== `${blazar[1]}-${blazar[2]}-${blazar[3]}T${blazar[4]}:${blazar[5]}`) t = NaN;
  if (!Number.isFinite(t)) {
    throw ctx.usage(`${flag} must be ${flag === '--start' ? 'now, ' : ''}+30m, +2h, +1d, an ISO 8601 datetime with a zone or "YYYY-MM-DD HH:MM" (UTC), got ${JSON.stringify(raw)}`, 'lease create');
  }
  return Math.floor(t / 60_000) * 60_000;
}

function count(raw: string | undefined, flag: string, ctx: Pick<CliContext, 'usage'>): number | undefined {
  if (raw === undefined) return undefined;
  if (!/^\d{1,6}$/.test(raw) || Number(raw) < 1) throw ctx.usage(`${flag} must be a whole number of hosts (1 or more), got ${JSON.stringify(raw)}`, 'lease create');
  return Number(raw);
}

/** Why a failed lease failed: the reason its failed event recorded, if any. */
const failure = (l: BlazarLease): string => {
  const reasons = (l.events ?? []).filter((e) => e.status === 'ERROR' && e.status_reason).map((e) => `${e.event_type}: ${e.status_reason}`);
  return reasons.length ? reasons.join('; ') : 'no reason recorded';
};

/**
 * Follows a lease until it is ACTIVE. A lease that starts later is counted down (looked at every
 * 30 s at most, or sooner as the start nears), then watched every second while it starts.
 */
async function waitActive(ctx: CliContext, target: Target, id: string, v: CliValues, command: string): Promise<BlazarLease> {
  const timeoutMs = typeof v.timeout === 'string' ? parseDuration(v.timeout, '--timeout', ctx, command) : undefined;
  const p = progress();
  let lease: BlazarLease | undefined;
  let fetchAt = 0;
  let final: BlazarLease | undefined;
  await waitLoop(ctx, p, {
    what: `lease ${id}`,
    resume: `\`${ctx.prog} lease wait ${id}\``,
    timeoutMs,
    intervalMs: 1000,
    step: async () => {
      const now = Date.now();
      if (!lease || now >= fetchAt) {
        lease = ((await ctx.request(target, 'GET', `/v1/leases/${encodeURIComponent(id)}`)) as { lease?: BlazarLease } | undefined)?.lease;
        if (!lease) throw ctx.fail(`the API answer for lease ${id} has no lease`);
        fetchAt = now + 1000;
      }
      // Short enough for one terminal line: the id is in the line before and in the outcome.
      const name = `lease ${ctx.clean(lease.name)}`;
      const start = blazarTime(lease.start_date);
      switch (lease.status) {
        case 'ACTIVE':
          final = lease;
          return { done: true };
        case 'ERROR':
          p.stop();
          throw ctx.fail(`${name} (${lease.id}) failed: ERROR: ${ctx.clean(failure(lease))}`);
        case 'TERMINATED':
        case 'TERMINATING':
        case 'DELETING':
          p.stop();
          throw ctx.fail(`${name} (${lease.id}) is ${lease.status}: it ended before it was seen ACTIVE`);
      }
      if (lease.status === 'PENDING' && start > now) {
        // Nothing changes before the start: look again every 30 s, or just after it.
        fetchAt = Math.min(now + 30_000, start + 500);
        p.update(`${name} PENDING: starts in ${humanDuration(start - now)} (${shown(lease.start_date)})`, { key: `PENDING ${lease.id}` });
        return { done: false };
      }
      p.update(`${name} ${lease.status === 'PENDING' ? 'STARTING' : lease.status}: waiting for it to become ACTIVE`, { key: lease.status });
      return { done: false };
    },
  });
  return final!;
}

function activeLine(ctx: CliContext, l: BlazarLease): string {
  return `Lease ${ctx.clean(l.name)} (${l.id}) is ACTIVE until ${shown(l.end_date)}.`;
}

async function leaseCreate(ctx: CliContext, v: CliValues): Promise<void> {
  const cmd = 'lease create';
  if (typeof v.name !== 'string') throw ctx.usage('--name is required', cmd);
  if (typeof v.end !== 'string') throw ctx.usage('--end is required (e.g. --end +2h)', cmd);
  const hosts = count(v.hosts as string | undefined, '--hosts', ctx);
  if (hosts !== undefined && (v.min !== undefined || v.max !== undefined)) throw ctx.usage('--hosts N is --min N --max N: give one or the other', cmd);
  const min = hosts ?? count(v.min as string | undefined, '--min', ctx) ?? 1;
  const max = hosts ?? count(v.max as string | undefined, '--max', ctx) ?? min;
  if (max < min) throw ctx.usage(`--max (${max}) must be at least --min (${min})`, cmd);
  const props = typeof v['resource-properties'] === 'string' ? v['resource-properties'] : '';
  if (props) {
    try {
      JSON.parse(props);
    } catch {
      throw ctx.usage(`--resource-properties must be a JSON filter such as '["==", "$pool", "rack4"]', got ${JSON.stringify(props)}`, cmd);
    }
  }
  if (v.timeout !== undefined && !v.wait) throw ctx.usage('--timeout only applies with --wait', cmd);
  const now = Date.now();
  const start = parseWhen(typeof v.start === 'string' ? v.start : 'now', '--start', now, ctx);
  const end = parseWhen(v.end, '--end', start === 'now' ? now : start, ctx);
  if (end === 'now' || end <= (start === 'now' ? now : start)) throw ctx.usage('--end must be after --start', cmd);
  const body = {
    name: v.name,
    start_date: start === 'now' ? 'now' : blazarInput(start),
    end_date: blazarInput(end),
    reservations: [{ resource_type: 'physical:host', min, max, hypervisor_properties: '', resource_properties: props }],
    events: [],
  };
  const target = ctx.target(v);
  const created = ((await ctx.request(target, 'POST', '/v1/leases', body)) as { lease?: BlazarLease } | undefined)?.lease;
  if (!created?.id) throw ctx.fail('the API did not return the lease');
  if (!v.wait) {
    if (v.json) return ctx.printJson({ lease: created });
    const starts = blazarTime(created.start_date) > Date.now() ? ` (starts in ${humanDuration(blazarTime(created.start_date) - Date.now())}; --wait waits for it)` : '';
    return ctx.out(
      `Created lease ${ctx.clean(created.name)} (${created.id}) in project ${ctx.clean(created.project_id)}: ${min === max ? min : `${min}-${max}`} host(s), ` +
        `${shown(created.start_date)} to ${shown(created.end_date)}, status ${ctx.clean(created.status)}${starts}`,
    );
  }
  process.stderr.write(`Created lease ${ctx.clean(created.name)} (${created.id}); waiting for it to become ACTIVE\n`);
  const active = await waitActive(ctx, target, created.id, v, cmd);
  if (v.json) return ctx.printJson({ lease: active });
  ctx.out(activeLine(ctx, active));
}

async function leaseWait(ctx: CliContext, v: CliValues, args: string[]): Promise<void> {
  const active = await waitActive(ctx, ctx.target(v), args[0]!, v, 'lease wait');
  if (v.json) return ctx.printJson({ lease: active });
  ctx.out(activeLine(ctx, active));
}

export function leaseCommands(ctx: CliContext): CliCommand[] {
  const TARGET = ['api', 'token', 'as-project'];
  return [
    {
      name: 'lease create',
      options: ['name', 'start', 'end', 'hosts', 'min', 'max', 'resource-properties', 'wait', 'timeout', 'json', ...TARGET],
      args: [],
      summary: 'reserve physical hosts (POST /v1/leases); --wait follows it until ACTIVE',
      help: `Usage: ${ctx.prog} lease create --name N --end WHEN [--start WHEN] [--hosts N] [options]

Creates a Blazar lease of physical hosts for the calling token's project and prints it. With
--wait it then follows the lease until it is ACTIVE (exit 0) or ERROR (exit 1, with the reason),
waiting for a later start too.
  ${ctx.prog} lease create --name demo --hosts 2 --end +2h --wait

Options:
  --name N             the lease's name (required)
  --start WHEN         now, +30m / +2h / +1d from now, an ISO 8601 datetime with a zone, or
                       "YYYY-MM-DD HH:MM" in UTC [now]; Blazar counts whole minutes
  --end WHEN           as --start, +D counting from the start (required)
  --hosts N            exactly N hosts (same as --min N --max N) [1]
  --min N, --max N     at least N, at most M hosts (Blazar takes as many as are free up to max)
  --resource-properties JSON
                       Blazar's host filter, e.g. '["==", "$pool", "rack4"]' [any host]
  --wait               follow the lease until it is ACTIVE (or fails)
  --json               print the lease as JSON (after waiting, with --wait)

${WAIT_HELP}

${ctx.targetHelp}`,
      run: (v) => leaseCreate(ctx, v),
    },
    {
      name: 'lease wait',
      options: ['timeout', 'json', ...TARGET],
      args: ['ID'],
      summary: 'follow a lease until it is ACTIVE (exit 1 if it ends in ERROR)',
      help: `Usage: ${ctx.prog} lease wait ID [--timeout D] [--json]

Follows lease ID (GET /v1/leases/ID) until it is ACTIVE: exit 0; ERROR: exit 1 with the reason
Blazar recorded; TERMINATED before it was seen ACTIVE: exit 1. A lease that starts later is
counted down.

${WAIT_HELP}
  --json               print the lease as JSON once ACTIVE

${ctx.targetHelp}`,
      run: (v, args) => leaseWait(ctx, v, args),
    },
  ];
}
