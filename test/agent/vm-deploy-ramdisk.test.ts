/**
 * The Slipway ramdisk's `deploy` and `boot` steps (contract deploy.md §2–§5) on real (virtual)
 * machines, without the cloud or the agent: a small node:http server here plays the boot
 * service (deploy instructions, the image, the config drive tarball, the callback) and Drydock's
 * bootdata/report endpoints (302 to a fake presigned S3 URL, as the API does). QEMU VMs
 * network-boot the ramdisk directly (agent/sim/vm.ts's generated boot.ipxe) with
 * `slipway.step=deploy`, write the test OS (test/support/test-os.ts) to their disk and power
 * off; then a disk boot through `localBoot` (`slipway.step=boot`) runs the test OS from that
 * disk, which fetches and runs its boot action — the action's script POSTs Drydock's report.
 * The disk files are read back on the host with e2fsprogs' debugfs. An Ironic-style config drive
 * (agent/configdrive.ts from a job's `configdrive`) gets its hostname, public keys and `#!`
 * user-data applied by the test OS's first boot, once per instance-id.
 *
 * Needs qemu-system-x86, ipxe-qemu, socat, linux-image-cloud-amd64, busybox-static, cpio and
 * e2fsprogs (`bash scripts/system-packages.sh`); without them it fails, naming what is missing.
 */
import { execFile } from 'node:child_process';
import { createReadStream, mkdtempSync, rmSync, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildConfigDrive } from '../../agent/configdrive.ts';
import { Vm } from '../../agent/sim/vm.ts';
import { buildNodeTarballs, buildTarball } from '../../layers/core/drydock/bootactions/tarball.ts';
import { prepareMachines, RAMDISK } from '../support/machines.ts';
import { buildTestOsImage, TEST_OS_INIT, type TestOsImage } from '../support/test-os.ts';

const run = promisify(execFile);
const MiB = 1024 ** 2;
const DISK_SIZE = 64 * MiB;
/** The boot service as the guests reach it (guestfwd to the server's loopback port). */
const GUEST_IP = '10.0.2.100';
const GUEST_PORT = 8080;
const U = `http://${GUEST_IP}:${GUEST_PORT}`;
const ACTION_KEY = '5e0fbeefcafe0123456789abcdef0123456789abcdef0123456789abcdef0123';
const ACTION_ID = '01HZZDEPLOYHELLO000000000';
const NODE = 'n01';

interface Request {
  method: string;
  url: string;
  status: number;
  key?: string;
}
interface Post {
  url: string;
  key?: string;
  body: string;
}

/**
 * The boot service and Drydock's bootdata endpoints, per the contract: `/deploy/<token>`
 * (text/plain key=value), `/images/<sha256>`, `/configdrive/<token>.tar`, `POST /callback/<token>`,
 * `GET /bootdata/<node>/{files,units}` (key checked, 302 to `/s3/…`), `POST /report/<action_id>`.
 */
class FakeSite {
  server!: Server;
  port = 0;
  readonly deployments = new Map<string, string>();
  readonly configdrives = new Map<string, Buffer>();
  readonly images = new Map<string, string>();
  readonly bootdata = new Map<string, Buffer>();
  readonly requests: Request[] = [];
  readonly callbacks: Post[] = [];
  readonly reports: Post[] = [];

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => this.handle(req, res, Buffer.concat(chunks).toString('utf8')));
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as AddressInfo).port;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  private handle(req: IncomingMessage, res: ServerResponse, body: string): void {
    const url = req.url ?? '';
    const key = req.headers['x-bootaction-key'] as string | undefined;
    const reply = (status: number, data: Buffer | string = '', headers: Record<string, string> = {}) => {
      this.requests.push({ method: req.method ?? '', url, status, ...(key ? { key } : {}) });
      res.writeHead(status, { 'Content-Type': 'text/plain', Connection: 'close', ...headers });
      res.end(data);
    };
    let m: RegExpExecArray | null;
    if (req.method === 'POST' && (m = /^\/callback\/([\w-]+)$/.exec(url))) {
      this.callbacks.push({ url, body });
      return reply(204);
    }
    if (req.method === 'POST' && (m = /^\/report\/(\w+)$/.exec(url))) {
      if (key !== ACTION_KEY) return reply(403, 'bad key\n');
      this.reports.push({ url, body, ...(key ? { key } : {}) });
      return reply(201, '{}');
    }
    if (req.method !== 'GET') return reply(405);
    if ((m = /^\/deploy\/([\w-]+)$/.exec(url))) {
      const text = this.deployments.get(m[1]!);
      return text === undefined ? reply(404, 'no such deployment\n') : reply(200, text);
    }
    if ((m = /^\/configdrive\/([\w-]+)\.tar$/.exec(url))) {
      const tar = this.configdrives.get(m[1]!);
      return tar ? reply(200, tar, { 'Content-Type': 'application/x-tar', 'Content-Length': String(tar.length) }) : reply(404);
    }
    if ((m = /^\/images\/([0-9a-f]{64})$/.exec(url))) {
      const path = this.images.get(m[1]!);
      if (!path) return reply(404);
      this.requests.push({ method: 'GET', url, status: 200 });
      res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': String(statSync(path).size), Connection: 'close' });
      createReadStream(path).pipe(res);
      return;
    }
    // Drydock's bootdata: the node's key, then a redirect to the (fake) presigned S3 object.
    if ((m = /^\/bootdata\/(\w+)\/(files|units)$/.exec(url))) {
      if (key !== ACTION_KEY) return reply(403, 'bad or missing X-Bootaction-Key\n');
      return reply(302, '', { Location: `${U}/s3/bootdata/${m[1]}-${m[2]}.tar.gz?X-Amz-Signature=f00d` });
    }
    if ((m = /^\/s3\/bootdata\/(\w+-(?:files|units))\.tar\.gz\?X-Amz-Signature=f00d$/.exec(url))) {
      const tgz = this.bootdata.get(m[1]!);
      return tgz ? reply(200, tgz, { 'Content-Type': 'application/gzip', 'Content-Length': String(tgz.length) }) : reply(404);
    }
    return reply(404, 'not found\n');
  }
}

