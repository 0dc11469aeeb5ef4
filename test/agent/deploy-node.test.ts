import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { AgentConfig } from '../../agent/config.ts';
import { deployHook } from '../../agent/deploy-hook.ts';
import { driverFactory } from '../../agent/drivers/index.ts';
import { IpmiDriver } from '../../agent/drivers/ipmi.ts';
import { describeFailure, type Executors, execute, parseJob, type VendorDriver } from '../../agent/executor.ts';
import { type IpmiSim, startIpmiSim } from '../../agent/sim/ipmi-sim.ts';
import { type RedfishSim, type SimSystemState, startRedfishSim } from '../../agent/sim/redfish.ts';
import { waitFor } from '../support/wait.ts';
import { rejection } from '../support/rejection.ts';

/**
 * The agent's `deploy_node` job (Drydock deploy: the deploy hook gets the node's boot-action
 * info, then a one-time PXE boot and a power cycle) through `parseJob`/`execute`, against the
 * Redfish simulator and against real `ipmitool` talking to `ipmi_sim`. The hooks are real
 * processes run by the agent's own `deployHook`.
 */

const USER = 'admin';
const PASS = 'deploy-sim-pass';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'slipway-deploy-node-'));
});
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

let fileSeq = 0;
const tempFile = (name: string) => join(dir, `${name}-${++fileSeq}`);

/** What the workflow puts in a deploy_node job for a node with boot actions (the key already opened). */
function bootaction(node = 'n01') {
  return {
    node_name: node,
    task_id: '4f5c8f0e-3b3c-4b7e-9f6e-0c9a3a1b2c3d',
    action_key: randomBytes(32).toString('hex'),
    report_url: 'http://127.0.0.1:9/api/v1.0/bootactions/',
    packages: [['curl', null], ['jq', '1.6-2']],
    actions: [{ action_id: '01HX0000000000000000000000', action_name: 'install-agent', action_status: 'incomplete' }],
  };
}


/** Running (a killed process whose parent died is a zombie until init reaps it: that counts as gone). */
const alive = (pid: number) => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
};

// ---------------------------------------------------------------------------------------------

