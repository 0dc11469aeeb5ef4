import { MAX_CLAIM } from '#core/agent/jobs.ts';
import { log } from '#core/util/log.ts';
import { AgentApi, ApiError, ApiUnavailableError, type ClaimedJob } from './api.ts';
import type { AgentConfig } from './config.ts';
import { deployHook } from './deploy-hook.ts';
import { ImageCache } from './images.ts';
import type { NetbootService } from './netboot.ts';
import { DEFAULT_FETCH_INLINE_BYTES, describeFailure, type DriverFactory, type Executors, execute, type ParsedJob, parseJob, serialKey, sshOptions } from './executor.ts';

/**
 * The agent's job loop: claim (long-poll) up to the free concurrency, run each job with its
 * driver while heart-beating the claim, report the result. One command per BMC, and one SSH job
 * per host, at a time (jobs for a busy BMC or host wait their turn). When the API is down it
 * backs off and reconnects; on stop it claims nothing more, lets running jobs finish within the
 * grace period and releases the rest so another agent takes them at once.
 */
export class Agent {
  private readonly api: AgentApi;
  private stopping = false;
  private readonly running = new Map<string, { job: ClaimedJob; done: Promise<void> }>();
  /** Tail of the chain of work per BMC or SSH host: the next job for it runs after it. */
  private readonly serialQueues = new Map<string, Promise<void>>();
  private readonly executors: Executors;
  private loop: Promise<void> | undefined;
  private readonly cancelClaim = new AbortController();
  private wake: (() => void) | undefined;
  /** Counters for logs and tests. */
  readonly stats = { claimed: 0, succeeded: 0, failed: 0, released: 0, apiErrors: 0 };

  /**
   * `netboot`: the site boot service `inspect`, `clean` and image `deploy_node` jobs use (started
   * and stopped by the caller); its image cache (NetbootOptions.images) is the one deploys fill.
   */
  constructor(
    private readonly config: AgentConfig,
    makeDriver: DriverFactory,
    netboot?: NetbootService,
  ) {
    this.api = new AgentApi(config.api_url, config.token);
    this.executors = {
      makeDriver,
      ssh: sshOptions(config),
      ...(config.deploy_hook ? { deployHook: deployHook(config.deploy_hook) } : {}),
      ...(netboot ? { netboot } : {}),
      ...(netboot?.images ? { images: netboot.images } : {}),
      fetch: { inlineMaxBytes: DEFAULT_FETCH_INLINE_BYTES, ...(config.fetch.url_prefixes ? { urlPrefixes: config.fetch.url_prefixes } : {}) },
    };
  }

  start(): void {
    log.info('agent starting', { api_url: this.config.api_url, concurrency: this.config.concurrency });
    this.loop = this.run();
  }

