import { type ChildProcess, spawn } from 'node:child_process';
import { createServer, connect, type Server } from 'node:net';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { AgentConfig } from '../../agent/config.ts';
import { driverFactory } from '../../agent/drivers/index.ts';
import { Agent } from '../../agent/runner.ts';
import { type RedfishSim, startRedfishSim } from '../../agent/sim/redfish.ts';
import { type IpmiSim, startIpmiSim } from '../../agent/sim/ipmi-sim.ts';
import { buildDeps } from '../../layers/aws/deps.ts';
import { enqueueJob } from '../../layers/core/agent/enqueue.ts';
import type { Job } from '../../layers/core/agent/model.ts';
import { jobFinished, untilJob } from '../support/agent.ts';
import { tokenFor, unique } from '../support/api.ts';

/**
 * The whole path with real parts: job enqueued in DynamoDB Local → the agent claims it over the
 * HTTP API → drives a BMC (the Redfish simulator; real ipmitool against ipmi_sim) → reports →
 * the job holds the BMC's answer.
 */
const root = resolve(import.meta.dirname, '../..');
const deps = () => buildDeps({ TABLE_NAME: 'slipway', DYNAMODB_ENDPOINT: inject('dynamoEndpoint') });
let redfish: RedfishSim;
let ipmi: IpmiSim;

beforeAll(async () => {
  redfish = await startRedfishSim({
    username: 'root',
    password: 'calvin',
    systems: [
      { id: 'sys-a', powerState: 'Off', powerDelayMs: 200 },
      { id: 'sys-slow', powerState: 'Off', powerDelayMs: 6000 },
    ],
  });
  ipmi = await startIpmiSim({ username: 'admin', password: 'password' });
});
afterAll(async () => {
  await redfish?.stop();
  await ipmi?.stop();
});

const redfishInfo = (system: string, extra: Record<string, unknown> = {}) => ({
  redfish_address: redfish.url,
  redfish_system_id: system,
  redfish_username: 'root',
  redfish_password: 'calvin',
  ...extra,
});
const ipmiInfo = (extra: Record<string, unknown> = {}) => ({
  ipmi_address: ipmi.address,
  ipmi_port: ipmi.port,
  ipmi_username: 'admin',
  ipmi_password: 'password',
  ...extra,
});

function config(token: string, extra: Record<string, unknown> = {}): AgentConfig {
  return {
    ...AgentConfig.parse({
      api_url: inject('apiUrl'),
      token,
      poll_seconds: 1,
      lease_seconds: 10,
      shutdown_grace_seconds: 5,
      credentials: { 'lab-redfish': { username: 'root', password: 'calvin' } },
      ipmi: { min_command_interval_ms: 100, poll_interval_ms: 200, timeout_seconds: 5, retries: 0 },
      redfish: { poll_interval_ms: 50, power_timeout_ms: 20_000 },
      ...extra,
    }),
    token,
  };
}


async function site() {
  const s = unique('site');
  return { site: s, token: (await tokenFor('agent', s)).token };
}

