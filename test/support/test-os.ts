/**
 * The tiny "installed OS" the deploy tests write to a VM's disk (test/agent/vm-deploy-*.test.ts):
 * an ext2 filesystem holding a static busybox and an `/sbin/init` shell script that does, for
 * real, what Drydock's node contract expects of an installed OS's first boot (contract deploy.md
 * §5, upstream's bootaction pattern):
 *
 * 1. mounts proc, sys, devtmpfs; remounts / read-write (the Slipway ramdisk's `slipway.step=boot`
 *    mounts it read-only, as an initramfs does); logs `slipway-os: …` lines to /dev/console;
 * 2. sets the hostname from the NoCloud seed's `meta-data` (`local-hostname`, JSON);
 * 3. brings eth0 up with DHCP (the NIC's module was loaded by the ramdisk before switch_root);
 * 4. when `/etc/slipway/bootaction` exists (key=value lines, parsed without eval): GETs
 *    `$bootdata_url/files` and `$bootdata_url/units` with `X-Bootaction-Key` (busybox wget follows
 *    the 302 to the presigned S3 URL), unpacks both into /, then "runs the units": the
 *    `ExecStart=` lines of every `*.service` in the units tarball, in order, with `sh -c` (a real
 *    OS would `systemctl enable --now` them; the boot actions' own scripts post Drydock's
 *    reports). Once per instance-id, as cloud-init does: `/var/lib/slipway/firstboot.<id>` marks it done;
 * 5. (an Ironic config drive) adds meta-data's `public-keys` list to /root/.ssh/authorized_keys
 *    (dir 0700, file 0600), logging `slipway-os: public keys: N …`; and, once per instance-id
 *    (`/var/lib/slipway/user-data.<id>`), runs the NoCloud seed's user-data with sh when it starts
 *    with `#!`, logging `slipway-os: user-data exited N` (`#cloud-config` is logged and ignored:
 *    no cloud-init here);
 * 6. writes `/var/log/slipway-firstboot.log`, syncs, logs `slipway-os: first boot done`, and stays
 *    up idle: a deployed node does not power off.
 *
 * Layouts: `filesystem` (the image is the ext2 filesystem itself) or `disk` (a whole-disk image:
 * an MBR partition table with one Linux partition at 1 MiB holding the filesystem; written here
 * rather than with sfdisk, which is not installed everywhere: it is 16 bytes of partition entry).
 * The image carries no bootloader: VMs "boot from disk" through the ramdisk (agent/sim/vm.ts
 * `localBoot`). Reproducible: fixed mtimes, UUID, hash seed and mke2fs time.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, closeSync, copyFileSync, createReadStream, lutimesSync, mkdirSync, openSync, readdirSync, readSync, rmSync, statSync, symlinkSync, writeFileSync, writeSync, ftruncateSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const ROOT = resolve(import.meta.dirname, '../..');
const MiB = 1024 * 1024;
const BUSYBOX = '/bin/busybox';
/** Every mtime in the image (2020-01-01T00:00:00Z): the same inputs give the same image. */
const EPOCH = 1_577_836_800;
const FS_UUID = '5e1e0a55-0000-4000-8000-00000000e0f5';

export type TestOsLayout = 'filesystem' | 'disk';

export interface TestOsImage {
  path: string;
  sha256: string;
  size: number;
}