describe('deploy_node over Redfish (simulator)', () => {
  let sim: RedfishSim;
  afterEach(async () => {
    await sim?.stop();
  });

  // The agent's production driver factory, with loopback-fast timings.
  const cfg = AgentConfig.parse({ api_url: 'http://127.0.0.1:9', token: 'unused-token', redfish: { poll_interval_ms: 20, timeout_ms: 2000, power_timeout_ms: 5000 } });
  const executors = (extra: Partial<Executors> = {}): Executors => ({ makeDriver: driverFactory({ ...cfg, token: 'unused-token' }), ssh: { connectTimeoutMs: 1000, commandTimeoutMs: 1000 }, ...extra });

  async function node(): Promise<RedfishSim> {
    sim = await startRedfishSim({ username: USER, password: PASS, systems: [{ id: '1', powerState: 'On', powerDelayMs: 100 }] });
    return sim;
  }
  const job = (extra: Record<string, unknown> = {}) =>
    parseJob('deploy_node', { driver: 'redfish', driver_info: { redfish_address: sim.url, redfish_system_id: '1', redfish_username: USER, redfish_password: PASS }, ...extra });

  it('sets a one-time PXE boot override, then power-cycles the node', async () => {
    const s = await node();
    const out = await execute(job(), executors());
    expect(out).toEqual({ boot_device: 'pxe', power_state: 'power on' });
    const st = s.state('1');
    expect(st.patches).toEqual([{ Boot: { BootSourceOverrideTarget: 'Pxe', BootSourceOverrideEnabled: 'Once' } }]);
    expect(st.resets).toEqual(['ForceRestart']);
    expect(st.PowerState).toBe('On');
    // The sim consumes a one-time override at the next power-on: Disabled again proves the
    // override was set before the cycle (set after it, it would still read Once).
    expect(st).toMatchObject({ BootSourceOverrideTarget: 'Pxe', BootSourceOverrideEnabled: 'Disabled' });
  });

  it('powers on a node that is off (the cycle of an off node) after the override', async () => {
    sim = await startRedfishSim({ username: USER, password: PASS, systems: [{ id: '1', powerState: 'Off', powerDelayMs: 50 }] });
    expect(await execute(job(), executors())).toEqual({ boot_device: 'pxe', power_state: 'power on' });
    expect(sim.state('1')).toMatchObject({ PowerState: 'On', resets: ['On'], BootSourceOverrideEnabled: 'Disabled', BootSourceOverrideTarget: 'Pxe' });
  });

  it('hands the boot-action info to the deploy hook on stdin before it touches the BMC', async () => {
    const s = await node();
    const file = tempFile('hook');
    const hook = deployHook({ command: ['sh', '-c', `cat > '${file}'`], timeout_seconds: 5 });
    let atHook: SimSystemState | undefined;
    const info = bootaction();
    const out = await execute(
      job({ bootaction: info }),
      executors({
        deployHook: async (i) => {
          const r = await hook(i);
          atHook = s.state('1'); // the BMC as the hook left it
          return r;
        },
      }),
    );
    expect(out).toEqual({ boot_device: 'pxe', power_state: 'power on', hook: { exit_code: 0 } });
    const stdin = readFileSync(file, 'utf8');
    expect(stdin.endsWith('\n')).toBe(true);
    expect(JSON.parse(stdin)).toEqual(info);
    expect(atHook).toMatchObject({ PowerState: 'On', patches: [], resets: [] });
    expect(s.state('1').resets).toEqual(['ForceRestart']);
  });

  it('runs no hook for a node without boot actions', async () => {
    await node();
    const file = tempFile('unused');
    const out = await execute(job(), executors({ deployHook: deployHook({ command: ['sh', '-c', `cat > '${file}'`], timeout_seconds: 5 }) }));
    expect(out).toEqual({ boot_device: 'pxe', power_state: 'power on' });
    expect(existsSync(file)).toBe(false);
  });

  it('fails the job with the exit code of a failing hook and leaves the BMC untouched', async () => {
    const s = await node();
    const hook = deployHook({ command: ['sh', '-c', 'cat > /dev/null; echo "installer not ready" >&2; exit 3'], timeout_seconds: 5 });
    const err = await rejection(execute(job({ bootaction: bootaction() }), executors({ deployHook: hook })));
    expect(err.name).toBe('DeployHookError');
    expect(describeFailure(err)).toBe('deploy hook sh exited 3: installer not ready');
    expect(s.state('1')).toMatchObject({ PowerState: 'On', patches: [], resets: [], BootSourceOverrideTarget: 'None' });
  });

  it('kills a hook that hangs at its timeout, with its children, fails the job and leaves the BMC untouched', async () => {
    const s = await node();
    const pidFile = tempFile('pid');
    const childFile = tempFile('child');
    // A shell script whose child hangs: the kill at the deadline must reach the child too.
    const hook = deployHook({ command: ['sh', '-c', `echo $$ > '${pidFile}'; sleep 30 & echo $! > '${childFile}'; wait`], timeout_seconds: 1 });
    const started = Date.now();
    const err = await rejection(execute(job({ bootaction: bootaction() }), executors({ deployHook: hook })));
    const took = Date.now() - started;
    expect(describeFailure(err)).toBe('deploy hook sh was killed after 1 s (timed out)');
    // Not a speed target: the hook's own sleep would hold the job for 30 s.
    expect(took).toBeLessThan(15_000);
    for (const f of [pidFile, childFile]) {
      const pid = Number(readFileSync(f, 'utf8').trim());
      expect(pid).toBeGreaterThan(1);
      // SIGKILL is delivered at once but a busy machine may not have scheduled the orphaned
      // `sleep` to die yet when the job fails: allow it moments, far short of its own 30 s.
      await waitFor(`hook process ${pid} gone`, async () => !alive(pid), 5_000, 20);
    }
    expect(s.state('1')).toMatchObject({ patches: [], resets: [] });
  });

  it('names a hook that cannot be started', async () => {
    const s = await node();
    const hook = deployHook({ command: [join(dir, 'no-such-hook')], timeout_seconds: 5 });
    const err = await rejection(execute(job({ bootaction: bootaction() }), executors({ deployHook: hook })));
    expect(describeFailure(err)).toMatch(/^deploy hook .*no-such-hook could not run: spawn .*ENOENT/);
    expect(s.state('1')).toMatchObject({ patches: [], resets: [] });
  });
});

