import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { call } from '../support/api.ts';
import { prepareMachines } from '../support/machines.ts';
import { buildTestOsImage } from '../support/test-os.ts';
import { startVmSite, type VmNodeSpec } from '../support/vm-site.ts';

/**
 * `npm run bench -- machines` (issue "Real machines"): Drydock deploy and destroy on sites of
 * 1, 3 and 6 QEMU VMs at once (BENCH_MACHINES, default `1,3,6`), 256 MB and one disk of
 * BENCH_DISK_MB (default 128) each, the test OS image of BENCH_IMAGE_MB (default 64) MiB. Per node:
 *
 * - power-on → ramdisk up: the VM process starts (the BMC's power on) → the ramdisk asks the
 *   boot service for its deploy instructions (firmware, iPXE, kernel and initramfs, DHCP);
 * - image written: MB/s of the ramdisk's download + write + fsync (its own timing);
 * - deploy request → success: the task is created → the node's subtask is complete (image
 *   written and verified, the disk booted, the installed OS's boot action reported);
 * - clean time per GB: the ramdisk's erase of the disk (zero, fsync, sample read back), from its
 *   console, per GiB; and destroy request → node released.
 *
 * TCG on this machine (no KVM): the guests' CPU is emulated, so these are figures of the control
 * path and of emulated I/O, not of real hardware.
 */
const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor((s.length - 1) / 2)]! : NaN;
};
const range = (xs: number[], digits = 1) => (xs.length ? `${median(xs).toFixed(digits)} (${Math.min(...xs).toFixed(digits)}–${Math.max(...xs).toFixed(digits)})` : 'n/a');

