/**
 * Wakes the claims waiting in this process when a job is offered to their site. A waiting claim
 * (`claimJobs`' long-poll) otherwise looks at the queue every POLL_MS, so a job queued just after
 * a look waits up to that long before an agent gets it — a quarter of a second on every BMC
 * action. Where the API that queues the job and the claim that waits share a process (the local
 * stack, or one warm Lambda container serving both) the queueing wakes the claim at once; where
 * they do not (separate Lambda invocations), nothing changes: the claim still looks every POLL_MS.
 *
 * A hint only: the claim still reads the queue and wins the job by its conditional write, so a
 * lost or spurious wake costs a query, never a job.
 */

/**
 * Offers signalled per site (a claim compares the count across its query). At most MAX_SITES
 * sites: past that the map starts over, which costs each waiting claim one early look, no more.
 */
const offers = new Map<string, number>();
const MAX_SITES = 10_000;
/** Wakers of the claims waiting now, per site. Removed when they wake or time out. */
const waiting = new Map<string, Set<() => void>>();

/** A job of `site` became claimable (queued, or released by an agent). */
export function jobOffered(site: string): void {
  if (offers.size >= MAX_SITES && !offers.has(site)) offers.clear();
  offers.set(site, (offers.get(site) ?? 0) + 1);
  const ws = waiting.get(site);
  if (!ws) return;
  waiting.delete(site);
  for (const wake of ws) wake();
}

/** The current offer count of `site`: read it before querying the queue, pass it to `napUntilOffered`. */
export function offerMark(site: string): number {
  return offers.get(site) ?? 0;
}

/**
 * Sleeps `ms`, or less: until a job of `site` is offered. Returns at once when one was offered
 * since `mark` was read (a job queued between the claim's query and this nap is not missed).
 */
export function napUntilOffered(site: string, mark: number, ms: number): Promise<void> {
  if (offerMark(site) !== mark) return Promise.resolve();
  return new Promise<void>((resolve) => {
    let ws = waiting.get(site);
    if (!ws) waiting.set(site, (ws = new Set()));
    const wake = () => {
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(() => {
      const now = waiting.get(site);
      now?.delete(wake);
      if (now?.size === 0) waiting.delete(site);
      resolve();
    }, ms);
    ws.add(wake);
  });
}
