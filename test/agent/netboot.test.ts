/**
 * The agent's site boot service (agent/netboot.ts) without a VM: the iPXE script per MAC and
 * step, local boot for unknown MACs, discovery (one at a time), the kernel and initramfs served,
 * the callback (validated, bounded, single-use token), the `inspect` and `clean` jobs through
 * parseJob/execute against the Redfish simulator with the test playing the node, the deploy step
 * (instructions, config drive, images from the cache, its report) and the config drive itself
 * (read back by tar and busybox tar; its runcmd run by sh against a local bootdata server), and
 * the dnsmasq proxy-DHCP configuration checked by `dnsmasq --test` (dnsmasq is never started).
 */
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { buildTarball } from '#core/drydock/bootactions/tarball.ts';
import { AgentConfig, IMAGE_CACHE_DIR, RAMDISK_DIR } from '../../agent/config.ts';
import { BOOTDATA_SCRIPT, buildConfigDrive } from '../../agent/configdrive.ts';
import { dnsmasqConfig, dnsmasqConfigCommand } from '../../agent/dnsmasq.ts';
import { driverFactory } from '../../agent/drivers/index.ts';
import { describeFailure, type Executors, execute, JobInputError, parseJob } from '../../agent/executor.ts';
import { ImageCache } from '../../agent/images.ts';
import { bootifMac, cleaningOutput, DeployReport, deployOutput, InspectReport, inspectionOutput, InspectionTimeout, MAX_REPORT_BYTES, NetbootService, normalizeMac, RamdiskStepError } from '../../agent/netboot.ts';
import { type RedfishSim, startRedfishSim } from '../../agent/sim/redfish.ts';

const run = promisify(execFile);
const MAC = '52:54:00:aa:00:01';
const MAC2 = '52:54:00:aa:00:02';
const OTHER = '52:54:00:ff:ff:ff';
const USER = 'admin';
const PASS = 'netboot-pass';

const report = (over: Record<string, unknown> = {}) => ({
  step: 'inspect',
  cpus: 2,
  cpu_arch: 'x86_64',
  memory_kib: 232_000,
  memory_mb: 226,
  disks: [
    { name: '/dev/vda', size: 1024 ** 3 },
    { name: '/dev/vdb', size: 2 * 1024 ** 3 },
  ],
  interfaces: [{ name: 'eth0', mac_address: MAC.toUpperCase() }],
  bootif: MAC,
  ...over,
});

const MiB = 1024 ** 2;
const cleanReport = (over: Record<string, unknown> = {}) => ({
  step: 'clean',
  disks: [
    { name: '/dev/vda', size: 64 * MiB, method: 'zero', verified_bytes: 10 * MiB },
    { name: '/dev/vdb', size: 128 * MiB, method: 'discard', verified_bytes: 10 * MiB },
  ],
  bootif: MAC,
  ...over,
});

let dir: string;
let kernel: string;
let initramfs: string;
let svc: NetbootService;
let base: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'slipway-netboot-'));
  kernel = join(dir, 'vmlinuz');
  initramfs = join(dir, 'initramfs.gz');
  writeFileSync(kernel, Buffer.alloc(3 * 1024 * 1024 + 7, 0x4b));
  writeFileSync(initramfs, Buffer.from('initramfs bytes\n'));
  svc = new NetbootService({ host: '127.0.0.1', port: 0, publicUrl: 'http://10.0.2.100:8080/', kernel, initramfs, kernelArgs: 'console=ttyS0' });
  await svc.start();
  base = `http://127.0.0.1:${svc.address.port}`;
});

