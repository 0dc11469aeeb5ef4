/**
 * The agent's SSH jobs, for Commissaire hosts (upstream-apis §2.4–2.5): `ssh_investigate`
 * gathers the facts a Host record holds (os, cpus, memory, space), `ssh_run` runs commands in
 * order (bootstrapping, deploy/upgrade/restart) and stops at the first that fails.
 *
 * The API opens the host's sealed key at claim time and hands it over in `ssh.private_key`; it
 * lives in this process's memory for the one job and appears in no message or log.
 */
import * as z from 'zod';
import { type CommandResult, type SshClient, SshError, type SshOptions, type SshTarget, bareAddress, withSsh } from './drivers/ssh.ts';

export const SSH_JOB_KINDS = ['ssh_investigate', 'ssh_run'] as const;
export type SshJobKind = (typeof SSH_JOB_KINDS)[number];
export const isSshJobKind = (kind: string): kind is SshJobKind => (SSH_JOB_KINDS as readonly string[]).includes(kind);

/** Where and as whom: the `ssh` object of every SSH job's payload. */
export const SshTargetPayload = z.object({
  address: z.string().min(1),
  port: z.number().int().min(1).max(65_535).optional(),
  username: z.string().min(1),
  /** PEM/OpenSSH text; base64 of it (Commissaire's `ssh_priv_key` form) is accepted too. */
  private_key: z.string().min(1),
  /** `SHA256:…`; when given, any other host key is refused. */
  host_key_sha256: z.string().min(1).optional(),
});

export const SshInvestigatePayload = z.object({ ssh: SshTargetPayload });
export type SshInvestigatePayload = z.infer<typeof SshInvestigatePayload>;

export const SshRunPayload = z.object({
  ssh: SshTargetPayload,
  commands: z.array(z.string().min(1)).min(1).max(100),
  /** Bound for each command (the agent's `ssh.command_timeout_seconds` otherwise). */
  timeout_seconds: z.number().positive().max(86_400).optional(),
});

export type SshRunPayload = z.infer<typeof SshRunPayload>;

export type SshJobPayload = SshInvestigatePayload | SshRunPayload;

/** Commands to one host are serialized under this key, like commands to one BMC. */
export function sshHostKey(p: SshJobPayload): string {
  return `ssh:${bareAddress(p.ssh.address).toLowerCase()}`;
}

export function sshTarget(p: SshJobPayload): SshTarget {
  const s = p.ssh;
  return {
    address: s.address,
    ...(s.port !== undefined ? { port: s.port } : {}),
    username: s.username,
    privateKey: keyText(s.private_key),
    ...(s.host_key_sha256 ? { hostKeySha256: s.host_key_sha256 } : {}),
  };
}

/** Key text as given, or decoded when it is the base64 of a PEM/OpenSSH key. */
function keyText(key: string): string {
  if (key.includes('-----BEGIN')) return key;
  const decoded = Buffer.from(key.replace(/\s+/g, ''), 'base64').toString('utf8');
  return decoded.includes('-----BEGIN') ? decoded : key;
}

/** A command on the host exited non-zero. */
export class CommandFailedError extends Error {
  constructor(
    readonly command: string,
    readonly result: CommandResult,
    context = '',
  ) {
    const out = result.stderr.trim() ? `stderr: ${tail(result.stderr, 1500)}` : result.stdout.trim() ? `no stderr; stdout: ${tail(result.stdout, 1500)}` : 'no output';
    super(`command ${JSON.stringify(clip(command, 300))}${context} exited with ${result.exit_code}${result.signal ? ` (signal ${result.signal})` : ''}; ${out}`);
    this.name = 'CommandFailedError';
  }
}

// ---------------------------------------------------------------------------------------------
// ssh_investigate

/** Commissaire's Host facts; memory and space in kB. */
export interface HostFacts {
  os: string;
  cpus: number;
  memory: number;
  space: number;
  host_key_sha256: string;
}

/**
 * POSIX sh for Debian and the RHEL family alike. os-release is in /etc (or /usr/lib on some
 * images); RHEL/CentOS 6 have only /etc/redhat-release.
 */
export const FACT_COMMANDS = {
  os: 'cat /etc/os-release 2>/dev/null || cat /usr/lib/os-release 2>/dev/null || cat /etc/redhat-release',
  rpm_ostree: 'if command -v rpm-ostree >/dev/null 2>&1; then echo yes; else echo no; fi',
  cpus: 'nproc 2>/dev/null || getconf _NPROCESSORS_ONLN',
  memory: "grep '^MemTotal:' /proc/meminfo",
  space: 'LC_ALL=C df -Pk /',
} as const;

export async function investigate(target: SshTarget, options: SshOptions): Promise<HostFacts> {
  return withSsh(target, options, async (ssh) => {
    const out = async (fact: keyof typeof FACT_COMMANDS): Promise<string> => {
      const r = await ssh.run(FACT_COMMANDS[fact]);
      if (r.exit_code !== 0) throw new CommandFailedError(FACT_COMMANDS[fact], r, ` (host fact ${fact})`);
      return r.stdout;
    };
    const release = await out('os');
    const rpmOstree = (await out('rpm_ostree')).trim() === 'yes';
    const facts = {
      os: commissaireOs(release, rpmOstree),
      cpus: positive(Number((await out('cpus')).trim()), 'cpus', FACT_COMMANDS.cpus, ssh),
      memory: positive(parseMemTotal(await out('memory')), 'memory', FACT_COMMANDS.memory, ssh),
      space: parseDfAvailable(await out('space')),
      host_key_sha256: ssh.hostKeySha256,
    };
    if (Number.isNaN(facts.space)) throw unexpected('space', FACT_COMMANDS.space, ssh);
    return facts;
  });
}

