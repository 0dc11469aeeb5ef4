import { type ChildProcess, spawn } from 'node:child_process';
import { createServer, connect, type Server } from 'node:net';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { AgentConfig } from '../../agent/config.ts';
import { driverFactory } from '../../agent/drivers/index.ts';
import { Agent } from '../../agent/runner.ts';
import { waitFor } from '../support/wait.ts';
import { type RedfishSim, startRedfishSim } from '../../agent/sim/redfish.ts';
import { type IpmiSim, startIpmiSim } from '../../agent/sim/ipmi-sim.ts';
import type { IpmiCommandEvent } from '../../agent/drivers/ipmi.ts';
import { buildDeps } from '../../layers/aws/deps.ts';
import { enqueueJob } from '../../layers/core/agent/enqueue.ts';
import type { Job } from '../../layers/core/agent/model.ts';
import { jobOffered, napUntilOffered, offerMark } from '../../layers/core/agent/offers.ts';
import { jobFinished, untilJob } from '../support/agent.ts';
import { call, tokenFor, unique } from '../support/api.ts';

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
        // The agent counts the job once the API has answered its report, which may be just after
        // the job reads as succeeded (CI saw 0 here once).
        await waitFor('the agent to count its job', async () => agent.stats.succeeded > 0, 5000, 20);
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

/** The ipmitool command of an event, e.g. 'chassis power on' (what follows `-v`). */
const ipmiCommand = (e: IpmiCommandEvent) => e.args.slice(e.args.indexOf('-v') + 1).join(' ');

