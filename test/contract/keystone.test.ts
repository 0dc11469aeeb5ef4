import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiUrl, call, unique } from '../support/api.ts';
import { blazarBin, explain, jsonFrom, type ProcResult, runCommand } from './clients.ts';

/**
 * Keystone sign-in proven with the REAL clients from Debian (issue 15): python-openstackclient
 * 6.0.0 with keystoneauth1 5.0.0, its python3-blazarclient and python3-ironicclient plugins, and
 * the `blazar` CLI, each reading a `clouds.yaml` (OS_CLIENT_CONFIG_FILE) with a password cloud
 * and an application-credential cloud, against the local stack. Nothing here uses an admin
 * token except to create the user.
 */
let dir: string;
let user: { id: string; name: string; project: string; password: string };
let appCred: { id: string; name: string; secret: string };

/** A client run with the clouds.yaml of this file, and nothing of the caller's OpenStack setup. */
function run(cmd: string, args: string[], extra: Record<string, string> = {}): Promise<ProcResult> {
  return runCommand(cmd, args, {
    env: { OS_CLIENT_CONFIG_FILE: join(dir, 'clouds.yaml'), HOME: dir, XDG_CACHE_HOME: join(dir, 'cache'), XDG_CONFIG_HOME: join(dir, 'config'), ...extra },
    timeoutMs: 60_000,
  });
}

async function ok(cmd: string, ...args: string[]): Promise<ProcResult> {
  const r = await run(cmd, args);
  expect(r.code, `${cmd} ${args.join(' ')}\n${explain(r)}`).toBe(0);
  return r;
}

