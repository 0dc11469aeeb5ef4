/**
 * The `clean` job (Ironic's erase_devices) end to end on a real (virtual) machine: the agent's
 * executor with its site boot service (agent/netboot.ts) drives a QEMU VM behind the Redfish
 * simulator; the VM network-boots the Slipway ramdisk with `slipway.step=clean`, which zeroes
 * both disks, reads a sample of each back and reports; the job powers the node off. The test
 * fills the disk files with a non-zero pattern first and reads them back in full after: every
 * byte must be zero. A second VM has a disk whose every write fails (QEMU blkdebug): the
 * ramdisk's error report, naming that disk, fails the job.
 *
 * iPXE reaches the boot service as in vm-inspect-job.test.ts: QEMU's user network hands it a
 * two-line script, `imgfree` + `chain <public_url>/boot/${mac}.ipxe` (what the site's dnsmasq does).
 *
 * Needs qemu-system-x86, ipxe-qemu, socat, linux-image-cloud-amd64, busybox-static and cpio
 * (`bash scripts/system-packages.sh`); without them it fails, naming what is missing.
 */
import { closeSync, mkdirSync, openSync, readSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeFailure, execute, parseJob } from '../../agent/executor.ts';
import { type RedfishSim, startRedfishSim } from '../../agent/sim/redfish.ts';
import { Vm } from '../../agent/sim/vm.ts';
import { agentExecutors, BOOT, bootFromService, prepareMachines, vmTestBed } from '../support/machines.ts';

const USER = 'admin';
const PASS = 'vm-clean-pass';
const MiB = 1024 ** 2;
const MAC = '52:54:00:5a:11:04';
const SIZES = [64 * MiB, 128 * MiB];

/** Writes `size` bytes of a pattern with no zero byte (1..255 repeating, shifted per MiB). */
function fillDisk(path: string, size: number): void {
  const fd = openSync(path, 'w');
  try {
    const chunk = Buffer.alloc(MiB);
    for (let off = 0; off < size; off += MiB) {
      for (let i = 0; i < MiB; i++) chunk[i] = ((i + off / MiB) % 255) + 1;
      writeSync(fd, chunk, 0, MiB, off);
    }
  } finally {
    closeSync(fd);
  }
}

/** The offset of the first non-zero byte of the file, or -1 when every byte is zero. */
function firstNonZero(path: string): number {
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.alloc(4 * MiB);
    for (let off = 0; ; ) {
      const n = readSync(fd, buf, 0, buf.length, off);
      if (n === 0) return -1;
      for (let i = 0; i < n; i++) if (buf[i] !== 0) return off + i;
      off += n;
    }
  } finally {
    closeSync(fd);
  }
}

beforeAll(async () => {
  await prepareMachines();
});

