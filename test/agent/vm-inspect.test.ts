/**
 * A real (virtual) machine behind the Redfish simulator: the agent's Redfish driver sets the
 * boot override to Pxe and powers the system on; QEMU (TCG) network-boots through iPXE into the
 * Slipway ramdisk (`npm run ramdisk`), which inspects the machine, POSTs the facts to a host
 * service reached through guestfwd, and powers the machine off, which the BMC then reports.
 *
 * Needs qemu-system-x86, ipxe-qemu, socat, linux-image-cloud-amd64, busybox-static and cpio
 * (`bash scripts/system-packages.sh`); without them it fails, naming what is missing.
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { type IncomingMessage, type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { RedfishDriver } from '../../agent/drivers/redfish.ts';
import { type RedfishSim, startRedfishSim } from '../../agent/sim/redfish.ts';
import { Vm } from '../../agent/sim/vm.ts';
import { prepareMachines, RAMDISK } from '../support/machines.ts';

const USER = 'admin';
const PASS = 'vm-inspect-pass';
const GiB = 1024 ** 3;
const MAC = '52:54:00:5a:11:01';
/** Where the guest finds the callback service (guestfwd to the host's listener). */
const CALLBACK_IP = '10.0.2.100';
const CALLBACK_PORT = 8080;

interface InspectReport {
  step: string;
  cpus: number;
  cpu_arch: string;
  memory_kib: number;
  memory_mb: number;
  disks: { name: string; size: number }[];
  interfaces: { name: string; mac_address: string }[];
}


/** A callback service like the agent's: records each POST, answers 200. */
async function startCallbackServer(): Promise<{ server: Server; port: number; posts: { path: string; body: string }[]; next: () => Promise<{ path: string; body: string }> }> {
  const posts: { path: string; body: string }[] = [];
  const waiters: ((p: { path: string; body: string }) => void)[] = [];
  const server = createServer((req: IncomingMessage, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const post = { path: req.url ?? '', body: Buffer.concat(chunks).toString('utf8') };
      if (req.method === 'POST') {
        posts.push(post);
        waiters.shift()?.(post);
      }
      res.writeHead(req.method === 'POST' ? 200 : 405, { 'Content-Type': 'text/plain', Connection: 'close' });
      res.end('ok\n');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  let seen = 0;
  const next = () => {
    const have = posts[seen];
    seen += 1;
    return have ? Promise.resolve(have) : new Promise<{ path: string; body: string }>((r) => waiters.push(r));
  };
  return { server, port, posts, next };
}

async function within<T>(p: Promise<T>, ms: number, what: () => string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(what())), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

describe('a VM-backed Redfish system', () => {
  let dir: string;
  let callback: Awaited<ReturnType<typeof startCallbackServer>>;
  const vms: Vm[] = [];
  const sims: RedfishSim[] = [];

  beforeAll(async () => {
    await prepareMachines();
    dir = mkdtempSync(join(tmpdir(), 'slipway-vm-'));
    callback = await startCallbackServer();
  });

  afterEach(async () => {
    // Never leave a qemu behind, whatever the test did.
    await Promise.allSettled(sims.splice(0).map((s) => s.stop()));
    await Promise.allSettled(vms.splice(0).map((v) => v.stop()));
  });

  afterAll(async () => {
    if (callback) await new Promise<void>((r) => callback.server.close(() => r()));
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  async function machine(name: string): Promise<{ vm: Vm; sim: RedfishSim; driver: RedfishDriver }> {
    const vm = new Vm({
      dir: join(dir, name),
      name,
      memoryMb: 256,
      cpus: 2,
      mac: MAC,
      disks: [{ sizeBytes: 1 * GiB }, { sizeBytes: 2 * GiB }],
      netboot: {
        kernel: RAMDISK.kernel,
        initrd: RAMDISK.initramfs,
        cmdline: `console=ttyS0 panic=-1 quiet slipway.callback=http://${CALLBACK_IP}:${CALLBACK_PORT}/inspect/${name}`,
      },
      forwards: [{ guestIp: CALLBACK_IP, guestPort: CALLBACK_PORT, hostPort: callback.port }],
    });
    vms.push(vm);
    const sim = await startRedfishSim({ username: USER, password: PASS, systems: [{ id: '1', vm }] });
    sims.push(sim);
    const driver = new RedfishDriver({ address: sim.url, username: USER, password: PASS, pollIntervalMs: 100, powerTimeoutMs: 10_000, timeoutMs: 2_000 });
    return { vm, sim, driver };
  }

  it('network-boots the ramdisk on power on with a Pxe override, reports the inspected facts and powers off', { timeout: 90_000 }, async () => {
    const { vm, sim, driver } = await machine('inspect');
    expect(await driver.getPowerState()).toBe('power off');

    await driver.setBootDevice('pxe', false);
    const t0 = performance.now();
    expect(await driver.setPowerState('power on')).toBe('power on');
    expect(sim.state('1')).toMatchObject({ PowerState: 'On', resets: ['On'], vmBoots: ['network'], BootSourceOverrideEnabled: 'Disabled' });

    const post = await within(callback.next(), 60_000, () => `no inspection report within 60 s; VM console:\n${vm.console().slice(-4000)}`);
    const bootToPost = performance.now() - t0;
    console.log(`power on → inspection POST: ${Math.round(bootToPost)} ms`);
    expect(post.path).toBe('/inspect/inspect');
    const report = JSON.parse(post.body) as InspectReport;
    expect(report).toMatchObject({ step: 'inspect', cpus: 2, cpu_arch: 'x86_64' });
    // MemTotal is RAM less what the firmware and kernel keep: close to, never above, 256 MB.
    expect(report.memory_mb).toBeGreaterThan(192);
    expect(report.memory_mb).toBeLessThanOrEqual(256);
    expect(report.disks).toEqual([
      { name: '/dev/vda', size: 1 * GiB },
      { name: '/dev/vdb', size: 2 * GiB },
    ]);
    expect(report.interfaces).toEqual([{ name: 'eth0', mac_address: MAC }]);

    // The guest powers itself off; the BMC reports it.
    const exit = await vm.waitForExit(20_000);
    expect(exit).toMatchObject({ code: 0, stopped: false });
    expect(await driver.getPowerState()).toBe('power off');
    expect(vm.running).toBe(false);
    console.log(`power on → powered off: ${Math.round(performance.now() - t0)} ms`);

    // The disks are sparse files of the given sizes, nothing written.
    for (const [path, size] of vm.disks.map((p, i) => [p, [1 * GiB, 2 * GiB][i]!] as const)) {
      const st = statSync(path);
      expect(st.size).toBe(size);
      expect(st.blocks * 512).toBeLessThan(1024 * 1024);
    }
  });

  it('without an override boots from disk, ForceRestart restarts the VM and ForceOff stops it', { timeout: 30_000 }, async () => {
    const { vm, sim, driver } = await machine('disk');
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
