/**
 * The agent's client of the job API. Network failures are `ApiUnavailableError` (the loop
 * backs off and reconnects); answers of 4xx/5xx are `ApiError` with the server's message.
 */
import { createRequire } from 'node:module';

/** `slipway-agent/<version>`: the control plane records each agent's version with its last contact (`GET /v1.1/{p}/sites`). */
export const USER_AGENT = `slipway-agent/${(createRequire(import.meta.url)('../package.json') as { version: string }).version}`;

export interface ClaimedJob {
  id: string;
  kind: string;
  node_id: string | null;
  payload: Record<string, unknown>;
  attempts: number;
  claim_token: string;
  claim_expires_at: string;
}

export class ApiUnavailableError extends Error {}
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export class AgentApi {
  constructor(
    private readonly baseUrl: string,
    private readonly token: string,
  ) {}

  private async post<T>(path: string, body: unknown, timeoutMs = 30_000, cancel?: AbortSignal): Promise<T> {
    let res: Response;
    try {
      res = await fetch(`${this.baseUrl.replace(/\/$/, '')}/api/v1.0/agent${path}`, {
        method: 'POST',
        headers: { 'X-Auth-Token': this.token, 'Content-Type': 'application/json', 'User-Agent': USER_AGENT },
        body: JSON.stringify(body),
        signal: cancel ? AbortSignal.any([cancel, AbortSignal.timeout(timeoutMs)]) : AbortSignal.timeout(timeoutMs),
      });
    } catch (err) {
      const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).name;
      throw new ApiUnavailableError(`Slipway API at ${this.baseUrl} unavailable (${cause})`);
    }
    const text = await res.text();
    if (!res.ok) {
      let message = text;
      try {
        message = (JSON.parse(text) as { message?: string }).message ?? text;
      } catch {
        // not JSON: keep the text
      }
      if (res.status >= 500 && res.status !== 501) throw new ApiUnavailableError(`Slipway API answered ${res.status}: ${message}`);
      throw new ApiError(res.status, message);
    }
    return JSON.parse(text) as T;
  }

  /** `cancel` abandons the long-poll (agent stopping); a job claimed meanwhile expires and is re-offered. */
  async claim(max: number, waitSeconds: number, leaseSeconds: number, cancel?: AbortSignal): Promise<ClaimedJob[]> {
    const r = await this.post<{ jobs: ClaimedJob[] }>('/jobs/claim', { max, wait: waitSeconds, lease_seconds: leaseSeconds }, (waitSeconds + 15) * 1000, cancel);
    return r.jobs;
  }

  async heartbeat(job: ClaimedJob, leaseSeconds: number): Promise<void> {
    await this.post(`/jobs/${job.id}/heartbeat`, { claim_token: job.claim_token, lease_seconds: leaseSeconds });
  }

  async result(job: ClaimedJob, outcome: { status: 'succeeded'; output: unknown } | { status: 'failed'; error: string }): Promise<void> {
    await this.post(`/jobs/${job.id}/result`, { claim_token: job.claim_token, ...outcome });
  }

  async release(job: ClaimedJob): Promise<void> {
    await this.post(`/jobs/${job.id}/release`, { claim_token: job.claim_token });
  }
}
