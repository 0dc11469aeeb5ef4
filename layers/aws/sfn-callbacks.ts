import type { SendTaskFailureCommand, SendTaskHeartbeatCommand, SendTaskSuccessCommand } from '@aws-sdk/client-sfn';
import type { TaskCallbacks } from '#core/agent/callbacks.ts';
import { log } from '#core/util/log.ts';
import { firstUse, lazyClient } from './lazy-client.ts';

/** Errors meaning the workflow no longer waits for this token: nothing to answer any more. */
const GONE = new Set(['TaskTimedOut', 'TaskDoesNotExist', 'InvalidToken']);

/**
 * Step Functions callbacks for jobs that carry a task token. The job is already final when
 * these run, so a token the workflow gave up on is logged, not an error for the agent.
 */
type CallbackCommand = SendTaskSuccessCommand | SendTaskFailureCommand | SendTaskHeartbeatCommand;
/** What the adapter needs of the client (a narrow seam for the error-mapping unit test). */
export interface CallbackClient {
  send(command: CallbackCommand): Promise<unknown>;
}

/** Imported at the first task-token answer, not at the function's cold start (lazy-client.ts). */
const sfn = firstUse(() => import('@aws-sdk/client-sfn'));
type Sfn = Awaited<ReturnType<typeof sfn>>;

export class SfnTaskCallbacks implements TaskCallbacks {
  constructor(private readonly client: CallbackClient = lazyClient<CallbackClient>(async () => new (await sfn()).SFNClient({}))) {}

  /** `command` builds the request from the SDK module, which is imported first if need be. */
  private async send(what: string, command: (sdk: Sfn) => CallbackCommand): Promise<void> {
    const request = command(await sfn());
    try {
      await this.client.send(request);
    } catch (err) {
      const name = (err as Error).name;
      if (!GONE.has(name)) throw err;
      log.warn(`${what}: the workflow no longer waits for this task`, { error: name });
    }
  }

  succeed(token: string, output: unknown): Promise<void> {
    const input = { taskToken: token, output: JSON.stringify(output ?? null) };
    return this.send('SendTaskSuccess', (sdk) => new sdk.SendTaskSuccessCommand(input));
  }

  fail(token: string, error: string, cause: string): Promise<void> {
    const input = { taskToken: token, error: error.slice(0, 256), cause: cause.slice(0, 32_768) };
    return this.send('SendTaskFailure', (sdk) => new sdk.SendTaskFailureCommand(input));
  }

  heartbeat(token: string): Promise<void> {
    return this.send('SendTaskHeartbeat', (sdk) => new sdk.SendTaskHeartbeatCommand({ taskToken: token }));
  }
}
