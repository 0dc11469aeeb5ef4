/**
 * A real (virtual) machine behind the IPMI simulator: Debian's `ipmi_sim` whose chassis control
 * (agent/sim/ipmi/chassis-control-vm.sh) reaches the QEMU VM owned by this process
 * (agent/sim/ipmi-sim.ts with `vm`). The agent's `inspect` job, with the IPMI driver and the
 * site boot service, sets boot device pxe through ipmitool and powers the node on; the VM's
 * iPXE chains to the boot service, the Slipway ramdisk reports the machine, the job powers it
 * off and returns the facts. Then the power and boot-override rules without a network boot.
 *
 * Needs qemu-system-x86, ipxe-qemu, socat, linux-image-cloud-amd64, busybox-static, cpio and
 * openipmi/ipmitool (`bash scripts/system-packages.sh`); without them it fails, naming what is
 * missing. One VM at a time.
 */
import { execFile } from 'node:child_process';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IpmiDriver } from '../../agent/drivers/ipmi.ts';
import { execute, parseJob } from '../../agent/executor.ts';
import { type IpmiSim, startIpmiSim } from '../../agent/sim/ipmi-sim.ts';
import { Vm } from '../../agent/sim/vm.ts';
import { agentExecutors, BOOT, bootFromService, prepareMachines, vmTestBed } from '../support/machines.ts';

const run = promisify(execFile);
const USER = 'admin';
const PASS = 'vm-ipmi-pass';
const MiB = 1024 ** 2;
const MAC = '52:54:00:5a:11:03';

beforeAll(async () => {
  await prepareMachines();
});

/** `ipmitool … <args>` against the simulator, as an operator would type it. */
async function ipmitool(sim: IpmiSim, ...args: string[]): Promise<string> {
  const { stdout } = await run('ipmitool', ['-I', 'lanplus', '-H', sim.address, '-p', String(sim.port), '-U', sim.username, '-E', '-C', '3', ...args], {
    env: { ...process.env, IPMI_PASSWORD: sim.password },
    timeout: 10_000,
  });
  return stdout.trim();
}

