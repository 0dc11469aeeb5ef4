import { describe, expect, it } from 'vitest';
import { type CallbackClient, SfnTaskCallbacks } from '../../layers/aws/sfn-callbacks.ts';

/** Error mapping of the Step Functions callback adapter (a fake client: no AWS here). */
function client(fail?: string): CallbackClient & { sent: { name: string; input: unknown }[] } {
  const sent: { name: string; input: unknown }[] = [];
  return {
    sent,
    async send(command) {
      sent.push({ name: command.constructor.name, input: command.input });
      if (fail) throw Object.assign(new Error(fail), { name: fail });
      return {};
    },
  };
}

describe('SfnTaskCallbacks', () => {
  it('sends success with the output as JSON, failure and heartbeat with the token', async () => {
    const c = client();
    const cb = new SfnTaskCallbacks(c);
    await cb.succeed('tok', { power_state: 'power on' });
    await cb.fail('tok', 'AgentJobFailed', 'auth: wrong password');
    await cb.heartbeat('tok');
    expect(c.sent).toEqual([
      { name: 'SendTaskSuccessCommand', input: { taskToken: 'tok', output: '{"power_state":"power on"}' } },
      { name: 'SendTaskFailureCommand', input: { taskToken: 'tok', error: 'AgentJobFailed', cause: 'auth: wrong password' } },
      { name: 'SendTaskHeartbeatCommand', input: { taskToken: 'tok' } },
    ]);
  });

  it.each(['TaskTimedOut', 'TaskDoesNotExist', 'InvalidToken'])('treats %s as a workflow that stopped waiting', async (name) => {
    await expect(new SfnTaskCallbacks(client(name)).succeed('tok', {})).resolves.toBeUndefined();
  });

  it('passes other errors on (throttling, access denied)', async () => {
    await expect(new SfnTaskCallbacks(client('ThrottlingException')).succeed('tok', {})).rejects.toThrow('ThrottlingException');
    await expect(new SfnTaskCallbacks(client('AccessDeniedException')).heartbeat('tok')).rejects.toThrow('AccessDeniedException');
  });
});
