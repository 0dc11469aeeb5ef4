import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import {
  bootDeviceOf,
  buildArgs,
  buildEnv,
  type IpmiCommandEvent,
  IpmiDriver,
  type IpmiDriverConfig,
  ipmitoolFailure,
  parseBootFlags,
  resendsFor,
  resolveConfig,
} from '../../agent/drivers/ipmi.ts';
import { BmcError } from '../../agent/drivers/types.ts';
import { freeUdpPort, type IpmiSim, type IpmiSimOptions, startIpmiSim } from '../../agent/sim/ipmi-sim.ts';
import { rejection } from '../support/rejection.ts';

/**
 * The IPMI driver against a real BMC simulator: real `ipmitool` talking RMCP+ to Debian's
 * `ipmi_sim` on loopback. The simulator's chassis_control log shows what the BMC was asked.
 */

const sims: IpmiSim[] = [];
afterEach(async () => {
  await Promise.all(sims.splice(0).map((s) => s.stop()));
});

async function sim(options: IpmiSimOptions = {}): Promise<IpmiSim> {
  const s = await startIpmiSim(options);
  sims.push(s);
  return s;
}

/** Fast settings for a loopback simulator; production defaults are far more patient. */
function driver(s: IpmiSim, overrides: Partial<IpmiDriverConfig> = {}): IpmiDriver {
  return new IpmiDriver({
    address: s.address,
    port: s.port,
    username: s.username,
    password: s.password,
    minCommandIntervalMs: 0,
    pollIntervalMs: 100,
    powerTimeoutMs: 5000,
    timeoutSeconds: 5,
    ...overrides,
  });
}

const failure = (p: Promise<unknown>) => rejection(p, BmcError);

describe('power', () => {
  it('reads the power state and switches hard on and off', async () => {
    const s = await sim();
    const d = driver(s);
    expect(await d.getPowerState()).toBe('power off');
    expect(await d.setPowerState('power on')).toBe('power on');
    expect(s.state().power).toBe('on');
    expect(await d.setPowerState('power off')).toBe('power off');
    expect(s.events()).toMatchObject({ power: ['on', 'off'], resets: 0, shutdowns: 0 });
  });

  it('powers on and off with one action and one read-back each, the spacing between them, nothing read first', async () => {
    const s = await sim();
    const events: IpmiCommandEvent[] = [];
    const d = driver(s, { minCommandIntervalMs: 1000, pollIntervalMs: 1000, onCommand: (e) => events.push(e) });
    expect(await d.setPowerState('power on')).toBe('power on');
    expect(await d.setPowerState('power off')).toBe('power off');
    // What reached the BMC (ipmi_sim's chassis control sees every read and change), in order.
    expect(s.requests()).toEqual(['set power 1', 'get power', 'set power 0', 'get power']);
    expect(events.map((e) => e.args.slice(e.args.indexOf('-v') + 1).join(' '))).toEqual([
      'chassis power on',
      'chassis power status',
      'chassis power off',
      'chassis power status',
    ]);
    for (let i = 1; i < events.length; i++) expect(events[i]!.startedAt - events[i - 1]!.finishedAt).toBeGreaterThanOrEqual(1000);
  });

  it('reboots a running node with one power cycle and waits until it is on again', async () => {
    const s = await sim({ powerOn: true });
    const commands: string[] = [];
    const d = driver(s, { onCommand: (e) => commands.push(e.args.slice(e.args.indexOf('-v') + 1).join(' ')) });
    expect(await d.setPowerState('rebooting')).toBe('power on');
    // ipmi_sim cycles as "off now, on 1 s later"; the driver polled through the off phase.
    expect(s.events()).toMatchObject({ power: ['off', 'on'], resets: 0 });
    expect(commands.filter((c) => c === 'chassis power cycle')).toHaveLength(1);
    expect(commands.filter((c) => c === 'chassis power status').length).toBeGreaterThan(2);
  });

  it('reboots a node that is off by powering it on', async () => {
    const s = await sim();
    expect(await driver(s).setPowerState('rebooting')).toBe('power on');
    expect(s.events()).toMatchObject({ power: ['on'], resets: 0 });
  });

  it('soft power off asks the OS (ACPI) and waits for it', async () => {
    const s = await sim({ powerOn: true });
    expect(await driver(s).setPowerState('soft power off')).toBe('power off');
    expect(s.events()).toMatchObject({ power: ['off'], shutdowns: 1 });
  });

  it('soft reboot is a soft off, then power on', async () => {
    const s = await sim({ powerOn: true });
    expect(await driver(s).setPowerState('soft rebooting')).toBe('power on');
    expect(s.events().lines).toEqual(['shutdown 1', 'power 0', 'power 1']);
  });

  it('gives up with a timeout when the OS ignores soft off', async () => {
    const s = await sim({ powerOn: true, ignoreSoftOff: true });
    const started = Date.now();
    const err = await failure(driver(s, { powerTimeoutMs: 800 }).setPowerState('soft power off'));
    expect(err.code).toBe('timeout');
    expect(err.message).toContain(`IPMI BMC at 127.0.0.1:${s.port} still reports 'power on'`);
    expect(Date.now() - started).toBeLessThan(3000);
    expect(s.events()).toMatchObject({ power: [], shutdowns: 1 });
    expect(s.state().power).toBe('on');
  });

  it('works over IPMI 1.5 (-I lan) too', async () => {
    const s = await sim({ powerOn: true });
    expect(await driver(s, { interface: 'lan' }).getPowerState()).toBe('power on');
  });
});