/** The config drive (contract §5), uncompressed ustar with relative names. */
function configDrive(nodeId: string, hostname: string, withBootaction: boolean): Buffer {
  const text = (s: string) => Buffer.from(s);
  const files = [
    { path: 'var/lib/cloud/seed/nocloud/meta-data', mode: 0o644, data: text(`${JSON.stringify({ 'instance-id': nodeId, 'local-hostname': hostname })}\n`) },
    { path: 'var/lib/cloud/seed/nocloud/user-data', mode: 0o600, data: text(`#cloud-config\nhostname: ${hostname}\n`) },
  ];
  if (withBootaction) {
    files.push({
      path: 'etc/slipway/bootaction',
      mode: 0o600,
      data: text(`node_name=${NODE}\naction_key=${ACTION_KEY}\nbootdata_url=${U}/bootdata/${NODE}\nreport_url=${U}/report/\naction_ids=${ACTION_ID}\npackages=\n`),
    });
  }
  // buildTarball gzips; the contract's config drive is a plain tar.
  return gunzipSync(buildTarball(files, { mtime: 1_577_836_800 }));
}

/** The boot action the node runs: a script (rendered with the report URL and key, as Drydock does) and its unit. */
const HELLO_SH = `#!/bin/sh
# Boot action "hello": leaves a marker and reports success to Drydock.
echo "hello from $(hostname)" > /var/lib/hello.marker
sync
exec timeout 30 wget -q -O /dev/null --header 'X-Bootaction-Key: ${ACTION_KEY}' --header 'Content-Type: application/json' \\
  --post-data '{"status":"success","details":[{"message":"hello from the VM","error":false}]}' '${U}/report/${ACTION_ID}'
`;
const HELLO_SERVICE = `[Unit]\nDescription=Slipway hello boot action\n\n[Service]\nType=oneshot\nExecStart=/usr/local/bin/hello.sh\n\n[Install]\nWantedBy=multi-user.target\n`;

async function debugfs(disk: string, request: string): Promise<string> {
  const { stdout } = await run('debugfs', ['-R', request, disk]);
  return stdout;
}

/** Polls `check` every 100 ms until it is true, at most `ms`; then fails with `what()`. */
async function waitUntil(check: () => boolean, ms: number, what: () => string): Promise<void> {
  const end = performance.now() + ms;
  while (!check()) {
    if (performance.now() > end) throw new Error(what());
    await new Promise((r) => setTimeout(r, 100));
  }
}

beforeAll(async () => {
  await prepareMachines();
});