// ---------------------------------------------------------------------------------------------

describe('deploy_node over IPMI (ipmitool + ipmi_sim)', () => {
  let sim: IpmiSim | undefined;
  afterEach(async () => {
    await sim?.stop();
    sim = undefined;
  });

  /** ipmitool commands the driver ran, without the connection options. */
  let commands: string[];
  const executors = (extra: Partial<Executors> = {}): Executors => ({
    makeDriver: (driver, info): VendorDriver => {
      expect(driver).toBe('ipmi');
      const d = new IpmiDriver({
        address: String(info.ipmi_address),
        port: Number(info.ipmi_port),
        username: String(info.ipmi_username),
        password: String(info.ipmi_password),
        minCommandIntervalMs: 0,
        pollIntervalMs: 100,
        powerTimeoutMs: 5000,
        timeoutSeconds: 5,
        onCommand: (e) => commands.push(e.args.slice(e.args.indexOf('-v') + 1).join(' ')),
      });
      return Object.assign(d, {
        vendor: async () => {
          throw new Error('no vendor methods in these tests');
        },
      });
    },
    ssh: { connectTimeoutMs: 1000, commandTimeoutMs: 1000 },
    ...extra,
  });

  async function node(): Promise<IpmiSim> {
    commands = [];
    sim = await startIpmiSim({ username: USER, password: 'ipmi-pass', powerOn: true });
    return sim;
  }
  const job = (s: IpmiSim, extra: Record<string, unknown> = {}) =>
    parseJob('deploy_node', { driver: 'ipmi', driver_info: { ipmi_address: s.address, ipmi_port: s.port, ipmi_username: s.username, ipmi_password: s.password }, ...extra });

  it('sets PXE for the next boot only, then power-cycles the node', async () => {
    const s = await node();
    expect(await execute(job(s), executors())).toEqual({ boot_device: 'pxe', power_state: 'power on' });
    // On the wire: a one-time bootdev (no options=persistent) before the one power cycle.
    const bootdev = commands.indexOf('chassis bootdev pxe');
    const cycle = commands.indexOf('chassis power cycle');
    expect(bootdev).toBeGreaterThanOrEqual(0);
    expect(cycle).toBeGreaterThan(bootdev);
    expect(commands.filter((c) => c.startsWith('chassis bootdev'))).toEqual(['chassis bootdev pxe']);
    expect(commands.filter((c) => c === 'chassis power cycle')).toHaveLength(1);
    // What the BMC was asked, in order: boot from PXE, then off and on again.
    expect(s.events().lines).toEqual(['boot pxe', 'power 0', 'power 1']);
    expect(s.state()).toEqual({ power: 'on', boot: 'pxe' });
  });

  it('runs the hook with the boot-action info first, then the BMC', async () => {
    const s = await node();
    const file = tempFile('ipmi-hook');
    const hook = deployHook({ command: ['sh', '-c', `cat > '${file}'`], timeout_seconds: 5 });
    let linesAtHook: string[] | undefined;
    const info = bootaction('n07');
    const out = await execute(
      job(s, { bootaction: info }),
      executors({
        deployHook: async (i) => {
          const r = await hook(i);
          linesAtHook = s.events().lines;
          return r;
        },
      }),
    );
    expect(out).toEqual({ boot_device: 'pxe', power_state: 'power on', hook: { exit_code: 0 } });
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual(info);
    expect(linesAtHook).toEqual([]);
    expect(s.events().lines).toEqual(['boot pxe', 'power 0', 'power 1']);
  });

  it('sends nothing to the BMC when the hook fails', async () => {
    const s = await node();
    const hook = deployHook({ command: ['sh', '-c', 'exit 42'], timeout_seconds: 5 });
    const err = await rejection(execute(job(s, { bootaction: bootaction() }), executors({ deployHook: hook })));
    expect(describeFailure(err)).toBe('deploy hook sh exited 42');
    expect(commands).toEqual([]);
    expect(s.events().lines).toEqual([]);
    expect(s.state().power).toBe('on');
  });
});
