import { randomUUID } from 'node:crypto';
import * as z from '../util/zod.ts';
import { ConflictError, ForbiddenError, NotFoundError } from '../errors.ts';
import { type Principal, requireAuth } from '../identity/identity.ts';
import type { Ports } from '../ports.ts';
import { isSealed, openSecrets, type SecretKind } from '../secrets.ts';
import { boundedId, byteLength, jsonProblem, MAX_FREE_FORM_BYTES } from '../util/bounds.ts';
import { log } from '../util/log.ts';
import { metric } from '../util/metrics.ts';
import type { Job } from './model.ts';
import { jobOffered, napUntilOffered, offerMark } from './offers.ts';

/**
 * The agent API over the job queue: claim, heartbeat, result, release (the job record and its
 * states are in `model.ts`). What the cloud does when a job of a kind becomes final comes from
 * the table of job kinds the caller passes (`kinds.ts`), so the queue imports no domain module
 * and every domain module may queue jobs (house-style rule 13).
 */

/** What the cloud side does with a job of one kind. */
export interface JobKind {
  /** Runs once the job is final (succeeded or failed), before a waiting workflow gets its answer. */
  onFinished?: (deps: Ports, job: Job) => Promise<void>;
  /**
   * Runs when an agent has claimed the job (the work starts), e.g. a deploying node now waits
   * for its ramdisk's call-back. Best effort: a failure is logged and the claim stands.
   */
  onClaimed?: (deps: Ports, job: Job) => Promise<void>;
}

/** Every job kind by name (`kinds.ts` holds the one table). */
export type JobKinds = Readonly<Record<string, JobKind>>;

/** Most jobs one claim hands out (an agent with more free slots claims again). */
export const MAX_CLAIM = 32;

export const ClaimRequest = z.strictObject({
  /** Long-poll: wait up to this many seconds for a job (API Gateway allows 30 s in all). */
  wait: z._default(z.number().check(z.gte(0), z.lte(20)), 0),
  max: z._default(z.number().check(z.int(), z.gte(1), z.lte(MAX_CLAIM)), 1),
  /** How long the claim lasts without a heartbeat. */
  lease_seconds: z._default(z.number().check(z.int(), z.gte(1), z.lte(900)), 60),
});
export type ClaimRequest = z.infer<typeof ClaimRequest>;

export const HeartbeatRequest = z.strictObject({
  claim_token: boundedId(),
  lease_seconds: z._default(z.number().check(z.int(), z.gte(1), z.lte(900)), 60),
});

export const ReleaseRequest = z.strictObject({ claim_token: boundedId() });

/**
 * Most bytes of JSON a job's output may take. What the agent sends is small (a power state, a
 * boot device, a vendor method's answer) except `ssh_run`, whose command output the agent cuts
 * to 60,000 bytes (`agent/ssh-jobs.ts`); the job item must stay well inside DynamoDB's 400 KB.
 */
export const MAX_JOB_OUTPUT_BYTES = MAX_FREE_FORM_BYTES;

/** A job's output: any JSON value, nested at most 32 levels, no reserved keys, at most 64 KiB. */
export const JobOutput = z.unknown().check(z.superRefine((v, ctx) => {
  if (v === undefined) return;
  const p = jsonProblem(v);
  if (p) return ctx.addIssue({ code: 'custom', message: p });
  if (byteLength(JSON.stringify(v)) > MAX_JOB_OUTPUT_BYTES) ctx.addIssue({ code: 'custom', message: `must be at most ${MAX_JOB_OUTPUT_BYTES / 1024} KiB of JSON` });
}));

export const ResultRequest = z.strictObject({
  claim_token: boundedId(),
  status: z.enum(['succeeded', 'failed']),
  output: z.optional(JobOutput),
  error: z.optional(z.string().check(z.maxLength(4000))),
});
export type ResultRequest = z.infer<typeof ResultRequest>;

/** The site an agent token serves, or 403 for any other role. */
export function agentSite(auth: Principal | undefined): { site: string; agent: string } {
  const who = requireAuth(auth);
  if (!who.roles.includes('agent')) throw new ForbiddenError('Only agent tokens may use the agent API');
  return { site: who.project_id, agent: who.token_id };
}

/** A job became final: its kind's handler learns the outcome, then a waiting workflow gets its answer. */
async function settled(deps: Ports, kinds: JobKinds, job: Job): Promise<void> {
  // Own properties only: a kind named like an Object.prototype member has no handler.
  const kind = Object.hasOwn(kinds, job.kind) ? kinds[job.kind] : undefined;
  await kind?.onFinished?.(deps, job);
  if (!job.task_token) return;
  try {
    if (job.status === 'succeeded') await deps.callbacks.succeed(job.task_token, job.output ?? null);
    else await deps.callbacks.fail(job.task_token, 'AgentJobFailed', job.error ?? 'the agent job failed');
  } catch (err) {
    // The job stays final; the workflow's own timeout covers a callback that could not be sent.
    log.error('task callback failed', { job_id: job.id, error: (err as Error).name });
    metric('CallbackFailures', 1, 'Count');
  }
}