describe('the ramdisk deploy and boot steps on VMs', () => {
  let dir: string;
  const site = new FakeSite();
  const vms: Vm[] = [];
  const macs = new Map<Vm, string>();
  let fsImage: TestOsImage;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'slipway-vm-deploy-'));
    await site.start();
    const t0 = performance.now();
    fsImage = await buildTestOsImage(join(dir, 'images'), { layout: 'filesystem' });
    console.log(`test OS images built in ${Math.round(performance.now() - t0)} ms`);
    site.images.set(fsImage.sha256, fsImage.path);
    const { files, units } = buildNodeTarballs([
      { type: 'file', path: '/usr/local/bin/hello.sh', mode: 0o755, data: Buffer.from(HELLO_SH) },
      { type: 'unit', path: '/etc/systemd/system/hello.service', mode: 0o644, data: Buffer.from(HELLO_SERVICE) },
    ]);
    site.bootdata.set(`${NODE}-files`, files);
    site.bootdata.set(`${NODE}-units`, units);
  });

  afterAll(async () => {
    await Promise.allSettled(vms.map((v) => v.stop()));
    await site.stop().catch(() => undefined);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  function machine(name: string, mac: string): Vm {
    const vm = new Vm({
      dir: join(dir, name),
      name,
      memoryMb: 256,
      cpus: 1,
      mac,
      disks: [{ sizeBytes: DISK_SIZE }],
      forwards: [{ guestIp: GUEST_IP, guestPort: GUEST_PORT, hostPort: site.port }],
      // Disk boots: the ramdisk hands over to the disk's /sbin/init (no bootloader in the image).
      localBoot: { kernel: RAMDISK.kernel, initrd: RAMDISK.initramfs, cmdline: 'console=ttyS0 panic=-1 slipway.step=boot' },
    });
    vms.push(vm);
    macs.set(vm, mac);
    return vm;
  }

  /**
   * Network-boots the ramdisk with `slipway.step=deploy` for `token` and waits until it powers
   * off by itself; returns its report and the wall time.
   */
  async function deploy(vm: Vm, token: string, instructions: Record<string, string>, drive: Buffer): Promise<{ report: Record<string, unknown>; seconds: number }> {
    site.deployments.set(token, `${Object.entries(instructions).map(([k, v]) => `${k}=${v}`).join('\n')}\n`);
    site.configdrives.set(token, drive);
    const mac = macs.get(vm)!;
    const t0 = performance.now();
    await vm.start('network', {
      kernel: RAMDISK.kernel,
      initrd: RAMDISK.initramfs,
      cmdline: `console=ttyS0 panic=-1 slipway.callback=${U}/callback/${token} slipway.step=deploy slipway.deploy=${U}/deploy/${token} BOOTIF=${mac}`,
    });
    const exit = await vm.waitForExit(180_000);
    const seconds = (performance.now() - t0) / 1000;
    expect(exit, `the VM should power itself off; console:\n${vm.console().slice(-3000)}`).toMatchObject({ stopped: false, code: 0 });
    const posts = site.callbacks.filter((c) => c.url === `/callback/${token}`);
    expect(posts.length, `one callback for ${token}; console:\n${vm.console().slice(-3000)}`).toBe(1);
    const lines = vm
      .console()
      .split('\n')
      .filter((l) => /slipway-ramdisk: (deploy|error)/.test(l))
      .map((l) => l.trim());
    console.log(`${vm.name} deploy ${token}: power on → off ${seconds.toFixed(1)} s\n  ${lines.slice(-4).join('\n  ')}`);
    return { report: JSON.parse(posts[0]!.body) as Record<string, unknown>, seconds };
  }

  const instructionsFor = (img: TestOsImage, token: string, extra: Record<string, string> = {}) => ({
    image_url: `${U}/images/${img.sha256}`,
    image_sha256: img.sha256,
    image_size: String(img.size),
    configdrive_url: `${U}/configdrive/${token}.tar`,
    root_device: '',
    ...extra,
  });

  it('deploys a filesystem image to /dev/vda, verifies it, adds the config drive and powers off; then boots it and runs the boot action', { timeout: 240_000 }, async () => {
    const vm = machine('fs', '52:54:00:5a:13:01');
    const disk = vm.disks[0]!;
    const { report } = await deploy(vm, 'T1', instructionsFor(fsImage, 'T1'), configDrive('node-n01', NODE, true));
    expect(report).toEqual({
      step: 'deploy',
      root_device: '/dev/vda',
      root_filesystem: '/dev/vda',
      image_sha256: fsImage.sha256,
      written_bytes: fsImage.size,
      write_seconds: expect.any(Number),
      configdrive: 'nocloud',
      bootif: '52:54:00:5a:13:01',
    });
    const ws = report.write_seconds as number;
    console.log(`write: ${fsImage.size / MiB} MiB in ${ws} s = ${(fsImage.size / 1e6 / ws).toFixed(1)} MB/s (download + write + fsync, TCG)`);
    expect(site.requests.filter((r) => r.url === `/images/${fsImage.sha256}`)).toHaveLength(1);

    // The disk holds the test OS (its /sbin/init byte for byte), a consistent filesystem, and
    // the config drive with the contract's modes.
    expect(await debugfs(disk, 'cat /sbin/init')).toBe(TEST_OS_INIT);
    expect(JSON.parse(await debugfs(disk, 'cat /var/lib/cloud/seed/nocloud/meta-data'))).toEqual({ 'instance-id': 'node-n01', 'local-hostname': NODE });
    expect(await debugfs(disk, 'stat /etc/slipway/bootaction')).toMatch(/Mode: +0600/);
    expect(await debugfs(disk, 'stat /var/lib/cloud/seed/nocloud/user-data')).toMatch(/Mode: +0600/);
    expect(await debugfs(disk, 'cat /etc/slipway/bootaction')).toContain(`action_key=${ACTION_KEY}\n`);
    await run('e2fsck', ['-fn', disk]);

    // Power on from disk: the ramdisk's boot step hands over to the test OS, whose first boot
    // fetches the bootdata (key checked, 302 followed), unpacks it and runs hello.service.
    const t0 = performance.now();
    await vm.start('disk');
    await waitUntil(
      () => site.reports.length > 0 && vm.console().includes('slipway-os: first boot done'),
      180_000,
      () => `no boot action report / first boot not done; console:\n${vm.console().slice(-4000)}`,
    );
    console.log(`disk boot → boot action report and first boot done: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    expect(vm.running, 'a deployed node stays on').toBe(true);
    expect(site.reports).toEqual([{ url: `/report/${ACTION_ID}`, key: ACTION_KEY, body: '{"status":"success","details":[{"message":"hello from the VM","error":false}]}' }]);
    const bootdata = site.requests.filter((r) => /^\/(bootdata|s3)\//.test(r.url)).map((r) => `${r.status} ${r.url}`);
    expect(bootdata).toEqual([
      `302 /bootdata/${NODE}/files`,
      `200 /s3/bootdata/${NODE}-files.tar.gz?X-Amz-Signature=f00d`,
      `302 /bootdata/${NODE}/units`,
      `200 /s3/bootdata/${NODE}-units.tar.gz?X-Amz-Signature=f00d`,
    ]);
    const osLines = vm
      .console()
      .split('\n')
      .filter((l) => l.includes('slipway-os:') || l.includes('slipway-ramdisk: booting'))
      .map((l) => l.trim());
    console.log(osLines.join('\n'));
    expect(osLines.join('\n')).toContain('slipway-ramdisk: booting /dev/vda: switch_root');
    expect(osLines.join('\n')).toContain(`slipway-os: hostname ${NODE} (instance-id node-n01)`);
    expect(osLines.join('\n')).toContain('slipway-os: unit hello.service: ExecStart /usr/local/bin/hello.sh exited 0');
    await vm.stop();

    expect(await debugfs(disk, 'stat /usr/local/bin/hello.sh')).toMatch(/Mode: +0755/);
    expect(await debugfs(disk, 'cat /usr/local/bin/hello.sh')).toBe(HELLO_SH);
    expect(await debugfs(disk, 'cat /var/lib/hello.marker')).toBe(`hello from ${NODE}\n`);
    expect(await debugfs(disk, 'cat /etc/systemd/system/hello.service')).toBe(HELLO_SERVICE);
    const firstboot = await debugfs(disk, 'cat /var/log/slipway-firstboot.log');
    expect(firstboot).toContain('unpacked files: /usr/local/bin/hello.sh');
    expect(firstboot).toContain('first boot done');
  });

  // A whole-disk image (MBR, ext2 at 1 MiB: the config drive goes into /dev/vda1, which then
  // boots) is deployed end to end by test/agent/vm-drydock.test.ts (node n02).

  it('deploys with an Ironic config drive: the OS applies its hostname, public keys and #! user-data, once per instance', { timeout: 360_000 }, async () => {
    const vm = machine('ironic', '52:54:00:5a:13:06');
    const disk = vm.disks[0]!;
    const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGSlipwayVmIronicTestKey00000000000000000000 lessee@laptop';
    const user_data = '#!/bin/sh\necho marker-$(hostname) > /root/marker\n';
    // What the agent builds for an Ironic deploy (the job's configdrive as the lessee gave it).
    const drive = buildConfigDrive({
      instanceId: 'node-ironic',
      hostname: 'web1',
      configdrive: { meta_data: { uuid: 'c0ffee00-0000-4000-8000-0000000000a1', public_keys: { k1: KEY } }, user_data },
      mtime: 1_577_836_800,
    });
    const { report } = await deploy(vm, 'T6', instructionsFor(fsImage, 'T6'), drive);
    expect(report).toMatchObject({ step: 'deploy', root_device: '/dev/vda', image_sha256: fsImage.sha256, written_bytes: fsImage.size, configdrive: 'nocloud' });
    expect(await debugfs(disk, 'cat /var/lib/cloud/seed/nocloud/user-data')).toBe(user_data);
    expect(await debugfs(disk, 'stat /etc/slipway/user-data')).toMatch(/Mode: +0600/);

    await vm.start('disk');
    await waitUntil(() => vm.console().includes('slipway-os: first boot done'), 180_000, () => `first boot not done; console:\n${vm.console().slice(-4000)}`);
    const first = vm.console();
    expect(first).toContain('slipway-os: hostname web1 (instance-id node-ironic)');
    expect(first).toContain('slipway-os: public keys: 1 in /root/.ssh/authorized_keys');
    expect(first).toContain('slipway-os: user-data exited 0');
    expect(first).toContain('slipway-os: no /etc/slipway/bootaction: no boot actions');
    await vm.stop();
    expect(await debugfs(disk, 'cat /root/marker')).toBe('marker-web1\n');
    expect(await debugfs(disk, 'cat /root/.ssh/authorized_keys')).toBe(`${KEY}\n`);
    expect(await debugfs(disk, 'stat /root/.ssh/authorized_keys')).toMatch(/Mode: +0600/);
    expect(await debugfs(disk, 'stat /root/.ssh')).toMatch(/Mode: +0700/);

    // Once per instance-id: the next boot does not run the user-data again (nor add the key twice).
    await run('debugfs', ['-w', '-R', 'rm /root/marker', disk]);
    const mark = vm.console().length;
    await vm.start('disk');
    await waitUntil(() => vm.console().slice(mark).includes('slipway-os: first boot done'), 180_000, () => `second boot not done; console:\n${vm.console().slice(-4000)}`);
    const second = vm.console().slice(mark);
    expect(second).toContain('slipway-os: user-data already ran for instance node-ironic');
    expect(second).not.toContain('user-data exited');
    await vm.stop();
    expect((await run('debugfs', ['-R', 'stat /root/marker', disk])).stderr).toMatch(/File not found/);
    expect(await debugfs(disk, 'cat /root/.ssh/authorized_keys')).toBe(`${KEY}\n`);
  });

  it('reports an error when the image read back does not match image_sha256', { timeout: 240_000 }, async () => {
    const vm = machine('badsha', '52:54:00:5a:13:03');
    const wrong = fsImage.sha256.replace(/^./, (c) => (c === '0' ? '1' : '0'));
    const { report } = await deploy(vm, 'T3', instructionsFor(fsImage, 'T3', { image_sha256: wrong }), configDrive('node-n03', 'n03', false));
    expect(report).toEqual({ step: 'deploy', error: `image written to /dev/vda does not match its sha256 (expected ${wrong}, read ${fsImage.sha256})` });
  });

  it('a disk boot of a blank disk finds no root filesystem and powers off', { timeout: 240_000 }, async () => {
    const vm = machine('blank', '52:54:00:5a:13:05');
    // localBoot applies to disk boots only; console=ttyS0 is already on its command line.
    const diskArgs = vm.args('disk');
    expect(diskArgs.slice(diskArgs.indexOf('-kernel'))).toEqual(['-kernel', RAMDISK.kernel, '-initrd', RAMDISK.initramfs, '-append', 'console=ttyS0 panic=-1 slipway.step=boot']);
    expect(vm.args('network')).not.toContain('-kernel');
    await vm.start('disk');
    const exit = await vm.waitForExit(120_000);
    expect(exit).toMatchObject({ stopped: false, code: 0 });
    expect(vm.console()).toContain('slipway-ramdisk: no bootable root filesystem (tried: /dev/vda)');
  });

  it('refuses an image bigger than the disk before downloading it', { timeout: 240_000 }, async () => {
    const big = await buildTestOsImage(join(dir, 'images'), { layout: 'filesystem', sizeMb: 80 });
    site.images.set(big.sha256, big.path);
    const vm = machine('big', '52:54:00:5a:13:04');
    const { report } = await deploy(vm, 'T4', instructionsFor(big, 'T4'), configDrive('node-n04', 'n04', false));
    expect(report).toEqual({ step: 'deploy', error: `the image (${big.size} bytes) does not fit /dev/vda (${DISK_SIZE} bytes)` });
    expect(site.requests.filter((r) => r.url === `/images/${big.sha256}`)).toEqual([]);
  });
});
