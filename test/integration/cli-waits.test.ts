import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Agent } from '../../agent/runner.ts';
import { type RedfishSim, startRedfishSim } from '../../agent/sim/redfish.ts';
import { adminToken, apiUrl, call, tokenFor, unique } from '../support/api.ts';
import { startTestAgent } from '../support/agent.ts';
import { type CliOptions, type Run, runCli } from '../support/cli.ts';
import { siteDesign } from '../support/drydock-site.ts';
import { blazarIn, hostPool } from '../support/fixtures.ts';

/**
 * The `slipway` commands that wait (issue 15: "the CLI waits visibly"), run as a user runs them —
 * a child process against the shared test stack — and judged by exit status, stdout and stderr:
 * `lease create --wait`, `lease wait`, `task wait` with its nodes' progress, `sites list`; plain
 * timestamped lines when stderr is no terminal, the spinner and bar when it is one
 * (SLIPWAY_PROGRESS=tty, the seam a terminal-less test uses), --timeout and Ctrl-C.
 */
/** The CLI with `token` (admin by default) against the shared stack; `onStderr` sees output as it comes. */
function slipway(args: string[], opts: { token?: string } & Omit<CliOptions, 'input'> = {}): Promise<Run> {
  return runCli([...args, '--api', apiUrl(), '--token', opts.token ?? adminToken()], opts);
}

const TIMESTAMPED = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z \S/;

/** Every line of plain progress output: timestamped, or the command's own one-line notes and errors. */
function expectPlain(stderr: string): string[] {
  expect(stderr).not.toMatch(/[\r\u001b]/);
  const lines = stderr.trimEnd().split('\n').filter(Boolean);
  for (const l of lines) expect(l).toMatch(/^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z |Created lease |error: |  )/);
  return lines;
}

async function memberWithHosts(n: number) {
  const pool = await hostPool(n);
  const member = await tokenFor('member');
  return { ...pool, member };
}

// Drydock: designs served over HTTP (loopback, which the local stack fetches itself).
let designServer: Server;
let designUrl = '';
const designs = new Map<string, string>();
let sim: RedfishSim | undefined;
let agent: Agent | undefined;
const SITE = unique('cli-site');
/** Two loopback BMC addresses of this file: a Redfish simulator on the first, nothing on the second. */
const octet = 100 + Math.floor(Math.random() * 100);
const BMC = [`127.0.0.${octet}`, `127.0.0.${octet + 1}`];

beforeAll(async () => {
  designServer = createServer((req, res) => {
    const body = designs.get(req.url ?? '');
    if (body === undefined) res.writeHead(404).end('no such design');
    else res.writeHead(200, { 'Content-Type': 'application/x-yaml' }).end(body);
  });
  await new Promise<void>((r) => designServer.listen(0, '127.0.0.1', r));
  designUrl = `http://127.0.0.1:${(designServer.address() as { port: number }).port}`;
  sim = await startRedfishSim({ host: BMC[0]!, username: 'admin', password: 'sim-secret', systems: [{ id: '1' }] });
  const port = Number(new URL(sim.url).port);
  // The test site's design, with this file's node names, MACs and BMC addresses (the shared
  // stack's inventory is shared with other files).
  const mac = `52:54:${octet.toString(16)}:${Math.floor(Math.random() * 256).toString(16).padStart(2, '0')}:00:`;
  designs.set(
    '/site.yaml',
    siteDesign({ site: SITE, redfishPort: port, nodes: [`${SITE}-a`, `${SITE}-b`], root: '/tmp/unused' })
      // Whole addresses only: a first replacement to 127.0.0.120-129 must not be read as 127.0.0.12.
      .replace(/address: 127\.0\.0\.11$/gm, `address: ${BMC[0]}`)
      .replace(/address: 127\.0\.0\.12$/gm, `address: ${BMC[1]}`)
      .replaceAll('52:54:00:5e:00:', mac),
  );
  agent = await startTestAgent(SITE);
}, 60_000);

afterAll(async () => {
  await agent?.stop();
  await sim?.stop();
  await new Promise((r) => designServer?.close(r));
});

async function createTask(action: string, ref: string, nodes?: string[]): Promise<string> {
  const body = { action, design_ref: ref, node_filter: nodes ? { filter_set_type: 'union', filter_set: [{ filter_type: 'union', node_names: nodes }] } : null };
  const res = await call('POST', '/api/v1.0/tasks', { body });
  expect(res.status, res.text).toBe(201);
  return res.body.task_id as string;
}