describe('boot device', () => {
  /** What real ipmitool prints for the boot flags of `s` (the driver's argv and environment). */
  async function bootparam5(s: IpmiSim): Promise<string> {
    const config = resolveConfig({ address: s.address, port: s.port, username: s.username, password: s.password, timeoutSeconds: 5 });
    const { stdout } = await promisify(execFile)('ipmitool', buildArgs(config, ['chassis', 'bootparam', 'get', '5']), { env: buildEnv(s.password) });
    return stdout;
  }

  it('ipmi_sim keeps only the device selector: its boot flags are never valid nor persistent, so the driver reads no override', async () => {
    const s = await sim();
    const args: string[][] = [];
    const d = driver(s, { onCommand: (e) => args.push(e.args) });

    // Before anything is set, ipmi_sim answers the selector chassis_control holds ('default' = disk).
    expect(parseBootFlags(await bootparam5(s))).toEqual({ valid: false, persistent: false, selector: 'Force Boot from default Hard-Drive', device: 'disk' });
    expect(await d.getBootDevice()).toEqual({ boot_device: null, persistent: null });

    await d.setBootDevice('pxe', false);
    const afterPxe = await bootparam5(s);
    // ipmitool sent data 1 = 0x80 (valid, next boot); ipmi_sim answers 00 for it and keeps only
    // the selector in data 2 (lanserv/bmc_chassis.c: rdata[3] = 0; rdata[4] = val << 2).
    expect(afterPxe).toContain('Boot parameter data: 0004000000');
    expect(parseBootFlags(afterPxe)).toEqual({ valid: false, persistent: false, selector: 'Force PXE', device: 'pxe' });
    expect(await d.getBootDevice()).toEqual({ boot_device: null, persistent: null });

    await d.setBootDevice('disk', true);
    const afterDisk = await bootparam5(s);
    expect(afterDisk).toContain('Boot parameter data: 0008000000');
    // The persistent bit (0x40) was sent and is dropped like the valid bit.
    expect(parseBootFlags(afterDisk)).toEqual({ valid: false, persistent: false, selector: 'Force Boot from default Hard-Drive', device: 'disk' });
    expect(await d.getBootDevice()).toEqual({ boot_device: null, persistent: null });

    expect(args.some((a) => a.slice(-4).join(' ') === 'chassis bootdev disk options=persistent')).toBe(true);
    // the boot-flag timeout was disabled before each set
    expect(args.filter((a) => a.slice(-5).join(' ') === 'raw 0x00 0x08 0x03 0x08')).toHaveLength(2);
    expect(args.filter((a) => a.slice(-4).join(' ') === 'chassis bootparam get 5')).toHaveLength(3);

    // ipmi_sim names "force boot from default hard drive" 'default'
    expect(s.events()).toMatchObject({ boot: ['pxe', 'default'], power: [] });
    expect(s.state().boot).toBe('default');
  });

  it('reads valid boot flags in Ironic\'s names, with their persistence', () => {
    // ipmitool 1.8.19's layout; data 1 = valid (0x80) | persistent (0x40), data 2 = selector << 2.
    const out = (valid: boolean, persistent: boolean, code: number, selector: string) => {
      const data = [(valid ? 0x80 : 0) | (persistent ? 0x40 : 0), code << 2, 0, 0, 0].map((b) => b.toString(16).padStart(2, '0')).join('');
      return [
        'Boot parameter version: 1',
        'Boot parameter 5 is valid/unlocked',
        `Boot parameter data: ${data}`,
        ' Boot Flags :',
        `   - Boot Flag ${valid ? 'Valid' : 'Invalid'}`,
        `   - Options apply to ${persistent ? 'all future boots' : 'only next boot'}`,
        '   - BIOS PC Compatible (legacy) boot ',
        `   - Boot Device Selector : ${selector}`,
        '   - BIOS verbosity : System Default',
        '',
      ].join('\n');
    };
    const read = (valid: boolean, persistent: boolean, code: number, selector: string) => {
      const flags = parseBootFlags(out(valid, persistent, code, selector));
      expect(flags).toBeDefined();
      return bootDeviceOf(flags!);
    };
    expect(read(true, true, 1, 'Force PXE')).toEqual({ boot_device: 'pxe', persistent: true });
    expect(read(true, false, 1, 'Force PXE')).toEqual({ boot_device: 'pxe', persistent: false });
    expect(read(true, true, 2, 'Force Boot from default Hard-Drive')).toEqual({ boot_device: 'disk', persistent: true });
    expect(read(true, false, 2, 'Force Boot from default Hard-Drive')).toEqual({ boot_device: 'disk', persistent: false });
    expect(read(true, false, 3, 'Force Boot from default Hard-Drive, request Safe-Mode')).toEqual({ boot_device: 'safe', persistent: false });
    expect(read(true, false, 5, 'Force Boot from CD/DVD')).toEqual({ boot_device: 'cdrom', persistent: false });
    expect(read(true, true, 6, 'Force Boot into BIOS Setup')).toEqual({ boot_device: 'bios', persistent: true });
    expect(read(true, false, 7, 'Force Boot from remotely connected Floppy/primary removable media')).toEqual({ boot_device: 'floppy', persistent: false });
    expect(read(true, false, 8, 'Force Boot from remotely connected CD/DVD')).toEqual({ boot_device: 'cdrom', persistent: false });
    expect(read(true, false, 0xb, 'Force Boot from remotely connected Hard-Drive')).toEqual({ boot_device: 'disk', persistent: false });
    expect(read(true, true, 0xf, 'Force Boot from Floppy/primary removable media')).toEqual({ boot_device: 'floppy', persistent: true });
    // an override Ironic has no name for: the device is unknown, its persistence is not
    expect(read(true, true, 4, 'Force Boot from Diagnostic Partition')).toEqual({ boot_device: null, persistent: true });
    // no override
    expect(read(true, true, 0, 'No override')).toEqual({ boot_device: null, persistent: null });
    // flags the BMC will not apply (used by a boot, timed out) name a device that will not boot
    expect(read(false, true, 1, 'Force PXE')).toEqual({ boot_device: null, persistent: null });
    expect(read(false, false, 2, 'Force Boot from default Hard-Drive')).toEqual({ boot_device: null, persistent: null });
    expect(parseBootFlags('garbage')).toBeUndefined();
  });
});