describe('a VM-backed IPMI BMC', () => {
  let sim: IpmiSim | undefined;
  let vm: Vm | undefined;
  const bed = vmTestBed('slipway-vm-ipmi-', () => [sim, vm]);

  /** A fresh VM and its BMC (the previous ones stopped first: one VM at a time). */
  async function machine(name: string): Promise<{ vm: Vm; sim: IpmiSim }> {
    await sim?.stop();
    await vm?.stop();
    vm = new Vm({
      dir: join(bed.dir, name),
      name,
      memoryMb: 256,
      cpus: 1,
      mac: MAC,
      disks: [{ sizeBytes: 64 * MiB }],
      // The site DHCP's part: iPXE is told to chain the boot service's script for its MAC.
      ...bootFromService(bed.dir, bed.netboot),
    });
    sim = await startIpmiSim({ username: USER, password: PASS, vm });
    return { vm, sim };
  }

  it('the inspect job network-boots the ramdisk over IPMI, returns the facts and leaves the node off', { timeout: 240_000 }, async () => {
    const { vm, sim } = await machine('inspect');
    expect(await ipmitool(sim, 'chassis', 'power', 'status')).toBe('Chassis Power is off');
    const job = parseJob('inspect', {
      driver: 'ipmi',
      driver_info: { ipmi_address: sim.address, ipmi_port: sim.port, ipmi_username: USER, ipmi_password: PASS },
      node_id: 'node-vm-ipmi-1',
      macs: [MAC.toUpperCase()],
      timeout_seconds: 180,
    });

    const t0 = performance.now();
    let output: unknown;
    try {
      output = await execute(job, agentExecutors(bed.netboot));
    } catch (err) {
      throw new Error(`inspect job failed: ${(err as Error).message}\nVM console:\n${vm.console().slice(-4000)}`);
    }
    const total = performance.now() - t0;
    expect(bed.events.map(({ at: _, ...e }) => e)).toEqual([
      { kind: 'script', mac: MAC, step: 'inspect' },
      { kind: 'file', file: 'kernel', status: 200 },
      { kind: 'file', file: 'initramfs', status: 200 },
      { kind: 'report', status: 204, macs: [MAC] },
    ]);
    const ms = (i: number) => Math.round(bed.events[i]!.at - t0);
    console.log(`inspect job over IPMI: script ${ms(0)} ms, kernel ${ms(1)} ms, initramfs ${ms(2)} ms, report ${ms(3)} ms; whole job ${Math.round(total)} ms`);

    expect(output).toMatchObject({
      cpus: 1,
      cpu_arch: 'x86_64',
      disks: [{ name: '/dev/vda', size: 64 * MiB }],
      interfaces: [{ name: 'eth0', mac_address: MAC }],
      boot_mac: MAC,
    });
    const { memory_mb } = output as { memory_mb: number };
    expect(memory_mb).toBeGreaterThan(192);
    expect(memory_mb).toBeLessThanOrEqual(256);

    // Powered off after, booted once, from the network.
    expect(await ipmitool(sim, 'chassis', 'power', 'status')).toBe('Chassis Power is off');
    expect(vm.running).toBe(false);
    expect(vm.starts).toBe(1);
    expect(sim.vmBoots()).toEqual(['network']);
    expect(sim.vmError()).toBeNull();
    // What the BMC was asked: boot device pxe, power on, and off again (the guest may have
    // powered itself off first: then the off request found it off already).
    const { boot, power } = sim.events();
    expect(boot).toEqual(['pxe']);
    expect(power[0]).toBe('on');
    expect(power.at(-1)).toBe('off');
    expect(vm.console()).toContain(`${BOOT.url}/boot/initramfs`);
    expect(vm.console()).toContain(`"bootif":"${MAC}"`);
    // The disk is an untouched sparse file.
    for (const path of vm.disks) expect(statSync(path).blocks * 512).toBeLessThan(1024 * 1024);
  });

  it('without an override powers on from disk; a pxe override is used up by one boot; reset restarts, off stops', { timeout: 60_000 }, async () => {
    const { vm, sim } = await machine('disk');
    const driver = new IpmiDriver({
      address: sim.address,
      port: sim.port,
      username: USER,
      password: PASS,
      minCommandIntervalMs: 0,
      pollIntervalMs: 100,
      powerTimeoutMs: 10_000,
      timeoutSeconds: 5,
    });

    expect(await driver.setPowerState('power on')).toBe('power on');
    expect(vm.running).toBe(true);
    expect(vm.lastBoot).toBe('disk');
    expect(vm.args('disk')).toContain('order=c');
    const firstRun = vm.exited;

    // A hard reset is a new run of the VM, from disk again.
    expect(await ipmitool(sim, 'chassis', 'power', 'reset')).toBe('Chassis Power Control: Reset');
    expect(await firstRun).toMatchObject({ stopped: true });
    expect(vm.running).toBe(true);
    expect(vm.starts).toBe(2);

    expect(await driver.setPowerState('power off')).toBe('power off');
    expect(vm.running).toBe(false);
    expect(await vm.exited).toMatchObject({ stopped: true });

    // A one-time pxe override: the next power on boots from the network, the one after from disk.
    await driver.setBootDevice('pxe', false);
    expect(await driver.setPowerState('power on')).toBe('power on');
    expect(vm.lastBoot).toBe('network');
    expect(await driver.setPowerState('power off')).toBe('power off');
    expect(await driver.setPowerState('power on')).toBe('power on');
    expect(vm.lastBoot).toBe('disk');

    // The guest's own power-off (here: the process ends) reads off.
    await vm.stop();
    expect(await driver.getPowerState()).toBe('power off');

    expect(sim.vmBoots()).toEqual(['disk', 'disk', 'network', 'disk']);
    expect(sim.vmError()).toBeNull();
    expect(sim.events().lines).toEqual(['power 1', 'reset 1', 'power 0', 'boot pxe', 'power 1', 'power 0', 'power 1']);
    expect(sim.state()).toEqual({ power: 'off', boot: 'pxe' });
  });
});
