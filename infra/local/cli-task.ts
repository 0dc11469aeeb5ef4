import { type CliCommand, type CliContext, type CliValues, parseDuration, progress, WAIT_HELP, waitLoop } from './cli-progress.ts';

/**
 * `slipway task wait ID`: follows a Drydock task (GET /api/v1.0/tasks/ID?layers=2, the task and
 * its per-node subtasks in one answer) until it is complete or terminated, showing its nodes'
 * progress; exit 0 when its result is success, 1 otherwise (failure, partial_success, or a
 * terminated task).
 */

interface DrydockTask {
  task_id: string;
  action: string;
  status: string;
  result?: {
    status?: string;
    successes?: string[];
    failures?: string[];
    details?: { errorCount?: number; messageList?: { message: string; error: boolean; context?: string | null }[] };
  };
  subtask_id_list?: string[];
  node_filter?: { filter_set?: { node_names?: string[] }[] } | null;
}

const FINAL = new Set(['complete', 'terminated']);
/** What a subtask stands for: its one node (the filter prepare gave it), else its id. */
const nodeOf = (t: DrydockTask): string => t.node_filter?.filter_set?.[0]?.node_names?.[0] ?? t.task_id;

async function taskWait(ctx: CliContext, v: CliValues, args: string[]): Promise<void> {
  const id = args[0]!;
  const timeoutMs = typeof v.timeout === 'string' ? parseDuration(v.timeout, '--timeout', ctx, 'task wait') : undefined;
  const target = ctx.target(v);
  const p = progress();
  const reported = new Map<string, string>();
  let task: DrydockTask | undefined;
  await waitLoop(ctx, p, {
    what: `task ${id}`,
    resume: `\`${ctx.prog} task wait ${id}\``,
    timeoutMs,
    intervalMs: 1000,
    step: async () => {
      const map = (await ctx.request(target, 'GET', `/api/v1.0/tasks/${encodeURIComponent(id)}?layers=2`)) as Record<string, DrydockTask | string> | undefined;
      const t = map?.[id];
      if (!t || typeof t !== 'object') throw ctx.fail(`the API answer for task ${id} has no task`);
      task = t;
      const subs = (t.subtask_id_list ?? []).map((s) => map![s]).filter((s): s is DrydockTask => typeof s === 'object' && s !== null);
      // Each node once, when its subtask is final.
      for (const s of subs) {
        if (!FINAL.has(s.status) || reported.has(s.task_id)) continue;
        reported.set(s.task_id, s.result?.status ?? 'unknown');
        p.note(`node ${ctx.clean(nodeOf(s))}: ${ctx.clean(s.result?.status ?? s.status)}`);
      }
      if (FINAL.has(t.status)) return { done: true };
      const running = subs.filter((s) => !FINAL.has(s.status)).map((s) => `${ctx.clean(nodeOf(s))} ${ctx.clean(s.status)}`);
      // No task id (the caller gave it): the state must fit a terminal line after the bar.
      const text = `${ctx.clean(t.action)}: ${ctx.clean(t.status)}${running.length ? ` (${running.slice(0, 4).join(', ')}${running.length > 4 ? ', …' : ''})` : ''}`;
      p.update(text, { key: `${t.status} ${reported.size}`, ...(subs.length ? { done: reported.size, total: subs.length } : {}) });
      return { done: false };
    },
  });
  const t = task!;
  const result = t.result?.status ?? 'unknown';
  if (v.json) ctx.printJson(t);
  else {
    const lines = [`Task ${t.task_id} ${ctx.clean(t.action)} is ${ctx.clean(t.status)}: ${ctx.clean(result)}`];
    if (t.result?.successes?.length) lines.push(`  successes: ${t.result.successes.map(ctx.clean).join(', ')}`);
    if (t.result?.failures?.length) lines.push(`  failures: ${t.result.failures.map(ctx.clean).join(', ')}`);
    ctx.out(lines.join('\n'));
  }
  if (t.status === 'complete' && result === 'success') return;
  const errors = (t.result?.details?.messageList ?? []).filter((m) => m.error).map((m) => `  ${m.context ? `${ctx.clean(m.context)}: ` : ''}${ctx.clean(m.message)}`);
  const more = errors.length > 10 ? `\n  … ${errors.length - 10} more (GET /api/v1.0/tasks/${id}?subtaskerrors=true)` : '';
  throw ctx.fail(`task ${id} ${t.status === 'terminated' ? 'was terminated' : 'did not succeed'}: ${result}${errors.length ? `\n${errors.slice(0, 10).join('\n')}${more}` : ''}`);
}

export function taskCommands(ctx: CliContext): CliCommand[] {
  return [
    {
      name: 'task wait',
      options: ['timeout', 'json', 'api', 'token', 'as-project'],
      args: ['ID'],
      summary: 'follow a Drydock task until it is complete, with its nodes (exit 1 unless success)',
      help: `Usage: ${ctx.prog} task wait ID [--timeout D] [--json]

Follows Drydock task ID (GET /api/v1.0/tasks/ID?layers=2) until it is complete or terminated,
with a bar over its nodes and a line as each node finishes. Then prints the result.
Exit 0 when the result is success; 1 when it is failure or partial_success, or the task was
terminated (the error messages are printed).

${WAIT_HELP}
  --json               print the final task object as JSON (the exit status still tells)

${ctx.targetHelp}`,
      run: (v, args) => taskWait(ctx, v, args),
    },
  ];
}