export async function machinesBench(record: (k: string, v: string) => void): Promise<void> {
  process.env.SLIPWAY_LOG_LEVEL = 'error';
  await prepareMachines();
  const counts = (process.env.BENCH_MACHINES ?? '1,3,6').split(',').map(Number);
  const diskMb = Number(process.env.BENCH_DISK_MB ?? 128);
  const imageMb = Number(process.env.BENCH_IMAGE_MB ?? 64);
  const dir = mkdtempSync(join(tmpdir(), 'slipway-bench-machines-'));
  try {
    const image = await buildTestOsImage(join(dir, 'os'), { layout: 'filesystem', sizeMb: imageMb });
    record('image', `test OS, ${imageMb} MiB filesystem image, sha256 ${image.sha256.slice(0, 12)}…; disks ${diskMb} MiB; 256 MB, 1 vCPU per VM (TCG)`);
    for (const n of counts) await oneSite(n, diskMb, image, record);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function oneSite(n: number, diskMb: number, image: { path: string; sha256: string }, record: (k: string, v: string) => void): Promise<void> {
  const nodes: VmNodeSpec[] = Array.from({ length: n }, (_, i) => ({
    name: `b${String(i + 1).padStart(2, '0')}`,
    mac: `52:54:00:be:00:${(i + 1).toString(16).padStart(2, '0')}`,
    diskMb,
    image: 'os',
  }));
  const site = await startVmSite({ name: `bench-machines-${n}`, nodes, images: { os: image }, env: { SLIPWAY_BOOTACTION_FINAL_STATUS_SECONDS: '900' } });
  // When each VM process started (the BMC powered it on), sampled every 20 ms.
  const started = new Map<string, number[]>();
  const wasRunning = new Map<string, boolean>();
  const sampler = setInterval(() => {
    for (const [name, vm] of site.vms) {
      if (vm.running && !wasRunning.get(name)) started.set(name, [...(started.get(name) ?? []), performance.now()]);
      wasRunning.set(name, vm.running);
    }
  }, 20);
  try {
    const macOf = new Map(nodes.map((x) => [x.mac, x.name]));
    // Warm the agent's image cache (hashing a file:// image is the agent's work, not the node's).
    await site.netboot.images!.ensure('os');

    // --- deploy ---------------------------------------------------------------------------
    site.events.length = 0;
    const t0 = performance.now();
    const deploy = await site.createTask('deploy_nodes');
    const done = await subtaskTimes(deploy.task_id, 900_000);
    const deployWall = performance.now() - t0;
    const messages = await site.messages(deploy.task_id);
    const failed = nodes.filter((x) => !done.ok.has(x.name)).map((x) => x.name);
    if (failed.length) throw new Error(`deploy failed for ${failed.join(', ')}: ${messages.filter((m) => /fail|error/i.test(m)).join(' | ')}`);
    const upMs: number[] = [];
    for (const e of site.events) {
      if (e.kind !== 'file' || e.file !== 'instructions' || !e.macs) continue;
      const name = macOf.get(e.macs[0]!)!;
      const on = started.get(name)?.find((s) => s <= e.at);
      if (on !== undefined) upMs.push(e.at - on);
    }
    const rates = messages.flatMap((m) => {
      const r = /written to \S+ \([\d.]+ MB, ([\d.]+) MB\/s/.exec(m);
      return r ? [Number(r[1])] : [];
    });
    const deployS = nodes.map((x) => (done.at.get(x.name)! - t0) / 1000);
    record(`${n} VM(s): power-on → ramdisk up`, `${range(upMs.map((x) => x / 1000))} s`);
    record(`${n} VM(s): image written (download + write + fsync)`, `${range(rates)} MB/s per node`);
    record(`${n} VM(s): deploy request → boot actions success`, `${range(deployS)} s per node; whole task ${(deployWall / 1000).toFixed(1)} s`);

    // --- destroy (erase) -------------------------------------------------------------------
    const t1 = performance.now();
    const destroy = await site.createTask('destroy_nodes');
    const cleaned = await subtaskTimes(destroy.task_id, 900_000);
    const destroyWall = performance.now() - t1;
    const notCleaned = nodes.filter((x) => !cleaned.ok.has(x.name)).map((x) => x.name);
    if (notCleaned.length) throw new Error(`destroy failed for ${notCleaned.join(', ')}: ${(await site.messages(destroy.task_id)).join(' | ')}`);
    const erase = [...site.vms.values()].flatMap((vm) => {
      const m = [...vm.console().matchAll(/slipway-ramdisk: erased \/dev\/\w+ \(.*?\) in ([\d.]+) s/g)].at(-1);
      return m ? [Number(m[1]) / ((diskMb * MiB) / GiB)] : [];
    });
    const destroyS = nodes.map((x) => (cleaned.at.get(x.name)! - t1) / 1000);
    record(`${n} VM(s): clean (erase, fsync, verify)`, `${range(erase)} s per GiB`);
    record(`${n} VM(s): destroy request → node released`, `${range(destroyS)} s per node; whole task ${(destroyWall / 1000).toFixed(1)} s`);
  } finally {
    clearInterval(sampler);
    await site.stop();
  }
}

/** When each node's subtask completed (polled), and which succeeded. */
async function subtaskTimes(taskId: string, ms: number): Promise<{ at: Map<string, number>; ok: Set<string> }> {
  const at = new Map<string, number>();
  const ok = new Set<string>();
  const end = Date.now() + ms;
  for (;;) {
    const t = (await call('GET', `/api/v1.0/tasks/${taskId}`)).body;
    for (const id of t.subtask_id_list as string[]) {
      const sub = (await call('GET', `/api/v1.0/tasks/${id}`)).body;
      const name = sub.node_filter?.filter_set?.[0]?.node_names?.[0] as string;
      if (sub.status === 'complete' && !at.has(name)) {
        at.set(name, performance.now());
        if (sub.result.status === 'success') ok.add(name);
      }
    }
    if (t.status === 'complete') return { at, ok };
    if (Date.now() > end) throw new Error(`task ${taskId} not complete after ${ms} ms`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

