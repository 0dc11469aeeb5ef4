import { randomUUID } from 'node:crypto';
import type { Ports } from '../ports.ts';
import type { Job } from './model.ts';
import { jobOffered } from './offers.ts';

/** Queues work for a site's agent (used by the Ironic API and, later, the workflows). */
export async function enqueueJob(
  deps: Ports,
  spec: { site: string; kind: string; node_id?: string; payload: Record<string, unknown>; task_token?: string; max_attempts?: number },
): Promise<Job> {
  const job: Job = {
    id: randomUUID(),
    site: spec.site,
    kind: spec.kind,
    ...(spec.node_id ? { node_id: spec.node_id } : {}),
    payload: spec.payload,
    status: 'queued',
    attempts: 0,
    max_attempts: spec.max_attempts ?? 3,
    ...(spec.task_token ? { task_token: spec.task_token } : {}),
    created_at: deps.clock.now().toISOString(),
    updated_at: null,
  };
  await deps.jobs.create(job);
  // A claim of the site waiting in this process takes it now rather than at its next look.
  jobOffered(job.site);
  return job;
}
