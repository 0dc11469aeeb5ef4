/**
 * A QEMU virtual machine for the simulated BMCs (DESIGN §7a: "power on starts the VM, the boot
 * override picks network or disk"): TCG only (no KVM), 256 MB by default, disks as raw sparse
 * files the tests can read back, one virtio NIC with a given MAC on QEMU's user-mode network.
 *
 * Network rule: `-netdev user,restrict=on`, so the guest reaches nothing by itself. Each host
 * service the guest needs is one `guestfwd` rule, `tcp:<guest ip>:<port>-cmd:socat - TCP:127.0.0.1:<host port>`
 * (a socat per connection: the `-tcp:` form of guestfwd serves only the first connection). No
 * tap devices, bridges or routes. A network boot is SeaBIOS → iPXE (Debian's ipxe-qemu ROM) →
 * DHCP and TFTP from QEMU's user network, which serves a per-VM directory holding a generated
 * `boot.ipxe` that chains the kernel and initramfs with a command line.
 *
 * Booting from disk: without `localBoot`, SeaBIOS boots the first disk's boot sector (`-boot
 * order=c`), as a real machine's firmware does. With `localBoot` (a kernel, an initrd and a command
 * line, e.g. the Slipway ramdisk with `slipway.step=boot`), QEMU loads that kernel and initrd
 * itself (`-kernel -initrd -append`, `console=ttyS0` added when the line names no console) with
 * the disks attached as usual: the ramdisk finds the root filesystem on the disks and
 * `switch_root`s to its /sbin/init — "booting from disk" as an initramfs does, without a
 * bootloader in the image (the deployed test images have none). Network boots ignore it.
 *
 * QEMU runs with `-no-reboot`: a guest reboot or `poweroff -f` ends the process, so "the VM
 * process runs" is exactly "the machine is powered on". A reset is a stop and a new start (with
 * the boot device the caller picks then, as a BMC's boot override applies at each boot).
 *
 * The process is its own process group and is killed with its socat children on stop(); every
 * VM still running when the Node process exits is killed too. Serial console output (and
 * QEMU's stderr) goes to `<dir>/serial.log` and is kept in memory (`console()`) for failure
 * messages.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { accessSync, closeSync, constants, createWriteStream, existsSync, ftruncateSync, fstatSync, mkdirSync, openSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { delimiter, join, resolve } from 'node:path';

export type VmBootDevice = 'network' | 'disk';

export interface VmDisk {
  /** Raw image; created sparse with `sizeBytes` when missing. Default `<dir>/disk<N>.img`. */
  path?: string;
  sizeBytes: number;
  /**
   * A failing disk: every write the guest makes returns an I/O error (QEMU's blkdebug filter,
   * errno EIO), reads work. For tests of what a ramdisk does with a broken disk.
   */
  failWrites?: boolean;
}

/** One host service for the guest: connections to guestIp:guestPort reach 127.0.0.1:hostPort. */
export interface VmGuestForward {
  guestIp: string;
  guestPort: number;
  hostPort: number;
}

/** What the generated boot.ipxe chains on a network boot. */
export interface VmNetBoot {
  kernel: string;
  initrd: string;
  /** The kernel command line (`console=ttyS0` is added when it names no console). */
  cmdline: string;
}

export interface VmOptions {
  /** Working directory: the TFTP root, serial.log and the default disk images. Created. */
  dir: string;
  name?: string;
  /** Default 256. */
  memoryMb?: number;
  /** Default 1. */
  cpus?: number;
  /** The NIC's MAC, `52:54:00:12:34:56`. */
  mac: string;
  disks?: VmDisk[];
  /** Needed for network boots (may also be given to start()). */
  netboot?: VmNetBoot;
  /**
   * Disk boots load this kernel and initrd directly (QEMU -kernel/-initrd/-append) instead of
   * the disk's boot sector: e.g. the Slipway ramdisk with `slipway.step=boot`, which hands over
   * to the disk's /sbin/init. Absent: disk boots go through the firmware as usual.
   */
  localBoot?: VmNetBoot;
  forwards?: VmGuestForward[];
  /** Default `pc` (i440fx; q35 works too). */
  machine?: 'pc' | 'q35';
  /** Default `qemu-system-x86_64` from PATH. */
  qemu?: string;
  /** Bytes of console output kept in memory; default 256 KiB. */
  consoleLimit?: number;
}

