import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { call, tokenFor, unique } from '../support/api.ts';
import { bin, repo, type Run, runCli } from '../support/cli.ts';

/**
 * The `slipway` CLI as a user runs it: a child process (tsx, Node 22 from node_modules/.bin)
 * against the shared test stack, checked by its exit code, stdout and stderr, and by what the
 * API then does with the tokens it made.
 */
function slipway(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return runCli(args, { env });
}

/** The CLI aimed at the test stack as an admin, the way an operator points it at a deployment. */
const asAdmin = (args: string[]) => slipway([...args, '--api', inject('apiUrl'), '--token', inject('adminToken')]);

const lastLine = (s: string) => s.trimEnd().split('\n').at(-1)!;

async function closedPort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.on('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => res(port));
    });
  });
}

/** Polls until the API answers `want` (or the deadline passes); returns the last status. */
async function statusWithin(ms: number, path: string, token: string, want: number): Promise<number> {
  const until = Date.now() + ms;
  for (;;) {
    const { status } = await call('GET', path, { token });
    if (status === want || Date.now() > until) return status;
    await new Promise((r) => setTimeout(r, 250));
  }
}

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('slipway CLI', () => {
  describe('token create', () => {
    it('prints a summary, then the new token alone on the last line, and that token works', async () => {
      const project = unique('cli');
      const r = await asAdmin(['token', 'create', '--project', project, '--role', 'member', '--expires', '12h', '--description', 'made by the cli test']);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      const token = lastLine(r.stdout);
      expect(token).toMatch(/^slp_[A-Za-z0-9_-]{43}$/);
      // The summary says what was made, and the secret appears exactly once.
      expect(r.stdout).toContain(project);
      expect(r.stdout).toContain('member');
      expect(r.stdout.split(token).length - 1).toBe(1);

      const leases = await call('GET', `/v1.1/${project}/leases`, { token });
      expect(leases.status).toBe(200);
      // It is a member token of that project, not an admin token.
      expect((await call('GET', `/v1.1/${project}/tokens`, { token })).status).toBe(403);

      const listed = (await call('GET', '/v1.1/admin/tokens')).body.tokens.find((t: any) => t.project_id === project);
      expect(listed).toMatchObject({ roles: ['member'], user_id: `${project}-member`, description: 'made by the cli test' });
      const hours = (Date.parse(listed.expires_at) - Date.now()) / 3_600_000;
      expect(hours).toBeGreaterThan(11.9);
      expect(hours).toBeLessThanOrEqual(12);
    });

    it('accepts several roles, a user and an ISO expiry', async () => {
      const project = unique('cli');
      const at = new Date(Date.now() + 2 * 86_400_000);
      at.setUTCMilliseconds(0);
      const r = await asAdmin(['token', 'create', '--project', project, '--role', 'reader', '--role', 'member', '--user', 'alice', '--expires', at.toISOString()]);
      expect(r.code).toBe(0);
      const token = lastLine(r.stdout);
      const list = await call('GET', '/v1.1/admin/tokens');
      const rec = list.body.tokens.find((t: any) => t.project_id === project);
      expect(rec).toMatchObject({ user_id: 'alice', roles: ['reader', 'member'], expires_at: at.toISOString() });
      expect((await call('GET', `/v1.1/${project}/leases`, { token })).status).toBe(200);
    });

    it('feeds `| tail -1` through npm run -s, as the docs show', async () => {
      const project = unique('cli');
      const r = await new Promise<Run>((res, rej) => {
        const child = spawn(
          'bash',
          ['-c', 'set -o pipefail; npm run -s slipway -- token create --project "$P" --role reader --api "$API" --token "$ADMIN" | tail -1'],
          {
            cwd: repo,
            env: { ...process.env, PATH: `${bin}:${process.env.PATH ?? ''}`, P: project, API: inject('apiUrl'), ADMIN: inject('adminToken') },
          },
        );
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
        child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
        child.on('error', rej);
        child.on('close', (code) => res({ code, stdout, stderr }));
      });
      expect(r.code, r.stderr).toBe(0);
      const token = r.stdout.trim();
      expect(token).toMatch(/^slp_\S+$/);
      expect((await call('GET', `/v1.1/${project}/leases`, { token })).status).toBe(200);
    });
  });

  describe('token list and revoke', () => {
    it('lists a token without its secret and revokes it, after which it gets 401', async () => {
      const project = unique('cli');
      const created = await asAdmin(['token', 'create', '--project', project, '--role', 'reader']);
      expect(created.code).toBe(0);
      const token = lastLine(created.stdout);
      const id = /Created token ([0-9a-f]{16})/.exec(created.stdout)?.[1];
      expect(id).toBeDefined();

      const list = await asAdmin(['token', 'list']);
      expect(list.code).toBe(0);
      expect(list.stdout.split('\n')[0]).toMatch(/^ID\s+PROJECT\s+USER\s+ROLES\s+EXPIRES/);
      const row = list.stdout.split('\n').find((l) => l.startsWith(id!));
      expect(row).toMatch(new RegExp(`^${id}\\s+${project}\\s+${project}-reader\\s+reader\\s+never`));
      expect(list.stdout).not.toContain(token);
      expect(list.stdout).not.toContain(inject('adminToken'));

      const json = await asAdmin(['token', 'list', '--json']);
      expect(json.code).toBe(0);
      const parsed = JSON.parse(json.stdout) as { tokens: { id: string; project_id: string }[] };
      expect(parsed.tokens.find((t) => t.id === id)).toMatchObject({ project_id: project });
      expect(json.stdout).not.toContain(token);

      expect((await call('GET', `/v1.1/${project}/leases`, { token })).status).toBe(200);
      const revoked = await asAdmin(['token', 'revoke', id!]);
      expect(revoked.code).toBe(0);
      expect(revoked.stdout).toContain(id);
      expect((await asAdmin(['token', 'list'])).stdout).not.toContain(id);
      // Surfaces cache valid tokens for up to 10 s (layers/http/token-cache.ts), and
      // this one was just used: it must be refused once that window has passed.
      expect(await statusWithin(15_000, `/v1.1/${project}/leases`, token, 401)).toBe(401);

      const again = await asAdmin(['token', 'revoke', id!]);
      expect(again.code).toBe(1);
      expect(again.stderr).toBe(`error: Token ${id} not found (HTTP 404)\n`);
    });
  });

  describe('nodes list and leases list', () => {
    it('prints compact tables and raw JSON, for the admin project or --project', async () => {
      const name = unique('cli-node');
      const host = await call('POST', '/v1/os-hosts', { body: { name, vcpus: 4, memory_mb: 2048 } });
      expect(host.status).toBe(201);
      const member = await tokenFor('member');
      const start = new Date(Date.now() + 30 * 86_400_000);
      const lease = await call('POST', '/v1/leases', {
        token: member.token,
        body: {
          name: 'cli-lease',
          start_date: start.toISOString().slice(0, 16).replace('T', ' '),
          end_date: new Date(start.getTime() + 3_600_000).toISOString().slice(0, 16).replace('T', ' '),
          reservations: [{ resource_type: 'physical:host', min: 1, max: 1, hypervisor_properties: JSON.stringify(['=', '$vcpus', '4']), resource_properties: '' }],
        },
      });
      expect(lease.status, lease.text).toBe(201);
      const leaseId = lease.body.lease.id as string;

      const nodes = await asAdmin(['nodes', 'list']);
      expect(nodes.code, nodes.stderr).toBe(0);
      expect(nodes.stdout.split('\n')[0]).toMatch(/^ID\s+NAME\s+HOST_ID\s+RESERVABLE/);
      expect(nodes.stdout.split('\n').find((l) => l.includes(` ${name} `))).toMatch(new RegExp(`\\s${name}\\s+${host.body.host.id}\\s+true\\s+4\\s+2048\\b`));

      const nodesJson = JSON.parse((await asAdmin(['nodes', 'list', '--json'])).stdout) as { nodes: { name: string }[] };
      expect(nodesJson.nodes.some((n) => n.name === name)).toBe(true);

      const asMember = await slipway(['leases', 'list', '--project', member.project, '--api', inject('apiUrl'), '--token', member.token]);
      expect(asMember.code, asMember.stderr).toBe(0);
      const rows = asMember.stdout.trimEnd().split('\n');
      expect(rows[0]).toMatch(/^ID\s+NAME\s+PROJECT\s+STATUS\s+START\s+END/);
      expect(rows).toHaveLength(2);
      expect(rows[1]).toMatch(new RegExp(`^${leaseId}\\s+cli-lease\\s+${member.project}\\s+PENDING\\s`));

      const adminView = await asAdmin(['leases', 'list']);
      expect(adminView.stdout).toContain(leaseId);
      const leasesJson = JSON.parse((await asAdmin(['leases', 'list', '--json'])).stdout) as { leases: { id: string; status: string }[] };
      expect(leasesJson.leases.find((l) => l.id === leaseId)).toMatchObject({ status: 'PENDING' });

      // A project token of another project: the API's 401, shown as an error.
      const other = await slipway(['leases', 'list', '--api', inject('apiUrl'), '--token', member.token]);
      expect(other.code).toBe(1);
      expect(other.stderr).toMatch(/^error: Token tenant != requested tenant \(HTTP 401\)\n/);
    });
  });

  describe('targets', () => {
    it('acts on the local stack of PORT and SLIPWAY_DATA_DIR with no flags (admin-token file)', async () => {
      const dataDir = mkdtempSync(join(tmpdir(), 'slipway-cli-'));
      dirs.push(dataDir);
      writeFileSync(join(dataDir, 'admin-token'), `${inject('adminToken')}\n`);
      const port = new URL(inject('apiUrl')).port;
      const r = await slipway(['token', 'list'], { PORT: port, SLIPWAY_DATA_DIR: dataDir });
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/^ID\s+PROJECT/);
      expect(r.stdout).toContain('bootstrap admin token');
    });

    it('prefers SLIPWAY_ADMIN_TOKEN, and takes SLIPWAY_API_URL / SLIPWAY_TOKEN', async () => {
      const port = new URL(inject('apiUrl')).port;
      const viaEnv = await slipway(['token', 'list', '--json'], { PORT: port, SLIPWAY_DATA_DIR: '/nonexistent', SLIPWAY_ADMIN_TOKEN: inject('adminToken') });
      expect(viaEnv.code, viaEnv.stderr).toBe(0);
      expect(JSON.parse(viaEnv.stdout).tokens.length).toBeGreaterThan(0);

      const remote = await slipway(['token', 'list', '--json'], { SLIPWAY_API_URL: inject('apiUrl'), SLIPWAY_TOKEN: inject('adminToken') });
      expect(remote.code, remote.stderr).toBe(0);

      const wrong = await slipway(['token', 'list'], { PORT: port, SLIPWAY_ADMIN_TOKEN: 'slp_wrong-token-0000000000' });
      expect(wrong.code).toBe(1);
      expect(wrong.stderr).toMatch(/^error: Authentication required.* \(HTTP 401\)\n$/);
    });

    it('never sends the local admin token to another --api', async () => {
      const r = await slipway(['token', 'list', '--api', inject('apiUrl')], { PORT: String(await closedPort()), SLIPWAY_ADMIN_TOKEN: inject('adminToken') });
      expect(r.code).toBe(2);
      expect(r.stderr).toContain('pass --token TOKEN or set SLIPWAY_TOKEN');
      expect(r.stdout).toBe('');
    });

    it('says clearly that the stack is not running, and how to start it', async () => {
      const port = await closedPort();
      const local = await slipway(['nodes', 'list'], { PORT: String(port), SLIPWAY_ADMIN_TOKEN: 'slp_any-token-000000000000' });
      expect(local.code).toBe(1);
      expect(local.stderr).toContain(`not running at http://127.0.0.1:${port}`);
      expect(local.stderr).toContain('npm start');
      expect(local.stderr).not.toContain('slp_any-token');
      expect(local.stdout).toBe('');

      const remote = await slipway(['token', 'list', '--api', `http://127.0.0.1:${port}`, '--token', 'slp_secret-000000000000']);
      expect(remote.code).toBe(1);
      expect(remote.stderr).toContain(`not running at http://127.0.0.1:${port}`);
      expect(remote.stderr).not.toContain('slp_secret');
    });
  });

  describe('errors', () => {
    it('exits 1 with the API error message', async () => {
      const member = await tokenFor('member');
      const r = await slipway(['token', 'list', '--api', inject('apiUrl'), '--token', member.token, '--as-project', member.project]);
      expect(r.code).toBe(1);
      expect(r.stderr).toBe('error: This operation is restricted to administrators (HTTP 403)\n');
      expect(r.stdout).toBe('');

      const tooLong = await asAdmin(['token', 'create', '--project', unique('cli'), '--role', 'member', '--description', 'x'.repeat(300)]);
      expect(tooLong.code).toBe(1);
      expect(tooLong.stderr).toMatch(/^error: description: .* \(HTTP 400\)\n$/s);
    });

    it.each([
      [['frobnicate'], /unknown command: frobnicate/],
      [[], /missing command/],
      [['token'], /token needs a subcommand/],
      [['token', 'create', '--role', 'member'], /--project is required/],
      [['token', 'create', '--project', 'p'], /--role is required/],
      [['token', 'create', '--project', 'p', '--role', 'king'], /unknown role king/],
      [['token', 'create', '--project', 'p', '--role', 'member', '--expires', 'soon'], /--expires must be like 30d/],
      [['token', 'create', '--project', 'p', '--role', 'member', '--expires', '2001-01-01T00:00:00Z'], /in the past/],
      [['token', 'create', '--project'], /argument missing|--project/],
      [['token', 'list', '--bogus'], /Unknown option '--bogus'/],
      [['token', 'list', '--role', 'admin'], /token list does not take --role/],
      [['token', 'revoke'], /missing ID/],
      [['token', 'revoke', 'a', 'b'], /unexpected argument "b"/],
      [['token', 'create', '--project', 'p', '--role', 'admin', '--region', 'eu-west-1'], /--region only applies with --table/],
    ])('exits 2 on bad usage: %j', async (args, message) => {
      const r = await asAdmin(args);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(r.stderr).toMatch(/--help/);
      expect(r.stdout).toBe('');
    });
  });

  describe('help', () => {
    it('prints usage with --help, help, and per command', async () => {
      const main = await slipway(['--help']);
      expect(main.code).toBe(0);
      for (const cmd of ['token create', 'token list', 'token revoke', 'nodes list', 'leases list', '--api URL', '--token TOKEN']) {
        expect(main.stdout).toContain(cmd);
      }
      expect((await slipway(['help'])).stdout).toBe(main.stdout);

      const create = await slipway(['token', 'create', '--help']);
      expect(create.code).toBe(0);
      expect(create.stdout).toMatch(/^Usage: npm run slipway -- token create --project P --role R/);
      for (const opt of ['--expires', '--table NAME', '--dynamodb-endpoint', '--region']) expect(create.stdout).toContain(opt);
      expect((await slipway(['help', 'token', 'create'])).stdout).toBe(create.stdout);
      expect((await slipway(['help', 'leases', 'list'])).stdout).toMatch(/^Usage: npm run slipway -- leases list/);
      expect((await slipway(['token', '--help'])).stdout).toContain('token revoke');
      const none = await slipway(['help', 'nothing']);
      expect(none.code).toBe(2);
    });
  });

  describe('bootstrap into DynamoDB (--table)', () => {
    it('writes a usable token straight into the table, with no API involved', async () => {
      const project = unique('boot');
      const r = await slipway([
        'token', 'create', '--table', 'slipway', '--dynamodb-endpoint', inject('dynamoEndpoint'),
        '--project', project, '--role', 'admin', '--description', 'bootstrap from the cli test',
      ]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain('DynamoDB table slipway');
      const token = lastLine(r.stdout);
      expect(token).toMatch(/^slp_/);
      // An admin of its own project: token management works on its own path.
      const list = await call('GET', `/v1.1/${project}/tokens`, { token });
      expect(list.status).toBe(200);
      expect(list.body.tokens.find((t: any) => t.project_id === project)).toMatchObject({
        roles: ['admin'],
        description: 'bootstrap from the cli test',
      });
    });

    it('table backfill gives a node written before the list indexes its index entries again', async () => {
      const name = unique('old-node');
      const created = await call('POST', '/v1/nodes', { headers: { 'X-OpenStack-Ironic-API-Version': '1.78' }, body: { name, driver: 'ipmi', driver_info: { ipmi_address: '10.9.0.77', ipmi_username: 'u', ipmi_password: 'p' } } });
      expect(created.status, created.text).toBe(201);
      const listed = async () => ((await call('GET', '/v1/nodes?limit=1000&fields=name', { headers: { 'X-OpenStack-Ironic-API-Version': '1.78' } })).body.nodes as { name: string }[]).some((n) => n.name === name);
      expect(await listed()).toBe(true);
      // As an older release wrote it: without the creation-order index the list reads.
      const doc = DynamoDBDocumentClient.from(new DynamoDBClient({ endpoint: inject('dynamoEndpoint'), region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'x' } }));
      await doc.send(new UpdateCommand({ TableName: 'slipway', Key: { PK: `NODE#${created.body.uuid}`, SK: 'META' }, UpdateExpression: 'REMOVE GSI6PK, GSI6SK' }));
      expect(await listed()).toBe(false);
      const r = await slipway(['table', 'backfill', '--table', 'slipway', '--dynamodb-endpoint', inject('dynamoEndpoint'), '--json']);
      expect(r.code, r.stderr).toBe(0);
      const counts = JSON.parse(r.stdout);
      expect(counts.nodes).toBeGreaterThanOrEqual(1);
      expect(counts).toHaveProperty('leases');
      expect(counts).toHaveProperty('drydock_project_records');
      expect(await listed()).toBe(true);
      expect((await call('DELETE', `/v1/nodes/${created.body.uuid}`, { headers: { 'X-OpenStack-Ironic-API-Version': '1.78' } })).status).toBe(204);
    });

    it('fails with a clear message for a missing table, unreachable DynamoDB, or --api with --table', async () => {
      const missing = await slipway(['token', 'create', '--table', 'no-such-table', '--dynamodb-endpoint', inject('dynamoEndpoint'), '--project', 'p', '--role', 'admin']);
      expect(missing.code).toBe(1);
      expect(missing.stderr).toBe(`error: DynamoDB table no-such-table not found at ${inject('dynamoEndpoint')}\n`);
      expect(missing.stdout).toBe('');

      const port = await closedPort();
      const down = await slipway(['token', 'create', '--table', 'slipway', '--dynamodb-endpoint', `http://127.0.0.1:${port}`, '--project', 'p', '--role', 'admin']);
      expect(down.code).toBe(1);
      expect(down.stderr).toBe(`error: DynamoDB is not reachable at http://127.0.0.1:${port} (connection refused)\n`);

      const withApi = await slipway(['token', 'create', '--table', 'slipway', '--api', inject('apiUrl'), '--project', 'p', '--role', 'admin']);
      expect(withApi.code).toBe(2);
      expect(withApi.stderr).toContain('--api does not apply with --table');
    });
  });
});