/** The test OS's /sbin/init (busybox sh). */
export const TEST_OS_INIT = `#!/bin/sh
# Slipway test OS /sbin/init: an installed OS's first boot, reduced to Drydock's node contract.
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
# The ramdisk hands over its devtmpfs (moved to /dev); mount one when it did not.
grep -q ' /dev ' /proc/mounts || mount -t devtmpfs devtmpfs /dev
# The ramdisk mounts the root read-only, as an initramfs does; the OS makes it writable.
mount -o remount,rw /
mount -t tmpfs tmpfs /tmp
mkdir -p /var/log /var/lib/slipway
LOG=/var/log/slipway-firstboot.log
log() {
  echo "slipway-os: $*" > /dev/console
  echo "$(cut -d' ' -f1 /proc/uptime) $*" >> "$LOG"
}
log "booted: root $(awk '$2 == "/" {print $1}' /proc/mounts | tail -n 1), kernel $(uname -r)"

# The hostname from the NoCloud seed the config drive put here (meta-data is JSON).
seed=/var/lib/cloud/seed/nocloud
instance=$(sed -n 's/.*"instance-id"[[:space:]]*:[[:space:]]*"\\([^"]*\\)".*/\\1/p' "$seed/meta-data" 2>/dev/null)
name=$(sed -n 's/.*"local-hostname"[[:space:]]*:[[:space:]]*"\\([^"]*\\)".*/\\1/p' "$seed/meta-data" 2>/dev/null)
if [ -n "$name" ]; then
  hostname "$name"
  echo "$name" > /etc/hostname
  log "hostname $name (instance-id \${instance:-none})"
else
  log "no local-hostname in $seed/meta-data"
fi

# The public keys (an Ironic config drive's meta-data "public-keys": a JSON list of one-line
# strings) into root's authorized_keys, added to what is there, as cloud-init's ssh module does.
keys=$(sed -n 's/.*"public-keys"[[:space:]]*:[[:space:]]*\\[\\([^]]*\\)\\].*/\\1/p' "$seed/meta-data" 2>/dev/null)
if [ -n "$keys" ]; then
  mkdir -p /root/.ssh
  chmod 700 /root/.ssh
  touch /root/.ssh/authorized_keys
  chmod 600 /root/.ssh/authorized_keys
  # "a","b" → one per line; JSON's \\" and \\\\ undone.
  printf '%s\\n' "$keys" | sed 's/^[[:space:]]*"//; s/"[[:space:]]*$//; s/"[[:space:]]*,[[:space:]]*"/\\n/g' | sed 's/\\\\"/"/g; s/\\\\\\\\/\\\\/g' > /tmp/keys
  n=0
  while IFS= read -r key; do
    [ -n "$key" ] || continue
    grep -qxF "$key" /root/.ssh/authorized_keys || echo "$key" >> /root/.ssh/authorized_keys
    n=$((n + 1))
  done < /tmp/keys
  log "public keys: $n in /root/.ssh/authorized_keys"
fi

ip link set lo up
i=0
while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
ip link set eth0 up
if udhcpc -i eth0 -s /etc/udhcpc.script -f -q -n -t 10 -T 1 >/dev/null 2>&1; then
  log "eth0 $(ip -4 -o addr show dev eth0 | awk '{print $4}')"
else
  log "error: DHCP on eth0 failed"
fi

# Drydock's boot actions, once per instance (cloud-init's runcmd runs once per instance too).
# Prints the member names of a fetched tarball, or fails.
fetch_bootdata() {
  timeout 30 wget -q -O "/tmp/$1.tgz" --header "X-Bootaction-Key: $action_key" "$bootdata_url/$1" || return 1
  tar -tzf "/tmp/$1.tgz" > "/tmp/$1.list" || return 1
  tar -xzf "/tmp/$1.tgz" -C / 2>/dev/null || return 1
}
done_mark=/var/lib/slipway/firstboot.\${instance:-none}
if [ -f /etc/slipway/bootaction ] && [ ! -e "$done_mark" ]; then
  node_name= action_key= bootdata_url= report_url= action_ids=
  # key=value lines: parsed, never sourced.
  while IFS= read -r line; do
    value=\${line#*=}
    case "\${line%%=*}" in
      node_name) node_name=$value ;;
      action_key) action_key=$value ;;
      bootdata_url) bootdata_url=$value ;;
      report_url) report_url=$value ;;
      action_ids) action_ids=$value ;;
    esac
  done < /etc/slipway/bootaction
  log "bootaction for $node_name: actions $action_ids, bootdata $bootdata_url"
  for kind in files units; do
    if fetch_bootdata "$kind"; then
      log "unpacked $kind: $(sed 's,^/*,/,' "/tmp/$kind.list" | tr '\\n' ' ')"
    else
      log "error: cannot fetch or unpack $bootdata_url/$kind"
    fi
  done
  # "Run its units": a real OS enables and starts them; here their ExecStart= lines run in order
  # (systemd's prefixes - @ + ! : are dropped).
  for unit in $(grep '\\.service$' /tmp/units.list 2>/dev/null); do
    unit=/\${unit#/}
    grep '^ExecStart=' "$unit" | sed 's/^ExecStart=[-@+!:]*//' > /tmp/exec.list
    while IFS= read -r cmd; do
      sh -c "$cmd" > /dev/console 2>&1 < /dev/null
      log "unit \${unit##*/}: ExecStart $cmd exited $?"
    done < /tmp/exec.list
  done
  touch "$done_mark"
elif [ -e "$done_mark" ]; then
  log "bootaction already ran for instance \${instance:-none}"
else
  log "no /etc/slipway/bootaction: no boot actions"
fi

# user-data, once per instance-id as cloud-init runs user scripts: a script (#!) runs with sh;
# #cloud-config is cloud-init's, which this OS does not have.
ud=$seed/user-data
ud_mark=/var/lib/slipway/user-data.\${instance:-none}
if [ -s "$ud" ] && [ ! -e "$ud_mark" ]; then
  case "$(head -c 2 "$ud")" in
    '#!')
      cp "$ud" /tmp/user-data
      sh /tmp/user-data > /dev/console 2>&1 < /dev/null
      log "user-data exited $?"
      ;;
    *)
      if head -n 1 "$ud" | grep -q '^#cloud-config'; then
        log "user-data is #cloud-config: ignored (no cloud-init here)"
      else
        log "user-data is neither a #! script nor #cloud-config: ignored"
      fi
      ;;
  esac
  touch "$ud_mark"
elif [ -e "$ud_mark" ]; then
  log "user-data already ran for instance \${instance:-none}"
fi
# On disk first, then on the console: whoever watches the console may power the node off then.
echo "$(cut -d' ' -f1 /proc/uptime) first boot done" >> "$LOG"
sync
echo "slipway-os: first boot done" > /dev/console
# A deployed node stays up. PID 1 never exits (the kernel would panic).
while :; do sleep 3600; done
`;

