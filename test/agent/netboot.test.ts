/**
 * The agent's site boot service (agent/netboot.ts) without a VM: the iPXE script per MAC and
 * step, local boot for unknown MACs, discovery (one at a time), the kernel and initramfs served,
 * the callback (validated, bounded, single-use token), the `inspect` and `clean` jobs through
 * parseJob/execute against the Redfish simulator with the test playing the node, and the dnsmasq proxy-DHCP
 * configuration checked by `dnsmasq --test` (dnsmasq is never started).
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { AgentConfig, RAMDISK_DIR } from '../../agent/config.ts';
import { dnsmasqConfig, dnsmasqConfigCommand } from '../../agent/dnsmasq.ts';
import { driverFactory } from '../../agent/drivers/index.ts';
import { describeFailure, type Executors, execute, JobInputError, parseJob } from '../../agent/executor.ts';
import { bootifMac, cleaningOutput, InspectReport, inspectionOutput, InspectionTimeout, MAX_REPORT_BYTES, NetbootService, normalizeMac, RamdiskStepError } from '../../agent/netboot.ts';
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
      await expect(svc.register([MAC2], 'deploy' as 'clean')).rejects.toThrow('unknown ramdisk step "deploy"');
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

  it('discovery: the first unknown MAC that boots is cleaned', async () => {
    const s = (sim = await startRedfishSim({ username: USER, password: PASS, systems: [{ id: '1', powerState: 'Off' }] }));
    const job = execute(parseJob('clean', { ...bmc(s), node_id: 'node-1', macs: [], timeout_seconds: 20 }), executors());
    const text = await cleanScript(OTHER);
    await poweredOn(s, 'On');
    expect((await post(callbackPath(text), cleanReport({ disks: [], bootif: null }))).status).toBe(204);
    expect(await job).toEqual({ disks: [], boot_mac: OTHER });
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
    expect(describeFailure(err)).toBe('agent error: this agent has no netboot section in its config: it cannot clean nodes (see README, "Machines")');
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
