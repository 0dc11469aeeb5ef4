import { afterEach, describe, expect, it } from 'vitest';
import { AgentConfig } from '../../agent/config.ts';
import { driverFactory } from '../../agent/drivers/index.ts';
import { BmcError } from '../../agent/drivers/types.ts';
import { describeFailure, type Executors, execute, parseJob } from '../../agent/executor.ts';
import { type IpmiSim, startIpmiSim } from '../../agent/sim/ipmi-sim.ts';
import { type RedfishSim, startRedfishSim } from '../../agent/sim/redfish.ts';
import { rejection } from '../support/rejection.ts';

/**
 * The agent's `boot_device_get` job (Ironic's GET /v1/nodes/{node}/management/boot_device):
 * boot devices set with `boot_device` jobs and read back, through `parseJob`/`execute` and the
 * agent's production driver factory, against the Redfish simulator and against real
 * `ipmitool` talking to `ipmi_sim`.
 */

const USER = 'admin';
const PASS = 'boot-dev-pass';

// Loopback-fast timings; everything else as the agent runs.
const cfg = AgentConfig.parse({
  api_url: 'http://127.0.0.1:9',
  token: 'unused-token',
  redfish: { poll_interval_ms: 20, timeout_ms: 2000, power_timeout_ms: 5000 },
  ipmi: { min_command_interval_ms: 0, timeout_seconds: 5, poll_interval_ms: 100, power_timeout_ms: 5000 },
});
const executors: Executors = { makeDriver: driverFactory({ ...cfg, token: 'unused-token' }), ssh: { connectTimeoutMs: 1000, commandTimeoutMs: 1000 } };


describe('boot_device_get over Redfish (simulator)', () => {
  let sim: RedfishSim | undefined;
  afterEach(async () => {
    await sim?.stop();
    sim = undefined;
  });

  const bmc = (s: RedfishSim, password = PASS) => ({
    driver: 'redfish',
    driver_info: { redfish_address: s.url, redfish_system_id: '1', redfish_username: USER, redfish_password: password },
  });
  const set = (s: RedfishSim, boot_device: string, persistent: boolean) => execute(parseJob('boot_device', { ...bmc(s), boot_device, persistent }), executors);
  const get = (s: RedfishSim) => execute(parseJob('boot_device_get', { ...bmc(s) }), executors);

  it('reads back pxe and disk, once and persistent, as set', async () => {
    const s = (sim = await startRedfishSim({ username: USER, password: PASS, systems: [{ id: '1', powerState: 'Off' }] }));
    expect(await get(s)).toEqual({ boot_device: null, persistent: null });

    const cases: [string, boolean, string, string][] = [
      ['pxe', false, 'Pxe', 'Once'],
      ['disk', true, 'Hdd', 'Continuous'],
      ['pxe', true, 'Pxe', 'Continuous'],
      ['disk', false, 'Hdd', 'Once'],
    ];
    for (const [device, persistent, target, enabled] of cases) {
      expect(await set(s, device, persistent)).toEqual({ boot_device: device, persistent });
      expect(s.state('1')).toMatchObject({ BootSourceOverrideTarget: target, BootSourceOverrideEnabled: enabled });
      expect(await get(s)).toEqual({ boot_device: device, persistent });
    }
    // reads change nothing on the BMC
    expect(s.state('1').patches).toHaveLength(cases.length);
    expect(s.state('1').resets).toEqual([]);
  });

  it('reads no override once the next boot has used a one-time one; a persistent one stays', async () => {
    const s = (sim = await startRedfishSim({ username: USER, password: PASS, systems: [{ id: '1', powerState: 'Off' }] }));
    await set(s, 'pxe', false);
    expect(await execute(parseJob('power', { ...bmc(s), target: 'power on' }), executors)).toEqual({ power_state: 'power on' });
    expect(await get(s)).toEqual({ boot_device: null, persistent: null });

    await set(s, 'pxe', true);
    expect(await execute(parseJob('power', { ...bmc(s), target: 'rebooting' }), executors)).toEqual({ power_state: 'power on' });
    expect(await get(s)).toEqual({ boot_device: 'pxe', persistent: true });
  });

  it('fails as the BMC failed: wrong credentials are an auth error', async () => {
    const s = (sim = await startRedfishSim({ username: USER, password: PASS }));
    const err = await rejection(execute(parseJob('boot_device_get', { ...bmc(s, 'not-the-password') }), executors));
    expect(err).toBeInstanceOf(BmcError);
    expect(describeFailure(err)).toBe(`auth: Redfish BMC at ${s.url} rejected the credentials for user ${USER} (401 on GET /redfish/v1/Systems)`);
  });
});

describe('boot_device_get over IPMI (ipmitool + ipmi_sim)', () => {
  let sim: IpmiSim | undefined;
  afterEach(async () => {
    await sim?.stop();
    sim = undefined;
  });

  const bmc = (s: IpmiSim) => ({
    driver: 'ipmi',
    driver_info: { ipmi_address: s.address, ipmi_port: s.port, ipmi_username: s.username, ipmi_password: s.password },
  });

  it('ipmi_sim takes pxe and disk (once and persistent) but never reports its boot flags valid, so it reads as no override', async () => {
    const s = (sim = await startIpmiSim({ password: PASS }));
    const get = () => execute(parseJob('boot_device_get', { ...bmc(s) }), executors);
    expect(await get()).toEqual({ boot_device: null, persistent: null });

    const cases: [string, boolean, string][] = [
      ['pxe', false, 'pxe'],
      ['disk', true, 'default'],
      ['pxe', true, 'pxe'],
      ['disk', false, 'default'],
    ];
    for (const [device, persistent, simName] of cases) {
      expect(await execute(parseJob('boot_device', { ...bmc(s), boot_device: device, persistent }), executors)).toEqual({ boot_device: device, persistent });
      // the BMC did take the device (its chassis_control was told) ...
      expect(s.state().boot).toBe(simName);
      // ... but answers Get System Boot Options with the valid and persistent bits clear
      expect(await get()).toEqual({ boot_device: null, persistent: null });
    }
    expect(s.events().boot).toEqual(['pxe', 'default', 'pxe', 'default']);
  });
});
