import * as z from 'zod';
import { getDeps } from '#aws/deps.ts';
import { actEvent, beginEvent, completeEvent, finishEvent, queueAgentJob } from '#core/leases/engine.ts';
import type { Ports } from '#core/ports.ts';

/**
 * The Task states of the lease-event workflow (`infra/workflows/lease-events.ts`): one function,
 * dispatching on `step`. Errors are thrown as they are: their name is what the state machine's
 * Retry and Catch match (ConcurrentModificationError is retried, anything else is caught into
 * Finish). Locally `infra/local/workflows.ts` binds each Task state to this same handler.
 */
const ids = { lease_id: z.string().min(1), event_id: z.string().min(1) };
const JobSpec = z.object({ reservation_id: z.string(), node_id: z.string(), action: z.string() });
const JobResult = z.object({ reservation_id: z.string(), node_id: z.string(), ok: z.boolean(), error: z.string().optional() });

export const LeaseEventStep = z.discriminatedUnion('step', [
  z.object({ step: z.literal('begin'), ...ids }),
  z.object({ step: z.literal('act'), ...ids }),
  z.object({ step: z.literal('agent_job'), ...ids, job: JobSpec, task_token: z.string().min(1) }),
  z.object({ step: z.literal('complete'), ...ids, results: z.array(JobResult).nullable() }),
  z.object({
    step: z.literal('finish'),
    ...ids,
    error: z.object({ Error: z.string().optional(), Cause: z.string().optional() }).nullable(),
    act: z.object({ jobs: z.array(JobSpec), notes: z.array(z.string()) }).nullable().optional(),
    results: z.array(JobResult).nullable().optional(),
  }),
]);
export type LeaseEventStep = z.infer<typeof LeaseEventStep>;

export async function runStep(deps: Ports, raw: unknown): Promise<unknown> {
  const parsed = LeaseEventStep.safeParse(raw);
  // A malformed step is a bug in the definition, not a retryable failure: say where, briefly.
  if (!parsed.success) throw new Error(`Invalid lease-event step input: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`);
  const input = parsed.data;
  switch (input.step) {
    case 'begin':
      return beginEvent(deps, input);
    case 'act':
      return actEvent(deps, input);
    case 'agent_job':
      return queueAgentJob(deps, input);
    case 'complete':
      await completeEvent(deps, input);
      return {};
    case 'finish':
      return finishEvent(deps, input);
  }
}

export const handler = (event: unknown): Promise<unknown> => runStep(getDeps(), event);