/** The image's root directory: busybox with its applet links, /sbin/init, the DHCP hook. */
async function buildRootDir(root: string): Promise<void> {
  rmSync(root, { recursive: true, force: true });
  for (const d of ['bin', 'sbin', 'usr/bin', 'usr/sbin', 'etc', 'proc', 'sys', 'dev', 'tmp', 'mnt', 'root', 'var/log', 'var/lib']) mkdirSync(join(root, d), { recursive: true });
  copyFileSync(BUSYBOX, join(root, 'bin/busybox'));
  chmodSync(join(root, 'bin/busybox'), 0o755);
  const { stdout } = await run(BUSYBOX, ['--list-full']);
  for (const applet of stdout.split('\n').filter((l) => l !== '' && l !== 'sbin/init' && l !== 'bin/busybox')) {
    mkdirSync(dirname(join(root, applet)), { recursive: true });
    symlinkSync('/bin/busybox', join(root, applet));
  }
  writeFileSync(join(root, 'sbin/init'), TEST_OS_INIT, { mode: 0o755 });
  copyFileSync(join(ROOT, 'ramdisk/udhcpc.script'), join(root, 'etc/udhcpc.script'));
  chmodSync(join(root, 'etc/udhcpc.script'), 0o755);
  writeFileSync(join(root, 'etc/hostname'), 'slipway-test-os\n');
  chmodSync(join(root, 'tmp'), 0o1777);
  const touch = (p: string) => {
    for (const e of readdirSync(p, { withFileTypes: true })) {
      const child = join(p, e.name);
      if (e.isDirectory()) touch(child);
      lutimesSync(child, EPOCH, EPOCH);
    }
  };
  touch(root);
  lutimesSync(root, EPOCH, EPOCH);
}

