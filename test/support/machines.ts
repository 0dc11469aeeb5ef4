import { execFile } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { vmPrerequisitesMissing } from '../../agent/sim/vm.ts';

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
