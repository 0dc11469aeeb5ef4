import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { callerFreeEnv, startMain, stopMain } from '../support/npm-start.ts';

/**
 * `npm start` as a user runs it: a child process on its own port and data dir. Data survives a
 * restart, SIGTERM stops everything (the JVM included), and a machine without java gets a
 * message that says what to install.
 */
const root = resolve(import.meta.dirname, '../..');
const tsx = join(root, 'node_modules/.bin/tsx');
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

const javaProcessesFor = (dataDir: string) => {
  try {
    return execFileSync('pgrep', ['-f', `dbPath ${join(dataDir, 'dynamodb')}`]).toString().trim();
  } catch {
    return '';
  }
};

describe('the test environment', () => {
  it('holds none of the caller\'s SLIPWAY_* settings (test/support/global-setup.ts drops them)', () => {
    // Whatever the shell that runs `npm test` exported: the suite's own stack and tests decide.
    for (const name of ['SLIPWAY_ADMIN_TOKEN', 'SLIPWAY_DATA_DIR', 'SLIPWAY_HOST', 'SLIPWAY_CLEANING_MINUTES', 'SLIPWAY_NOTIFY_WEBHOOK', 'PORT']) {
      expect(process.env[name], name).toBeUndefined();
    }
    expect(process.env.SLIPWAY_LOG_LEVEL).toBe('warn');
  });
});

describe('npm start', () => {
  it('keeps data across a restart and stops the JVM on SIGTERM', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'slipway-start-'));
    dirs.push(dataDir);
    const first = await startMain(dataDir);
    const token = readFileSync(join(dataDir, 'admin-token'), 'utf8').trim();
    expect((await fetch(`${first.url}/healthz`)).status).toBe(200);
    const created = await fetch(`${first.url}/v1/os-hosts`, {
      method: 'POST',
      headers: { 'X-Auth-Token': token, 'Content-Type': 'application/json' },
      body: JSON.stringify({ name: 'persisted-host', vcpus: 4 }),
    });
    expect(created.status).toBe(201);
    expect(javaProcessesFor(dataDir)).not.toBe('');
    expect(await stopMain(first.child)).toBe(0);
    expect(javaProcessesFor(dataDir)).toBe('');

    const second = await startMain(dataDir);
    expect(readFileSync(join(dataDir, 'admin-token'), 'utf8').trim()).toBe(token);
    const hosts = await fetch(`${second.url}/v1/os-hosts`, { headers: { 'X-Auth-Token': token } });
    const body = (await hosts.json()) as { hosts: { hypervisor_hostname: string }[] };
    expect(body.hosts.map((h) => h.hypervisor_hostname)).toContain('persisted-host');
    expect(await stopMain(second.child)).toBe(0);
    expect(javaProcessesFor(dataDir)).toBe('');
  });

  it('stops, the JVM included, when SIGTERM reaches npm alone (as a service manager stops `npm start`)', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'slipway-start-'));
    dirs.push(dataDir);
    const s = await startMain(dataDir, {}, 'npm');
    expect(javaProcessesFor(dataDir)).not.toBe('');
    // npm's own pid, not its process group: npm passes the signal to its script's process, which
    // must be the server itself (`exec` in the script), not a shell that dies and leaves it running.
    s.child.kill('SIGTERM');
    const stopped = async () => {
      const answers = await fetch(`${s.url}/healthz`).then(
        () => true,
        () => false,
      );
      return !answers && javaProcessesFor(dataDir) === '';
    };
    let down = false;
    for (let i = 0; i < 100 && !(down = await stopped()); i++) await new Promise((r) => setTimeout(r, 150));
    expect(down).toBe(true);
  }, 90_000);

  it('uses SLIPWAY_ADMIN_TOKEN when set', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'slipway-start-'));
    dirs.push(dataDir);
    const s = await startMain(dataDir, { SLIPWAY_ADMIN_TOKEN: 'slp_operator-chosen-admin-token-000' });
    const res = await fetch(`${s.url}/v1.1/admin/tokens`, { headers: { 'X-Auth-Token': 'slp_operator-chosen-admin-token-000' } });
    expect(res.status).toBe(200);
    await stopMain(s.child);
  });

  it('says what to install when java is missing', () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'slipway-start-'));
    dirs.push(dataDir);
    let status = 0;
    let stderr = '';
    try {
      execFileSync(tsx, ['infra/local/main.ts'], {
        cwd: root,
        // node_modules/.bin has node (22) but there is no java on this PATH.
        env: callerFreeEnv({ PATH: join(root, 'node_modules/.bin'), PORT: '0', SLIPWAY_DATA_DIR: dataDir }),
        stdio: ['ignore', 'pipe', 'pipe'],
      });
    } catch (err) {
      const e = err as { status: number; stderr: Buffer };
      status = e.status;
      stderr = e.stderr.toString();
    }
    expect(status).toBe(1);
    expect(stderr).toContain('apt-get install -y default-jre-headless');
  });
});