export interface VmExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** true when stop() (or reset()) ended it, false when the guest or QEMU did. */
  stopped: boolean;
}

const DEFAULT_QEMU = 'qemu-system-x86_64';
const IPXE_ROM_DIR = '/usr/lib/ipxe/qemu';
const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;
const IPV4_RE = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

const live = new Set<ChildProcess>();
let exitHookInstalled = false;
function killGroup(child: ChildProcess): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    try {
      child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
}
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // Synchronous: the last chance not to leave a qemu behind.
  process.on('exit', () => {
    for (const child of live) killGroup(child);
  });
}

function onPath(cmd: string): boolean {
  const candidates = cmd.includes('/') ? [cmd] : (process.env.PATH ?? '').split(delimiter).map((d) => join(d, cmd));
  return candidates.some((p) => {
    try {
      accessSync(p, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/**
 * What is missing to run VMs here, as sentences naming the Debian package (empty when all is
 * present). `bash scripts/system-packages.sh` installs them.
 */
export function vmPrerequisitesMissing(qemu = DEFAULT_QEMU): string[] {
  const missing: string[] = [];
  if (!onPath(qemu)) missing.push(`${qemu} (Debian package qemu-system-x86)`);
  if (!existsSync(join(IPXE_ROM_DIR, 'efi-virtio.rom'))) missing.push(`${IPXE_ROM_DIR}/efi-virtio.rom (Debian package ipxe-qemu)`);
  if (!onPath('socat')) missing.push('socat (Debian package socat)');
  return missing;
}

/** Creates `path` as a sparse file of `size` bytes when missing (an existing image is kept). */
export function createSparseDisk(path: string, size: number): void {
  if (!Number.isSafeInteger(size) || size <= 0 || size % 512 !== 0) throw new RangeError(`disk size must be a positive multiple of 512 bytes, not ${size}`);
  const fd = openSync(path, 'a');
  try {
    if (fstatSync(fd).size === 0) ftruncateSync(fd, size);
  } finally {
    closeSync(fd);
  }
}

function checkIp(ip: string): void {
  const m = IPV4_RE.exec(ip);
  if (!m || m.slice(1).some((o) => Number(o) > 255)) throw new TypeError(`guest IP ${JSON.stringify(ip)} is not an IPv4 address`);
}
function checkPort(port: number, what: string): void {
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new TypeError(`${what} ${port} is not a TCP port`);
}

/** The kernel command line with `console=ttyS0` first when it names no console; one line only. */
function withConsole(line: string): string {
  const cmdline = /(^|\s)console=/.test(line) ? line : `console=ttyS0 ${line}`.trim();
  if (/[\r\n]/.test(cmdline)) throw new TypeError('the kernel command line must be one line');
  return cmdline;
}

export class Vm {
  readonly dir: string;
  readonly name: string;
  readonly serialLogPath: string;
  /** How many times the VM process was started. */
  starts = 0;
  /** The boot device of the current (or last) run. */
  lastBoot: VmBootDevice | null = null;
  private readonly opts: VmOptions;
  private readonly diskPaths: string[];
  private child: ChildProcess | null = null;
  private stopping = false;
  private exitPromise: Promise<VmExit> | null = null;
  private consoleText = '';
  private readonly exitListeners = new Set<(exit: VmExit) => void>();

  constructor(opts: VmOptions) {
    if (!MAC_RE.test(opts.mac)) throw new TypeError(`MAC ${JSON.stringify(opts.mac)} is not of the form 52:54:00:12:34:56`);
    for (const f of opts.forwards ?? []) {
      checkIp(f.guestIp);
      checkPort(f.guestPort, 'guest port');
      checkPort(f.hostPort, 'host port');
    }
    this.opts = opts;
    this.dir = resolve(opts.dir);
    this.name = opts.name ?? 'vm';
    this.serialLogPath = join(this.dir, 'serial.log');
    this.diskPaths = (opts.disks ?? []).map((d, i) => resolve(d.path ?? join(this.dir, `disk${i}.img`)));
  }

  /** The raw disk images, in the guest's order (vda, vdb, ...). */
  get disks(): string[] {
    return [...this.diskPaths];
  }

  /** Whether the VM process runs (false as soon as stop() is called). */
  get running(): boolean {
    return this.child !== null && !this.stopping;
  }

  /** Resolves when the current run ends (at once with the last exit when not running); null before the first start. */
  get exited(): Promise<VmExit> | null {
    return this.exitPromise;
  }

  /** Called on every exit of the VM process (guest poweroff, crash, stop). */
  onExit(listener: (exit: VmExit) => void): () => void {
    this.exitListeners.add(listener);
    return () => this.exitListeners.delete(listener);
  }

  /** The serial console (and QEMU's stderr) since the VM object was made, at most the last consoleLimit bytes. */
  console(): string {
    return this.consoleText;
  }

  /** The QEMU command line a start would run (for messages and tests). */
  args(boot: VmBootDevice): string[] {
    const o = this.opts;
    const netdev = ['user', 'id=net0', 'restrict=on'];
    if (boot === 'network') netdev.push(`tftp=${this.tftpDir}`, 'bootfile=boot.ipxe');
    for (const f of o.forwards ?? []) netdev.push(`guestfwd=tcp:${f.guestIp}:${f.guestPort}-cmd:socat - TCP:127.0.0.1:${f.hostPort}`);
    const args = [
      '-name',
      this.name,
      '-machine',
      o.machine ?? 'pc',
      '-accel',
      'tcg',
      '-m',
      String(o.memoryMb ?? 256),
      '-smp',
      String(o.cpus ?? 1),
      '-nographic',
      '-display',
      'none',
      '-serial',
      'mon:stdio',
      '-no-reboot',
      '-netdev',
      netdev.join(','),
      '-device',
      `virtio-net-pci,netdev=net0,mac=${o.mac.toLowerCase()}`,
    ];
    this.diskPaths.forEach((path, i) => {
      if (path.includes(',')) throw new TypeError(`disk path ${path} contains a comma`);
      const failing = o.disks?.[i]?.failWrites === true;
      if (failing && (path + this.dir).includes(':')) throw new TypeError(`a failing disk's path ${path} and the VM directory may not contain a colon`);
      const file = failing ? `blkdebug:${this.blkdebugConfig(i)}:${path}` : path;
      args.push('-drive', `file=${file},format=raw,if=virtio,cache=unsafe`);
    });
    args.push('-boot', boot === 'network' ? 'order=n' : 'order=c');
    if (boot === 'disk' && o.localBoot) {
      const lb = o.localBoot;
      args.push('-kernel', resolve(lb.kernel), '-initrd', resolve(lb.initrd), '-append', withConsole(lb.cmdline));
    }
    return args;
  }

  /** Where the blkdebug rules of disk i are (written by start()). */
  private blkdebugConfig(i: number): string {
    return join(this.dir, `disk${i}.blkdebug`);
  }

  private get tftpDir(): string {
    return join(this.dir, 'tftp');
  }

  /** Writes the TFTP root: boot.ipxe, and the kernel and initramfs as links. */
  private prepareNetboot(netboot: VmNetBoot): void {
    const dir = this.tftpDir;
    if (dir.includes(',')) throw new TypeError(`VM directory ${this.dir} contains a comma`);
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    for (const [file, name] of [
      [netboot.kernel, 'vmlinuz'],
      [netboot.initrd, 'initrd'],
    ] as const) {
      if (!existsSync(file)) throw new Error(`netboot file ${file} does not exist (npm run ramdisk builds the ramdisk)`);
      symlinkSync(resolve(file), join(dir, name));
    }
    const cmdline = withConsole(netboot.cmdline);
    writeFileSync(join(dir, 'boot.ipxe'), `#!ipxe\nkernel vmlinuz initrd=initrd ${cmdline}\ninitrd initrd\nboot\n`);
  }

  /**
   * Starts the VM process (synchronously: `running` is true when this returns, and a bad
   * configuration throws at once); the promise settles once QEMU is spawned. Booting from the
   * network needs `netboot` (here or in the options).
   */
  start(boot: VmBootDevice, netboot?: VmNetBoot): Promise<void> {
    if (this.child) throw new Error(`VM ${this.name} is already running`);
    const qemu = this.opts.qemu ?? DEFAULT_QEMU;
    if (!onPath(qemu)) throw new Error(`VM ${this.name}: ${qemu} not found (install qemu-system-x86: bash scripts/system-packages.sh)`);
    mkdirSync(this.dir, { recursive: true });
    (this.opts.disks ?? []).forEach((d, i) => {
      createSparseDisk(this.diskPaths[i]!, d.sizeBytes);
      // Every write (the block layer's pwritev event) fails with EIO, from the first one on.
      if (d.failWrites) writeFileSync(this.blkdebugConfig(i), '[inject-error]\nevent = "pwritev"\nerrno = "5"\n');
    });
    if (boot === 'network') {
      const nb = netboot ?? this.opts.netboot;
      if (!nb) throw new Error(`VM ${this.name}: a network boot needs netboot (kernel, initrd, cmdline)`);
      this.prepareNetboot(nb);
    } else if (this.opts.localBoot) {
      for (const file of [this.opts.localBoot.kernel, this.opts.localBoot.initrd]) {
        if (!existsSync(file)) throw new Error(`VM ${this.name}: localBoot file ${file} does not exist (npm run ramdisk builds the ramdisk)`);
      }
    }
    const args = this.args(boot);
    const log = createWriteStream(this.serialLogPath, { flags: 'a' });
    const limit = this.opts.consoleLimit ?? 256 * 1024;
    const record = (chunk: Buffer | string) => {
      log.write(chunk);
      this.consoleText += chunk.toString();
      if (this.consoleText.length > limit) this.consoleText = this.consoleText.slice(-limit);
    };
    installExitHook();
    // Its own process group (stop() kills QEMU with its socat helpers), and killed by the kernel
    // when this process dies without running exit handlers (setpriv --pdeathsig, util-linux).
    const [cmd, cmdArgs] = onPath('setpriv') ? ['setpriv', ['--pdeathsig', 'KILL', '--', qemu, ...args]] : [qemu, args];
    record(`\n--- ${new Date().toISOString()} start (${boot}): ${qemu} ${args.join(' ')}\n`);
    const child = spawn(cmd, cmdArgs, { cwd: this.dir, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    this.stopping = false;
    this.starts += 1;
    this.lastBoot = boot;
    live.add(child);
    child.stdout?.on('data', record);
    child.stderr?.on('data', record);
    let spawnError: Error | null = null;
    this.exitPromise = new Promise<VmExit>((resolveExit) => {
      let done = false;
      const finish = (code: number | null, signal: NodeJS.Signals | null) => {
        if (done) return;
        done = true;
        live.delete(child);
        const exit: VmExit = { code, signal, stopped: this.stopping };
        record(`--- ${new Date().toISOString()} exit: ${spawnError ? spawnError.message : `code ${code} signal ${signal}`}${exit.stopped ? ' (stopped)' : ''}\n`);
        log.end();
        if (this.child === child) {
          this.child = null;
          this.stopping = false;
        }
        resolveExit(exit);
        for (const l of this.exitListeners) l(exit);
      };
      child.once('error', (err) => {
        spawnError = err;
        finish(null, null);
      });
      // 'close' (not 'exit'): stdout and stderr are drained by then.
      child.once('close', finish);
    });
    return new Promise<void>((resolveSpawn, rejectSpawn) => {
      child.once('spawn', () => resolveSpawn());
      child.once('error', (err) => rejectSpawn(new Error(`VM ${this.name}: cannot run ${cmd}: ${err.message}`)));
    });
  }

  /** Kills the VM process (and its socat helpers) and waits for it to end. */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child) return;
    this.stopping = true;
    killGroup(child);
    await this.exitPromise;
  }

  /** A hard reset: the process is stopped and started again, booting from `boot` (default: as the last run). */
  async reset(boot?: VmBootDevice, netboot?: VmNetBoot): Promise<void> {
    await this.stop();
    await this.start(boot ?? this.lastBoot ?? 'disk', netboot);
  }

  /** Waits for the current run to end, at most timeoutMs (then rejects, naming the console's end). */
  async waitForExit(timeoutMs: number): Promise<VmExit> {
    const p = this.exitPromise;
    if (!p) throw new Error(`VM ${this.name} was never started`);
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        p,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`VM ${this.name} still running after ${timeoutMs} ms; console:\n${this.console().slice(-4000)}`)), timeoutMs);
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }
}