/**
 * Objects of a job payload whose sealed fields are opened for the agent, with the one kind each
 * holds: BMC `driver_info`, SSH `ssh` (the key), a Drydock deploy's `bootaction` (the node key
 * for the installer); and an Ironic deploy's `configdrive`, sealed whole.
 */
const SECRET_HOLDERS = { driver_info: 'bmc-password', ssh: 'ssh-key', bootaction: 'node-key' } as const satisfies Record<string, SecretKind>;

async function openPayload(deps: Ports, payload: Record<string, unknown>): Promise<Record<string, unknown>> {
  const out = { ...payload };
  for (const [k, kind] of Object.entries(SECRET_HOLDERS)) {
    const v = payload[k];
    if (v && typeof v === 'object') out[k] = await openSecrets(deps.secrets, kind, v as Record<string, unknown>);
  }
  // An Ironic deploy's config drive is sealed whole (its user data may hold secrets).
  if (isSealed(payload.configdrive)) out.configdrive = JSON.parse(await deps.secrets.open('config-drive', payload.configdrive.$sealed)) as unknown;
  // A fetch's credential header (a container manager's bearer token, agent/fetch.ts): its prefix
  // and the opened token. Only a fetch job carries one, and only the cloud writes job payloads.
  if (payload.headers && typeof payload.headers === 'object') {
    const headers: Record<string, unknown> = { ...(payload.headers as Record<string, unknown>) };
    for (const [name, v] of Object.entries(headers)) {
      if (!isSealed(v)) continue;
      const prefix = (v as { $prefix?: unknown }).$prefix;
      headers[name] = `${typeof prefix === 'string' ? prefix : ''}${await deps.secrets.open('container-manager-token', v.$sealed)}`;
    }
    out.headers = headers;
  }
  return out;
}

/** Why a job whose secrets cannot be opened failed (no detail of the value or the key). */
export const UNOPENABLE_SECRETS =
  "The job's sealed secrets could not be opened (damaged, or sealed with another key); the job was not run. Set the credentials again (e.g. PATCH the node's driver_info password)";

/**
 * A job claimed by this claim whose secrets cannot be opened: it fails alone, at once — its
 * node and its workflow learn why — instead of failing the whole claim (which would leave the
 * other jobs of the batch claimed and never handed out, and answer every later claim of the
 * site with a 500 until the job was given up).
 */
async function failUnopenable(deps: Ports, kinds: JobKinds, job: Job, err: unknown): Promise<void> {
  log.error('job secrets could not be opened; the job fails', { job_id: job.id, kind: job.kind, error: (err as Error)?.name ?? 'Error' });
  try {
    const done = await deps.jobs.finish(job.id, job.claim_token!, { status: 'failed', error: UNOPENABLE_SECRETS }, deps.clock.now());
    if (done) await settled(deps, kinds, done);
  } catch (e) {
    // Its claim expires and it is offered again (and fails again, until given up): still alone.
    log.error('failing a job with unopenable secrets failed', { job_id: job.id, error: (e as Error)?.name ?? 'Error' });
  }
}

/** How often a waiting claim looks again (one query per look); a job queued in this process wakes it sooner (offers.ts). */
const POLL_MS = 250;

/**
 * When each agent was last recorded as seen by this process: the stored record is written at
 * most once per ~30 s anyway (a conditional write on its time), and this saves a warm function
 * even the attempt, which DynamoDB bills whether or not its condition holds.
 */
const lastTouched = new Map<string, number>();
const TOUCH_INTERVAL_MS = 30_000;

/** The version an agent reports in its User-Agent, `slipway-agent/<version>`; undefined when none. */
export const agentVersion = (userAgent: string | undefined): string | undefined => /^slipway-agent\/([\w.+-]{1,40})/.exec(userAgent ?? '')?.[1];

async function touch(deps: Ports, site: string, agent: string, version?: string): Promise<void> {
  const at = deps.clock.now();
  const key = `${site}\n${agent}`;
  if (at.getTime() - (lastTouched.get(key) ?? -Infinity) < TOUCH_INTERVAL_MS) return;
  lastTouched.set(key, at.getTime());
  await deps.jobs.touchAgent(site, agent, at, version).catch((err) => log.warn('agent presence not recorded', { site, error: (err as Error).name }));
}