describe('BMC commands (issue 16)', () => {
  it('a power-on through the Ironic API is one action and one read-back at the BMC, IPMI ones 1 s apart', async () => {
    const { site: s, token } = await site();
    const bmc = await startIpmiSim({ username: 'admin', password: 'password' });
    const rf = await startRedfishSim({ username: 'root', password: 'calvin', systems: [{ id: '1', powerState: 'Off' }] });
    const commands: IpmiCommandEvent[] = [];
    // The agent's default IPMI timings: 1 s between commands to one BMC, read back 1 s after.
    const cfg = config(token, { ipmi: { timeout_seconds: 5, retries: 0 } });
    const agent = new Agent(cfg, driverFactory(cfg, { onIpmiCommand: (e) => commands.push(e) }));
    agent.start();
    const V = { 'X-OpenStack-Ironic-API-Version': '1.78' };
    const power = async (node: string, target: string) => {
      expect((await call('PUT', `/v1/nodes/${node}/states/power`, { body: { target }, headers: V })).status).toBe(202);
      for (const end = Date.now() + 20_000; ; ) {
        const states = (await call('GET', `/v1/nodes/${node}/states`, { headers: V })).body;
        if (states.target_power_state === null) return states;
        if (Date.now() > end) throw new Error(`${node} still ${JSON.stringify(states)}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    try {
      const ipmiNode = unique('bm');
      const rfNode = unique('bm');
      const info = { ipmi_address: bmc.address, ipmi_port: bmc.port, ipmi_username: 'admin', ipmi_password: 'password' };
      expect((await call('POST', '/v1/nodes', { body: { name: ipmiNode, driver: 'ipmi', conductor_group: s, driver_info: info }, headers: V })).status).toBe(201);
      expect(
        (await call('POST', '/v1/nodes', { body: { name: rfNode, driver: 'redfish', conductor_group: s, driver_info: redfishInfo('1', { redfish_address: rf.url }) }, headers: V }))
          .status,
      ).toBe(201);

      expect(await power(ipmiNode, 'power on')).toMatchObject({ power_state: 'power on', last_error: null });
      // At the BMC: the change and its read-back, no read before (ipmi_sim logs reads too).
      expect(bmc.requests()).toEqual(['set power 1', 'get power']);
      expect(commands.map(ipmiCommand)).toEqual(['chassis power on', 'chassis power status']);
      expect(commands[1]!.startedAt - commands[0]!.finishedAt).toBeGreaterThanOrEqual(1000);

      // Redfish: the first job finds the system (it is off: nothing sent); a power-on after it
      // is the reset and its read-back.
      expect(await power(rfNode, 'power off')).toMatchObject({ power_state: 'power off' });
      const from = rf.requests().length;
      expect(await power(rfNode, 'power on')).toMatchObject({ power_state: 'power on', last_error: null });
      expect(rf.requests().slice(from).map((r) => `${r.method} ${r.path}`)).toEqual(['POST /redfish/v1/Systems/1/Actions/ComputerSystem.Reset', 'GET /redfish/v1/Systems/1']);
      expect(rf.state('1').resets).toEqual(['On']);
    } finally {
      await agent.stop();
      await bmc.stop();
      await rf.stop();
    }
  });

  it('never sends one BMC two commands at once under a burst of jobs for several BMCs', async () => {
    const { site: s, token } = await site();
    const ipmis = await Promise.all([0, 1].map(() => startIpmiSim({ username: 'admin', password: 'password' })));
    const rfs = await Promise.all([0, 1, 2].map(() => startRedfishSim({ username: 'root', password: 'calvin', systems: [{ id: '1', powerState: 'Off' }] })));
    const commands: IpmiCommandEvent[] = [];
    const cfg = config(token, { concurrency: 16 });
    const agent = new Agent(cfg, driverFactory(cfg, { onIpmiCommand: (e) => commands.push(e) }));
    agent.start();
    try {
      const payloads = [
        ...ipmis.map((b) => ({ driver: 'ipmi', driver_info: { ipmi_address: b.address, ipmi_port: b.port, ipmi_username: 'admin', ipmi_password: 'password' } })),
        ...rfs.map((r) => ({ driver: 'redfish', driver_info: redfishInfo('1', { redfish_address: r.url }) })),
      ];
      // Four jobs per BMC, all queued at once: more than one job of a BMC is claimed together.
      const kinds = [
        { kind: 'power', target: 'power on' },
        { kind: 'power_state' },
        { kind: 'boot_device', boot_device: 'pxe', persistent: false },
        { kind: 'power', target: 'power off' },
      ];
      const jobs = await Promise.all(
        payloads.flatMap((p) => kinds.map(({ kind, ...rest }) => enqueueJob(deps(), { site: s, kind, payload: { ...p, ...rest } }))),
      );
      const done = await Promise.all(jobs.map((j) => untilJob(j.id, jobFinished, 40_000)));
      for (const j of done) expect(j.status, j.error).toBe('succeeded');

      for (const r of rfs) expect(r.maxInFlight()).toBe(1);
      const byBmc = new Map<string, IpmiCommandEvent[]>();
      for (const e of commands) byBmc.set(e.bmc, [...(byBmc.get(e.bmc) ?? []), e]);
      expect(byBmc.size).toBe(2);
      for (const events of byBmc.values()) {
        // power on 2, power_state 1, boot_device 2 (the boot-flag timeout, then bootdev), power off 2
        expect(events).toHaveLength(7);
        const byStart = [...events].sort((a, b) => a.startedAt - b.startedAt);
        for (let i = 1; i < byStart.length; i++) expect(byStart[i]!.startedAt - byStart[i - 1]!.finishedAt).toBeGreaterThanOrEqual(100);
      }
    } finally {
      await agent.stop();
      await Promise.all([...ipmis, ...rfs].map((b) => b.stop()));
    }
  });
});

describe('claim wake-up (offers.ts)', () => {
  it("wakes a waiting claim when a job of its site is offered, not another site's, and never misses one offered before it naps", async () => {
    const site1 = unique('site');
    const site2 = unique('site');
    let woke = false;
    // A minute: were the wake lost, the test would time out rather than pass.
    const nap = napUntilOffered(site1, offerMark(site1), 60_000).then(() => (woke = true));
    jobOffered(site2);
    await new Promise((r) => setTimeout(r, 50));
    expect(woke).toBe(false);
    jobOffered(site1);
    await nap;
    expect(woke).toBe(true);
    // Offered between the claim's look at the queue (the mark) and its nap: no nap at all.
    const mark = offerMark(site1);
    jobOffered(site1);
    await napUntilOffered(site1, mark, 60_000);
  });
});
