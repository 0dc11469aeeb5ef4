import * as z from '#core/util/zod.ts';
import { getDeps } from '#aws/roots/lease-events.ts';
import { actEvent, beginEvent, commitEvent, completeEvent, finishEvent, jobFailed, laneSummary, queueAgentJob, type WholePlan } from '#core/leases/engine.ts';
import type { Ports } from '#core/ports.ts';
import { lambdaHandler } from '#core/util/log.ts';

/**
 * The Task states of the lease-event workflow (`infra/workflows/lease-events.ts`): one function,
 * dispatching on `step`. Errors are thrown as they are: their name is what the state machine's
 * Retry and Catch match (ConcurrentModificationError is retried, anything else is caught into
 * Finish). Locally `infra/local/workflows.ts` binds each Task state to this same handler.
 */
const ids = { lease_id: z.string().check(z.minLength(1)), event_id: z.string().check(z.minLength(1)) };
const JobSpec = z.object({ reservation_id: z.string(), node_id: z.string(), action: z.string() });
const JobResult = z.object({ reservation_id: z.string(), node_id: z.string(), ok: z.boolean(), error: z.optional(z.string()) });
const JobOutcome = z.object({ reservation_id: z.string(), node_id: z.string(), ok: z.boolean(), error: z.optional(z.string()), note: z.optional(z.string()) });
const CaughtError = z.object({ Error: z.optional(z.string()), Cause: z.optional(z.string()) });
/** What a lane (one child execution of the AgentJobs Map) hands back: `laneSummary` in the engine. */
const LaneSummary = z.object({
  jobs: z.number(),
  failed: z.number(),
  failures: z.array(JobResult),
  settled: z.number(),
  notes: z.array(z.string()),
});

/**
 * What Begin prepared (engine.ts `prepareEvent`), back from the workflow's state: the lease as read
 * (its version and its event's status are the write's conditions), and each node's grant.
 */
const PreparedPlan = z.object({
  lease: z.looseObject({
    id: z.string(),
    version: z.number(),
    events: z.array(z.looseObject({ id: z.string(), status: z.string(), time: z.string() })),
    reservations: z.array(z.looseObject({ id: z.string() })),
  }),
  event_id: z.string(),
  status: z.enum(['DONE', 'ERROR']),
  reason: z.nullable(z.string()),
  grants: z.array(z.object({ node_id: z.string(), node_version: z.number(), reservation_id: z.string(), store: z.record(z.string(), z.unknown()) })),
});

export const LeaseEventStep = z.discriminatedUnion('step', [
  z.object({ step: z.literal('begin'), ...ids, can_prepare: z.optional(z.boolean()) }),
  z.object({ step: z.literal('commit'), ...ids, plan: PreparedPlan }),
  z.object({ step: z.literal('act'), ...ids }),
  z.object({ step: z.literal('agent_job'), ...ids, job: JobSpec, task_token: z.string().check(z.minLength(1)) }),
  z.object({ step: z.literal('job_failed'), ...ids, job: JobSpec, error: CaughtError }),
  z.object({ step: z.literal('lane_done'), ...ids, results: z.array(JobOutcome) }),
  z.object({ step: z.literal('complete'), ...ids, results: z.nullable(z.array(LaneSummary)) }),
  z.object({
    step: z.literal('finish'),
    ...ids,
    error: z.nullable(CaughtError),
    act: z.optional(z.nullable(z.object({ notes: z.array(z.string()) }))),
    results: z.optional(z.nullable(z.array(LaneSummary))),
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
    case 'commit':
      // The plan is Begin's own output, carried by the workflow (checked for shape above).
      return commitEvent(deps, { ...input, plan: input.plan as unknown as WholePlan });
    case 'act':
      return actEvent(deps, input);
    case 'agent_job':
      return queueAgentJob(deps, input);
    case 'job_failed':
      return jobFailed(deps, input);
    case 'lane_done':
      return laneSummary(input.results);
    case 'complete':
      await completeEvent(deps, input);
      return {};
    case 'finish':
      return finishEvent(deps, input);
  }
}

export const handler = lambdaHandler((event: unknown): Promise<unknown> => runStep(getDeps(), event));