function writeClouds(clouds: Record<string, unknown>): void {
  // JSON is YAML: the client parses this file with its YAML loader.
  writeFileSync(join(dir, 'clouds.yaml'), JSON.stringify({ clouds }, null, 2));
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'slipway-keystone-'));
  user = { id: '', name: unique('alice'), project: unique('lab'), password: `s3cret ${unique('pw')} with spaces` };
  const res = await call('POST', '/v3/users', { body: { user: { name: user.name, password: user.password, default_project_id: user.project, roles: ['member'] } } });
  expect(res.status, res.text).toBe(201);
  user.id = res.body.user.id;
  writeClouds({
    slipway: {
      auth: {
        auth_url: `${apiUrl()}/v3`,
        username: user.name,
        password: user.password,
        project_name: user.project,
        user_domain_name: 'Default',
        project_domain_name: 'Default',
      },
      region_name: 'RegionOne',
      interface: 'public',
      identity_api_version: 3,
    },
  });
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('openstack with a password cloud', () => {
  it('token issue: signs in through the catalog discovery of /v3', async () => {
    const r = await ok('openstack', '--os-cloud', 'slipway', 'token', 'issue', '-f', 'json');
    const t = jsonFrom(r.stdout);
    expect(t.id).toMatch(/^slp_/);
    expect(t.project_id).toBe(user.project);
    expect(t.user_id).toBe(user.id);
    expect(Date.parse(t.expires)).toBeGreaterThan(Date.now());
    // The token the client got works on the native surface too.
    expect((await call('GET', `/v1.1/${user.project}/leases`, { token: t.id })).status).toBe(200);
  });

  it('reservation lease list: the Blazar plugin finds /v1 in the catalog and shows the project\'s lease', async () => {
    // A future lease of the user's project on a host of this file's own, made with a Keystone token.
    const tag = unique('ks-tag');
    const host = await call('POST', '/v1/os-hosts', { body: { name: unique('ks-host'), keystone_tag: tag } });
    expect(host.status, host.text).toBe(201);
    const token = (await call('POST', '/v3/auth/tokens', { token: null, body: pwAuth() })).headers.get('x-subject-token')!;
    const at = (h: number) => new Date(Date.now() + h * 3600_000).toISOString().slice(0, 16).replace('T', ' ');
    const name = unique('ks-lease');
    const lease = await call('POST', '/v1/leases', {
      token,
      body: {
        name,
        start_date: at(24),
        end_date: at(25),
        reservations: [{ resource_type: 'physical:host', min: 1, max: 1, hypervisor_properties: '', resource_properties: JSON.stringify(['==', '$keystone_tag', tag]) }],
        events: [],
      },
    });
    expect(lease.status, lease.text).toBe(201);
    const r = await ok('openstack', '--os-cloud', 'slipway', 'reservation', 'lease', 'list', '-f', 'json');
    expect(jsonFrom(r.stdout).map((l: any) => l.name)).toContain(name);
  });

  it('baremetal node list: the Ironic plugin finds / in the catalog', async () => {
    const r = await ok('openstack', '--os-cloud', 'slipway', 'baremetal', 'node', 'list', '-f', 'json');
    expect(Array.isArray(jsonFrom(r.stdout))).toBe(true);
  });

  it('application credential create, then an application-credential cloud signs in and lists', async () => {
    const name = unique('ci');
    const r = await ok('openstack', '--os-cloud', 'slipway', 'application', 'credential', 'create', name, '--role', 'member', '--description', 'CI', '-f', 'json');
    const c = jsonFrom(r.stdout);
    expect(c.name).toBe(name);
    expect(c.description).toBe('CI');
    expect(String(c.roles)).toContain('member');
    expect(c.secret).toBeTruthy();
    expect(c.project_id).toBe(user.project);
    appCred = { id: c.id, name, secret: c.secret };
    writeClouds({
      slipway: readClouds().slipway,
      'slipway-appcred': {
        auth_type: 'v3applicationcredential',
        auth: { auth_url: `${apiUrl()}/v3`, application_credential_id: appCred.id, application_credential_secret: appCred.secret },
        region_name: 'RegionOne',
        interface: 'public',
        identity_api_version: 3,
      },
    });
    const t = jsonFrom((await ok('openstack', '--os-cloud', 'slipway-appcred', 'token', 'issue', '-f', 'json')).stdout);
    expect(t.project_id).toBe(user.project);
    expect(t.user_id).toBe(user.id);
    await ok('openstack', '--os-cloud', 'slipway-appcred', 'reservation', 'lease', 'list', '-f', 'json');
    await ok('openstack', '--os-cloud', 'slipway-appcred', 'baremetal', 'node', 'list', '-f', 'json');

    const listed = jsonFrom((await ok('openstack', '--os-cloud', 'slipway', 'application', 'credential', 'list', '-f', 'json')).stdout);
    expect(listed.map((x: any) => x.Name)).toContain(name);
    await ok('openstack', '--os-cloud', 'slipway', 'application', 'credential', 'delete', name);
    const after = await run('openstack', ['--os-cloud', 'slipway-appcred', 'token', 'issue', '-f', 'json']);
    expect(after.code, explain(after)).not.toBe(0);
    expect(after.stderr).toMatch(/401|requires authentication/);
  });

  it('a wrong password fails with the Keystone 401 message', async () => {
    const clouds = readClouds();
    writeClouds({ ...clouds, wrong: { ...clouds.slipway, auth: { ...clouds.slipway.auth, password: 'not-the-password' } } });
    const r = await run('openstack', ['--os-cloud', 'wrong', 'token', 'issue']);
    expect(r.code, explain(r)).not.toBe(0);
    expect(r.stderr).toMatch(/The request you have made requires authentication/);
  });
});

describe('blazar CLI', () => {
  it('has no --os-cloud (python3-blazarclient 3.5.0 does not read clouds.yaml): it refuses the option', async () => {
    const r = await run(blazarBin(), ['--os-cloud', 'slipway', 'lease-list']);
    expect(r.code, explain(r)).not.toBe(0);
    expect(r.stderr).toMatch(/unrecognized arguments: --os-cloud|--os-cloud/);
  });

  it('lease-list signs in with the same password through keystoneauth (--os-auth-url …)', async () => {
    const r = await ok(
      blazarBin(),
      '--os-auth-type', 'password',
      '--os-auth-url', `${apiUrl()}/v3`,
      '--os-username', user.name,
      '--os-password', user.password,
      '--os-project-name', user.project,
      '--os-user-domain-name', 'Default',
      '--os-project-domain-name', 'Default',
      '--os-region-name', 'RegionOne',
      'lease-list', '-f', 'json',
    );
    expect(Array.isArray(jsonFrom(r.stdout))).toBe(true);
  });
});

function pwAuth() {
  return {
    auth: {
      identity: { methods: ['password'], password: { user: { name: user.name, domain: { id: 'default' }, password: user.password } } },
      scope: { project: { name: user.project, domain: { id: 'default' } } },
    },
  };
}

function readClouds(): Record<string, any> {
  return JSON.parse(readFileSync(join(dir, 'clouds.yaml'), 'utf8')).clouds;
}
