/**
 * Agent jobs (DESIGN.md §6 invariant 4, §7): work for the on-prem agent of a site, claimed once
 * under a claim lease. A claim is a conditional write; an expired claim is re-offered with a new
 * claim token, so a result or heartbeat carrying the old token is refused, and a finished job
 * can never be claimed or finished again.
 *
 *   queued ──claim──▶ claimed ──result──▶ succeeded | failed
 *     ▲                 │  ▲
 *     └────release──────┤  └─ claim expired: re-offered (attempts + 1), failed after max_attempts
 */
export type JobStatus = 'queued' | 'claimed' | 'succeeded' | 'failed';
export const JOB_TRANSITIONS: Record<JobStatus, readonly JobStatus[]> = {
  queued: ['claimed'],
  claimed: ['claimed', 'queued', 'succeeded', 'failed'],
  succeeded: [],
  failed: [],
};

export interface Job {
  id: string;
  /** The site whose agent runs it: the agent token's project. */
  site: string;
  /** What to do: one of the kinds in `kinds.ts`, e.g. `power`, `boot_device`, `vendor`. */
  kind: string;
  node_id?: string;
  /** Input for the agent (driver, driver_info without secrets the agent keeps, action...). */
  payload: Record<string, unknown>;
  status: JobStatus;
  attempts: number;
  max_attempts: number;
  /** Present while claimed: only its holder may heartbeat or finish the job. */
  claim_token?: string;
  claimed_by?: string;
  claim_expires_at?: string;
  /** Step Functions task token of a workflow waiting for this job (callback pattern). */
  task_token?: string;
  output?: unknown;
  error?: string;
  created_at: string;
  updated_at: string | null;
  finished_at?: string;
}

export interface JobRepository {
  create(job: Job): Promise<void>;
  get(id: string): Promise<Job | undefined>;
  /** Jobs of the site that are queued, or claimed with a claim that expired before `now`. */
  offered(site: string, now: Date, limit: number): Promise<Job[]>;
  /** Conditional claim: succeeds only if the job is still offered; undefined when another won. */
  claim(job: Job, now: Date, claim: { token: string; by: string; until: Date }): Promise<Job | undefined>;
  /** Extends the claim if `token` still holds it. */
  extend(id: string, token: string, until: Date, now: Date): Promise<boolean>;
  /** Finishes the job if `token` still holds it; undefined when the claim is stale or gone. */
  finish(id: string, token: string, result: { status: 'succeeded' | 'failed'; output?: unknown; error?: string }, now: Date): Promise<Job | undefined>;
  /** Fails a job whose claims expired too often (conditional on it still being offered). */
  expire(job: Job, now: Date): Promise<void>;
  /** Puts a claimed job back in the queue at once if `token` still holds it (agent shutdown). */
  release(id: string, token: string, now: Date): Promise<Job | undefined>;
  /**
   * Records that an agent of the site contacted the API (claim or heartbeat) at `at`, with the
   * version it reported: a conditional write that lands only when the stored time is older than
   * ~30 s (false when it did not). Drydock's verify_site and `GET /v1.1/{p}/sites` read it.
   */
  touchAgent(site: string, agent: string, at: Date, version?: string): Promise<boolean>;
  /** The agents of a site, when each last made contact and the version it reported. */
  agentsSeen(site: string): Promise<{ agent: string; at: string; version?: string }[]>;
}