describe('slipway lease create --wait / lease wait', () => {
  it('creates a lease and follows it until ACTIVE, in plain lines when stderr is no terminal', async () => {
    const { filter, member } = await memberWithHosts(1);
    const name = unique('cli-wait');
    const r = await slipway(['lease', 'create', '--name', name, '--hosts', '1', '--resource-properties', filter, '--end', '+2h', '--wait'], { token: member.token });
    expect(r.code, r.stderr).toBe(0);
    const id = /Created lease \S+ \(([0-9a-f-]{36})\)/.exec(r.stderr)?.[1];
    expect(id).toBeDefined();
    expect(r.stdout).toMatch(new RegExp(`^Lease ${name} \\(${id}\\) is ACTIVE until \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d UTC\\.\\n$`));
    expectPlain(r.stderr);
    const lease = (await call('GET', `/v1/leases/${id}`, { token: member.token })).body.lease;
    expect(lease).toMatchObject({ name, status: 'ACTIVE' });
    expect((await call('GET', `/v1.1/admin/leases/${id}`)).body.lease.reservations[0].nodes).toHaveLength(1);
  });

  it('without --wait prints the lease at once; --json gives the API answer', async () => {
    const { filter, member } = await memberWithHosts(1);
    const r = await slipway(['lease', 'create', '--name', unique('later'), '--resource-properties', filter, '--start', '+1d', '--end', '+1h'], { token: member.token });
    expect(r.code, r.stderr).toBe(0);
    // A day ahead, rounded up to the minute: 23h 59m, or a day and some seconds (shown as 1d 00h).
    expect(r.stdout).toMatch(/^Created lease \S+ \([0-9a-f-]{36}\) in project \S+: 1 host\(s\), \S+ \S+ UTC to \S+ \S+ UTC, status PENDING \(starts in (2[34]h \d\dm|1d 00h); --wait waits for it\)\n$/);
    expect(r.stderr).toBe('');
    const json = await slipway(['lease', 'create', '--name', unique('json'), '--resource-properties', filter, '--start', '+2d', '--end', '+1h', '--json'], { token: member.token });
    expect(json.code, json.stderr).toBe(0);
    expect(JSON.parse(json.stdout).lease).toMatchObject({ status: 'PENDING' });
  });

  it('counts down to a later start, one line per state, and gives up after --timeout with exit 3', async () => {
    const { filter, member } = await memberWithHosts(1);
    const t0 = Date.now();
    const r = await slipway(['lease', 'create', '--name', unique('countdown'), '--resource-properties', filter, '--start', '+1d', '--end', '+1h', '--wait', '--timeout', '3s'], { token: member.token });
    expect(r.code).toBe(3);
    expect(Date.now() - t0).toBeLessThan(20_000);
    const lines = expectPlain(r.stderr);
    // The countdown changes every second; its line is printed once.
    expect(lines.filter((l) => / PENDING: starts in /.test(l))).toHaveLength(1);
    expect(lines.find((l) => / PENDING: starts in /.test(l))).toMatch(TIMESTAMPED);
    expect(r.stderr).toMatch(/error: timed out after 3s waiting for lease [0-9a-f-]{36}; it goes on on the server \(`npm run slipway -- lease wait [0-9a-f-]{36}` waits again\)\n$/);
    expect(r.stdout).toBe('');
  });

  it('draws a spinner on one redrawn line when stderr is a terminal', async () => {
    const { filter, member } = await memberWithHosts(1);
    const r = await slipway(['lease', 'create', '--name', unique('tty'), '--resource-properties', filter, '--start', '+1d', '--end', '+1h', '--wait', '--timeout', '2s'], {
      token: member.token,
      env: { SLIPWAY_PROGRESS: 'tty' },
    });
    expect(r.code).toBe(3);
    // Redrawn in place: carriage return + erase line, a braille spinner frame, the state.
    const frames = r.stderr.split('\r\u001b[2K').filter((f) => /PENDING: starts in/.test(f));
    expect(frames.length).toBeGreaterThan(3);
    for (const f of frames) expect(f).toMatch(/^[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏] lease tty-\S+ PENDING: starts in 2[34]h \d\dm \(\d{4}-\d\d-\d\d \d\d:\d\d UTC\)$/);
    // Several frames of the spinner, not one.
    expect(new Set(frames.map((f) => f[0])).size).toBeGreaterThan(3);
    expect(r.stderr).not.toMatch(TIMESTAMPED);
    // The spinner line is cleared before the error is printed on its own line.
    expect(r.stderr).toMatch(/\r\u001b\[2Kerror: timed out after 2s/);
  });

  it('exits 1 with the reason when the lease ends in ERROR', async () => {
    const { filter, member, hosts } = await memberWithHosts(1);
    // Maintenance is a state of a node's BMC: register one (at an address nothing answers, for a
    // site without an agent: nothing is ever sent to it).
    const bmc = await call('POST', '/v1/nodes', {
      headers: { 'X-OpenStack-Ironic-API-Version': '1.78' },
      body: { name: hosts[0]!.name, driver: 'redfish', conductor_group: unique('no-agent'), driver_info: { redfish_address: 'http://127.0.0.1:9', redfish_system_id: '1', redfish_username: 'root', redfish_password: 'calvin' } },
    });
    expect(bmc.status, bmc.text).toBe(201);
    const name = unique('doomed');
    // Starts at the next minute but one; its only host goes into maintenance before that, and no
    // other host can take its place: the start fails the lease (ERROR) with the reason.
    const created = await call('POST', '/v1/leases', {
      token: member.token,
      body: { name, start_date: blazarIn(2), end_date: blazarIn(90), reservations: [{ resource_type: 'physical:host', min: 1, max: 1, hypervisor_properties: '', resource_properties: filter }], events: [] },
    });
    expect(created.status, created.text).toBe(201);
    const id = created.body.lease.id as string;
    const m = await call('PUT', `/v1/nodes/${hosts[0]!.name}/maintenance`, { headers: { 'X-OpenStack-Ironic-API-Version': '1.78' }, body: { reason: 'fan failure' } });
    expect(m.status, m.text).toBe(202);
    const r = await slipway(['lease', 'wait', id, '--timeout', '200s'], { token: member.token });
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`error: lease ${name} \\(${id}\\) failed: ERROR: start_lease: The lease cannot start: node\\(s\\) ${hosts[0]!.name} .* out of service`));
    expect(r.stdout).toBe('');
    expectPlain(r.stderr);
  }, 200_000);

  it('refuses bad input before calling the API (exit 2), and an impossible lease is the API error (exit 1)', async () => {
    for (const [args, msg] of [
      [['--end', '+1h'], /--name is required/],
      [['--name', 'x'], /--end is required/],
      [['--name', 'x', '--end', 'tomorrow'], /--end must be/],
      [['--name', 'x', '--end', '+1h', '--hosts', '2', '--min', '1'], /give one or the other/],
      [['--name', 'x', '--end', '+1h', '--min', '3', '--max', '2'], /--max \(2\) must be at least --min \(3\)/],
      [['--name', 'x', '--end', '+1h', '--resource-properties', '[oops'], /must be a JSON filter/],
      [['--name', 'x', '--end', '+1h', '--timeout', '5s'], /--timeout only applies with --wait/],
      [['--name', 'x', '--end', '+1h', '--wait', '--timeout', 'soon'], /--timeout must be a duration/],
    ] as const) {
      const r = await slipway(['lease', 'create', ...args]);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2);
      expect(r.stderr).toMatch(msg);
    }
    const none = await slipway(['lease', 'create', '--name', unique('none'), '--resource-properties', JSON.stringify(['==', '$pool', unique('no-pool')]), '--end', '+1h', '--wait']);
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/^error: .*(HTTP 409)/m);
  });

  it('Ctrl-C stops waiting at once, clears the spinner and exits 130; the lease stays', { timeout: 20_000 }, async () => {
    const { filter, member } = await memberWithHosts(1);
    let sent = false;
    const r = await slipway(['lease', 'create', '--name', unique('ctrlc'), '--resource-properties', filter, '--start', '+1d', '--end', '+1h', '--wait'], {
      token: member.token,
      env: { SLIPWAY_PROGRESS: 'tty' },
      onStderr: (soFar, child) => {
        if (!sent && /PENDING/.test(soFar)) {
          sent = true;
          child.kill('SIGINT');
        }
      },
    });
    expect(sent).toBe(true);
    expect(r.code).toBe(130);
    expect(r.stderr).toMatch(/\r\u001b\[2Kinterrupted: stopped waiting for lease [0-9a-f-]{36}; it goes on on the server/);
    const id = /Created lease \S+ \(([0-9a-f-]{36})\)/.exec(r.stderr)![1];
    expect((await call('GET', `/v1/leases/${id}`, { token: member.token })).body.lease.status).toBe('PENDING');
  });
});