describe('agent end to end', () => {
  it('powers and boots a Redfish system and an IPMI BMC, and reports what the BMC says', async () => {
    const { site: s, token } = await site();
    const agent = new Agent(config(token), driverFactory(config(token)));
    agent.start();
    try {
      // Power first, then the boot device: the simulator consumes a one-time override when the
      // system powers on, as a BMC does, so the other order would leave it `Disabled`.
      const power = await Promise.all([
        enqueueJob(deps(), { site: s, kind: 'power', payload: { driver: 'redfish', driver_info: redfishInfo('sys-a'), target: 'power on' } }),
        enqueueJob(deps(), { site: s, kind: 'power', payload: { driver: 'ipmi', driver_info: ipmiInfo(), target: 'power on' } }),
      ]);
      const powered = await Promise.all(power.map((j) => untilJob(j.id, jobFinished)));
      const boot = await Promise.all([
        enqueueJob(deps(), { site: s, kind: 'boot_device', payload: { driver: 'redfish', driver_info: redfishInfo('sys-a'), boot_device: 'pxe', persistent: false } }),
        enqueueJob(deps(), { site: s, kind: 'boot_device', payload: { driver: 'ipmi', driver_info: ipmiInfo(), boot_device: 'pxe', persistent: true } }),
      ]);
      const booted = await Promise.all(boot.map((j) => untilJob(j.id, jobFinished)));
      const done = [powered[0]!, booted[0]!, powered[1]!, booted[1]!];
      for (const j of done) expect(j.status, j.error).toBe('succeeded');
      expect(done[0]!.output).toEqual({ power_state: 'power on' });
      expect(done[1]!.output).toEqual({ boot_device: 'pxe', persistent: false });
      expect(done[2]!.output).toEqual({ power_state: 'power on' });
      expect(redfish.state('sys-a')).toMatchObject({ PowerState: 'On', BootSourceOverrideTarget: 'Pxe', BootSourceOverrideEnabled: 'Once' });
      expect(ipmi.state().power).toBe('on');
      expect(ipmi.state().boot).toMatch(/pxe/);
      // Jobs enqueued together run in any order; the probe goes after the power-on is done.
      const probe = await enqueueJob(deps(), { site: s, kind: 'vendor', payload: { driver: 'ipmi', driver_info: ipmiInfo(), method: 'probe', args: {} } });
      expect((await untilJob(probe.id, jobFinished)).output).toMatchObject({ system_power: 'on' });
    } finally {
      await agent.stop();
    }
  });

  it('fails a job with the BMC error text and no secret, and resolves on-prem credentials', async () => {
    const { site: s, token } = await site();
    // More slots than one claim hands out: the agent claims in several requests.
    const agent = new Agent(config(token, { concurrency: 40 }), driverFactory(config(token)));
    agent.start();
    try {
      const wrong = await enqueueJob(deps(), { site: s, kind: 'power_state', payload: { driver: 'redfish', driver_info: redfishInfo('sys-a', { redfish_password: 'hunter2-wrong' }) } });
      const viaRef = await enqueueJob(deps(), {
        site: s,
        kind: 'power_state',
        payload: { driver: 'redfish', driver_info: { redfish_address: redfish.url, redfish_system_id: 'sys-a', credential_ref: 'lab-redfish' } },
      });
      const unknownRef = await enqueueJob(deps(), { site: s, kind: 'power_state', payload: { driver: 'redfish', driver_info: { redfish_address: redfish.url, credential_ref: 'nope' } } });
      const [w, v, u] = await Promise.all([wrong, viaRef, unknownRef].map((j) => untilJob(j.id, jobFinished)));
      expect(w!.status).toBe('failed');
      expect(w!.error).toMatch(/^auth: /);
      expect(w!.error).not.toContain('hunter2');
      expect(v!.status, v!.error).toBe('succeeded');
      expect(u!.error).toBe("invalid job: credential_ref nope is not in this agent's configuration");
    } finally {
      await agent.stop();
    }
  });

  it('reconnects with backoff when the API is down, then works', async () => {
    const { site: s, token } = await site();
    // A port where nothing listens yet; later a TCP relay to the API opens on it.
    const relay = createServer((c) => {
      const up = connect(Number(new URL(inject('apiUrl')).port), '127.0.0.1');
      c.pipe(up).pipe(c);
      up.on('error', () => c.destroy());
      c.on('error', () => up.destroy());
    });
    const port = await new Promise<number>((r) => relay.listen(0, '127.0.0.1', () => r((relay.address() as { port: number }).port)));
    await new Promise<void>((r) => relay.close(() => r()));
    const cfg = config(token, { api_url: `http://127.0.0.1:${port}` });
    const agent = new Agent(cfg, driverFactory(cfg));
    agent.start();
    let server: Server | undefined;
    try {
      const job = await enqueueJob(deps(), { site: s, kind: 'power_state', payload: { driver: 'redfish', driver_info: redfishInfo('sys-a') } });
      await new Promise((r) => setTimeout(r, 1500));
      expect(agent.stats.apiErrors).toBeGreaterThan(0);
      server = relay.listen(port, '127.0.0.1');
      const done = await untilJob(job.id, jobFinished);
      expect(done.status).toBe('succeeded');
    } finally {
      await agent.stop();
      server?.close();
    }
  });

  it('re-offers the job of an agent killed mid-command, and another agent finishes it once', async () => {
    const { site: s, token } = await site();
    const job = await enqueueJob(deps(), { site: s, kind: 'power', payload: { driver: 'redfish', driver_info: redfishInfo('sys-slow'), target: 'power on' } });
    // The child polls briefly: a long-poll still running in the API when the child dies could
    // otherwise claim the re-offered job for the dead agent (recovered only at lease expiry).
    const cfgFile = join(mkdtempSync(join(tmpdir(), 'slipway-agent-')), 'agent.json');
    writeFileSync(cfgFile, JSON.stringify({ api_url: inject('apiUrl'), token, poll_seconds: 1 }));
    // Its own process group: tsx runs the agent in a child node process, which a SIGKILL of
    // tsx alone would leave running (and finishing the job behind the test's back).
    const child: ChildProcess = spawn(join(root, 'node_modules/.bin/tsx'), ['agent/main.ts', '--config', cfgFile], {
      cwd: root,
      env: { ...process.env, SLIPWAY_LOG_LEVEL: 'warn' },
      stdio: 'ignore',
      detached: true,
    });
    const killAll = () => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // already gone
      }
    };
    try {
      const claimed = await untilJob(job.id, (j) => j.status === 'claimed', 30_000);
      expect(claimed.attempts).toBe(1);
      killAll();
      await new Promise((r) => setTimeout(r, 1500)); // let its last long-poll end
      // Force the re-offer now instead of waiting out the default 60 s lease.
      await deps().jobs.extend(job.id, claimed.claim_token!, new Date(Date.now() - 1000), new Date());
      const agent = new Agent(config(token), driverFactory(config(token)));
      agent.start();
      try {
        const done = await untilJob(job.id, jobFinished, 30_000);
        expect(done).toMatchObject({ status: 'succeeded', attempts: 2, output: { power_state: 'power on' } });
        expect(agent.stats.succeeded).toBe(1);
      } finally {
        await agent.stop();
      }
    } finally {
      killAll();
    }
  });

  it('finishes the job it holds on SIGTERM, then exits 0', async () => {
    const { site: s, token } = await site();
    const job = await enqueueJob(deps(), { site: s, kind: 'power', payload: { driver: 'redfish', driver_info: redfishInfo('sys-a'), target: 'power off' } });
    const child = spawn(join(root, 'node_modules/.bin/tsx'), ['agent/main.ts'], {
      cwd: root,
      env: { ...process.env, SLIPWAY_API_URL: inject('apiUrl'), SLIPWAY_AGENT_TOKEN: token, SLIPWAY_LOG_LEVEL: 'warn' },
      stdio: 'ignore',
    });
    await untilJob(job.id, (j) => j.status === 'claimed', 30_000);
    const exit = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    child.kill('SIGTERM');
    expect(await exit).toBe(0);
    expect((await deps().jobs.get(job.id))!.status).toBe('succeeded');
  });

  it('refuses to start without a token, saying how to configure it', async () => {
    const child = spawn(join(root, 'node_modules/.bin/tsx'), ['agent/main.ts'], {
      cwd: root,
      env: { ...process.env, SLIPWAY_API_URL: 'http://127.0.0.1:9', SLIPWAY_AGENT_TOKEN: '' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let err = '';
    child.stderr!.on('data', (b) => (err += b));
    const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
    expect(code).toBe(2);
    expect(err).toContain('SLIPWAY_AGENT_TOKEN');
  });
});
