/**
 * A real OpenSSH server for tests: Debian's `/usr/sbin/sshd` (package openssh-server) on
 * 127.0.0.2 (and ::1 when the machine has IPv6 loopback) at a free high port, with a throwaway
 * ed25519 host key and user key made by `ssh-keygen` in a temp dir, and its own config there.
 * It accepts only that user key, for the user running the tests (root in CI). Nothing listens
 * beyond loopback; the system's sshd service is not involved.
 *
 * Everything is asynchronous (no spawnSync): test files also run an in-process agent, whose
 * event loop must keep turning.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { access, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { constants as fsConstants, rmSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';

export const SSHD = '/usr/sbin/sshd';
const SSH_KEYGEN = 'ssh-keygen';
const READY_TIMEOUT_MS = 10_000;

export interface TestSshd {
  /** IPv4 loopback address it listens on. */
  readonly address: string;
  /** `::1` when IPv6 loopback is available (same port), else undefined. */
  readonly address6: string | undefined;
  readonly port: number;
  /** The user it lets in (the one running the tests). */
  readonly user: string;
  /** The throwaway user key, OpenSSH private key text. */
  readonly privateKey: string;
  /** The host key's fingerprint, `SHA256:…`. */
  readonly hostKeySha256: string;
  /** Temp dir of this server (config, keys), removed by stop(). Tests may write scratch files here. */
  readonly dir: string;
  stop(): Promise<void>;
}

/** Servers to kill (and temp dirs to remove) if the process exits without stopping them. */
const running = new Map<ChildProcess, string>();
let exitHookInstalled = false;

