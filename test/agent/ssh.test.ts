import { readFile } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { AgentConfig } from '../../agent/config.ts';
import { driverFactory } from '../../agent/drivers/index.ts';
import { SshClient, SshError, type SshTarget, withSsh } from '../../agent/drivers/ssh.ts';
import { describeFailure, type Executors, execute, JobInputError, parseJob, serialKey, sshOptions } from '../../agent/executor.ts';
import { Agent } from '../../agent/runner.ts';
import { commissaireOs, fitOutput, parseDfAvailable, parseMemTotal, parseOsRelease } from '../../agent/ssh-jobs.ts';
import { buildDeps } from '../../layers/aws/deps.ts';
import { enqueueJob } from '../../layers/core/agent/enqueue.ts';
import type { Job } from '../../layers/core/agent/model.ts';
import { jobFinished, untilJob } from '../support/agent.ts';
import { generateUserKey, startSshd, type TestSshd } from '../support/sshd.ts';
import { tokenFor, unique } from '../support/api.ts';
import { rejection } from '../support/rejection.ts';

/**
 * The SSH driver and the SSH jobs against a real OpenSSH server (Debian's sshd on loopback, see
 * test/support/sshd.ts): the driver itself, the jobs through the executor, and the whole path
 * through the agent job API with an in-process agent.
 */
let sshd: TestSshd;
let strangerKey: string;

beforeAll(async () => {
  sshd = await startSshd();
  strangerKey = (await generateUserKey(sshd.dir, 'stranger')).privateKey;
});
afterAll(async () => {
  await sshd?.stop();
});

const target = (extra: Partial<SshTarget> = {}): SshTarget => ({ address: sshd.address, port: sshd.port, username: sshd.user, privateKey: sshd.privateKey, ...extra });
const fast = { connectTimeoutMs: 5000, commandTimeoutMs: 10_000 };

const failure = (p: Promise<unknown>) => rejection(p, SshError);