describe('the clean job on a VM-backed Redfish system', () => {
  let sim: RedfishSim | undefined;
  let vm: Vm | undefined;
  const bed = vmTestBed('slipway-vm-clean-', () => [sim, vm]);

  it('network-boots the ramdisk, zeroes every disk, reports them and leaves the node powered off', { timeout: 240_000 }, async () => {
    mkdirSync(join(bed.dir, 'node'));
    const paths = SIZES.map((_, i) => join(bed.dir, 'node', `disk${i}.img`));
    SIZES.forEach((size, i) => fillDisk(paths[i]!, size));
    for (const p of paths) expect(firstNonZero(p)).toBe(0);
    vm = new Vm({
      dir: join(bed.dir, 'node'),
      name: 'clean-job',
      memoryMb: 256,
      cpus: 1,
      mac: MAC,
      disks: SIZES.map((sizeBytes, i) => ({ path: paths[i]!, sizeBytes })),
      ...bootFromService(bed.dir, bed.netboot),
    });
    sim = await startRedfishSim({ username: USER, password: PASS, systems: [{ id: '1', vm }] });
    const executors = agentExecutors(bed.netboot);
    const job = parseJob('clean', {
      driver: 'redfish',
      driver_info: { redfish_address: sim.url, redfish_system_id: '1', redfish_username: USER, redfish_password: PASS },
      node_id: 'node-vm-clean',
      macs: [MAC],
      timeout_seconds: 180,
    });

    const t0 = performance.now();
    let output: unknown;
    try {
      output = await execute(job, executors);
    } catch (err) {
      throw new Error(`clean job failed: ${(err as Error).message}\nVM console:\n${vm.console().slice(-4000)}`);
    }
    const total = performance.now() - t0;
    expect(bed.events.map(({ at: _, ...e }) => e)).toEqual([
      { kind: 'script', mac: MAC, step: 'clean' },
      { kind: 'file', file: 'kernel', status: 200 },
      { kind: 'file', file: 'initramfs', status: 200 },
      { kind: 'report', status: 204, macs: [MAC] },
    ]);
    const ms = (i: number) => Math.round(bed.events[i]!.at - t0);
    console.log(`clean job (job start ≈ power on): script ${ms(0)} ms, kernel ${ms(1)} ms, initramfs ${ms(2)} ms, report ${ms(3)} ms; whole job ${Math.round(total)} ms`);
    console.log(vm.console().split('\n').filter((l) => l.includes('slipway-ramdisk: erased')).join('\n'));

    expect(output).toEqual({
      disks: [
        { name: '/dev/vda', size: 64 * MiB, method: 'zero', verified_bytes: 10 * MiB },
        { name: '/dev/vdb', size: 128 * MiB, method: 'zero', verified_bytes: 10 * MiB },
      ],
      boot_mac: MAC,
    });
    expect(vm.running).toBe(false);
    expect(sim.state('1')).toMatchObject({ PowerState: 'Off', vmBoots: ['network'], vmError: null });

    // Every byte of both disk files is zero now, and the files kept their sizes.
    const t1 = performance.now();
    paths.forEach((p, i) => {
      expect(statSync(p).size).toBe(SIZES[i]);
      expect(firstNonZero(p), `${p} has a non-zero byte`).toBe(-1);
    });
    console.log(`read back ${SIZES.reduce((a, b) => a + b) / MiB} MiB in ${Math.round(performance.now() - t1)} ms`);
  });

  it("fails the job with the ramdisk's error naming the disk when a disk cannot be written, and powers off", { timeout: 240_000 }, async () => {
    // After the first test's VM: one VM at a time.
    await sim?.stop();
    bed.events.length = 0;
    const node = join(bed.dir, 'failing');
    mkdirSync(node);
    const paths = [join(node, 'disk0.img'), join(node, 'disk1.img')];
    for (const p of paths) fillDisk(p, 8 * MiB);
    const failing = new Vm({
      dir: node,
      name: 'clean-failing',
      memoryMb: 256,
      cpus: 1,
      mac: MAC,
      // vdb: every write is an I/O error (QEMU blkdebug).
      disks: [{ path: paths[0]!, sizeBytes: 8 * MiB }, { path: paths[1]!, sizeBytes: 8 * MiB, failWrites: true }],
      ...bootFromService(bed.dir, bed.netboot),
    });
    vm = failing;
    sim = await startRedfishSim({ username: USER, password: PASS, systems: [{ id: '1', vm: failing }] });
    const executors = agentExecutors(bed.netboot);
    const job = parseJob('clean', {
      driver: 'redfish',
      driver_info: { redfish_address: sim.url, redfish_system_id: '1', redfish_username: USER, redfish_password: PASS },
      node_id: 'node-vm-clean-failing',
      macs: [MAC],
      timeout_seconds: 180,
    });
    const t0 = performance.now();
    const err = await execute(job, executors).then(
      (out) => new Error(`the clean job succeeded: ${JSON.stringify(out)}\nVM console:\n${failing.console().slice(-4000)}`),
      (e: unknown) => e,
    );
    console.log(`failing clean job: ${Math.round(performance.now() - t0)} ms; ${describeFailure(err)}`);
    expect(describeFailure(err), failing.console().slice(-4000)).toMatch(/^erasing \/dev\/vdb failed: dd: .*Input\/output error$/);
    expect(bed.events.at(-1)).toMatchObject({ kind: 'report', status: 204 });
    expect(failing.running).toBe(false);
    expect(sim.state('1')).toMatchObject({ PowerState: 'Off', vmBoots: ['network'] });
    // vda, erased before vdb failed, is zero; vdb kept its pattern.
    expect(firstNonZero(paths[0]!)).toBe(-1);
    expect(firstNonZero(paths[1]!)).toBe(0);
  });

  it('fails the job with a timeout naming what was missing when the machine never calls back, and powers off', { timeout: 120_000 }, async () => {
    await sim?.stop();
    bed.events.length = 0;
    const node = join(bed.dir, 'silent');
    mkdirSync(node);
    // The machine's network boot cannot reach the boot service (no guestfwd to it): iPXE finds
    // nothing to chain, the ramdisk never runs, nothing reports.
    const { netboot: nb } = bootFromService(node, bed.netboot);
    const silent = new Vm({ dir: node, name: 'clean-silent', memoryMb: 256, cpus: 1, mac: MAC, disks: [{ sizeBytes: 8 * MiB }], netboot: nb! });
    vm = silent;
    sim = await startRedfishSim({ username: USER, password: PASS, systems: [{ id: '1', vm: silent }] });
    const job = parseJob('clean', {
      driver: 'redfish',
      driver_info: { redfish_address: sim.url, redfish_system_id: '1', redfish_username: USER, redfish_password: PASS },
      node_id: 'node-vm-clean-silent',
      macs: [MAC],
      timeout_seconds: 12,
    });
    const err = await execute(job, agentExecutors(bed.netboot)).then(
      (out) => new Error(`the clean job succeeded: ${JSON.stringify(out)}`),
      (e: unknown) => e,
    );
    expect(describeFailure(err)).toBe("cleaning timed out after 12 s: the node never reported (does it boot from the network and reach the agent's boot service?)");
    expect(bed.events).toEqual([]);
    expect(silent.running).toBe(false);
    expect(sim.state('1')).toMatchObject({ PowerState: 'Off', vmBoots: ['network'] });
    // The job's error is what the cloud records: the node goes to clean failed with maintenance
    // on and this reason (test/integration/ironic-clean.test.ts, "fails a clean with the agent error").
  });
});