export async function startSshd(options: { address?: string } = {}): Promise<TestSshd> {
  const address = options.address ?? '127.0.0.2';
  if (!/^127\.\d+\.\d+\.\d+$/.test(address)) throw new Error(`sshd helper: ${address} is not an IPv4 loopback address`);
  try {
    await access(SSHD, fsConstants.X_OK);
  } catch {
    throw new Error(`sshd helper: ${SSHD} is missing; install the Debian package openssh-server (apt-get install -y openssh-server; .ci/run does this)`);
  }
  const user = userInfo().username;
  await checkNotLocked(user);
  // sshd's privilege separation needs this directory (the package's service unit creates it).
  if (process.getuid?.() === 0) await mkdir('/run/sshd', { recursive: true, mode: 0o755 });

  const dir = await mkdtemp(join(tmpdir(), 'slipway-sshd-'));
  try {
    await keygen(join(dir, 'host_key'), 'slipway-test-host');
    const userKey = await generateUserKey(dir, 'user_key');
    await writeFile(join(dir, 'authorized_keys'), userKey.publicKey, { mode: 0o600 });
    const hostKeySha256 = fingerprintOfPub(await readFile(join(dir, 'host_key.pub'), 'utf8'));
    const address6 = (await canBind('::1')) ? '::1' : undefined;
    // Newer OpenSSH (9.8+) penalizes sources that fail to authenticate; the wrong-key tests must
    // not lock the other tests out. Older servers reject the option, so it is probed first.
    const penalties = (await sshdAccepts(dir, 'PerSourcePenalties no')) ? ['PerSourcePenalties no'] : [];

    for (let attempt = 1; ; attempt++) {
      const port = await freePort(address, address6);
      const config = join(dir, 'sshd_config');
      await writeFile(
        config,
        [
          '# Written by test/support/sshd.ts',
          `ListenAddress ${address}`,
          ...(address6 ? [`ListenAddress [${address6}]`] : []),
          `Port ${port}`,
          `HostKey ${join(dir, 'host_key')}`,
          `PidFile ${join(dir, 'sshd.pid')}`,
          `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
          'PubkeyAuthentication yes',
          'PasswordAuthentication no',
          'KbdInteractiveAuthentication no',
          'UsePAM no',
          'StrictModes no',
          'PermitRootLogin prohibit-password',
          'AllowAgentForwarding no',
          'AllowTcpForwarding no',
          'X11Forwarding no',
          'LogLevel ERROR',
          ...penalties,
          '',
        ].join('\n'),
      );
      // -D: stay in the foreground (a child we can kill); -e: log to stderr.
      const child = spawn(SSHD, ['-D', '-e', '-f', config], { stdio: ['ignore', 'ignore', 'pipe'] });
      let output = '';
      child.stderr?.on('data', (b: Buffer) => (output += b.toString()));
      const exited = new Promise<void>((resolve) => {
        child.once('exit', () => resolve());
        child.once('error', (err) => {
          output += String(err);
          resolve();
        });
      });
      running.set(child, dir);
      installExitHook();

      const kill = async (): Promise<void> => {
        if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
          child.kill('SIGTERM');
          const killer = setTimeout(() => child.kill('SIGKILL'), 2000);
          await exited;
          clearTimeout(killer);
        }
        running.delete(child);
      };
      try {
        await waitForBanner(address, port, exited, () => output);
        if (address6) await waitForBanner(address6, port, exited, () => output);
      } catch (err) {
        await kill();
        // Another process took the port between the probe and sshd's bind: try another.
        if (attempt < 3 && /Address already in use|Cannot bind/i.test(output)) continue;
        throw err;
      }
      let stopped: Promise<void> | undefined;
      const stop = (): Promise<void> =>
        (stopped ??= (async () => {
          await kill();
          await rm(dir, { recursive: true, force: true });
        })());
      return { address, address6, port, user, privateKey: userKey.privateKey, hostKeySha256, dir, stop };
    }
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

/** A fresh ed25519 key pair in `dir` (tests use one the server does not know). */
export async function generateUserKey(dir: string, name = `key-${Date.now()}`): Promise<{ privateKey: string; publicKey: string }> {
  const file = join(dir, name);
  await keygen(file, 'slipway-test-user');
  return { privateKey: await readFile(file, 'utf8'), publicKey: await readFile(`${file}.pub`, 'utf8') };
}

/** `SHA256:…` of an OpenSSH public key line, as `ssh-keygen -l` prints it. */
export function fingerprintOfPub(line: string): string {
  const blob = line.trim().split(/\s+/)[1];
  if (!blob) throw new Error('sshd helper: not an OpenSSH public key line');
  return `SHA256:${createHash('sha256').update(Buffer.from(blob, 'base64')).digest('base64').replace(/=+$/, '')}`;
}

function keygen(file: string, comment: string): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(SSH_KEYGEN, ['-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', file], (err, _stdout, stderr) => {
      if ((err as NodeJS.ErrnoException | null)?.code === 'ENOENT') reject(new Error('sshd helper: ssh-keygen is missing; install the Debian package openssh-client'));
      else if (err) reject(new Error(`sshd helper: ssh-keygen failed: ${stderr || err.message}`));
      else resolve();
    });
  });
}

/** `sshd -t` (config test) with one extra option: does this sshd know it? */
async function sshdAccepts(dir: string, option: string): Promise<boolean> {
  const config = join(dir, 'probe_config');
  await writeFile(config, `HostKey ${join(dir, 'host_key')}\nUsePAM no\n${option}\n`);
  return new Promise((resolve) => execFile(SSHD, ['-t', '-f', config], (err) => resolve(!err)));
}

/**
 * With UsePAM off, sshd refuses accounts whose password field is locked (`!…`) even for key
 * logins; say so plainly instead of failing every test with "authentication failed".
 */
async function checkNotLocked(user: string): Promise<void> {
  let shadow: string;
  try {
    shadow = await readFile('/etc/shadow', 'utf8');
  } catch {
    return; // not readable (not root): sshd will judge
  }
  const entry = shadow.split('\n').find((l) => l.startsWith(`${user}:`));
  const password = entry?.split(':')[1] ?? '';
  if (password.startsWith('!')) {
    throw new Error(`sshd helper: the account ${user} is locked in /etc/shadow, so sshd (UsePAM no) refuses even key logins; unlock it with: usermod -p '*' ${user}`);
  }
}

async function canBind(host: string): Promise<boolean> {
  const server = createServer();
  return new Promise((resolve) => {
    server.once('error', () => resolve(false));
    server.listen(0, host, () => server.close(() => resolve(true)));
  });
}

/** A TCP port that was free a moment ago on every given address. */
async function freePort(address: string, address6: string | undefined): Promise<number> {
  for (let i = 0; i < 20; i++) {
    const server = createServer();
    const port = await new Promise<number>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, address, () => resolve((server.address() as { port: number }).port));
    });
    await new Promise<void>((resolve) => server.close(() => resolve()));
    if (!address6) return port;
    const six = createServer();
    const ok = await new Promise<boolean>((resolve) => {
      six.once('error', () => resolve(false));
      six.listen(port, address6, () => six.close(() => resolve(true)));
    });
    if (ok) return port;
  }
  throw new Error('sshd helper: no port free on both loopback addresses');
}

/** Connects until the server sends its SSH identification line. */
async function waitForBanner(host: string, port: number, exited: Promise<void>, output: () => string): Promise<void> {
  let hasExited = false;
  void exited.then(() => (hasExited = true));
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let last = '';
  while (Date.now() < deadline) {
    if (hasExited) throw new Error(`sshd exited during start-up: ${output().trim() || '(no output)'}`);
    last = await new Promise<string>((resolve) => {
      const sock = connect({ host, port });
      let got = '';
      const done = (why: string) => {
        sock.destroy();
        resolve(why);
      };
      sock.setTimeout(1000, () => done('no banner within 1 s'));
      sock.on('data', (b: Buffer) => {
        got += b.toString('latin1');
        if (got.includes('\n')) done(got.startsWith('SSH-2.0-') ? '' : `unexpected banner ${JSON.stringify(got.slice(0, 60))}`);
      });
      sock.on('error', (err) => done(err.message));
    });
    if (last === '') return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`sshd on ${host}:${port} did not answer within ${READY_TIMEOUT_MS} ms: ${last} ${output().trim()}`);
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const [child, dir] of running) {
      child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });
}
