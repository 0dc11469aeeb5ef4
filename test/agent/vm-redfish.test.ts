/**
 * The Redfish simulator's VM backend without a guest OS: power on without an override boots the
 * VM from disk, a restart restarts the process, ForceOff stops it, and the BMC's power state
 * follows. (A network boot through it — Pxe override, the ramdisk, the guest powering itself
 * off — is what test/agent/vm-inspect-job.test.ts runs through the agent's executor.)
 *
 * Needs qemu-system-x86 (`bash scripts/system-packages.sh`); without it it fails, naming what is missing.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedfishDriver } from '../../agent/drivers/redfish.ts';
import { type RedfishSim, startRedfishSim } from '../../agent/sim/redfish.ts';
import { Vm } from '../../agent/sim/vm.ts';
import { prepareMachines } from '../support/machines.ts';

const USER = 'admin';
const PASS = 'vm-redfish-pass';
const MAC = '52:54:00:5a:11:01';

describe('a VM-backed Redfish system', () => {
  let dir: string;
  let vm: Vm | undefined;
  let sim: RedfishSim | undefined;

  beforeAll(async () => {
    await prepareMachines();
    dir = mkdtempSync(join(tmpdir(), 'slipway-vm-'));
  });

  afterAll(async () => {
    // Never leave a qemu behind, whatever the test did.
    await sim?.stop().catch(() => undefined);
    await vm?.stop().catch(() => undefined);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('without an override boots from disk, ForceRestart restarts the VM and ForceOff stops it', { timeout: 30_000 }, async () => {
    vm = new Vm({ dir: join(dir, 'disk'), name: 'disk', memoryMb: 256, cpus: 1, mac: MAC, disks: [{ sizeBytes: 64 * 1024 * 1024 }] });
    sim = await startRedfishSim({ username: USER, password: PASS, systems: [{ id: '1', vm }] });
    const driver = new RedfishDriver({ address: sim.url, username: USER, password: PASS, pollIntervalMs: 100, powerTimeoutMs: 10_000, timeoutMs: 2_000 });
    expect(await driver.getPowerState()).toBe('power off');
    expect(await driver.setPowerState('power on')).toBe('power on');
    expect(sim.state('1')).toMatchObject({ vmBoots: ['disk'] });
    expect(vm.args('disk')).toContain('order=c');
    expect(vm.running).toBe(true);
    const firstRun = vm.exited;

    expect(await driver.setPowerState('rebooting')).toBe('power on');
    expect(await firstRun).toMatchObject({ stopped: true });
    expect(vm.starts).toBe(2);
    expect(vm.running).toBe(true);

    expect(await driver.setPowerState('power off')).toBe('power off');
    const exit = await vm.waitForExit(10_000);
    expect(exit.stopped).toBe(true);
    expect(sim.state('1')).toMatchObject({ PowerState: 'Off', resets: ['On', 'ForceRestart', 'ForceOff'], vmBoots: ['disk', 'disk'], vmError: null });
  });
});