describe('vendor operations', () => {
  it('chassisStatus returns the fields as snake_case keys', async () => {
    const s = await sim({ powerOn: true });
    expect(await driver(s).chassisStatus()).toEqual({
      system_power: 'on',
      power_overload: false,
      power_interlock: 'inactive',
      main_power_fault: false,
      power_control_fault: false,
      power_restore_policy: 'always-off',
      last_power_event: '',
      chassis_intrusion: 'inactive',
      front_panel_lockout: 'inactive',
      drive_fault: false,
      cooling_fan_fault: false,
    });
  });

  it('sendRaw: Get Device ID returns what bmc.emu declares; an unknown command is unsupported', async () => {
    const s = await sim();
    const d = driver(s);
    const bytes = await d.sendRaw(0x06, 0x01, []);
    // device id 0, revision 3, firmware 9.8, IPMI version byte, support 0x9f, manufacturer 0x001291, product 0x0f02
    expect(bytes.slice(0, 11)).toEqual([0x00, 0x03, 0x09, 0x08, 0x02, 0x9f, 0x91, 0x12, 0x00, 0x02, 0x0f]);
    const err = await failure(d.sendRaw(0x06, 0x99));
    expect(err.code).toBe('unsupported');
    expect(err.message).toContain("does not support 'raw 0x06 0x99'");
    await expect(d.sendRaw(0x40, 0x01)).rejects.toThrow(RangeError);
  });

  it('bmcReset: cold works; ipmi_sim has no warm reset, which is reported as unsupported', async () => {
    const s = await sim();
    const d = driver(s);
    await d.bmcReset('cold');
    expect(await d.getPowerState()).toBe('power off');
    const err = await failure(d.bmcReset('warm'));
    expect(err.code).toBe('unsupported');
    expect(err.message).toContain('Invalid command');
  });
});

