import { getDeps } from '#aws/deps.ts';
import {
  ClaimRequest,
  claimJobs,
  finishJob,
  HeartbeatRequest,
  heartbeatJob,
  jobView,
  ReleaseRequest,
  releaseJob,
  ResultRequest,
} from '#core/agent/jobs.ts';
import { NotFoundError } from '#core/errors.ts';
import { requireAuth } from '#core/identity/identity.ts';
import { ok, surface } from '#http/surface.ts';
import { parseWith } from '#http/validate.ts';

/**
 * The agent's job queue under `/api/v1.0/agent` (Drydock-style errors, as the rest of
 * `/api/v1.0`). Agents never hold AWS credentials: they claim, heartbeat and report here.
 */
export const handler = surface(
  { style: 'drydock', jsonSuffix: false, roles: ['agent'] },
  {
    'POST /api/v1.0/agent/jobs/claim': async ({ deps, auth, body }) =>
      ok({ jobs: (await claimJobs(deps, auth, parseWith(ClaimRequest, body))).map(jobView) }),
    'GET /api/v1.0/agent/jobs/{job_id}': async ({ deps, auth, path }) => {
      const job = await deps.jobs.get(path.job_id!);
      if (!job || job.site !== requireAuth(auth).project_id) throw new NotFoundError(`Job ${path.job_id} not found`);
      return ok({ job: { ...jobView(job), claim_token: null } });
    },
    'POST /api/v1.0/agent/jobs/{job_id}/heartbeat': async ({ deps, auth, path, body }) =>
      ok({ job: jobView(await heartbeatJob(deps, auth, path.job_id!, parseWith(HeartbeatRequest, body))) }),
    'POST /api/v1.0/agent/jobs/{job_id}/release': async ({ deps, auth, path, body }) =>
      ok({ job: jobView(await releaseJob(deps, auth, path.job_id!, parseWith(ReleaseRequest, body))) }),
    'POST /api/v1.0/agent/jobs/{job_id}/result': async ({ deps, auth, path, body }) =>
      ok({ job: jobView(await finishJob(deps, auth, path.job_id!, parseWith(ResultRequest, body))) }),
  },
  getDeps,
);
