import { execFile } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readdirSync, readSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { afterAll, beforeAll } from 'vitest';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { AgentConfig } from '../../agent/config.ts';
import { driverFactory } from '../../agent/drivers/index.ts';
import type { Executors } from '../../agent/executor.ts';
import type { ImageCache } from '../../agent/images.ts';
import { type NetbootEvent, NetbootService } from '../../agent/netboot.ts';
import { type VmOptions, vmPrerequisitesMissing } from '../../agent/sim/vm.ts';

/**
 * What the VM-backed machine tests need (test/agent/vm-*.test.ts): QEMU and iPXE, and the
 * Slipway ramdisk that `npm run ramdisk` builds into `.cache/ramdisk/`.
 */
const run = promisify(execFile);
const ROOT = resolve(import.meta.dirname, '../..');
const RAMDISK_DIR = join(ROOT, '.cache/ramdisk');
export const RAMDISK = { kernel: join(RAMDISK_DIR, 'vmlinuz'), initramfs: join(RAMDISK_DIR, 'initramfs.gz') };

function missingPrerequisites(): string[] {
  const missing = vmPrerequisitesMissing();
  let modules: string[] = [];
  try {
    modules = readdirSync('/lib/modules').filter((k) => k.endsWith('-cloud-amd64'));
  } catch {
    // no /lib/modules at all
  }
  if (modules.length === 0) missing.push('the cloud kernel under /lib/modules (Debian package linux-image-cloud-amd64)');
  if (!existsSync('/bin/busybox')) missing.push('/bin/busybox (Debian package busybox-static)');
  for (const [cmd, pkg] of [
    ['/usr/bin/cpio', 'cpio'],
    ['/usr/bin/setpriv', 'util-linux'],
  ] as const) {
    if (!existsSync(cmd)) missing.push(`${cmd} (Debian package ${pkg})`);
  }
  return missing;
}

/**
 * Fails, naming what is missing and how to install it, when the machine cannot run VMs; else
 * builds the ramdisk (`npm run ramdisk`: about 2 s, nothing when the cache is current).
 */
export async function prepareMachines(): Promise<typeof RAMDISK> {
  const missing = missingPrerequisites();
  if (missing.length > 0) throw new Error(`the VM tests need: ${missing.join('; ')}. Install them with: bash scripts/system-packages.sh`);
  const t0 = performance.now();
  try {
    const { stderr } = await run('bash', [join(ROOT, 'ramdisk/build.sh')], { cwd: ROOT });
    if (!/up to date/.test(stderr)) console.log(`ramdisk built in ${Math.round(performance.now() - t0)} ms`);
  } catch (err) {
    throw new Error(`npm run ramdisk failed: ${(err as { stderr?: string }).stderr ?? String(err)}`);
  }
  if (!existsSync(RAMDISK.kernel) || !existsSync(RAMDISK.initramfs)) throw new Error(`npm run ramdisk left no ${RAMDISK.kernel} or ${RAMDISK.initramfs}`);
  return RAMDISK;
}

/**
 * The agent's boot service as a VM reaches it: an address of QEMU's user network forwarded
 * (guestfwd) to the service's loopback port.
 */
export const BOOT = { ip: '10.0.2.100', port: 8080, url: 'http://10.0.2.100:8080' } as const;

/**
 * The agent's site boot service on a free loopback port, serving the ramdisk (and, given an
 * image cache, its verified images: what image deploys need).
 */
export async function startBootService(onEvent?: (e: NetbootEvent) => void, opts: { images?: ImageCache } = {}): Promise<NetbootService> {
  const netboot = new NetbootService({
    host: '127.0.0.1',
    port: 0,
    publicUrl: BOOT.url,
    kernel: RAMDISK.kernel,
    initramfs: RAMDISK.initramfs,
    kernelArgs: 'console=ttyS0 panic=-1 quiet',
    ...(onEvent ? { onEvent } : {}),
    ...(opts.images ? { images: opts.images } : {}),
  });
  await netboot.start();
  return netboot;
}

/**
 * The VM options that send its network boot to the boot service. QEMU's user network can only
 * hand iPXE a TFTP file: a two-line iPXE script (written into `dir`) that chains the service's
 * `/boot/${mac}.ipxe` — what the site's dnsmasq (`dhcp-boot=tag:ipxe,…`) does at a real site.
 */
export function bootFromService(dir: string, netboot: NetbootService): Pick<VmOptions, 'netboot' | 'forwards'> {
  const chain = join(dir, 'chain.ipxe');
  const unused = join(dir, 'unused');
  writeFileSync(chain, `#!ipxe\nimgfree\nchain ${BOOT.url}/boot/\${mac}.ipxe\n`);
  writeFileSync(unused, 'unused\n');
  return {
    netboot: { kernel: chain, initrd: unused, cmdline: 'console=ttyS0' },
    forwards: [{ guestIp: BOOT.ip, guestPort: BOOT.port, hostPort: netboot.address.port }],
  };
}

/** The agent's job executors with loopback-fast Redfish timings and the boot service (and its image cache, if any). */
export function agentExecutors(netboot: NetbootService): Executors {
  const cfg = AgentConfig.parse({ api_url: 'http://127.0.0.1:9', token: 'unused-token', redfish: { poll_interval_ms: 100, timeout_ms: 2000, power_timeout_ms: 10_000 } });
  return { makeDriver: driverFactory({ ...cfg, token: 'unused-token' }), ssh: { connectTimeoutMs: 1000, commandTimeoutMs: 1000 }, netboot, ...(netboot.images ? { images: netboot.images } : {}) };
}

/** Bytes of a (sparse) disk file, written in place. */
export function writeAt(path: string, data: Buffer, at: number): void {
  const fd = openSync(path, 'r+');
  try {
    writeSync(fd, data, 0, data.length, at);
  } finally {
    closeSync(fd);
  }
}

/** `length` bytes of a disk file at `at` (0xff past its end, so a short read never looks erased). */
export function readAt(path: string, length: number, at: number): Buffer {
  const buf = Buffer.alloc(length, 0xff);
  const fd = openSync(path, 'r');
  try {
    readSync(fd, buf, 0, length, at);
  } finally {
    closeSync(fd);
  }
  return buf;
}

/** What one VM test file works with (vmTestBed). */
export interface VmTestBed {
  /** A temporary directory for the VMs' files. */
  readonly dir: string;
  /** The agent's boot service, on a free loopback port. */
  readonly netboot: NetbootService;
  /** Everything the boot service served, with the time (performance.now()). */
  readonly events: (NetbootEvent & { at: number })[];
}

/**
 * One VM test file's setup: before its tests, a temporary directory and the boot service
 * (recording what it served); after them, whatever `running()` names — the BMC simulator, then
 * the VM — is stopped whatever the tests did (never a qemu left behind), then the service, and
 * the directory is removed.
 */
export function vmTestBed(prefix: string, running: () => readonly ({ stop(): Promise<unknown> } | undefined)[]): VmTestBed {
  let dir = '';
  let netboot: NetbootService | undefined;
  const events: (NetbootEvent & { at: number })[] = [];
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), prefix));
    netboot = await startBootService((e) => events.push({ ...e, at: performance.now() }));
  });
  afterAll(async () => {
    for (const x of running()) await x?.stop().catch(() => undefined);
    await netboot?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });
  return {
    get dir() {
      return dir;
    },
    get netboot() {
      if (!netboot) throw new Error('the boot service is not started (vmTestBed runs in beforeAll)');
      return netboot;
    },
    events,
  };
}