describe('failures', () => {
  it('a wrong password is an auth error at once, not retried, and the password appears nowhere', async () => {
    const s = await sim();
    const secret = 'Sup3rSecret-pw';
    const events: IpmiCommandEvent[] = [];
    const started = Date.now();
    const err = await failure(driver(s, { password: secret, retries: 2, onCommand: (e) => events.push(e) }).getPowerState());
    expect(Date.now() - started).toBeLessThan(1000);
    expect(err.code).toBe('auth');
    expect(err.retryable).toBe(false);
    expect(err.message).toContain(`IPMI BMC at 127.0.0.1:${s.port} rejected the credentials for user "admin"`);
    expect(err.message).toContain('RAKP 2 HMAC is invalid');
    expect(err.message).not.toContain(secret);
    expect(events).toHaveLength(1);
    expect(events[0]?.args.join(' ')).not.toContain(secret);
  });

  it('an unknown user is an auth error too', async () => {
    const s = await sim();
    const err = await failure(driver(s, { username: 'nobody' }).getPowerState());
    expect(err.code).toBe('auth');
    expect(err.message).toContain('unauthorized name');
  });

  it('the password is passed in the environment, never in argv', () => {
    const config = resolveConfig({ address: '10.0.0.5', username: 'root', password: 'calvin-123' });
    const args = buildArgs(config, ['chassis', 'power', 'status']);
    expect(args.join(' ')).not.toContain('calvin-123');
    expect(args).toContain('-E');
    expect(args).not.toContain('-P');
    expect(args.slice(0, 11)).toEqual(['-I', 'lanplus', '-H', '10.0.0.5', '-p', '623', '-U', 'root', '-E', '-C', '3']);
    expect(buildEnv('calvin-123').IPMI_PASSWORD).toBe('calvin-123');
    // lan (IPMI 1.5) has no cipher suites
    expect(buildArgs(resolveConfig({ address: 'h', username: 'u', password: 'p', interface: 'lan' }), [])).not.toContain('-C');
  });

  it('scrubs the password from ipmitool text it repeats', () => {
    const err = ipmitoolFailure({
      bmc: 'h:623',
      username: 'u',
      password: 'hunter22',
      command: ['chassis', 'status'],
      stderr: 'Loading IANA PEN Registry...\nSomething failed near hunter22: Unspecified error\n',
      stdout: '',
      timedOut: false,
    });
    expect(err.code).toBe('protocol');
    expect(err.message).toBe("IPMI BMC at h:623: 'chassis status' failed (ipmitool: Something failed near ***: Unspecified error)");
  });

  it('a BMC that stops answering mid-session is a timeout (stderr captured from ipmitool 1.8.19)', () => {
    const err = ipmitoolFailure({
      bmc: 'h:623',
      username: 'u',
      password: 'password',
      command: ['chassis', 'power', 'status'],
      stderr:
        'Loading IANA PEN Registry...\nRunning Get VSO Capabilities my_addr 0x20, transit 0, target 0x20\nInvalid completion code received: Invalid command\nDiscovered IPMB address 0x0\nUnable to get Chassis Power Status\nClose Session command failed\n',
      stdout: '',
      timedOut: false,
    });
    expect(err.code).toBe('timeout');
    expect(err.message).toBe(
      "IPMI BMC at h:623 stopped answering during 'chassis power status'; it may or may not have acted (ipmitool: Unable to get Chassis Power Status; Close Session command failed)",
    );
  });

  it('a dead port is unreachable within the configured timeout (UDP: no answer is all we get)', async () => {
    const port = await freeUdpPort();
    const d = new IpmiDriver({ address: '127.0.0.1', port, username: 'admin', password: 'password', timeoutSeconds: 3, retries: 0 });
    const started = Date.now();
    const err = await failure(d.getPowerState());
    expect(Date.now() - started).toBeLessThan(3000);
    expect(err.code).toBe('unreachable');
    expect(err.message).toContain(`no answer from IPMI BMC at 127.0.0.1:${port}`);
  });

  it('stops ipmitool at the process timeout when its own resends would take longer', async () => {
    const port = await freeUdpPort();
    // -R 1 still needs ~2 s on lanplus, so a 1.5 s limit ends in our timeout.
    expect(resendsFor('lanplus', 1.5)).toBe(1);
    const d = new IpmiDriver({ address: '127.0.0.1', port, username: 'admin', password: 'password', timeoutSeconds: 1.5, retries: 0 });
    const started = Date.now();
    const err = await failure(d.getPowerState());
    expect(Date.now() - started).toBeLessThan(2000);
    expect(err.code).toBe('timeout');
  });

  it('retries unreachable with backoff, up to the configured count', async () => {
    const port = await freeUdpPort();
    const events: IpmiCommandEvent[] = [];
    const d = new IpmiDriver({
      address: '127.0.0.1',
      port,
      username: 'admin',
      password: 'password',
      timeoutSeconds: 3,
      retries: 1,
      retryBackoffMs: 100,
      minCommandIntervalMs: 0,
      onCommand: (e) => events.push(e),
    });
    expect((await failure(d.getPowerState())).code).toBe('unreachable');
    expect(events.map((e) => [e.attempt, e.error])).toEqual([
      [0, 'unreachable'],
      [1, 'unreachable'],
    ]);
    // Timers run on libuv's cached loop clock, Date.now() on the wall clock: a 100 ms sleep can
    // measure 99 ms between two Date.now() readings (seen on a busy machine).
    expect(events[1]!.startedAt - events[0]!.finishedAt).toBeGreaterThanOrEqual(99);
  });
});