  private async run(): Promise<void> {
    let backoff = 500;
    while (!this.stopping) {
      const free = this.config.concurrency - this.running.size;
      if (free <= 0) {
        await new Promise<void>((r) => (this.wake = r));
        continue;
      }
      try {
        const jobs = await this.api.claim(Math.min(free, MAX_CLAIM), this.config.poll_seconds, this.config.lease_seconds, this.cancelClaim.signal);
        backoff = 500;
        if (this.stopping) {
          await Promise.all(jobs.map((j) => this.api.release(j).catch(() => undefined)));
          break;
        }
        for (const job of jobs) this.begin(job);
      } catch (err) {
        if (this.stopping) break;
        this.stats.apiErrors++;
        if (err instanceof ApiError && (err.status === 401 || err.status === 403)) {
          log.error('agent token rejected; check SLIPWAY_AGENT_TOKEN', { status: err.status, message: err.message });
        } else {
          log.warn('claim failed; retrying', { error: (err as Error).message, retry_in_ms: backoff });
        }
        await this.sleep(backoff);
        backoff = Math.min(backoff * 2, 30_000);
      }
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((r) => {
      const t = setTimeout(r, ms);
      this.wake = () => {
        clearTimeout(t);
        r();
      };
    });
  }

  private begin(job: ClaimedJob): void {
    this.stats.claimed++;
    const done = this.work(job).finally(() => {
      this.running.delete(job.id);
      this.wake?.();
    });
    this.running.set(job.id, { job, done });
  }

  private async work(job: ClaimedJob): Promise<void> {
    const started = Date.now();
    let parsed: ParsedJob;
    try {
      parsed = parseJob(job.kind, job.payload);
    } catch (err) {
      return this.report(job, { status: 'failed', error: describeFailure(err) }, started);
    }
    // Heartbeats keep the claim while the BMC or host is slow (power polls, package updates).
    const beat = setInterval(() => {
      this.api.heartbeat(job, this.config.lease_seconds).catch((err) => log.warn('heartbeat failed', { job_id: job.id, error: (err as Error).message }));
    }, Math.max(1000, (this.config.lease_seconds * 1000) / 3));
    try {
      const key = serialKey(parsed);
      const previous = this.serialQueues.get(key) ?? Promise.resolve();
      let release!: () => void;
      const mine = new Promise<void>((r) => (release = r));
      const tail = previous.then(() => mine);
      this.serialQueues.set(key, tail);
      await previous;
      try {
        if (this.stopping && this.shutdownDeadlinePassed()) throw new ReleaseSignal();
        const output = await execute(parsed, this.executors);
        await this.report(job, { status: 'succeeded', output }, started);
      } finally {
        release();
        if (this.serialQueues.get(key) === tail) this.serialQueues.delete(key);
      }
    } catch (err) {
      if (err instanceof ReleaseSignal) {
        await this.api.release(job).catch(() => undefined);
        this.stats.released++;
        log.info('job released at shutdown', { job_id: job.id });
      } else {
        await this.report(job, { status: 'failed', error: describeFailure(err) }, started);
      }
    } finally {
      clearInterval(beat);
    }
  }

  private async report(job: ClaimedJob, outcome: { status: 'succeeded'; output: unknown } | { status: 'failed'; error: string }, started: number): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.api.result(job, outcome);
        break;
      } catch (err) {
        // The API refused the output itself (too large or too deeply nested to store): the job
        // ran, so report it failed with the reason rather than let the claim expire and the
        // command (a BMC reset, a package update) run again.
        if (err instanceof ApiError && err.status === 400 && outcome.status === 'succeeded') {
          log.warn('output refused; reporting the job failed', { job_id: job.id, message: err.message });
          outcome = { status: 'failed', error: refusedOutput(err.message) };
          attempt = 0;
          continue;
        }
        // A refused result means our claim went stale (expired and re-offered): another run owns it now.
        if (err instanceof ApiError) {
          log.warn('result refused', { job_id: job.id, status: err.status, message: err.message });
          return;
        }
        if (!(err instanceof ApiUnavailableError) || attempt >= 5) {
          log.error('result could not be reported; the claim will expire and the job be re-offered', { job_id: job.id });
          return;
        }
        await new Promise((r) => setTimeout(r, 500 * attempt));
      }
    }
    if (outcome.status === 'succeeded') this.stats.succeeded++;
    else this.stats.failed++;
    log.info('job finished', { job_id: job.id, kind: job.kind, status: outcome.status, ms: Date.now() - started, ...(outcome.status === 'failed' ? { error: outcome.error } : {}) });
  }

  private stopDeadline = 0;
  private shutdownDeadlinePassed(): boolean {
    return Date.now() >= this.stopDeadline;
  }

  /** Stops claiming; waits for running jobs up to the grace period; releases the rest. */
  async stop(): Promise<void> {
    if (this.stopping) return this.loop;
    this.stopping = true;
    this.stopDeadline = Date.now() + this.config.shutdown_grace_seconds * 1000;
    this.cancelClaim.abort();
    this.wake?.();
    log.info('agent stopping', { running: this.running.size, grace_seconds: this.config.shutdown_grace_seconds });
    const all = Promise.all([...this.running.values()].map((r) => r.done));
    const timer = new Promise<'late'>((r) => setTimeout(() => r('late'), this.config.shutdown_grace_seconds * 1000).unref());
    if ((await Promise.race([all.then(() => 'done' as const), timer])) === 'late') {
      // Jobs still waiting for a BMC are released by their own loop; ones mid-command cannot be
      // interrupted safely, so their claims are released and they are re-offered.
      await Promise.all([...this.running.values()].map(({ job }) => this.api.release(job).then(() => this.stats.released++, () => undefined)));
    }
    await this.loop?.catch(() => undefined);
  }
}

class ReleaseSignal extends Error {}

/**
 * The image cache of an agent with a netboot section (its catalog netboot.images, in
 * netboot.image_cache_dir): `api:<name>` entries are fetched through the agent's own API with
 * its token. Nothing is fetched here: images are fetched on first use by a deploy.
 */
export function agentImageCache(config: AgentConfig): ImageCache | undefined {
  const nb = config.netboot;
  if (!nb) return undefined;
  return new ImageCache({ dir: nb.image_cache_dir, images: nb.images, api: { url: config.api_url, token: config.token }, urlPrefixes: nb.image_url_prefixes });
}

/** The failure reported for a job whose output the API would not take (at most 4000 characters). */
export function refusedOutput(apiMessage: string): string {
  const text = `agent error: the job ran, but the API refused its output: ${apiMessage}`;
  return text.length <= 4000 ? text : `${text.slice(0, 3999)}…`;
}