describe('slipway task wait', () => {
  it('exits 0 for a task that succeeds', async () => {
    const id = await createTask('validate_design', `${designUrl}/site.yaml`);
    const r = await slipway(['task', 'wait', id]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe(`Task ${id} validate_design is complete: success\n`);
    expectPlain(r.stderr);
  });

  it('exits 1 with the error messages for a task that fails', async () => {
    const id = await createTask('validate_design', `${designUrl}/missing.yaml`);
    const r = await slipway(['task', 'wait', id]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe(`Task ${id} validate_design is complete: failure\n`);
    expect(r.stderr).toMatch(new RegExp(`error: task ${id} did not succeed: failure\\n  .*HTTP 404`));
  });

  it("shows each node's outcome and exits 1 on partial_success (one BMC answers, one does not)", async () => {
    const nodes = [`${SITE}-a`, `${SITE}-b`];
    const id = await createTask('verify_nodes', `${designUrl}/site.yaml`);
    const r = await slipway(['task', 'wait', id, '--timeout', '120s']);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stdout).toBe(`Task ${id} verify_nodes is complete: partial_success\n  successes: ${nodes[0]}\n  failures: ${nodes[1]}\n`);
    const lines = expectPlain(r.stderr);
    expect(lines.filter((l) => TIMESTAMPED.test(l) && l.endsWith(`node ${nodes[0]}: success`))).toHaveLength(1);
    expect(lines.filter((l) => TIMESTAMPED.test(l) && l.endsWith(`node ${nodes[1]}: failure`))).toHaveLength(1);
    expect(r.stderr).toContain(`error: task ${id} did not succeed: partial_success`);
  }, 150_000);

  it('draws a bar over the nodes on a terminal; --json prints the task', async () => {
    const node = `${SITE}-a`;
    const id = await createTask('verify_nodes', `${designUrl}/site.yaml`, [node]);
    const r = await slipway(['task', 'wait', id, '--json', '--timeout', '120s'], { env: { SLIPWAY_PROGRESS: 'tty' } });
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ task_id: id, status: 'complete', result: { status: 'success', successes: [node] } });
    expect(r.stderr).toContain(`node ${node}: success\n`);
    // Redrawn frames only (a task this small may be complete at the first look: then none), each
    // with the bar over its one node once the subtask exists.
    const frames = r.stderr.split('\r\u001b[2K').filter((f) => /^[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏]/.test(f));
    for (const f of frames) expect(f).toMatch(new RegExp(`^[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏] (\\[[#.]{20}\\] [01]/1 )?verify_nodes: (queued|running|complete)\\b`));
    expect(r.stderr).not.toMatch(TIMESTAMPED);
  }, 150_000);

  it('exits 1 for a task that does not exist', async () => {
    const r = await slipway(['task', 'wait', '01ARZ3NDEKTSV4RRFFQ69G5FAV']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^error: .*\(HTTP 404\)\n$/);
  });
});

describe('slipway sites list', () => {
  it("lists this file's site with its connected agent, for admins; members get the API's 403", async () => {
    const r = await slipway(['sites', 'list']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.split('\n')[0]).toMatch(/^SITE\s+AGENT\s+CONNECTED\s+LAST_CONTACT\s+VERSION\s+TOKEN\s+JOBS\(Q\/R\)$/);
    expect(r.stdout).toMatch(new RegExp(`^${SITE}\\s+[0-9a-f]{16}\\s+yes\\s+\\S+Z \\(\\d+s ago\\)\\s+\\d+\\.\\d+\\.\\d+\\s+active\\s+\\d+/\\d+$`, 'm'));
    const json = JSON.parse((await slipway(['sites', 'list', '--json'])).stdout);
    expect(json.sites.find((s: any) => s.name === SITE)).toMatchObject({ connected: true });
    const member = await tokenFor('member');
    const denied = await slipway(['sites', 'list', '--as-project', member.project], { token: member.token });
    expect(denied.code).toBe(1);
    expect(denied.stderr).toBe('error: This operation is restricted to administrators (HTTP 403)\n');
  });
});