describe('pacing', () => {
  it('keeps one command in flight per BMC and the minimum interval, across driver instances', async () => {
    const s = await sim();
    const events: IpmiCommandEvent[] = [];
    const onCommand = (e: IpmiCommandEvent) => events.push(e);
    const a = driver(s, { minCommandIntervalMs: 200, onCommand });
    const b = driver(s, { minCommandIntervalMs: 200, onCommand });
    const states = await Promise.all([a.getPowerState(), b.getPowerState(), a.getPowerState(), b.getPowerState(), a.getPowerState()]);
    expect(states).toEqual(Array(5).fill('power off'));
    expect(events).toHaveLength(5);
    const byStart = [...events].sort((x, y) => x.startedAt - y.startedAt);
    for (let i = 1; i < byStart.length; i++) {
      // starts only after the previous one ended, plus the interval
      expect(byStart[i]!.startedAt - byStart[i - 1]!.finishedAt).toBeGreaterThanOrEqual(200);
    }
  });

  it('does not hold back commands to a different BMC', async () => {
    const [s1, s2] = await Promise.all([sim(), sim()]);
    const events: IpmiCommandEvent[] = [];
    const onCommand = (e: IpmiCommandEvent) => events.push(e);
    const started = Date.now();
    await Promise.all([
      driver(s1!, { minCommandIntervalMs: 1000, onCommand }).getPowerState(),
      driver(s2!, { minCommandIntervalMs: 1000, onCommand }).getPowerState(),
    ]);
    expect(events).toHaveLength(2);
    expect(Date.now() - started).toBeLessThan(900);
  });
});
