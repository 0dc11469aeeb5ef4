/**
 * The `inspect` job end to end on a real (virtual) machine: the agent's executor with its site
 * boot service (agent/netboot.ts) drives a QEMU VM behind the Redfish simulator. The job sets the
 * boot override to Pxe and powers the system on; the VM's iPXE chains to the boot service's
 * `/boot/${mac}.ipxe` and loads the kernel and initramfs from it over HTTP; the Slipway ramdisk
 * inspects the machine and POSTs its report to the job's callback URL; the job powers the node
 * off and returns the facts.
 *
 * How iPXE reaches the boot service: QEMU's user network answers DHCP with a fixed TFTP bootfile
 * (agent/sim/vm.ts writes `boot.ipxe`, which loads the netboot "kernel" it is given). Here that
 * "kernel" is a two-line iPXE script, `imgfree` then `chain <public_url>/boot/${mac}.ipxe` — what
 * the site's dnsmasq (`dnsmasq-config`, `dhcp-boot=tag:ipxe,…`) hands iPXE at a real site. From
 * there everything is HTTP through guestfwd to the agent's listener.
 *
 * Needs qemu-system-x86, ipxe-qemu, socat, linux-image-cloud-amd64, busybox-static and cpio
 * (`bash scripts/system-packages.sh`); without them it fails, naming what is missing.
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentConfig } from '../../agent/config.ts';
import { driverFactory } from '../../agent/drivers/index.ts';
import { execute, parseJob } from '../../agent/executor.ts';
import type { NetbootService } from '../../agent/netboot.ts';
import { type RedfishSim, startRedfishSim } from '../../agent/sim/redfish.ts';
import { Vm } from '../../agent/sim/vm.ts';
import { Agent } from '../../agent/runner.ts';
import { apiUrl, call, tokenFor, unique } from '../support/api.ts';
import { agentExecutors, BOOT, bootFromService, prepareMachines, readAt, startBootService, vmTestBed, writeAt } from '../support/machines.ts';

const USER = 'admin';
const PASS = 'vm-inspect-job-pass';
const GiB = 1024 ** 3;
const MiB = 1024 ** 2;
const MAC = '52:54:00:5a:11:02';

// Both tests boot the ramdisk: it is built (or found current) once, first.
beforeAll(async () => {
  await prepareMachines();
});

describe('the inspect job on a VM-backed Redfish system', () => {
  let sim: RedfishSim | undefined;
  let vm: Vm | undefined;
  const bed = vmTestBed('slipway-vm-job-', () => [sim, vm]);

  it('network-boots the ramdisk from the agent, returns the facts and leaves the node powered off', { timeout: 240_000 }, async () => {
    vm = new Vm({
      dir: join(bed.dir, 'node'),
      name: 'inspect-job',
      memoryMb: 256,
      cpus: 2,
      mac: MAC,
      disks: [{ sizeBytes: 1 * GiB }, { sizeBytes: 2 * GiB }],
      // The site DHCP's part: iPXE is told to chain the boot service's script for its MAC.
      ...bootFromService(bed.dir, bed.netboot),
    });
    sim = await startRedfishSim({ username: USER, password: PASS, systems: [{ id: '1', vm }] });
    const executors = agentExecutors(bed.netboot);
    const job = parseJob('inspect', {
      driver: 'redfish',
      driver_info: { redfish_address: sim.url, redfish_system_id: '1', redfish_username: USER, redfish_password: PASS },
      node_id: 'node-vm-1',
      macs: [MAC.toUpperCase()],
      timeout_seconds: 180,
    });

    const t0 = performance.now();
    let output: unknown;
    try {
      output = await execute(job, executors);
    } catch (err) {
      throw new Error(`inspect job failed: ${(err as Error).message}\nVM console:\n${vm.console().slice(-4000)}`);
    }
    const total = performance.now() - t0;
    // What the node fetched and sent, in order: its script, the kernel, the initramfs, the report.
    expect(bed.events.map(({ at: _, ...e }) => e)).toEqual([
      { kind: 'script', mac: MAC, step: 'inspect' },
      { kind: 'file', file: 'kernel', status: 200 },
      { kind: 'file', file: 'initramfs', status: 200 },
      { kind: 'report', status: 204, macs: [MAC] },
    ]);
    const ms = (i: number) => Math.round(bed.events[i]!.at - t0);
    console.log(`inspect job (job start ≈ power on): script ${ms(0)} ms, kernel ${ms(1)} ms, initramfs ${ms(2)} ms, report ${ms(3)} ms; whole job ${Math.round(total)} ms`);

    expect(output).toMatchObject({
      cpus: 2,
      cpu_arch: 'x86_64',
      disks: [
        { name: '/dev/vda', size: 1 * GiB },
        { name: '/dev/vdb', size: 2 * GiB },
      ],
      interfaces: [{ name: 'eth0', mac_address: MAC }],
      boot_mac: MAC,
    });
    const { memory_mb } = output as { memory_mb: number };
    // MemTotal is RAM less what the firmware and kernel keep: close to, never above, 256 MB.
    expect(memory_mb).toBeGreaterThan(192);
    expect(memory_mb).toBeLessThanOrEqual(256);
    expect(Object.keys(output as object).sort()).toEqual(['boot_mac', 'cpu_arch', 'cpus', 'disks', 'interfaces', 'memory_mb']);

    // Powered off after, booted once from the network, the override used up.
    expect(vm.running).toBe(false);
    expect(sim.state('1')).toMatchObject({ PowerState: 'Off', vmBoots: ['network'], BootSourceOverrideEnabled: 'Disabled', vmError: null });
    expect(sim.state('1').resets[0]).toBe('On');
    // iPXE's own progress lines name the URLs it loaded.
    expect(vm.console()).toContain(`${BOOT.url}/boot/kernel`);
    expect(vm.console()).toContain(`${BOOT.url}/boot/initramfs`);
    // iPXE expanded ${mac} in BOOTIF=; the ramdisk reported it (its report is on the console).
    expect(vm.console()).toContain(`"bootif":"${MAC}"`);
    // The machine now boots from its disk: the boot service answers `exit` for its MAC.
    const res = await fetch(`http://127.0.0.1:${bed.netboot.address.port}/boot/${MAC}.ipxe`);
    expect(await res.text()).toMatch(/\nexit\n$/);
    // The disks are untouched sparse files.
    for (const path of vm.disks) expect(statSync(path).blocks * 512).toBeLessThan(1024 * 1024);
  });
});

/**
 * The whole chain through the API, as an operator runs it: an Ironic node with a Redfish BMC
 * (the simulator, a QEMU VM behind it) in the site of a running agent with its boot service;
 * `manage`, then `inspect`: the cloud queues the `inspect` job, the agent network-boots the VM
 * into the ramdisk, the report comes back as the job's result, and the node shows the machine's
 * properties and its port, back in `manageable`. In this file so that its VM never runs at the
 * same time as the one above (two cores).
 */