/** A loopback TCP port where nothing listens. */
async function closedPort(): Promise<number> {
  const s = createServer();
  const port = await new Promise<number>((r) => s.listen(0, '127.0.0.1', () => r((s.address() as { port: number }).port)));
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

const hasIpv6Loopback = Object.values(networkInterfaces())
  .flat()
  .some((i) => i?.address === '::1');

describe('SshClient', () => {
  it('runs commands and returns their exit status, stdout and stderr', async () => {
    await withSsh(target(), fast, async (ssh) => {
      expect(ssh.hostKeySha256).toBe(sshd.hostKeySha256);
      expect(await ssh.run('echo hello; echo oops >&2')).toEqual({ exit_code: 0, stdout: 'hello\n', stderr: 'oops\n' });
      expect(await ssh.run('exit 3')).toMatchObject({ exit_code: 3, stdout: '', stderr: '' });
      expect((await ssh.run('id -un')).stdout.trim()).toBe(sshd.user);
      // The shell is the user's login shell, so the command is one string, as with `ssh host cmd`.
      expect((await ssh.run("printf '%s|' a 'b c'")).stdout).toBe('a|b c|');
      expect(await ssh.run('kill -TERM $$')).toMatchObject({ exit_code: 143, signal: 'TERM' });
    });
  });

  it('runs a list in order and stops at the first non-zero exit', async () => {
    await withSsh(target(), fast, async (ssh) => {
      const results = await ssh.runAll(['echo one', 'echo two >&2; exit 7', 'echo never']);
      expect(results).toEqual([
        { command: 'echo one', exit_code: 0, stdout: 'one\n', stderr: '' },
        { command: 'echo two >&2; exit 7', exit_code: 7, stdout: '', stderr: 'two\n' },
      ]);
    });
  });

  it('keeps only the tail of long output', async () => {
    await withSsh(target(), { ...fast, maxOutputBytes: 1024 }, async (ssh) => {
      const r = await ssh.run("head -c 100000 /dev/zero | tr '\\0' a; echo; echo END");
      expect(r.stdout).toHaveLength(1024);
      expect(r.stdout.endsWith('a\nEND\n')).toBe(true);
      expect(r.truncated).toBe(true);
    });
  });

  it('gives up on a command that outlives its timeout', async () => {
    const ssh = await SshClient.connect(target(), fast);
    const started = Date.now();
    const err = await failure(ssh.run('sleep 30', 500));
    expect(err.code).toBe('timeout');
    expect(err.message).toMatch(/still running after 0\.5 s: sleep 30/);
    expect(Date.now() - started).toBeLessThan(5000);
    // The session is closed with it: nothing keeps running on our side.
    expect((await failure(ssh.run('true'))).code).toBe('protocol');
  });

  it('accepts the pinned host key, with or without the SHA256: prefix and padding', async () => {
    const bare = sshd.hostKeySha256.replace(/^SHA256:/, '');
    for (const pin of [sshd.hostKeySha256, bare, `${bare}=`]) {
      await withSsh(target({ hostKeySha256: pin }), fast, async (ssh) => expect((await ssh.run('true')).exit_code).toBe(0));
    }
  });

  it('refuses a host key other than the pinned one', async () => {
    const pin = `SHA256:${Buffer.alloc(32, 7).toString('base64').replace(/=+$/, '')}`;
    const err = await failure(SshClient.connect(target({ hostKeySha256: pin }), fast));
    expect(err.code).toBe('host_key');
    expect(err.message).toContain(`presented ${sshd.hostKeySha256}, expected ${pin}`);
  });

  it('reports an authentication failure for a key the server does not accept, and never the key', async () => {
    const err = await failure(SshClient.connect(target({ privateKey: strangerKey }), fast));
    expect(err.code).toBe('auth');
    expect(err.message).toBe(`SSH authentication as ${sshd.user} at ${sshd.address}:${sshd.port} failed: the server refused the private key`);
    expect(describeFailure(err)).toMatch(/^auth: /);
    // Also a user the key is not authorized for.
    expect((await failure(SshClient.connect(target({ username: 'nobody' }), fast))).code).toBe('auth');
  });

  it('says the connection was refused on a closed loopback port', async () => {
    const port = await closedPort();
    const err = await failure(SshClient.connect(target({ address: '127.0.0.1', port }), fast));
    expect(err.code).toBe('unreachable');
    expect(err.message).toBe(`connection to 127.0.0.1:${port} refused: no SSH server is listening there`);
  });

  it('times out against a server that never speaks SSH', async () => {
    const sockets: Socket[] = [];
    const silent: Server = createServer((s) => sockets.push(s));
    const port = await new Promise<number>((r) => silent.listen(0, '127.0.0.1', () => r((silent.address() as { port: number }).port)));
    try {
      const err = await failure(SshClient.connect(target({ address: '127.0.0.1', port }), { connectTimeoutMs: 500 }));
      expect(err.code).toBe('timeout');
      expect(err.message).toMatch(/no SSH session with 127\.0\.0\.1:\d+ within 0\.5 s/);
    } finally {
      for (const s of sockets) s.destroy();
      silent.close();
    }
  });

  it('rejects a key it cannot use without quoting it', async () => {
    const bogus = '-----BEGIN OPENSSH PRIVATE KEY-----\nc2VjcmV0LXNlY3JldC1zZWNyZXQ=\n-----END OPENSSH PRIVATE KEY-----\n';
    const err = await failure(SshClient.connect(target({ privateKey: bogus }), fast));
    expect(err.code).toBe('invalid');
    expect(err.message).not.toContain('c2VjcmV0');
    const pub = await readFile(join(sshd.dir, 'user_key.pub'), 'utf8');
    expect((await failure(SshClient.connect(target({ privateKey: pub }), fast))).message).toBe('the SSH private key is not a private key');
  });

  it.skipIf(!hasIpv6Loopback)('connects over IPv6, bare or in brackets', async () => {
    expect(sshd.address6).toBe('::1');
    for (const address of ['::1', '[::1]']) {
      await withSsh(target({ address }), fast, async (ssh) => {
        expect(ssh.hostKeySha256).toBe(sshd.hostKeySha256);
        // sshd tells the session where the client came from.
        expect((await ssh.run('echo $SSH_CONNECTION')).stdout).toMatch(/^::1 \d+ ::1 \d+/);
      });
    }
    const port = await closedPort();
    expect((await failure(SshClient.connect(target({ address: '::1', port }), fast))).message).toBe(`connection to [::1]:${port} refused: no SSH server is listening there`);
  });
});

// ---------------------------------------------------------------------------------------------

const executors = (): Executors => ({
  makeDriver: () => {
    throw new Error('no BMC in these tests');
  },
  ssh: fast,
});
const sshPayload = (extra: Record<string, unknown> = {}) => ({ address: sshd.address, port: sshd.port, username: sshd.user, private_key: sshd.privateKey, ...extra });

describe('SSH jobs through the executor', () => {
  it('ssh_investigate gathers the host facts Commissaire keeps', async () => {
    const facts = (await execute(parseJob('ssh_investigate', { ssh: sshPayload() }), executors())) as Record<string, unknown>;
    expect(Object.keys(facts).sort()).toEqual(['cpus', 'host_key_sha256', 'memory', 'os', 'space']);
    expect(facts.os).toEqual(expect.any(String));
    expect(facts.os).not.toBe('');
    // The server is this machine: its os-release is ours.
    expect(facts.os).toBe(commissaireOs(await readFile('/etc/os-release', 'utf8'), false));
    expect(facts.cpus).toBeGreaterThanOrEqual(1);
    expect(Number.isInteger(facts.cpus)).toBe(true);
    expect(facts.memory).toBe(parseMemTotal(await readFile('/proc/meminfo', 'utf8')));
    expect(facts.space).toBeGreaterThan(0);
    expect(facts.host_key_sha256).toBe(sshd.hostKeySha256);
  });

  it('ssh_run runs the commands in order and returns each result', async () => {
    const out = await execute(parseJob('ssh_run', { ssh: sshPayload({ host_key_sha256: sshd.hostKeySha256 }), commands: ['echo a', 'echo b >&2'] }), executors());
    expect(out).toEqual({
      results: [
        { command: 'echo a', exit_code: 0, stdout: 'a\n', stderr: '' },
        { command: 'echo b >&2', exit_code: 0, stdout: '', stderr: 'b\n' },
      ],
      host_key_sha256: sshd.hostKeySha256,
    });
  });

  it('ssh_run fails at the first failing command, naming it, its exit status and its stderr', async () => {
    const marker = join(sshd.dir, `never-${Date.now()}`);
    const err = await execute(parseJob('ssh_run', { ssh: sshPayload(), commands: ['true', 'echo broken >&2; exit 4', `touch ${marker}`] }), executors()).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(describeFailure(err)).toBe('command_failed: command "echo broken >&2; exit 4" (2 of 3) exited with 4; stderr: broken');
    await expect(readFile(marker)).rejects.toThrow(/ENOENT/);
  });

  it('applies the job timeout to each command', async () => {
    const err = await execute(parseJob('ssh_run', { ssh: sshPayload(), commands: ['sleep 20'], timeout_seconds: 0.5 }), executors()).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(describeFailure(err)).toMatch(/^timeout: command on 127\.0\.0\.2:\d+ still running after 0\.5 s: sleep 20$/);
  });

  it('takes the key as base64 too (Commissaire ssh_priv_key form)', async () => {
    const b64 = Buffer.from(sshd.privateKey).toString('base64');
    const out = (await execute(parseJob('ssh_run', { ssh: sshPayload({ private_key: b64 }), commands: ['echo ok'] }), executors())) as { results: unknown[] };
    expect(out.results).toEqual([{ command: 'echo ok', exit_code: 0, stdout: 'ok\n', stderr: '' }]);
  });

  it('rejects bad payloads without echoing the key', () => {
    const bad = (kind: string, payload: Record<string, unknown>) => {
      try {
        parseJob(kind, payload);
      } catch (err) {
        expect(err).toBeInstanceOf(JobInputError);
        return describeFailure(err);
      }
      throw new Error('accepted');
    };
    expect(bad('ssh_investigate', {})).toBe('invalid job: job ssh_investigate: ssh: Invalid input: expected object, received undefined');
    expect(bad('ssh_run', { ssh: sshPayload(), commands: [] })).toMatch(/^invalid job: job ssh_run: commands: Too small/);
    const text = bad('ssh_run', { ssh: sshPayload({ port: 'twenty-two', private_key: 42 }), commands: ['true'] });
    expect(text).toContain('ssh.port');
    expect(text).toContain('ssh.private_key');
    expect(bad('ssh_run', { ssh: { ...sshPayload(), username: '' }, commands: ['true'] })).not.toContain('OPENSSH');
  });

  it('serializes SSH jobs per host address, like BMC commands', () => {
    const key = (address: string, port?: number) => serialKey(parseJob('ssh_investigate', { ssh: { address, ...(port ? { port } : {}), username: 'root', private_key: 'k' } }));
    expect(key('10.1.2.3')).toBe('ssh:10.1.2.3');
    expect(key('10.1.2.3', 2222)).toBe(key('10.1.2.3'));
    expect(key('[FE80::1]')).toBe(key('fe80::1'));
  });
});

describe('host facts parsing', () => {
  it.each([
    ['ID="rhel"\nVERSION_ID="9.4"\n', false, 'rhel'],
    ['ID=redhat\n', false, 'rhel'],
    ['ID="centos"\nVERSION_ID="7"\n', false, 'centos'],
    ['NAME=Fedora\nID=fedora\n', false, 'fedora'],
    ['ID=rhel\nVARIANT_ID=atomic.host\n', false, 'atomic'],
    ['ID=centos\n', true, 'atomic'],
    ['ID=debian\nVERSION_ID="12"\n', false, 'debian'],
    ['ID=debian\n', true, 'debian'],
    ['ID=ubuntu\nID_LIKE=debian\n', false, 'ubuntu'],
    ['Red Hat Enterprise Linux Server release 6.10 (Santiago)\n', false, 'rhel'],
    ['CentOS release 6.10 (Final)\n', false, 'centos'],
    ['', false, ''],
  ])('maps %j (rpm-ostree %s) to %j', (release, rpmOstree, os) => {
    expect(commissaireOs(release, rpmOstree)).toBe(os);
  });

  it('reads quoted os-release values, MemTotal and df -Pk', () => {
    expect(parseOsRelease('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\n# c\nX=\'a b\'\n')).toEqual({ PRETTY_NAME: 'Debian GNU/Linux 12 (bookworm)', ID: 'debian', X: 'a b' });
    expect(parseMemTotal('MemTotal:       24684084 kB\nMemFree: 1 kB\n')).toBe(24684084);
    expect(parseDfAvailable('Filesystem     1024-blocks     Used Available Capacity Mounted on\n/dev/vda         264212084 25010344  81380568      24% /\n')).toBe(81380568);
    expect(parseDfAvailable('Filesystem 1024-blocks Used Available Capacity Mounted on\nmy disk 100 40 60 40% /\n')).toBe(60);
    expect(parseDfAvailable('garbage')).toBeNaN();
  });

  it('shortens the longest outputs, keeping their tails, until the results fit the job API', () => {
    const results = [
      { command: 'a', exit_code: 0, stdout: `${'x'.repeat(50_000)}END`, stderr: 'small' },
      { command: 'b', exit_code: 0, stdout: `${'y'.repeat(30_000)}TAIL`, stderr: '' },
    ];
    const fitted = fitOutput(results, 60_000);
    expect(Buffer.byteLength(JSON.stringify(fitted))).toBeLessThanOrEqual(60_000);
    expect(fitted[0]!.stdout.endsWith('END')).toBe(true);
    expect(fitted[1]!.stdout.endsWith('TAIL')).toBe(true);
    expect(fitted[0]!.stderr).toBe('small');
    expect(results[0]!.stdout).toHaveLength(50_003); // the input is left alone
  });
});

// ---------------------------------------------------------------------------------------------

const deps = () => buildDeps({ TABLE_NAME: 'slipway', DYNAMODB_ENDPOINT: inject('dynamoEndpoint') });


describe('SSH jobs through the agent job API', () => {
  it('investigates a host and runs commands on it, one job per host at a time', async () => {
    const site = unique('site');
    const token = (await tokenFor('agent', site)).token;
    const cfg = { ...AgentConfig.parse({ api_url: inject('apiUrl'), token, poll_seconds: 1, lease_seconds: 10, shutdown_grace_seconds: 5, ssh: { connect_timeout_seconds: 5 } }), token };
    expect(sshOptions(cfg)).toEqual({ connectTimeoutMs: 5000, commandTimeoutMs: 600_000, maxOutputBytes: 65_536 });
    const agent = new Agent(cfg, driverFactory(cfg));
    agent.start();
    try {
      const log = join(sshd.dir, `serial-${Date.now()}.log`);
      // Each job logs its start and end; jobs for one host must not interleave.
      const step = (n: number) => `echo start ${n} >> ${log}; sleep 0.3; echo end ${n} >> ${log}`;
      const jobs = await Promise.all([
        enqueueJob(deps(), { site, kind: 'ssh_investigate', payload: { ssh: sshPayload({ host_key_sha256: sshd.hostKeySha256 }) } }),
        enqueueJob(deps(), { site, kind: 'ssh_run', payload: { ssh: sshPayload(), commands: [step(1), 'uname -s'] } }),
        enqueueJob(deps(), { site, kind: 'ssh_run', payload: { ssh: sshPayload(), commands: [step(2), 'echo nope >&2; exit 2', 'echo never'] } }),
        enqueueJob(deps(), { site, kind: 'ssh_run', payload: { ssh: sshPayload({ private_key: strangerKey }), commands: ['true'] } }),
      ]);
      const [facts, run, failed, denied] = await Promise.all(jobs.map((j) => untilJob(j.id, jobFinished)));
      expect(facts!.status, facts!.error).toBe('succeeded');
      expect(facts!.output).toMatchObject({ os: expect.any(String), host_key_sha256: sshd.hostKeySha256 });
      const f = facts!.output as { os: string; cpus: number; memory: number; space: number };
      expect(f.os).not.toBe('');
      expect(f.cpus).toBeGreaterThanOrEqual(1);
      expect(f.memory).toBeGreaterThan(0);
      expect(f.space).toBeGreaterThan(0);

      expect(run!.status, run!.error).toBe('succeeded');
      expect(run!.output).toEqual({
        results: [
          { command: step(1), exit_code: 0, stdout: '', stderr: '' },
          { command: 'uname -s', exit_code: 0, stdout: 'Linux\n', stderr: '' },
        ],
        host_key_sha256: sshd.hostKeySha256,
      });

      expect(failed!.status).toBe('failed');
      expect(failed!.error).toBe('command_failed: command "echo nope >&2; exit 2" (2 of 3) exited with 2; stderr: nope');

      expect(denied!.status).toBe('failed');
      expect(denied!.error).toMatch(/^auth: SSH authentication as \S+ at 127\.0\.0\.2:\d+ failed/);
      expect(denied!.error).not.toContain('PRIVATE KEY');

      const lines = (await readFile(log, 'utf8')).trim().split('\n');
      expect(lines).toHaveLength(4);
      expect([lines[0]!.split(' ')[1], lines[1]!.split(' ')[1]]).toEqual(Array(2).fill(lines[0]!.split(' ')[1]));
      expect(lines.map((l) => l.split(' ')[0])).toEqual(['start', 'end', 'start', 'end']);
      expect(agent.stats).toMatchObject({ succeeded: 2, failed: 2 });
    } finally {
      await agent.stop();
    }
  });
});
