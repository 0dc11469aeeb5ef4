import * as z from '#core/util/zod.ts';
import { getDeps } from '#aws/roots/drydock-tasks.ts';
import { acquireSite, finalizeTask, nodeFailed, nodeJob, nodeReports, nodeStep, siteAction } from '#core/drydock/tasks/workflow.ts';
import type { Ports } from '#core/ports.ts';
import { lambdaHandler } from '#core/util/log.ts';

/**
 * The Task states of the Drydock task workflow (`infra/workflows/drydock-tasks.ts`) after
 * Prepare, which is a function of its own (`drydock-prepare.ts`): one function dispatching on
 * `step`; locally `infra/local` binds each of those Tasks to this handler.
 */
const id = z.string().check(z.minLength(1), z.maxLength(64));
// A node's steps name it by its position in the task's subtask list (the distributed Map's item).
const node = { task_id: id, index: z.number().check(z.int(), z.gte(0)), cursor: z.number().check(z.int(), z.gte(0)) };
const error = z.object({ Error: z.optional(z.string()), Cause: z.optional(z.string()) });

export const DrydockTaskStep = z.discriminatedUnion('step', [
  z.object({ step: z.literal('acquire'), task_id: id, site: z.string() }),
  z.object({ step: z.literal('site_action'), task_id: id, site: z.string() }),
  z.object({ step: z.literal('node_step'), ...node, last: z.optional(z.unknown()) }),
  z.object({ step: z.literal('node_job'), ...node, task_token: z.string().check(z.minLength(1)) }),
  z.object({ step: z.literal('node_reports'), ...node, task_token: z.string().check(z.minLength(1)) }),
  z.object({ step: z.literal('node_failed'), ...node, attempt: z.optional(z.number().check(z.int(), z.gte(1), z.lte(100))), error }),
  z.object({ step: z.literal('finalize'), task_id: id, site: z.string(), error }),
]);

export async function runDrydockStep(deps: Ports, raw: unknown): Promise<unknown> {
  const parsed = DrydockTaskStep.safeParse(raw);
  if (!parsed.success) throw new Error(`Invalid drydock task step input: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`);
  const input = parsed.data;
  switch (input.step) {
    case 'acquire':
      return acquireSite(deps, input);
    case 'site_action':
      return siteAction(deps, input);
    case 'node_step':
      return nodeStep(deps, input);
    case 'node_job':
      return nodeJob(deps, input);
    case 'node_reports':
      await nodeReports(deps, input);
      return {};
    case 'node_failed':
      return nodeFailed(deps, input);
    case 'finalize':
      return finalizeTask(deps, input);
  }
}

export const handler = lambdaHandler((event: unknown): Promise<unknown> => runDrydockStep(getDeps(), event));