export async function claimJobs(deps: Ports, auth: Principal | undefined, req: ClaimRequest, kinds: JobKinds, version?: string): Promise<Job[]> {
  const { site, agent } = agentSite(auth);
  await touch(deps, site, agent, version);
  const deadline = Date.now() + req.wait * 1000;
  const claimed: Job[] = [];
  for (let lostRounds = 0; ; ) {
    const now = deps.clock.now();
    const mark = offerMark(site);
    const offered = await deps.jobs.offered(site, now, req.max * 5);
    let lost = 0;
    for (const job of offered) {
      if (claimed.length >= req.max) break;
      if (job.status === 'claimed' && job.attempts >= job.max_attempts) {
        await deps.jobs.expire(job, now); // its agent died max_attempts times: give up, visibly
        const given = await deps.jobs.get(job.id);
        if (given?.status === 'failed') await settled(deps, kinds, given);
        continue;
      }
      const until = new Date(now.getTime() + req.lease_seconds * 1000);
      const won = await deps.jobs.claim(job, now, { token: randomUUID(), by: agent, until });
      if (!won) {
        lost++;
        continue;
      }
      // The agent gets the BMC secrets the cloud holds, opened for this job only; a job whose
      // secrets cannot be opened fails alone and the rest of the batch is handed out.
      let payload: Record<string, unknown>;
      try {
        payload = await openPayload(deps, won.payload);
      } catch (err) {
        await failUnopenable(deps, kinds, won, err);
        continue;
      }
      claimed.push({ ...won, payload });
      const kind = Object.hasOwn(kinds, won.kind) ? kinds[won.kind] : undefined;
      await kind?.onClaimed?.(deps, won).catch((err: unknown) => log.warn('claim handler failed', { job_id: won.id, kind: won.kind, error: (err as Error)?.name ?? 'Error' }));
    }
    if (claimed.length >= req.max) return claimed;
    // Jobs were there but other agents won them: look again at once (a few rounds), since
    // more may be waiting behind them; otherwise wait for new ones until the deadline.
    if (lost > 0 && lostRounds++ < 5) continue;
    if (claimed.length > 0 || Date.now() + POLL_MS > deadline) return claimed;
    await napUntilOffered(site, mark, POLL_MS);
  }
}

async function ownJob(deps: Ports, site: string, id: string): Promise<Job> {
  const job = await deps.jobs.get(id);
  if (!job || job.site !== site) throw new NotFoundError(`Job ${id} not found`);
  return job;
}

/** A job of the caller's site, as the agent sees it (404 for other sites' jobs). */
export async function getJob(deps: Ports, auth: Principal | undefined, id: string): Promise<Job> {
  const { site } = agentSite(auth);
  return ownJob(deps, site, id);
}

export async function heartbeatJob(deps: Ports, auth: Principal | undefined, id: string, req: z.infer<typeof HeartbeatRequest>, version?: string): Promise<Job> {
  const { site, agent } = agentSite(auth);
  // A busy agent heartbeats long jobs without claiming: that is contact too.
  await touch(deps, site, agent, version);
  const now = deps.clock.now();
  await ownJob(deps, site, id);
  if (!(await deps.jobs.extend(id, req.claim_token, new Date(now.getTime() + req.lease_seconds * 1000), now))) {
    throw new ConflictError(`The claim on job ${id} is no longer held (expired, re-offered or finished)`, 'STALE_CLAIM');
  }
  const job = (await deps.jobs.get(id))!;
  if (job.task_token) await deps.callbacks.heartbeat(job.task_token).catch((err) => log.warn('task heartbeat failed', { job_id: id, error: (err as Error).name }));
  return job;
}

export async function finishJob(deps: Ports, auth: Principal | undefined, id: string, req: ResultRequest, kinds: JobKinds): Promise<Job> {
  const { site } = agentSite(auth);
  await ownJob(deps, site, id);
  const done = await deps.jobs.finish(id, req.claim_token, { status: req.status, output: req.output, error: req.error }, deps.clock.now());
  if (!done) throw new ConflictError(`The claim on job ${id} is no longer held (expired, re-offered or finished)`, 'STALE_CLAIM');
  await settled(deps, kinds, done);
  return done;
}

/** An agent that stops before finishing gives the job back, so another run takes it at once. */
export async function releaseJob(deps: Ports, auth: Principal | undefined, id: string, req: z.infer<typeof ReleaseRequest>): Promise<Job> {
  const { site } = agentSite(auth);
  await ownJob(deps, site, id);
  const job = await deps.jobs.release(id, req.claim_token, deps.clock.now());
  if (!job) throw new ConflictError(`The claim on job ${id} is no longer held (expired, re-offered or finished)`, 'STALE_CLAIM');
  jobOffered(site);
  return job;
}

/** The agent's view of a job: everything but other agents' claim details. */
export function jobView(j: Job) {
  return {
    id: j.id,
    kind: j.kind,
    node_id: j.node_id ?? null,
    payload: j.payload,
    status: j.status,
    attempts: j.attempts,
    claim_token: j.claim_token ?? null,
    claim_expires_at: j.claim_expires_at ?? null,
    output: j.output ?? null,
    error: j.error ?? null,
    created_at: j.created_at,
    finished_at: j.finished_at ?? null,
  };
}
