/**
 * The callback half of the Step Functions `.waitForTaskToken` pattern (DESIGN.md §7): a
 * workflow state writes a job carrying its task token; when the agent reports, the token is
 * answered. On AWS that is SendTaskSuccess/Failure/Heartbeat; locally the workflow runner
 * waits on the same tokens in-process.
 */
export interface TaskCallbacks {
  succeed(token: string, output: unknown): Promise<void>;
  fail(token: string, error: string, cause: string): Promise<void>;
  heartbeat(token: string): Promise<void>;
}

/** A waiter the local workflow runner registers for a task token. */
export interface TaskWaiter {
  promise: Promise<unknown>;
  heartbeats: number;
}

/**
 * In-process callbacks for the local stack: `wait(token)` gives the runner a promise that the
 * agent's result settles. Unknown tokens are ignored (the workflow may have timed out).
 */
export class LocalTaskCallbacks implements TaskCallbacks {
  private readonly waiters = new Map<string, { resolve: (v: unknown) => void; reject: (e: Error) => void; waiter: TaskWaiter }>();

  wait(token: string): TaskWaiter {
    let resolve!: (v: unknown) => void;
    let reject!: (e: Error) => void;
    const promise = new Promise<unknown>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    const waiter: TaskWaiter = { promise, heartbeats: 0 };
    this.waiters.set(token, { resolve, reject, waiter });
    return waiter;
  }

  async succeed(token: string, output: unknown): Promise<void> {
    const w = this.waiters.get(token);
    this.waiters.delete(token);
    w?.resolve(output);
  }

  async fail(token: string, error: string, cause: string): Promise<void> {
    const w = this.waiters.get(token);
    this.waiters.delete(token);
    w?.reject(Object.assign(new Error(cause), { name: error }));
  }

  async heartbeat(token: string): Promise<void> {
    const w = this.waiters.get(token);
    if (w) w.waiter.heartbeats++;
  }
}
