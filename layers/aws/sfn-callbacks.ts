import { SendTaskFailureCommand, SendTaskHeartbeatCommand, SendTaskSuccessCommand, SFNClient } from '@aws-sdk/client-sfn';
import type { TaskCallbacks } from '#core/agent/callbacks.ts';
import { log } from '#core/util/log.ts';
import { traceAwsClient } from './xray.ts';

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

export class SfnTaskCallbacks implements TaskCallbacks {
  constructor(private readonly client: CallbackClient = traceAwsClient(new SFNClient({})) as unknown as CallbackClient) {}

  private async send(what: string, command: CallbackCommand): Promise<void> {
    try {
      await this.client.send(command);
    } catch (err) {
      const name = (err as Error).name;
      if (!GONE.has(name)) throw err;
      log.warn(`${what}: the workflow no longer waits for this task`, { error: name });
    }
  }

  succeed(token: string, output: unknown): Promise<void> {
    return this.send('SendTaskSuccess', new SendTaskSuccessCommand({ taskToken: token, output: JSON.stringify(output ?? null) }));
  }

  fail(token: string, error: string, cause: string): Promise<void> {
    return this.send('SendTaskFailure', new SendTaskFailureCommand({ taskToken: token, error: error.slice(0, 256), cause: cause.slice(0, 32_768) }));
  }

  heartbeat(token: string): Promise<void> {
    return this.send('SendTaskHeartbeat', new SendTaskHeartbeatCommand({ taskToken: token }));
  }
}
