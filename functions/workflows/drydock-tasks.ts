import * as z from 'zod';
import { getDeps } from '#aws/deps.ts';
import { acquireSite, finalizeTask, nodeFailed, nodeJob, nodeReports, nodeStep, prepareTask, siteAction } from '#core/drydock/tasks/workflow.ts';
import type { Ports } from '#core/ports.ts';

/**
 * The Task states of the Drydock task workflow (`infra/workflows/drydock-tasks.ts`): one
 * function dispatching on `step`; locally `infra/local` binds each Task to this handler.
 */
const id = z.string().min(1).max(64);
const node = { task_id: id, subtask_id: id, node: z.string().min(1).max(255), cursor: z.number().int().min(0) };
const error = z.object({ Error: z.string().optional(), Cause: z.string().optional() });

export const DrydockTaskStep = z.discriminatedUnion('step', [
  z.object({ step: z.literal('prepare'), task_id: id }),
  z.object({ step: z.literal('acquire'), task_id: id, site: z.string() }),
  z.object({ step: z.literal('site_action'), task_id: id, site: z.string() }),
  z.object({ step: z.literal('node_step'), ...node, last: z.unknown().optional() }),
  z.object({ step: z.literal('node_job'), ...node, task_token: z.string().min(1) }),
  z.object({ step: z.literal('node_reports'), ...node, task_token: z.string().min(1) }),
  z.object({ step: z.literal('node_failed'), ...node, attempt: z.number().int().min(1).max(100).optional(), error }),
  z.object({ step: z.literal('finalize'), task_id: id, site: z.string(), error }),
]);

export async function runDrydockStep(deps: Ports, raw: unknown): Promise<unknown> {
  const parsed = DrydockTaskStep.safeParse(raw);
  if (!parsed.success) throw new Error(`Invalid drydock task step input: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`);
  const input = parsed.data;
  switch (input.step) {
    case 'prepare':
      return prepareTask(deps, input);
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

export const handler = (event: unknown): Promise<unknown> => runDrydockStep(getDeps(), event);