afterAll(async () => {
  await svc?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const script = async (mac: string) => {
  const res = await fetch(`${base}/boot/${mac}.ipxe`);
  expect(res.status).toBe(200);
  return res.text();
};
const callbackPath = (text: string) => {
  const m = /slipway\.callback=http:\/\/10\.0\.2\.100:8080(\/callback\/[A-Za-z0-9_-]+)/.exec(text);
  if (!m) throw new Error(`no callback in script:\n${text}`);
  return m[1]!;
};
const post = (path: string, body: string | object) =>
  fetch(`${base}${path}`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: typeof body === 'string' ? body : JSON.stringify(body) });

describe('MAC helpers', () => {
  it('normalizes MACs and BOOTIF values', () => {
    expect(normalizeMac('52-54-00-AA-00-01')).toBe(MAC);
    expect(normalizeMac('525400aa0001')).toBe(MAC);
    expect(normalizeMac('52:54:00:aa:00')).toBeNull();
    expect(normalizeMac('52:54-00:aa:00:01')).toBeNull();
    expect(bootifMac('01-52-54-00-aa-00-01')).toBe(MAC);
    expect(bootifMac('52:54:00:AA:00:01')).toBe(MAC);
    expect(bootifMac('')).toBeNull();
    expect(bootifMac(null)).toBeNull();
  });
});

describe('the boot service', () => {
  it('serves the inspect script to a MAC with a pending inspection and `exit` to any other', async () => {
    const insp = await svc.register([MAC.toUpperCase()]);
    try {
      expect(insp.macs).toEqual([MAC]);
      // iPXE's ${mac} is lower-case with colons; other spellings are the same machine.
      for (const spelled of [MAC, MAC.toUpperCase(), MAC.replaceAll(':', '-')]) {
        const text = await script(spelled);
        expect(text).toBe(
          [
            '#!ipxe',
            '# Slipway: inspect',
            `kernel http://10.0.2.100:8080/boot/kernel initrd=initramfs slipway.callback=http://10.0.2.100:8080/callback/${insp.token} slipway.step=inspect BOOTIF=\${mac} console=ttyS0`,
            'initrd --name initramfs http://10.0.2.100:8080/boot/initramfs',
            'boot',
            '',
          ].join('\n'),
        );
      }
      const other = await script(OTHER);
      expect(other).toMatch(/^#!ipxe\n/);
      expect(other).toMatch(/\nexit\n$/);
      expect(other).not.toContain('kernel');
      expect((await fetch(`${base}/boot/not-a-mac.ipxe`)).status).toBe(400);
      expect((await fetch(`${base}/boot/${MAC}.ipxe`, { method: 'POST' })).status).toBe(405);
      expect((await fetch(`${base}/nothing`)).status).toBe(404);
    } finally {
      insp.close();
    }
    // Closed: the machine boots from its disk again, and the token is void.
    expect(await script(MAC)).toMatch(/\nexit\n$/);
  });

  it('refuses a second inspection of a MAC already being inspected; different MACs run in parallel', async () => {
    const a = await svc.register([MAC]);
    const b = await svc.register([MAC2]);
    try {
      await expect(svc.register([MAC, OTHER])).rejects.toThrow(`MAC ${MAC} is already being inspected`);
      await expect(svc.register(['nope'])).rejects.toThrow('is not a MAC address');
      const ta = callbackPath(await script(MAC));
      const tb = callbackPath(await script(MAC2));
      expect(ta).not.toBe(tb);
      expect((await post(tb, report({ interfaces: [{ name: 'eth0', mac_address: MAC2 }], bootif: MAC2 }))).status).toBe(204);
      const rb = await b.wait(5000);
      expect(inspectionOutput(rb).boot_mac).toBe(MAC2);
      expect((await post(ta, report())).status).toBe(204);
      expect(inspectionOutput(await a.wait(5000))).toEqual({
        cpus: 2,
        cpu_arch: 'x86_64',
        memory_mb: 226,
        disks: [
          { name: '/dev/vda', size: 1024 ** 3 },
          { name: '/dev/vdb', size: 2 * 1024 ** 3 },
        ],
        interfaces: [{ name: 'eth0', mac_address: MAC }],
        boot_mac: MAC,
      });
    } finally {
      a.close();
      b.close();
    }
  });

  it('discovery: the first unknown MAC gets the inspect script, other unknown MACs boot local; one discovery at a time', async () => {
    const known = await svc.register([MAC2]);
    const first = await svc.register([]);
    expect(first.discovery).toBe(true);
    let secondRegistered = false;
    const second = svc.register([]).then((s) => {
      secondRegistered = true;
      return s;
    });
    try {
      const text = await script(OTHER);
      expect(callbackPath(text)).toBe(`/callback/${first.token}`);
      // Bound to the first unknown MAC that asked: another unknown machine boots from disk.
      expect(await script('52:54:00:ff:ff:fe')).toMatch(/\nexit\n$/);
      // A known MAC still gets its own inspection.
      expect(callbackPath(await script(MAC2))).toBe(`/callback/${known.token}`);
      await new Promise((r) => setTimeout(r, 50));
      expect(secondRegistered).toBe(false);
      // The report names no BOOTIF: boot_mac is the MAC that fetched the script.
      expect((await post(`/callback/${first.token}`, report({ interfaces: [{ name: 'eth0', mac_address: OTHER }], bootif: null }))).status).toBe(204);
      expect(inspectionOutput(await first.wait(1000)).boot_mac).toBe(OTHER);
    } finally {
      first.close();
      known.close();
    }
    const next = await second;
    try {
      expect(secondRegistered).toBe(true);
      expect(callbackPath(await script('52:54:00:ff:ff:fe'))).toBe(`/callback/${next.token}`);
    } finally {
      next.close();
    }
  });

  it('on stop, ends pending inspections and discoveries waiting their turn', async () => {
    const own = new NetbootService({ host: '127.0.0.1', port: 0, publicUrl: 'http://x:1', kernel, initramfs });
    await own.start();
    const first = await own.register([]);
    const waiting = first.wait(10_000);
    const second = own.register([]);
    await own.stop();
    await expect(waiting).rejects.toThrow('the boot service stopped');
    await expect(second).rejects.toThrow('the boot service stopped');
    await expect(own.register([MAC])).rejects.toThrow('the boot service stopped');
  });

  it('boot_mac: the fetching MAC, else BOOTIF, else null', () => {
    const r = InspectReport.parse(report());
    expect(inspectionOutput({ report: { ...r, bootif: '01-52-54-00-aa-00-09' }, fetchedBy: [] }).boot_mac).toBe('52:54:00:aa:00:09');
    expect(inspectionOutput({ report: { ...r, bootif: null }, fetchedBy: [] }).boot_mac).toBeNull();
    expect(inspectionOutput({ report: { ...r, bootif: null }, fetchedBy: [OTHER, MAC] }).boot_mac).toBe(MAC);
  });

  it('streams the kernel and the initramfs', async () => {
    const k = await fetch(`${base}/boot/kernel`);
    expect(k.status).toBe(200);
    expect(k.headers.get('content-length')).toBe(String(3 * 1024 * 1024 + 7));
    const kb = Buffer.from(await k.arrayBuffer());
    expect(kb.length).toBe(3 * 1024 * 1024 + 7);
    expect(kb.every((b) => b === 0x4b)).toBe(true);
    const i = await fetch(`${base}/boot/initramfs`);
    expect(await i.text()).toBe('initramfs bytes\n');
    expect((await fetch(`${base}/boot/initramfs`, { method: 'HEAD' })).headers.get('content-length')).toBe('16');

    const missing = new NetbootService({ host: '127.0.0.1', port: 0, publicUrl: 'http://x:1', kernel: join(dir, 'none'), initramfs: join(dir, 'none') });
    await missing.start();
    try {
      const res = await fetch(`http://127.0.0.1:${missing.address.port}/boot/kernel`);
      expect(res.status).toBe(404);
      expect(await res.text()).toContain('boot file missing');
    } finally {
      await missing.stop();
    }
  });

  it('validates the callback: JSON, the report schema, 64 KiB at most; a token completes its own inspection once', async () => {
    const insp = await svc.register([MAC]);
    try {
      const path = callbackPath(await script(MAC));
      expect((await post('/callback/not-a-token', report())).status).toBe(404);
      expect((await fetch(`${base}${path}`)).status).toBe(405);
      expect((await post(path, '{not json')).status).toBe(400);
      const bad = await post(path, report({ cpus: 'two', disks: [{ name: '/dev/vda' }] }));
      expect(bad.status).toBe(400);
      expect(await bad.text()).toMatch(/invalid report: cpus: .*; disks\.0\.size: /);
      const big = await post(path, report({ padding: 'x'.repeat(MAX_REPORT_BYTES) }));
      expect(big.status).toBe(413);
      // Chunked, no Content-Length: cut off as it streams.
      const chunks = new ReadableStream({
        start(c) {
          for (let n = 0; n < 80; n++) c.enqueue(new TextEncoder().encode('x'.repeat(1024)));
          c.close();
        },
      });
      const streamed = await fetch(`${base}${path}`, { method: 'POST', body: chunks, duplex: 'half' } as RequestInit);
      expect(streamed.status).toBe(413);
      // None of that used the token up.
      const ok = await post(path, report());
      expect(ok.status).toBe(204);
      expect(await ok.text()).toBe('');
      expect((await post(path, report())).status).toBe(404);
      expect((await insp.wait(1000)).report).toMatchObject({ cpus: 2 });
      // Reported: the machine boots from its disk from now on.
      expect(await script(MAC)).toMatch(/\nexit\n$/);
    } finally {
      insp.close();
    }
  });

  it('times out with a clear error', async () => {
    const insp = await svc.register([MAC]);
    try {
      const err = await insp.wait(200).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(InspectionTimeout);
      expect((err as Error).message).toBe("inspection timed out after 0.2 s: the node never reported (does it boot from the network and reach the agent's boot service?)");
      await script(MAC);
      expect(((await insp.wait(100).catch((e: unknown) => e)) as Error).message).toContain(`the node fetched its boot script (${MAC}) but never reported`);
    } finally {
      insp.close();
    }
    await expect(insp.wait(100)).rejects.toThrow('the inspection was closed');
  });
});

describe('the boot service: the clean step', () => {
  it('serves the clean script to a MAC with a pending cleaning; one step per MAC at a time', async () => {
    const c = await svc.register([MAC], 'clean');
    try {
      expect(c.step).toBe('clean');
      expect(await script(MAC)).toBe(
        [
          '#!ipxe',
          '# Slipway: clean',
          `kernel http://10.0.2.100:8080/boot/kernel initrd=initramfs slipway.callback=http://10.0.2.100:8080/callback/${c.token} slipway.step=clean BOOTIF=\${mac} console=ttyS0`,
          'initrd --name initramfs http://10.0.2.100:8080/boot/initramfs',
          'boot',
          '',
        ].join('\n'),
      );
      await expect(svc.register([MAC], 'clean')).rejects.toThrow(`MAC ${MAC} is already being cleaned`);
      await expect(svc.register([MAC])).rejects.toThrow(`MAC ${MAC} is already being cleaned`);
      await expect(svc.register([MAC2], 'flash' as 'clean')).rejects.toThrow('unknown ramdisk step "flash"');
      // Another MAC inspects meanwhile; a discovery may be a cleaning too.
      const i = await svc.register([MAC2]);
      const d = await svc.register([], 'clean');
      try {
        expect(await script(MAC2)).toContain('slipway.step=inspect');
        expect(await script(OTHER)).toContain(`slipway.callback=http://10.0.2.100:8080/callback/${d.token} slipway.step=clean`);
      } finally {
        i.close();
        d.close();
      }
    } finally {
      c.close();
    }
    expect(await script(MAC)).toMatch(/\nexit\n$/);
  });

  it("validates the clean report and its error form against the token's step", async () => {
    const c = await svc.register([MAC], 'clean');
    const i = await svc.register([MAC2]);
    try {
      const path = callbackPath(await script(MAC));
      const ipath = callbackPath(await script(MAC2));
      // An inspection's report is no cleaning's, nor the other way round.
      const wrong = await post(path, report());
      expect(wrong.status).toBe(400);
      expect(await wrong.text()).toMatch(/^invalid report: step: /);
      expect((await post(ipath, cleanReport())).status).toBe(400);
      const bad = await post(path, cleanReport({ disks: [{ name: '/dev/vda', size: 1, method: 'shred', verified_bytes: -1 }] }));
      expect(bad.status).toBe(400);
      expect(await bad.text()).toMatch(/invalid report: disks\.0\.method: .*; disks\.0\.verified_bytes: /);
      expect((await post(path, cleanReport({ disks: [{ name: '/dev/vda', size: 1, method: 'zero' }] }))).status).toBe(400);
      // The error form: a message, for this token's step only, nothing else with it.
      const errWrongStep = await post(path, { step: 'inspect', error: 'x' });
      expect(errWrongStep.status).toBe(400);
      expect(await errWrongStep.text()).toBe('invalid report: step: expected "clean", not "inspect"\n');
      expect((await post(path, { step: 'clean', error: '' })).status).toBe(400);
      expect((await post(path, { step: 'clean', error: 'x', disks: [] })).status).toBe(400);
      expect((await post(path, cleanReport())).status).toBe(204);
      expect((await post(path, cleanReport())).status).toBe(404);
      expect(cleaningOutput(await c.wait(1000))).toEqual({
        disks: [
          { name: '/dev/vda', size: 64 * MiB, method: 'zero', verified_bytes: 10 * MiB },
          { name: '/dev/vdb', size: 128 * MiB, method: 'discard', verified_bytes: 10 * MiB },
        ],
        boot_mac: MAC,
      });
      // An error report completes the step too; the output functions throw it.
      expect((await post(ipath, { step: 'inspect', error: 'no disks found' })).status).toBe(204);
      const r = await i.wait(1000);
      expect(r.report).toEqual({ step: 'inspect', error: 'no disks found' });
      expect(() => inspectionOutput(r)).toThrow(RamdiskStepError);
    } finally {
      c.close();
      i.close();
    }
  });

  it('cleaning boot_mac: BOOTIF when it fetched the script, else the one fetching MAC, else BOOTIF', () => {
    const base = { step: 'clean' as const, disks: [] };
    expect(cleaningOutput({ report: { ...base, bootif: MAC }, fetchedBy: [OTHER, MAC] }).boot_mac).toBe(MAC);
    expect(cleaningOutput({ report: { ...base, bootif: null }, fetchedBy: [OTHER] }).boot_mac).toBe(OTHER);
    expect(cleaningOutput({ report: { ...base, bootif: '01-52-54-00-aa-00-09' }, fetchedBy: [] }).boot_mac).toBe('52:54:00:aa:00:09');
    expect(cleaningOutput({ report: { ...base, bootif: null }, fetchedBy: [OTHER, MAC] }).boot_mac).toBeNull();
  });
});

describe('the agent config', () => {
  it('has a netboot section with the ramdisk defaults', () => {
    const cfg = AgentConfig.parse({ api_url: 'http://127.0.0.1:9', token: 'unused-token', netboot: { public_url: 'http://192.168.10.5:8081' } });
    expect(cfg.netboot).toEqual({
      listen: { host: '127.0.0.1', port: 8081 },
      public_url: 'http://192.168.10.5:8081',
      kernel: join(RAMDISK_DIR, 'vmlinuz'),
      initramfs: join(RAMDISK_DIR, 'initramfs.gz'),
      kernel_args: 'console=tty0 console=ttyS0,115200n8',
      images: {},
      image_cache_dir: IMAGE_CACHE_DIR,
      image_url_prefixes: ['https://'],
    });
    expect(AgentConfig.safeParse({ api_url: 'http://127.0.0.1:9', token: 'unused-token', netboot: {} }).success).toBe(false);
    expect(AgentConfig.safeParse({ api_url: 'http://127.0.0.1:9', token: 'unused-token', netboot: { public_url: 'ftp://x' } }).success).toBe(false);
  });
});

describe('the inspect job (Redfish simulator, the test plays the node)', () => {
  let sim: RedfishSim | undefined;
  afterEach(async () => {
    await sim?.stop();
    sim = undefined;
  });
  const cfg = AgentConfig.parse({ api_url: 'http://127.0.0.1:9', token: 'unused-token', redfish: { poll_interval_ms: 20, timeout_ms: 2000, power_timeout_ms: 5000 } });
  const executors = (): Executors => ({ makeDriver: driverFactory({ ...cfg, token: 'unused-token' }), ssh: { connectTimeoutMs: 1000, commandTimeoutMs: 1000 }, netboot: svc });
  const bmc = (s: RedfishSim) => ({ driver: 'redfish', driver_info: { redfish_address: s.url, redfish_system_id: '1', redfish_username: USER, redfish_password: PASS } });

  /** Fetches the MAC's script until it is the step's (the job registers, then powers on). */
  async function bootScript(mac: string, step = 'inspect'): Promise<string> {
    for (let i = 0; i < 200; i++) {
      const text = await script(mac);
      if (text.includes(`slipway.step=${step}`)) return text;
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error(`${mac} never got the ${step} script`);
  }

  it('checks the payload', () => {
    const ok = parseJob('inspect', { driver: 'redfish', driver_info: {}, node_id: 'n1', macs: ['52-54-00-AA-00-01'] });
    expect(ok.payload).toMatchObject({ node_id: 'n1', macs: [MAC] });
    expect(() => parseJob('inspect', { driver: 'redfish', driver_info: {}, node_id: 'n1', macs: ['zz'] })).toThrow(JobInputError);
    expect(() => parseJob('inspect', { driver: 'redfish', driver_info: {}, macs: [] })).toThrow(/node_id/);
    expect(() => parseJob('inspect', { driver: 'redfish', driver_info: {}, node_id: 'n1', macs: [], timeout_seconds: 0 })).toThrow(/timeout_seconds/);
  });

  it('sets PXE once, powers on (cycling a running node), waits for the report and powers off', async () => {
    const s = (sim = await startRedfishSim({ username: USER, password: PASS, systems: [{ id: '1', powerState: 'On' }] }));
    const job = execute(parseJob('inspect', { ...bmc(s), node_id: 'node-1', macs: [MAC], timeout_seconds: 20 }), executors());
    const text = await bootScript(MAC);
    // The node reports once it has been power-cycled into the network boot.
    for (let i = 0; i < 200 && !s.state('1').resets.includes('ForceRestart'); i++) await new Promise((r) => setTimeout(r, 25));
    expect((await post(callbackPath(text), report({ bootif: null }))).status).toBe(204);
    expect(await job).toEqual({
      cpus: 2,
      cpu_arch: 'x86_64',
      memory_mb: 226,
      disks: [
        { name: '/dev/vda', size: 1024 ** 3 },
        { name: '/dev/vdb', size: 2 * 1024 ** 3 },
      ],
      interfaces: [{ name: 'eth0', mac_address: MAC }],
      boot_mac: MAC,
    });
    expect(s.state('1')).toMatchObject({ PowerState: 'Off', resets: ['ForceRestart', 'ForceOff'] });
    expect(s.state('1').patches).toEqual([{ Boot: { BootSourceOverrideTarget: 'Pxe', BootSourceOverrideEnabled: 'Once' } }]);
    expect(await script(MAC)).toMatch(/\nexit\n$/);
  });

  it('fails with a clear error when the node never reports, powered off and unregistered', async () => {
    const s = (sim = await startRedfishSim({ username: USER, password: PASS, systems: [{ id: '1', powerState: 'Off' }] }));
    const err = await execute(parseJob('inspect', { ...bmc(s), node_id: 'node-1', macs: [MAC], timeout_seconds: 1 }), executors()).catch((e: unknown) => e);
    expect(describeFailure(err)).toBe("inspection timed out after 1 s: the node never reported (does it boot from the network and reach the agent's boot service?)");
    expect(s.state('1')).toMatchObject({ PowerState: 'Off', resets: ['On', 'ForceOff'] });
    expect(await script(MAC)).toMatch(/\nexit\n$/);
  });

  it('fails without a netboot section', async () => {
    const s = (sim = await startRedfishSim({ username: USER, password: PASS, systems: [{ id: '1', powerState: 'Off' }] }));
    const { netboot: _, ...without } = executors();
    const err = await execute(parseJob('inspect', { ...bmc(s), node_id: 'node-1', macs: [MAC] }), without).catch((e: unknown) => e);
    expect(describeFailure(err)).toContain('no netboot section');
    expect(s.state('1').resets).toEqual([]);
  });
});

describe('the clean job (Redfish simulator, the test plays the node)', () => {
  let sim: RedfishSim | undefined;
  afterEach(async () => {
    await sim?.stop();
    sim = undefined;
  });
  const cfg = AgentConfig.parse({ api_url: 'http://127.0.0.1:9', token: 'unused-token', redfish: { poll_interval_ms: 20, timeout_ms: 2000, power_timeout_ms: 5000 } });
  const executors = (): Executors => ({ makeDriver: driverFactory({ ...cfg, token: 'unused-token' }), ssh: { connectTimeoutMs: 1000, commandTimeoutMs: 1000 }, netboot: svc });
  const bmc = (s: RedfishSim) => ({ driver: 'redfish', driver_info: { redfish_address: s.url, redfish_system_id: '1', redfish_username: USER, redfish_password: PASS } });
  async function cleanScript(mac: string): Promise<string> {
    for (let i = 0; i < 200; i++) {
      const text = await script(mac);
      if (text.includes('slipway.step=clean')) return text;
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error(`${mac} never got the clean script`);
  }
  const poweredOn = async (s: RedfishSim, reset: string) => {
    for (let i = 0; i < 200 && !s.state('1').resets.includes(reset); i++) await new Promise((r) => setTimeout(r, 25));
  };

  it('checks the payload as for inspect', () => {
    expect(parseJob('clean', { driver: 'redfish', driver_info: {}, node_id: 'n1', macs: ['52-54-00-AA-00-01'], timeout_seconds: 600 }).payload).toMatchObject({ node_id: 'n1', macs: [MAC], timeout_seconds: 600 });
    expect(parseJob('clean', { driver: 'redfish', driver_info: {}, node_id: 'n1', macs: [] }).payload).toMatchObject({ macs: [] });
    expect(() => parseJob('clean', { driver: 'redfish', driver_info: {}, node_id: 'n1', macs: ['zz'] })).toThrow(/^job clean: macs\.0: not a MAC address$/);
    expect(() => parseJob('clean', { driver: 'redfish', driver_info: {}, macs: [] })).toThrow(/node_id/);
    expect(() => parseJob('clean', { driver: 'redfish', driver_info: {}, node_id: 'n1', macs: [], timeout_seconds: 0 })).toThrow(/timeout_seconds/);
  });

  it('sets PXE once, power-cycles into the clean step, returns the erased disks and powers off', async () => {
    const s = (sim = await startRedfishSim({ username: USER, password: PASS, systems: [{ id: '1', powerState: 'On' }] }));
    const job = execute(parseJob('clean', { ...bmc(s), node_id: 'node-1', macs: [MAC], timeout_seconds: 20 }), executors());
    const text = await cleanScript(MAC);
    await poweredOn(s, 'ForceRestart');
    expect((await post(callbackPath(text), cleanReport())).status).toBe(204);
    expect(await job).toEqual({
      disks: [
        { name: '/dev/vda', size: 64 * MiB, method: 'zero', verified_bytes: 10 * MiB },
        { name: '/dev/vdb', size: 128 * MiB, method: 'discard', verified_bytes: 10 * MiB },
      ],
      boot_mac: MAC,
    });
    expect(s.state('1')).toMatchObject({ PowerState: 'Off', resets: ['ForceRestart', 'ForceOff'] });
    expect(s.state('1').patches).toEqual([{ Boot: { BootSourceOverrideTarget: 'Pxe', BootSourceOverrideEnabled: 'Once' } }]);
    expect(await script(MAC)).toMatch(/\nexit\n$/);
  });

  it("fails with the ramdisk's error, powered off and unregistered", async () => {
    const s = (sim = await startRedfishSim({ username: USER, password: PASS, systems: [{ id: '1', powerState: 'Off' }] }));
    const job = execute(parseJob('clean', { ...bmc(s), node_id: 'node-1', macs: [MAC], timeout_seconds: 20 }), executors()).catch((e: unknown) => e);
    const text = await cleanScript(MAC);
    await poweredOn(s, 'On');
    const error = 'erasing /dev/vdb failed: dd: write error: Input/output error';
    expect((await post(callbackPath(text), { step: 'clean', error })).status).toBe(204);
    const err = await job;
    expect(err).toBeInstanceOf(RamdiskStepError);
    expect(describeFailure(err)).toBe(error);
    expect(s.state('1')).toMatchObject({ PowerState: 'Off', resets: ['On', 'ForceOff'] });
    expect(await script(MAC)).toMatch(/\nexit\n$/);
  });

  it('is never a discovery: without MACs the job fails before the BMC is touched, and unknown MACs boot locally', async () => {
    const s = (sim = await startRedfishSim({ username: USER, password: PASS, systems: [{ id: '1', powerState: 'Off' }] }));
    const err = await execute(parseJob('clean', { ...bmc(s), node_id: 'node-1', macs: [], timeout_seconds: 20 }), executors()).catch((e: unknown) => e);
    expect(describeFailure(err)).toBe('cannot clean node node-1: it has no known MAC address (no Ironic ports; inspect it first)');
    expect(s.state('1').resets).toEqual([]);
    expect(await script(OTHER)).toMatch(/\nexit\n$/);
  });

  it('times out with a clear error, powered off and unregistered', async () => {
    const s = (sim = await startRedfishSim({ username: USER, password: PASS, systems: [{ id: '1', powerState: 'Off' }] }));
    const err = await execute(parseJob('clean', { ...bmc(s), node_id: 'node-1', macs: [MAC], timeout_seconds: 1 }), executors()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InspectionTimeout);
    expect(describeFailure(err)).toBe("cleaning timed out after 1 s: the node never reported (does it boot from the network and reach the agent's boot service?)");
    expect(s.state('1')).toMatchObject({ PowerState: 'Off', resets: ['On', 'ForceOff'] });
    expect(await script(MAC)).toMatch(/\nexit\n$/);
  });

  it('fails without a netboot section', async () => {
    const s = (sim = await startRedfishSim({ username: USER, password: PASS, systems: [{ id: '1', powerState: 'Off' }] }));
    const { netboot: _, ...without } = executors();
    const err = await execute(parseJob('clean', { ...bmc(s), node_id: 'node-1', macs: [MAC] }), without).catch((e: unknown) => e);
    expect(describeFailure(err)).toBe('this agent has no netboot section in its config: it cannot clean nodes (see docs/machines.md)');
    expect(s.state('1').resets).toEqual([]);
  });
});

describe('dnsmasq proxy-DHCP configuration', () => {
  const dnsmasq = ['/usr/sbin/dnsmasq', '/usr/bin/dnsmasq'].find((p) => existsSync(p));
  const check = async (conf: string) => {
    if (!dnsmasq) throw new Error('dnsmasq is missing (Debian package dnsmasq): bash scripts/system-packages.sh');
    const file = join(dir, `dnsmasq-${Math.random().toString(36).slice(2)}.conf`);
    writeFileSync(file, conf);
    // --test: a syntax check only; nothing listens, no lease file, no service.
    return run(dnsmasq, ['--test', '--conf-file=' + file]).then(
      ({ stderr }) => ({ ok: true, text: stderr }),
      (e: { stderr?: string }) => ({ ok: false, text: e.stderr ?? '' }),
    );
  };

  it('chains PXE to iPXE and iPXE to the boot service; dnsmasq --test accepts it', async () => {
    const conf = dnsmasqConfigCommand(['--public-url', 'http://192.168.10.5:8081', '--range', '192.168.10.0/24', '--interface', 'eth1']);
    expect(conf).toContain('dhcp-range=192.168.10.0,proxy,255.255.255.0\n');
    expect(conf).toContain('interface=eth1\n');
    expect(conf).toContain('dhcp-match=set:ipxe,175\n');
    expect(conf).toContain('dhcp-userclass=set:ipxe,iPXE\n');
    expect(conf).toContain('pxe-service=tag:!ipxe,x86PC,"Slipway: load iPXE",undionly.kpxe\n');
    expect(conf).toContain('dhcp-boot=tag:ipxe,http://192.168.10.5:8081/boot/${mac}.ipxe\n');
    expect(await check(conf)).toEqual({ ok: true, text: expect.stringContaining('syntax check OK') });

    // From an agent config file, the range taken from the public URL's address.
    const file = join(dir, 'agent.json');
    writeFileSync(file, JSON.stringify({ api_url: 'http://x', netboot: { public_url: 'http://10.1.2.3:8081' } }));
    const fromFile = dnsmasqConfigCommand(['--config', file]);
    expect(fromFile).toContain('dhcp-range=10.1.2.3,proxy\n');
    expect(await check(fromFile)).toMatchObject({ ok: true });

    // The check is real: a broken line fails it.
    expect(await check(`${conf}dhcp-range=nonsense,proxy\n`)).toMatchObject({ ok: false });
  });

  it('refuses what dnsmasq or iPXE could not use', () => {
    expect(() => dnsmasqConfig({ publicUrl: 'http://h:1', range: '10.0.0.0/33' })).toThrow('bad prefix length');
    expect(() => dnsmasqConfig({ publicUrl: 'http://h:1', range: 'ten' })).toThrow('is not an IPv4 subnet');
    expect(() => dnsmasqConfig({ publicUrl: 'http://h:1,x', range: '10.0.0.0' })).toThrow('is not a plain http(s) URL');
    expect(() => dnsmasqConfig({ publicUrl: 'https://h:1', range: '10.0.0.0' })).toThrow('must be http://');
    expect(() => dnsmasqConfig({ publicUrl: 'http://h:1', range: '10.0.0.0', interface: 'eth0\nport=53' })).toThrow('is not an interface name');
    expect(() => dnsmasqConfigCommand(['--public-url', 'http://boot.example:8081'])).toThrow('needs --range');
    expect(() => dnsmasqConfigCommand([])).toThrow('needs the boot service URL');
  });
});

// ---------------------------------------------------------------------------------------------
// The deploy step: instructions, config drive and images for the ramdisk (deploy contract §1–§5).

/** The members of an uncompressed ustar, read from its headers (the writer under test is ours). */
function ustarMembers(tar: Buffer): { name: string; mode: number; type: string; data: Buffer }[] {
  const out: { name: string; mode: number; type: string; data: Buffer }[] = [];
  for (let off = 0; off + 512 <= tar.length; ) {
    const h = tar.subarray(off, off + 512);
    if (h.every((b) => b === 0)) break;
    const str = (a: number, n: number) => h.subarray(a, a + n).toString('utf8').replace(/\0.*$/s, '');
    expect(str(257, 6)).toBe('ustar');
    const size = Number.parseInt(str(124, 12), 8);
    const prefix = str(345, 155);
    out.push({ name: prefix ? `${prefix}/${str(0, 100)}` : str(0, 100), mode: Number.parseInt(str(100, 8), 8), type: str(156, 1), data: tar.subarray(off + 512, off + 512 + size) });
    off += 512 + Math.ceil(size / 512) * 512;
  }
  return out;
}

/** Runs `cmd args` with `input` on stdin. */
function withStdin(cmd: string, args: string[], input: Buffer, env?: NodeJS.ProcessEnv): Promise<{ stdout: string; stderr: string; code: number | null }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], ...(env ? { env } : {}) });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ stdout, stderr, code }));
    child.stdin.end(input);
  });
}

