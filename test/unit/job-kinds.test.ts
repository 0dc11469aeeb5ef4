import { describe, expect, it } from 'vitest';
import { finishJob, type JobKinds } from '../../layers/core/agent/jobs.ts';
import { JOB_KINDS } from '../../layers/core/agent/kinds.ts';
import { onCleanFinished } from '../../layers/core/ironic/clean.ts';
import type { Job } from '../../layers/core/agent/model.ts';
import type { Principal } from '../../layers/core/identity/identity.ts';
import type { Ports } from '../../layers/core/ports.ts';
import { onHostJobFinished } from '../../layers/core/commissaire/investigate.ts';
import { onJobFinished } from '../../layers/core/ironic/nodes.ts';
import { onDeployClaimed, onDeployFinished } from '../../layers/core/ironic/deploy.ts';
import { onInspectFinished } from '../../layers/core/ironic/inspect.ts';

const agent: Principal = { token_id: 't', project_id: 'site', user_id: 'agent', roles: ['agent'] };

/** Just enough of the ports for a result: one claimed job, and the workflow answers it gets. */
function fakeDeps(kind: string) {
  const job: Job = {
    id: 'j1',
    site: 'site',
    kind,
    payload: {},
    status: 'claimed',
    attempts: 1,
    max_attempts: 3,
    claim_token: 'c1',
    task_token: 'tt',
    created_at: '2026-01-01T00:00:00.000Z',
    updated_at: null,
  };
  const answered: string[] = [];
  const deps = {
    clock: { now: () => new Date('2026-01-01T00:01:00.000Z') },
    jobs: {
      get: async () => job,
      finish: async (_id: string, _token: string, r: { status: 'succeeded' | 'failed'; output?: unknown }) => ({ ...job, ...r, claim_token: undefined }),
    },
    callbacks: {
      succeed: async (token: string) => void answered.push(`succeed ${token}`),
      fail: async (token: string) => void answered.push(`fail ${token}`),
      heartbeat: async () => undefined,
    },
  } as unknown as Ports;
  return { deps, answered };
}

describe('JOB_KINDS', () => {
  it('registers every kind the agent runs, nodes and hosts learning the results of theirs', () => {
    expect(Object.keys(JOB_KINDS).sort()).toEqual(['boot_device', 'boot_device_get', 'clean', 'deploy_node', 'fetch', 'inspect', 'power', 'power_state', 'ssh_investigate', 'ssh_run', 'vendor']);
    for (const kind of ['power', 'power_state', 'vendor']) expect(JOB_KINDS[kind]!.onFinished).toBe(onJobFinished);
    // A fetch's result moves a Commissaire host on when it was a container manager's call (container-manager.ts).
    for (const kind of ['ssh_investigate', 'ssh_run', 'fetch']) expect(JOB_KINDS[kind]!.onFinished).toBe(onHostJobFinished);
    expect(JOB_KINDS.inspect!.onFinished).toBe(onInspectFinished);
    // The leases waiting for a node whose erase failed are healed by the sweeper (leases/heal-sweep.ts).
    expect(JOB_KINDS.clean!.onFinished).toBe(onCleanFinished);
    expect(JOB_KINDS.deploy_node).toEqual({ onClaimed: onDeployClaimed, onFinished: onDeployFinished });
    // Whoever queued these waits for the job itself.
    for (const kind of ['boot_device', 'boot_device_get']) expect(JOB_KINDS[kind]!.onFinished).toBeUndefined();
  });
});

describe('finishJob', () => {
  it("runs the finished job's kind's handler alone, then answers the waiting workflow", async () => {
    const calls: string[] = [];
    const kinds: JobKinds = {
      power: { onFinished: async (_d, j) => void calls.push(`power ${j.status}`) },
      ssh_run: { onFinished: async () => void calls.push('ssh_run') },
    };
    const { deps, answered } = fakeDeps('power');
    await finishJob(deps, agent, 'j1', { claim_token: 'c1', status: 'succeeded' }, kinds);
    expect(calls).toEqual(['power succeeded']);
    expect(answered).toEqual(['succeed tt']);
  });

  it('answers the workflow of a kind without a handler, a prototype member name included', async () => {
    for (const kind of ['boot_device', 'constructor', 'unknown']) {
      const { deps, answered } = fakeDeps(kind);
      await finishJob(deps, agent, 'j1', { claim_token: 'c1', status: 'failed' }, { boot_device: {} });
      expect(answered).toEqual(['fail tt']);
    }
  });
});