const RHEL_FAMILY = new Set(['rhel', 'centos', 'fedora']);

/**
 * Commissaire's OS enum (§2.6) where the host is one of its kind: `rhel` (also for `redhat`),
 * `centos`, `fedora`, and `atomic` for an Atomic Host (VARIANT_ID=atomic.host, or an
 * rpm-ostree-managed member of the RHEL family). Any other OS keeps its os-release `ID`
 * (`debian`, `ubuntu`…) so the caller can still tell what it is.
 */
export function commissaireOs(release: string, rpmOstree: boolean): string {
  const fields = parseOsRelease(release);
  let id = (fields.ID ?? '').toLowerCase();
  if (!id) {
    // /etc/redhat-release: "Red Hat Enterprise Linux Server release 6.10 (Santiago)".
    if (/red hat/i.test(release)) id = 'rhel';
    else if (/centos/i.test(release)) id = 'centos';
    else if (/fedora/i.test(release)) id = 'fedora';
    else return '';
  }
  if (id === 'redhat') id = 'rhel';
  if ((fields.VARIANT_ID ?? '').toLowerCase() === 'atomic.host') return 'atomic';
  if (RHEL_FAMILY.has(id) && rpmOstree) return 'atomic';
  return id;
}

/** os-release is shell-style `KEY=value` with optional quotes. */
export function parseOsRelease(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^\s*([A-Z0-9_]+)=(.*)$/.exec(line);
    if (!m) continue;
    let v = m[2]!.trim();
    if (/^(["']).*\1$/.test(v)) v = v.slice(1, -1).replace(/\\(["$`\\])/g, '$1');
    out[m[1]!] = v;
  }
  return out;
}

/** `MemTotal:       24684084 kB` → 24684084. */
export function parseMemTotal(text: string): number {
  const m = /^MemTotal:\s+(\d+)\s*kB/m.exec(text);
  return m ? Number(m[1]) : NaN;
}

/** The Available column (kB) of `df -Pk /`; read from the right, as a device name may hold spaces. */
export function parseDfAvailable(text: string): number {
  const last = text.trim().split('\n').pop() ?? '';
  const m = /\s(\d+)\s+(\d+)\s+(\d+)\s+\d+%\s+\S.*$/.exec(last);
  return m ? Number(m[3]) : NaN;
}

function positive(n: number, fact: string, command: string, ssh: SshClient): number {
  if (!Number.isFinite(n) || n <= 0) throw unexpected(fact, command, ssh);
  return n;
}

function unexpected(fact: string, command: string, ssh: SshClient): SshError {
  return new SshError('protocol', `host fact ${fact}: unexpected output of ${JSON.stringify(command)} (host key ${ssh.hostKeySha256})`);
}

// ---------------------------------------------------------------------------------------------
// ssh_run

export interface CommandOutput {
  command: string;
  exit_code: number;
  stdout: string;
  stderr: string;
}

/** The job API takes at most 64 KiB of JSON output; leave room for the envelope. */
const OUTPUT_BUDGET = 60_000;

export async function runCommands(
  target: SshTarget,
  commands: readonly string[],
  options: SshOptions & { timeoutMs?: number },
): Promise<{ results: CommandOutput[]; host_key_sha256: string }> {
  return withSsh(target, options, async (ssh) => {
    const ran = await ssh.runAll(commands, options.timeoutMs);
    const last = ran[ran.length - 1];
    if (last && last.exit_code !== 0) {
      throw new CommandFailedError(last.command, last, ` (${ran.length} of ${commands.length})`);
    }
    const results = ran.map(({ command, exit_code, stdout, stderr }) => ({ command, exit_code, stdout, stderr }));
    return { results: fitOutput(results, OUTPUT_BUDGET), host_key_sha256: ssh.hostKeySha256 };
  });
}

/** Shortens the longest outputs (keeping their tails) until the results fit `budget` bytes of JSON. */
export function fitOutput(results: CommandOutput[], budget: number): CommandOutput[] {
  const out = results.map((r) => ({ ...r }));
  for (;;) {
    const size = Buffer.byteLength(JSON.stringify(out));
    if (size <= budget) return out;
    let longest: { r: CommandOutput; field: 'stdout' | 'stderr' } | undefined;
    for (const r of out) {
      for (const field of ['stdout', 'stderr'] as const) {
        if (!longest || r[field].length > longest.r[longest.field].length) longest = { r, field };
      }
    }
    if (!longest || longest.r[longest.field].length === 0) return out;
    const text = longest.r[longest.field];
    // Drop the excess from its head; JSON escapes or multi-byte characters may take another round.
    longest.r[longest.field] = text.slice(Math.min(text.length, size - budget));
  }
}

function tail(s: string, max: number): string {
  const t = s.trimEnd();
  return t.length <= max ? t : `…${t.slice(t.length - max + 1)}`;
}

function clip(s: string, max: number): string {
  return s.length <= max ? s : `${s.slice(0, max - 1)}…`;
}