async function sha256Of(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** An ext2 filesystem of `bytes` made from `rootDir` into `path` (reproducible). */
async function mkfs(path: string, rootDir: string, bytes: number): Promise<void> {
  rmSync(path, { force: true });
  const env = { ...process.env, E2FSPROGS_FAKE_TIME: String(EPOCH), SOURCE_DATE_EPOCH: String(EPOCH) };
  try {
    await run('mke2fs', ['-q', '-F', '-t', 'ext2', '-b', '1024', '-m', '0', '-L', 'slipway-os', '-U', FS_UUID, '-E', `hash_seed=${FS_UUID},root_owner=0:0`, '-d', rootDir, path, `${bytes / 1024}k`], { env });
    // mke2fs -d copies each file's ctime, which only the kernel sets (to now): fix them too.
    const paths: string[] = ['/'];
    const walk = (rel: string) => {
      for (const e of readdirSync(join(rootDir, rel), { withFileTypes: true })) {
        paths.push(`${rel}/${e.name}`);
        if (e.isDirectory()) walk(`${rel}/${e.name}`);
      }
    };
    walk('');
    const script = join(dirname(path), `${basename(path)}.debugfs`);
    writeFileSync(script, paths.map((p) => `sif "${p}" ctime @${EPOCH}\n`).join(''));
    await run('debugfs', ['-w', '-f', script, path], { env });
    rmSync(script, { force: true });
  } catch (err) {
    throw new Error(`mke2fs of the test OS failed (e2fsprogs installed?): ${(err as { stderr?: string }).stderr ?? String(err)}`);
  }
}

/** A DOS/MBR partition table: one Linux (0x83) partition from LBA `start` for `sectors` sectors. */
export function mbr(start: number, sectors: number): Buffer {
  const b = Buffer.alloc(512);
  b.writeUInt32LE(0x5117_3a11, 440); // disk signature (fixed: reproducible)
  const e = 446;
  b[e] = 0x00; // not active: nothing boots through the BIOS
  b.set([0xfe, 0xff, 0xff], e + 1); // CHS start: "use LBA"
  b[e + 4] = 0x83; // Linux
  b.set([0xfe, 0xff, 0xff], e + 5); // CHS end: "use LBA"
  b.writeUInt32LE(start, e + 8);
  b.writeUInt32LE(sectors, e + 12);
  b[510] = 0x55;
  b[511] = 0xaa;
  return b;
}

/**
 * Builds the test OS image in `dir` (`test-os-<layout>.img`): `sizeMb` MiB in all (default 16),
 * the filesystem filling it (`filesystem`) or its partition from 1 MiB on (`disk`).
 */
export async function buildTestOsImage(dir: string, opts: { layout: TestOsLayout; sizeMb?: number }): Promise<TestOsImage> {
  const sizeMb = opts.sizeMb ?? 16;
  if (!Number.isInteger(sizeMb) || sizeMb < 4) throw new RangeError(`test OS image size must be a whole number of MiB ≥ 4, not ${sizeMb}`);
  mkdirSync(dir, { recursive: true });
  const rootDir = join(dir, `test-os-root-${opts.layout}`);
  await buildRootDir(rootDir);
  const path = join(dir, `test-os-${opts.layout}-${sizeMb}m.img`);
  const size = sizeMb * MiB;
  if (opts.layout === 'filesystem') {
    await mkfs(path, rootDir, size);
  } else {
    const fsPath = `${path}.fs`;
    await mkfs(fsPath, rootDir, size - MiB);
    const fd = openSync(path, 'w');
    const src = openSync(fsPath, 'r');
    try {
      ftruncateSync(fd, size);
      writeSync(fd, mbr(2048, (size - MiB) / 512), 0, 512, 0);
      const buf = Buffer.alloc(MiB);
      for (let off = 0; ; off += MiB) {
        const n = readSync(src, buf, 0, MiB, off);
        if (n === 0) break;
        // Zero MiBs stay holes: a sparse image, the same bytes.
        if (buf.subarray(0, n).some((x) => x !== 0)) writeSync(fd, buf, 0, n, MiB + off);
      }
    } finally {
      closeSync(src);
      closeSync(fd);
      rmSync(fsPath, { force: true });
    }
  }
  rmSync(rootDir, { recursive: true, force: true });
  const actual = statSync(path).size;
  if (actual !== size) throw new Error(`test OS image ${path} is ${actual} bytes, expected ${size}`);
  return { path, sha256: await sha256Of(path), size };
}