const SHA_OF = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('the boot service: the deploy step', () => {
  const IMG = Buffer.concat([Buffer.from('slipway test image\n'), Buffer.alloc(70_000, 7)]);
  let images: ImageCache;
  let dsvc: NetbootService;
  let dbase: string;
  const dscript = async (mac: string) => (await fetch(`${dbase}/boot/${mac}.ipxe`)).text();
  const drive = () => buildConfigDrive({ instanceId: 'node-1', hostname: 'n01', mtime: 0 });

  beforeAll(async () => {
    const src = join(dir, 'deploy-image.raw');
    writeFileSync(src, IMG);
    images = new ImageCache({ dir: join(dir, 'image-cache'), images: { debian: { url: pathToFileURL(src).toString(), sha256: SHA_OF(IMG) } } });
    dsvc = new NetbootService({ host: '127.0.0.1', port: 0, publicUrl: 'http://10.0.2.100:8080', kernel, initramfs, kernelArgs: 'console=ttyS0', images });
    await dsvc.start();
    dbase = `http://127.0.0.1:${dsvc.address.port}`;
  });
  afterAll(async () => {
    await dsvc?.stop();
  });

  it('serves the deploy script with slipway.deploy, and the instructions for its token only', async () => {
    const img = await images.ensure('debian');
    const d = await dsvc.register([MAC], 'deploy', { image: { sha256: img.sha256, size: img.size }, configdrive: drive(), rootDevice: '/dev/vda' });
    try {
      expect(d.step).toBe('deploy');
      expect(await dscript(MAC)).toBe(
        [
          '#!ipxe',
          '# Slipway: deploy',
          `kernel http://10.0.2.100:8080/boot/kernel initrd=initramfs slipway.callback=http://10.0.2.100:8080/callback/${d.token} slipway.step=deploy slipway.deploy=http://10.0.2.100:8080/deploy/${d.token} BOOTIF=\${mac} console=ttyS0`,
          'initrd --name initramfs http://10.0.2.100:8080/boot/initramfs',
          'boot',
          '',
        ].join('\n'),
      );
      const res = await fetch(`${dbase}/deploy/${d.token}`);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
      expect(await res.text()).toBe(
        [
          `image_url=http://10.0.2.100:8080/images/${img.sha256}`,
          `image_sha256=${img.sha256}`,
          `image_size=${IMG.length}`,
          `configdrive_url=http://10.0.2.100:8080/configdrive/${d.token}.tar`,
          'root_device=/dev/vda',
          '',
        ].join('\n'),
      );
      expect((await fetch(`${dbase}/deploy/not-a-token`)).status).toBe(404);
      expect((await fetch(`${dbase}/deploy/${d.token}`, { method: 'POST' })).status).toBe(405);
      await expect(dsvc.register([MAC], 'clean')).rejects.toThrow(`MAC ${MAC} is already being deployed`);
      // An inspection's token has no instructions.
      const i = await dsvc.register([MAC2]);
      try {
        expect((await fetch(`${dbase}/deploy/${i.token}`)).status).toBe(404);
        expect((await fetch(`${dbase}/configdrive/${i.token}.tar`)).status).toBe(404);
      } finally {
        i.close();
      }
    } finally {
      d.close();
    }
    // Closed: nothing is served for it any more.
    expect((await fetch(`${dbase}/deploy/${d.token}`)).status).toBe(404);
    expect((await fetch(`${dbase}/configdrive/${d.token}.tar`)).status).toBe(404);
    expect(await dscript(MAC)).toMatch(/\nexit\n$/);
  });

  it('leaves root_device out when the ramdisk is to pick; refuses registrations it could not describe', async () => {
    const img = await images.ensure('debian');
    const image = { sha256: img.sha256, size: img.size };
    const d = await dsvc.register([], 'deploy', { image, configdrive: drive() });
    try {
      expect(d.discovery).toBe(true);
      expect(await (await fetch(`${dbase}/deploy/${d.token}`)).text()).not.toContain('root_device');
    } finally {
      d.close();
    }
    await expect((dsvc.register as (m: string[], s: string) => Promise<unknown>)([MAC], 'deploy')).rejects.toThrow('a deploy registration needs its image and config drive');
    await expect(dsvc.register([MAC], 'deploy', { image, configdrive: drive(), rootDevice: '/dev/vda\nimage_url=http://evil' })).rejects.toThrow('is not a /dev path');
    await expect(dsvc.register([MAC], 'deploy', { image: { sha256: 'AB'.repeat(32), size: 1 }, configdrive: drive() })).rejects.toThrow('sha256');
    await expect(dsvc.register([MAC], 'deploy', { image: { ...image, size: 0 }, configdrive: drive() })).rejects.toThrow('not a positive integer');
    await expect(dsvc.register([MAC], 'deploy', { image, configdrive: Buffer.alloc(0) })).rejects.toThrow('the config drive must be');
  });

  it("serves the registration's config drive, an uncompressed ustar that tar and busybox tar extract", async () => {
    const img = await images.ensure('debian');
    const tar = buildConfigDrive({
      instanceId: 'node-1',
      hostname: 'n01',
      bootdataUrl: 'http://10.0.2.2:9000/api/v1.0/bootactions/nodes/n01',
      bootaction: { node_name: 'n01', action_key: 'ab'.repeat(32), report_url: 'http://10.0.2.2:9000/api/v1.0/bootactions/', packages: ['curl', ['jq', '1.6-2'], ['vim', null]], action_ids: ['01HX1', '01HX2'] },
    });
    const d = await dsvc.register([MAC], 'deploy', { image: { sha256: img.sha256, size: img.size }, configdrive: tar });
    try {
      const res = await fetch(`${dbase}/configdrive/${d.token}.tar`);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toBe('application/x-tar');
      expect(res.headers.get('content-length')).toBe(String(tar.length));
      const body = Buffer.from(await res.arrayBuffer());
      expect(body.equals(tar)).toBe(true);
      expect(body.subarray(0, 2).equals(Buffer.from([0x1f, 0x8b]))).toBe(false); // not gzip
      expect(ustarMembers(body).map((m) => [m.name, m.mode.toString(8), m.type])).toEqual([
        ['var/lib/cloud/seed/nocloud/meta-data', '644', '0'],
        ['var/lib/cloud/seed/nocloud/user-data', '600', '0'],
        ['etc/slipway/bootaction', '600', '0'],
      ]);
      const listed = await withStdin('tar', ['-tvf', '-'], body);
      expect(listed.code).toBe(0);
      expect(listed.stdout).toMatch(/^-rw------- 0\/0 .* etc\/slipway\/bootaction$/m);
      // The ramdisk's own tar (busybox) extracts it into a root filesystem, relative to -C.
      const rootfs = join(dir, 'rootfs');
      mkdirSync(rootfs, { recursive: true });
      const x = await withStdin('/bin/busybox', ['tar', '-x', '-C', rootfs], body);
      expect(x).toMatchObject({ code: 0, stderr: '' });
      expect(JSON.parse(readFileSync(join(rootfs, 'var/lib/cloud/seed/nocloud/meta-data'), 'utf8'))).toEqual({ 'instance-id': 'node-1', 'local-hostname': 'n01' });
      expect(statSync(join(rootfs, 'etc/slipway/bootaction')).mode & 0o777).toBe(0o600);
      expect(readFileSync(join(rootfs, 'etc/slipway/bootaction'), 'utf8')).toBe(
        [
          'node_name=n01',
          `action_key=${'ab'.repeat(32)}`,
          'bootdata_url=http://10.0.2.2:9000/api/v1.0/bootactions/nodes/n01',
          'report_url=http://10.0.2.2:9000/api/v1.0/bootactions/',
          'action_ids=01HX1 01HX2',
          'packages=curl jq=1.6-2 vim',
          '',
        ].join('\n'),
      );
      const userData = readFileSync(join(rootfs, 'var/lib/cloud/seed/nocloud/user-data'), 'utf8');
      expect(userData.startsWith('#cloud-config\n')).toBe(true);
      // The key is in the 0600 bootaction file only, not in user-data (which cloud-init copies around).
      expect(userData).not.toContain('ab'.repeat(32));
      expect(parseYaml(userData)).toEqual({ hostname: 'n01', packages: ['curl', ['jq', '1.6-2'], 'vim'], runcmd: [['sh', '-c', BOOTDATA_SCRIPT]] });
      // HEAD: the size only.
      const head = await fetch(`${dbase}/configdrive/${d.token}.tar`, { method: 'HEAD' });
      expect(head.headers.get('content-length')).toBe(String(tar.length));
    } finally {
      d.close();
    }
  });

  it('serves /images/<sha256> only for images the cache verified, with Content-Length', async () => {
    const other = SHA_OF(Buffer.from('nothing'));
    expect((await fetch(`${dbase}/images/${other}`)).status).toBe(404);
    expect((await fetch(`${dbase}/images/${SHA_OF(IMG).toUpperCase()}`)).status).toBe(404);
    expect((await fetch(`${dbase}/images/../etc/passwd`)).status).toBe(404);
    const img = await images.ensure('debian');
    const res = await fetch(`${dbase}/images/${img.sha256}`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-length')).toBe(String(IMG.length));
    const bytes = Buffer.from(await res.arrayBuffer());
    expect(SHA_OF(bytes)).toBe(img.sha256);
    const head = await fetch(`${dbase}/images/${img.sha256}`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers.get('content-length')).toBe(String(IMG.length));
    expect((await fetch(`${dbase}/images/${img.sha256}`, { method: 'POST' })).status).toBe(405);
    // A file in the cache directory that this process never checked is not served.
    writeFileSync(join(images.dir, other), 'planted');
    expect((await fetch(`${dbase}/images/${other}`)).status).toBe(404);
    // A service without an image cache serves none.
    expect((await fetch(`${base}/images/${img.sha256}`)).status).toBe(404);
  });

  it('validates the deploy report and its error form; deployOutput', async () => {
    const img = await images.ensure('debian');
    const good = { step: 'deploy', root_device: '/dev/vda', root_filesystem: '/dev/vda1', image_sha256: img.sha256, written_bytes: img.size, write_seconds: 1.25, configdrive: 'nocloud', bootif: MAC };
    const d = await dsvc.register([MAC], 'deploy', { image: { sha256: img.sha256, size: img.size }, configdrive: drive() });
    const e = await dsvc.register([MAC2], 'deploy', { image: { sha256: img.sha256, size: img.size }, configdrive: drive() });
    const dpost = (path: string, body: object) => fetch(`${dbase}${path}`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
    try {
      const path = callbackPath(await dscript(MAC));
      const epath = callbackPath(await dscript(MAC2));
      const bad = await dpost(path, { ...good, image_sha256: img.sha256.toUpperCase(), configdrive: 'configdrive-v2', written_bytes: -1 });
      expect(bad.status).toBe(400);
      expect(await bad.text()).toMatch(/^invalid report: image_sha256: .*; written_bytes: .*; configdrive: /);
      expect((await dpost(path, { ...good, root_filesystem: undefined })).status).toBe(400);
      expect((await dpost(path, cleanReport())).status).toBe(400);
      expect((await dpost(path, { step: 'clean', error: 'x' })).status).toBe(400);
      expect((await dpost(path, good)).status).toBe(204);
      // Reported: the instructions and the config drive are gone with the token.
      expect((await fetch(`${dbase}/deploy/${d.token}`)).status).toBe(404);
      expect((await fetch(`${dbase}/configdrive/${d.token}.tar`)).status).toBe(404);
      expect(deployOutput(await d.wait(1000))).toEqual({ root_device: '/dev/vda', root_filesystem: '/dev/vda1', image_sha256: img.sha256, written_bytes: img.size, write_seconds: 1.25, boot_mac: MAC });
      const error = 'image written to /dev/vda does not match its sha256 (expected a, read b)';
      expect((await dpost(epath, { step: 'deploy', error })).status).toBe(204);
      const r = await e.wait(1000);
      expect(() => deployOutput(r)).toThrow(RamdiskStepError);
      expect(() => deployOutput(r)).toThrow(error);
      expect(DeployReport.safeParse({ ...good, bootif: null }).success).toBe(true);
    } finally {
      d.close();
      e.close();
    }
  });
});

describe('the config drive', () => {
  it('holds meta-data and user-data only when the node has no boot actions', () => {
    const members = ustarMembers(buildConfigDrive({ instanceId: 'node-9', hostname: 'n09.example.com' }));
    expect(members.map((m) => m.name)).toEqual(['var/lib/cloud/seed/nocloud/meta-data', 'var/lib/cloud/seed/nocloud/user-data']);
    expect(parseYaml(members[1]!.data.toString())).toEqual({ hostname: 'n09.example.com', packages: [] });
    expect(JSON.parse(members[0]!.data.toString())).toEqual({ 'instance-id': 'node-9', 'local-hostname': 'n09.example.com' });
  });

  it('refuses values that would break its key=value lines, naming the field, never the value', () => {
    const ba = { node_name: 'n01', action_key: 'ab'.repeat(32), report_url: 'http://x/', packages: [], action_ids: ['a1'] };
    expect(() => buildConfigDrive({ instanceId: 'i', hostname: 'n01\nroot=/dev/sda' })).toThrow('config drive: hostname contains a newline or another control character');
    expect(() => buildConfigDrive({ instanceId: 'i', hostname: 'h', bootaction: { ...ba, report_url: 'http://x/\nnode_name=evil' } })).toThrow('bootaction.report_url contains a newline');
    expect(() => buildConfigDrive({ instanceId: 'i', hostname: 'h', bootaction: { ...ba, packages: ['a b'] } })).toThrow('bootaction.packages[0] is empty or contains whitespace');
    expect(() => buildConfigDrive({ instanceId: 'i', hostname: 'h', bootaction: { ...ba, action_key: `${ba.action_key}\n` } })).toThrow(/^config drive: bootaction\.action_key contains a newline/);
    try {
      buildConfigDrive({ instanceId: 'i', hostname: 'h', bootaction: { ...ba, action_key: 'secret\n' } });
    } catch (err) {
      expect((err as Error).message).not.toContain('secret');
    }
  });

  describe('the Ironic layout (a configdrive from the job)', () => {
    const KEY1 = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKx0000000000000000000000000000000000000000 lessee@laptop';
    const KEY2 = 'ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ other';
    const members = (tar: Buffer) => Object.fromEntries(ustarMembers(tar).map((m) => [m.name, { mode: m.mode.toString(8), text: m.data.toString('utf8') }]));

    it('seeds NoCloud from meta_data and a verbatim user_data, and leaves the lessee files in /etc/slipway', async () => {
      const meta_data = { uuid: 'c0ffee00-0000-4000-8000-000000000001', hostname: 'web1', public_keys: { k1: KEY1, k2: KEY2 }, meta: { role: 'web' } };
      const user_data = '#!/bin/sh\necho marker-$(hostname) > /root/marker\n';
      const network_data = { links: [{ id: 'eth0', type: 'phy', ethernet_mac_address: MAC }], networks: [], services: [] };
      const vendor_data = { some: 'vendor thing' };
      const tar = buildConfigDrive({ instanceId: 'node-1', hostname: 'n01', configdrive: { meta_data, user_data, network_data, vendor_data }, mtime: 0 });
      expect(ustarMembers(tar).map((m) => [m.name, m.mode.toString(8), m.type])).toEqual([
        ['var/lib/cloud/seed/nocloud/meta-data', '644', '0'],
        ['var/lib/cloud/seed/nocloud/user-data', '600', '0'],
        ['var/lib/cloud/seed/nocloud/network-config', '644', '0'],
        ['etc/slipway/meta_data.json', '644', '0'],
        ['etc/slipway/user-data', '600', '0'],
        ['etc/slipway/vendor_data.json', '644', '0'],
      ]);
      const m = members(tar);
      // cloud-init NoCloud's keys: the instance is the node; the lessee's hostname wins; public-keys a list.
      expect(JSON.parse(m['var/lib/cloud/seed/nocloud/meta-data']!.text)).toEqual({ 'instance-id': 'node-1', 'local-hostname': 'web1', 'public-keys': [KEY1, KEY2] });
      expect(m['var/lib/cloud/seed/nocloud/user-data']!.text).toBe(user_data);
      expect(m['etc/slipway/user-data']!.text).toBe(user_data);
      expect(JSON.parse(m['var/lib/cloud/seed/nocloud/network-config']!.text)).toEqual(network_data);
      expect(JSON.parse(m['etc/slipway/meta_data.json']!.text)).toEqual(meta_data);
      expect(JSON.parse(m['etc/slipway/vendor_data.json']!.text)).toEqual(vendor_data);
      // busybox tar (the ramdisk's) extracts it with those modes.
      const rootfs = mkdtempSync(join(dir, 'ironic-rootfs-'));
      expect(await withStdin('/bin/busybox', ['tar', '-x', '-C', rootfs], tar)).toMatchObject({ code: 0, stderr: '' });
      expect(statSync(join(rootfs, 'etc/slipway/user-data')).mode & 0o777).toBe(0o600);
      expect(readFileSync(join(rootfs, 'var/lib/cloud/seed/nocloud/user-data'), 'utf8')).toBe(user_data);
    });

    it('an object user_data is cloud-config (JSON is YAML); without user_data, cloud-config with the hostname only', () => {
      const obj = { packages: ['nginx'], runcmd: [['touch', '/x']] };
      const a = members(buildConfigDrive({ instanceId: 'node-2', hostname: 'n02', configdrive: { user_data: obj } }));
      expect(a['var/lib/cloud/seed/nocloud/user-data']!.text).toBe(`#cloud-config\n${JSON.stringify(obj)}\n`);
      expect(parseYaml(a['var/lib/cloud/seed/nocloud/user-data']!.text)).toEqual(obj);
      expect(JSON.parse(a['var/lib/cloud/seed/nocloud/meta-data']!.text)).toEqual({ 'instance-id': 'node-2', 'local-hostname': 'n02', 'public-keys': [] });
      expect(Object.keys(a)).toEqual(['var/lib/cloud/seed/nocloud/meta-data', 'var/lib/cloud/seed/nocloud/user-data', 'etc/slipway/user-data']);
      const b = members(buildConfigDrive({ instanceId: 'node-3', hostname: 'n03', configdrive: { meta_data: { public_keys: [KEY1] } } }));
      expect(Object.keys(b)).toEqual(['var/lib/cloud/seed/nocloud/meta-data', 'var/lib/cloud/seed/nocloud/user-data', 'etc/slipway/meta_data.json']);
      expect(b['var/lib/cloud/seed/nocloud/user-data']!.text).toBe('#cloud-config\nhostname: "n03"\n');
      expect(JSON.parse(b['var/lib/cloud/seed/nocloud/meta-data']!.text)['public-keys']).toEqual([KEY1]);
      const c = members(buildConfigDrive({ instanceId: 'node-4', hostname: 'n04', configdrive: {} }));
      expect(Object.keys(c)).toEqual(['var/lib/cloud/seed/nocloud/meta-data', 'var/lib/cloud/seed/nocloud/user-data']);
    });

    it('with boot actions too: keeps the bootaction file; the lessee user_data replaces the generated one', () => {
      const ba = { node_name: 'n01', action_key: 'ab'.repeat(32), report_url: 'http://x/', packages: ['curl'], action_ids: ['a1'] };
      const url = 'http://10.0.2.2:9000/api/v1.0/bootactions/nodes/n01';
      const withUser = members(buildConfigDrive({ instanceId: 'i', hostname: 'n01', bootaction: ba, bootdataUrl: url, configdrive: { user_data: '#!/bin/sh\ntrue\n' } }));
      expect(Object.keys(withUser)).toEqual(['var/lib/cloud/seed/nocloud/meta-data', 'var/lib/cloud/seed/nocloud/user-data', 'etc/slipway/user-data', 'etc/slipway/bootaction']);
      expect(withUser['var/lib/cloud/seed/nocloud/user-data']!.text).toBe('#!/bin/sh\ntrue\n');
      expect(withUser['etc/slipway/bootaction']!).toEqual({ mode: '600', text: expect.stringContaining(`action_key=${'ab'.repeat(32)}\n`) });
      // Without a user_data, the generated one (its runcmd fetches the boot actions) stays.
      const without = members(buildConfigDrive({ instanceId: 'i', hostname: 'n01', bootaction: ba, bootdataUrl: url, configdrive: { meta_data: { public_keys: { k: KEY1 } } } }));
      expect(parseYaml(without['var/lib/cloud/seed/nocloud/user-data']!.text)).toEqual({ hostname: 'n01', packages: ['curl'], runcmd: [['sh', '-c', BOOTDATA_SCRIPT]] });
      expect(Object.keys(without)).toContain('etc/slipway/bootaction');
    });

    it('refuses public keys and host names that would break their lines', () => {
      expect(() => buildConfigDrive({ instanceId: 'i', hostname: 'h', configdrive: { meta_data: { public_keys: { k: `${KEY1}\nssh-rsa evil` } } } })).toThrow('config drive: meta_data.public_keys[0] contains a newline');
      expect(() => buildConfigDrive({ instanceId: 'i', hostname: 'h', configdrive: { meta_data: { public_keys: { k: 7 } } } })).toThrow('meta_data.public_keys[0] is not a non-empty string');
      expect(() => buildConfigDrive({ instanceId: 'i', hostname: 'h', configdrive: { meta_data: { public_keys: 'ssh-rsa x' } } })).toThrow('meta_data.public_keys must be an object');
      expect(() => buildConfigDrive({ instanceId: 'i', hostname: 'h', configdrive: { meta_data: { hostname: 'a\nb' } } })).toThrow('meta_data.hostname contains a newline');
    });
  });

  it("user-data's runcmd fetches and unpacks the node's bootdata with its key, then enables and starts its units", async () => {
    // The test plays the API (bootdata with the key header) and the node (sh, curl, tar; a
    // systemctl that logs), with the script's absolute paths moved under a temporary root.
    const root = mkdtempSync(join(dir, 'node-'));
    const key = 'cd'.repeat(32);
    const unitPath = join(root, 'etc/systemd/system/slipway-agent.service');
    const filePath = join(root, 'etc/slipway/agent.conf');
    const units = buildTarball([{ path: unitPath, mode: 0o644, data: Buffer.from('[Service]\nExecStart=/bin/true\n') }]);
    const files = buildTarball([{ path: filePath, mode: 0o600, data: Buffer.from('token=1\n') }]);
    const seen: string[] = [];
    const api = createServer((req, res) => {
      seen.push(`${req.url} ${req.headers['x-bootaction-key'] === key ? 'key' : 'no key'}`);
      if (req.headers['x-bootaction-key'] !== key) return res.writeHead(403).end();
      const body = req.url === '/nodes/n01/units' ? units : req.url === '/nodes/n01/files' ? files : null;
      if (!body) return res.writeHead(404).end();
      res.writeHead(200, { 'Content-Type': 'application/gzip' }).end(body);
    });
    await new Promise<void>((r) => api.listen(0, '127.0.0.1', r));
    try {
      const url = `http://127.0.0.1:${(api.address() as AddressInfo).port}/nodes/n01`;
      const tar = buildConfigDrive({ instanceId: 'i', hostname: 'n01', bootdataUrl: url, bootaction: { node_name: 'n01', action_key: key, report_url: 'http://x/', packages: [], action_ids: ['a1'] } });
      const rootfs = join(root, 'rootfs');
      mkdirSync(rootfs);
      expect((await withStdin('tar', ['-x', '-C', rootfs], tar)).code).toBe(0);
      const runcmd = (parseYaml(readFileSync(join(rootfs, 'var/lib/cloud/seed/nocloud/user-data'), 'utf8')) as { runcmd: string[][] }).runcmd;
      expect(runcmd).toHaveLength(1);
      const [shell, flag, script] = runcmd[0]!;
      expect([shell, flag]).toEqual(['sh', '-c']);
      const bin = join(root, 'bin');
      mkdirSync(bin);
      writeFileSync(join(bin, 'systemctl'), `#!/bin/sh\necho "$*" >> '${join(root, 'systemctl.log')}'\n`, { mode: 0o755 });
      const moved = script!.replace('f=/etc/slipway/bootaction', `f='${join(rootfs, 'etc/slipway/bootaction')}'`);
      expect(moved).not.toBe(script);
      const r = await withStdin(shell!, [flag!, moved], Buffer.alloc(0), { PATH: `${bin}:${process.env.PATH}`, NO_PROXY: '127.0.0.1', no_proxy: '127.0.0.1' });
      expect(r).toMatchObject({ code: 0, stderr: '' });
      expect(seen).toEqual(['/nodes/n01/files key', '/nodes/n01/units key']);
      expect(readFileSync(filePath, 'utf8')).toBe('token=1\n');
      expect(statSync(filePath).mode & 0o777).toBe(0o600);
      expect(existsSync(unitPath)).toBe(true);
      expect(readFileSync(join(root, 'systemctl.log'), 'utf8')).toBe('daemon-reload\nenable slipway-agent.service\nstart --no-block slipway-agent.service\n');
      // Neither the key nor the URL is on a command line (ps would show it): both come from the file.
      expect(script).not.toContain(key);
    } finally {
      api.closeAllConnections();
      await new Promise<void>((r) => api.close(() => r()));
    }
  });
});
