import { getDeps } from '#aws/roots/agent.ts';
import {
  agentVersion,
  ClaimRequest,
  getJob,
  HeartbeatRequest,
  heartbeatJob,
  jobView,
  ReleaseRequest,
  releaseJob,
  ResultRequest,
} from '#core/agent/jobs.ts';
import { imageLocation } from '#core/agent/images.ts';
import { claimJobs, finishJob } from '#core/agent/kinds.ts';
import { ok, redirect, surface } from '#http/surface.ts';
import { parseWith } from '#http/validate.ts';

/**
 * The agent's job queue under `/api/v1.0/agent` (Drydock-style errors, as the rest of
 * `/api/v1.0`). Agents never hold AWS credentials: they claim, heartbeat and report here.
 */
export const handler = surface(
  { style: 'drydock', jsonSuffix: false, roles: ['agent'] },
  {
    'POST /api/v1.0/agent/jobs/claim': async ({ deps, auth, body, headers }) =>
      ok({ jobs: (await claimJobs(deps, auth, parseWith(ClaimRequest, body), agentVersion(headers['user-agent']))).map(jobView) }),
    // Anyone of the site may look; only the claim holder knows the claim token.
    'GET /api/v1.0/agent/jobs/{job_id}': async ({ deps, auth, path }) =>
      ok({ job: { ...jobView(await getJob(deps, auth, path.job_id!)), claim_token: null } }),
    'POST /api/v1.0/agent/jobs/{job_id}/heartbeat': async ({ deps, auth, path, body, headers }) =>
      ok({ job: jobView(await heartbeatJob(deps, auth, path.job_id!, parseWith(HeartbeatRequest, body), agentVersion(headers['user-agent']))) }),
    'POST /api/v1.0/agent/jobs/{job_id}/release': async ({ deps, auth, path, body }) =>
      ok({ job: jobView(await releaseJob(deps, auth, path.job_id!, parseWith(ReleaseRequest, body))) }),
    'POST /api/v1.0/agent/jobs/{job_id}/result': async ({ deps, auth, path, body }) =>
      ok({ job: jobView(await finishJob(deps, auth, path.job_id!, parseWith(ResultRequest, body))) }),
    // An OS image of the deployment's bucket: a 302 to a presigned URL (core/agent/images.ts).
    'GET /api/v1.0/agent/images/{name}': async ({ deps, auth, path }) => redirect(await imageLocation(deps, auth, path.name!), { 'Cache-Control': 'no-store' }),
  },
  getDeps,
);
