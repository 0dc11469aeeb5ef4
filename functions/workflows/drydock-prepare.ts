import * as z from '#core/util/zod.ts';
import { getDeps } from '#aws/roots/drydock-prepare.ts';
import { prepareTask } from '#core/drydock/tasks/prepare.ts';
import type { Ports } from '#core/ports.ts';
import { lambdaHandler } from '#core/util/log.ts';

/**
 * The Prepare state of the Drydock task workflow (`infra/workflows/drydock-tasks.ts`): the task's
 * design read, parsed, snapshotted and validated, its nodes' subtasks made. Apart from the task
 * function (`drydock-tasks.ts`, every later step) so that neither bundle carries both the YAML
 * parser and the boot-action template engine (issue 12: 300 KiB each).
 */
export const DrydockPrepareStep = z.object({ step: z.literal('prepare'), task_id: z.string().check(z.minLength(1), z.maxLength(64)) });

export async function runDrydockPrepare(deps: Ports, raw: unknown): Promise<unknown> {
  const parsed = DrydockPrepareStep.safeParse(raw);
  if (!parsed.success) throw new Error(`Invalid drydock prepare input: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`);
  return prepareTask(deps, parsed.data);
}

export const handler = lambdaHandler((event: unknown): Promise<unknown> => runDrydockPrepare(getDeps(), event));