describe('Ironic inspect and cleaning of a VM, end to end through the API and the agent', () => {
  const site = unique('vm-site');
  const mac = '52:54:00:5a:11:03';
  let dir: string;
  let netboot: NetbootService | undefined;
  let sim: RedfishSim | undefined;
  let vm: Vm | undefined;
  let agent: Agent | undefined;

  afterAll(async () => {
    await agent?.stop();
    await sim?.stop().catch(() => undefined);
    await vm?.stop().catch(() => undefined);
    await netboot?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('manage, inspect → properties, the PXE port and the host facts; provide → its disk erased, available', { timeout: 240_000 }, async () => {
    dir = mkdtempSync(join(tmpdir(), 'slipway-vm-e2e-'));
    netboot = await startBootService();
    vm = new Vm({
      dir: join(dir, 'node'),
      name: 'inspect-e2e',
      memoryMb: 256,
      cpus: 1,
      mac,
      // Small, so that erasing it stays quick under TCG (below Ironic's 4 GiB root-disk minimum,
      // hence local_gb 0; the rule itself is unit-tested).
      disks: [{ sizeBytes: 64 * MiB }],
      ...bootFromService(dir, netboot),
    });
    sim = await startRedfishSim({ username: USER, password: PASS, systems: [{ id: '1', vm }] });
    const token = (await tokenFor('agent', site)).token;
    const cfg = { ...AgentConfig.parse({ api_url: apiUrl(), token, poll_seconds: 1, redfish: { poll_interval_ms: 100, timeout_ms: 2000, power_timeout_ms: 10_000 } }), token };
    agent = new Agent(cfg, driverFactory(cfg), netboot);
    agent.start();

    const V = { 'X-OpenStack-Ironic-API-Version': '1.78' };
    const name = unique('vm-node');
    const created = await call('POST', '/v1/nodes', {
      headers: V,
      body: { name, driver: 'redfish', conductor_group: site, driver_info: { redfish_address: sim.url, redfish_system_id: '1', redfish_username: USER, redfish_password: PASS } },
    });
    expect(created.status, created.text).toBe(201);
    const states = async () => (await call('GET', `/v1/nodes/${name}/states`, { headers: V })).body;
    const until = async (state: string, ms: number) => {
      const end = Date.now() + ms;
      for (;;) {
        const s = await states();
        if (s.provision_state === state) return s;
        if (Date.now() > end) throw new Error(`node still ${JSON.stringify(s)}; VM console:\n${vm!.console().slice(-3000)}`);
        await new Promise((r) => setTimeout(r, 250));
      }
    };
    expect((await call('PUT', `/v1/nodes/${name}/states/provision`, { headers: V, body: { target: 'manage' } })).status).toBe(202);
    await until('manageable', 30_000);

    const t0 = performance.now();
    expect((await call('PUT', `/v1/nodes/${name}/states/provision`, { headers: V, body: { target: 'inspect' } })).status).toBe(202);
    const done = await until('manageable', 180_000);
    console.log(`Ironic inspect of a VM through the API: ${Math.round(performance.now() - t0)} ms from the request to manageable`);
    expect(done).toMatchObject({ last_error: null, target_provision_state: null });

    const node = (await call('GET', `/v1/nodes/${name}`, { headers: V })).body;
    // One vCPU, x86_64, about 256 MB, no disk of Ironic's 4 GiB root-disk minimum.
    expect(node.properties).toMatchObject({ cpus: 1, cpu_arch: 'x86_64', local_gb: 0 });
    expect(node.properties.memory_mb).toBeGreaterThan(192);
    expect(node.properties.memory_mb).toBeLessThanOrEqual(256);
    const ports = (await call('GET', `/v1/nodes/${name}/ports/detail`, { headers: V })).body.ports;
    expect(ports.map((p: any) => [p.address, p.pxe_enabled])).toEqual([[mac, true]]);
    // The facts lease filters use.
    const native = (await call('GET', `/v1.1/admin/nodes/${created.body.uuid}`)).body.node;
    expect(JSON.stringify(native)).toMatch(/"local_gb":0/);
    // Inspected once, from the network; the VM is off again.
    expect(vm.running).toBe(false);
    expect(sim.state('1')).toMatchObject({ PowerState: 'Off', vmBoots: ['network'] });

    // A tenant's data on the disk; `provide` cleans it (automated cleaning, as upstream) before
    // the node is available.
    const disk = vm.disks[0]!;
    const secret = Buffer.from('tenant data '.repeat(1000));
    for (const at of [0, 32 * MiB, 64 * MiB - secret.length]) writeAt(disk, secret, at);
    const t1 = performance.now();
    expect((await call('PUT', `/v1/nodes/${name}/states/provision`, { headers: V, body: { target: 'provide' } })).status).toBe(202);
    expect((await states()).provision_state).toBe('cleaning');
    expect(await until('available', 180_000)).toMatchObject({ last_error: null });
    expect((await call('GET', `/v1/nodes/${name}`, { headers: V })).body.maintenance).toBe(false);
    console.log(`Ironic provide with automated cleaning of a 64 MiB VM disk: ${Math.round(performance.now() - t1)} ms from the request to available`);
    for (const at of [0, 32 * MiB, 64 * MiB - secret.length]) expect(readAt(disk, secret.length, at).every((b) => b === 0)).toBe(true);
    expect(sim.state('1')).toMatchObject({ PowerState: 'Off', vmBoots: ['network', 'network'] });
  });
});
