import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { randomUUID } from 'node:crypto';
import { getDeps } from '#aws/deps.ts';
import { newTaskRecord } from '#core/drydock/tasks/model.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Agent } from '../../agent/runner.ts';
import { type RedfishSim, startRedfishSim } from '../../agent/sim/redfish.ts';
import type { LocalStack } from '../../infra/local/stack.ts';
import { call } from '../support/api.ts';
import { startTestAgent } from '../support/agent.ts';
import { siteDesign } from '../support/drydock-site.ts';
import { startOwnStack } from '../support/own-stack.ts';
import { waitFor } from '../support/wait.ts';

/**
 * Drydock end to end on a local stack of its own (short boot-action deadline): designs served
 * over HTTP, the task workflow, an agent driving Redfish simulators, and test "nodes" that do
 * what upstream's installer does — read the key the deploy hook was handed, download both
 * tarballs through the presigned redirect with `wget` or `curl -L | tar -xPz`, and report.
 */
const run = promisify(execFile);
const SITE = `lab-${process.pid}`;
const NODES = ['n01', 'n02', 'n03'];
const FINAL_STATUS_SECONDS = 8;

let stack: LocalStack;
let stopStack: () => Promise<void>;
let sims: RedfishSim[] = [];
let agent: Agent;
let designServer: Server;
let designUrl: string;
let root: string;
let hookDir: string;
const designs = new Map<string, string>();
/** `<local address> <path>` of every request the design server answered. */
const served: string[] = [];
/** The address this stack maps to the site (SLIPWAY_SITE_ADDRESSES): fetched by the site's agent only. */
const SITE_ADDRESS = '127.0.0.2';
let designPort: number;

/** Serves `designs` by path (the design_ref of a task or an asset location), 404 otherwise. */
async function serveDesigns(): Promise<void> {
  designServer = createServer((req, res) => {
    served.push(`${req.socket.localAddress} ${req.url}`);
    const body = designs.get(req.url ?? '');
    if (body === undefined) {
      res.writeHead(404).end('no such design');
      return;
    }
    res.writeHead(200, { 'Content-Type': 'application/x-yaml' }).end(body);
  });
  // 0.0.0.0: the same server is public (127.0.0.1) and inside the site (127.0.0.2) for this stack.
  await new Promise<void>((r) => designServer.listen(0, '0.0.0.0', r));
  designPort = (designServer.address() as { port: number }).port;
  designUrl = `http://127.0.0.1:${designPort}`;
}

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'slipway-node-root-'));
  hookDir = mkdtempSync(join(tmpdir(), 'slipway-deploy-hook-'));
  // One BMC per node, each on its own loopback address, all on one port (the design's oob.port).
  const first = await startRedfishSim({ host: '127.0.0.11', username: 'admin', password: 'sim-secret', systems: [{ id: '1' }] });
  const port = Number(new URL(first.url).port);
  sims = [first];
  for (let i = 1; i < NODES.length; i++) sims.push(await startRedfishSim({ host: `127.0.0.${11 + i}`, port, username: 'admin', password: 'sim-secret', systems: [{ id: '1' }] }));
  ({ stack, stop: stopStack } = await startOwnStack('drydock', {
    env: { SLIPWAY_BOOTACTION_FINAL_STATUS_SECONDS: String(FINAL_STATUS_SECONDS), SLIPWAY_SITE_ADDRESSES: JSON.stringify({ [SITE]: [SITE_ADDRESS] }) },
  }));
  await serveDesigns();
  designs.set('/site.yaml', siteDesign({ site: SITE, redfishPort: port, nodes: NODES, root }));
  agent = await startTestAgent(SITE, { deploy_hook: { command: ['sh', '-c', `cat > "$(mktemp -p '${hookDir}' hook.XXXXXX)"`] } });
}, 60_000);

afterAll(async () => {
  await agent?.stop();
  await stopStack?.();
  for (const s of sims) await s.stop();
  await new Promise((r) => designServer?.close(r));
  rmSync(root, { recursive: true, force: true });
  rmSync(hookDir, { recursive: true, force: true });
});

async function createTask(action: string, extra: Record<string, unknown> = {}, designRef = `${designUrl}/site.yaml`) {
  const res = await call('POST', '/api/v1.0/tasks', { body: { action, design_ref: designRef, node_filter: null, ...extra } });
  expect(res.status, res.text).toBe(201);
  expect(res.headers.get('location')).toBe(`/api/v1.0/tasks/${res.body.task_id}`);
  return res.body as { task_id: string; status: string };
}

async function finished(taskId: string, ms = 60_000) {
  return waitFor(
    `task ${taskId} to complete`,
    async () => {
      const t = (await call('GET', `/api/v1.0/tasks/${taskId}`)).body;
      return t.status === 'complete' ? t : undefined;
    },
    ms,
    200,
  );
}

const byNode = (filter: string[]) => ({ node_filter: { filter_set_type: 'union', filter_set: [{ filter_type: 'union', node_names: filter }] } });

/** The boot-action info the agent's deploy hook received for `node` in `taskId`. */
function hookInfo(node: string, taskId: string): any | undefined {
  for (const f of readdirSync(hookDir)) {
    try {
      const info = JSON.parse(readFileSync(join(hookDir, f), 'utf8'));
      if (info.node_name === node && info.task_id === taskId) return info;
    } catch {
      /* being written */
    }
  }
  return undefined;
}

async function waitHook(node: string, taskId: string) {
  return waitFor(`the deploy hook for ${node}`, async () => hookInfo(node, taskId), 30_000);
}

async function report(info: any, actionName: string, body: unknown) {
  const id = info.actions.find((a: any) => a.action_name === actionName).action_id;
  return fetch(`${info.report_url}${id}/`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'X-Bootaction-Key': info.action_key, 'User-Agent': 'Go-http-client/1.1' },
    body: JSON.stringify(body),
  });
}

describe('Drydock tasks on the local stack', () => {
  it('validate_design succeeds for the site and fails, with messages, for a broken one', async () => {
    const ok = await finished((await createTask('validate_design')).task_id);
    expect(ok.result.status).toBe('success');
    designs.set('/broken.yaml', designs.get('/site.yaml')!.replace('cidr: 10.20.0.0/24', 'cidr: 10.20.0.0/33'));
    const bad = await finished((await createTask('validate_design', {}, `${designUrl}/broken.yaml`)).task_id);
    expect(bad.result.status).toBe('failure');
    expect(bad.result.details.errorCount).toBeGreaterThan(0);
    expect(bad.result.details.messageList.some((m: any) => m.error && /CIDR/.test(m.message))).toBe(true);
  });

  it('a design that cannot be fetched fails the task with the reason', async () => {
    const t = await finished((await createTask('verify_nodes', {}, `${designUrl}/missing.yaml`)).task_id);
    expect(t.result.status).toBe('failure');
    expect(t.result.details.messageList.some((m: any) => /HTTP 404/.test(m.message))).toBe(true);
  });

  it('verify_site sees the connected agent; verify_nodes interrogates every BMC and keeps build data', async () => {
    const site = await finished((await createTask('verify_site')).task_id);
    expect(site.result.status).toBe('success');
    expect(site.result.successes).toEqual([SITE]);

    const t = await finished((await createTask('verify_nodes')).task_id);
    expect(t.result.status).toBe('success');
    expect(t.result.successes.sort()).toEqual(NODES);
    expect(t.subtask_id_list).toHaveLength(3);
    const withData = (await call('GET', `/api/v1.0/tasks/${t.task_id}?builddata=true`)).body;
    expect(withData.build_data).toHaveLength(3);
    expect(JSON.parse(withData.build_data[0].data_element)).toEqual({ power_state: 'power off' });
    const nodeData = await call('GET', `/api/v1.0/nodes/${NODES[0]}/builddata?latest=true`);
    expect(nodeData.status).toBe(200);
    expect(nodeData.body[0]).toMatchObject({ node_name: NODES[0], generator: 'interrogate_oob', data_format: 'application/json' });
    // The nodes are in the inventory with their BMC, for Ironic and Blazar too.
    const nodes = (await call('GET', '/api/v1.0/nodes')).body as any[];
    expect(nodes.filter((n) => NODES.includes(n.hostname)).map((n) => n.power_address).sort()).toEqual(['http://127.0.0.11', 'http://127.0.0.12', 'http://127.0.0.13'].map((u) => `${u}:${new URL(sims[0]!.url).port}`));
    // Each design node's boot_mac is its PXE port, in Ironic and in Drydock's node list.
    const macs = ['52:54:00:5e:00:10', '52:54:00:5e:00:11', '52:54:00:5e:00:12'];
    expect(nodes.filter((n) => NODES.includes(n.hostname)).map((n) => n.boot_mac).sort()).toEqual(macs);
    const ports = (await call('GET', '/v1/ports/detail', { headers: { 'X-OpenStack-Ironic-API-Version': '1.78' } })).body.ports as any[];
    expect(ports.map((p) => [p.address, p.pxe_enabled, p.extra]).sort()).toEqual(macs.map((m) => [m, true, { source: 'drydock' }]));
    // A second task finds them in place: no second port.
    await finished((await createTask('verify_nodes')).task_id);
    expect((await call('GET', '/v1/ports', { headers: { 'X-OpenStack-Ironic-API-Version': '1.78' } })).body.ports).toHaveLength(3);
  });

  it("a design node whose boot_mac is another node's port fails, naming the MAC", async () => {
    // siteDesign gives its first node the first site node's boot_mac.
    designs.set('/clash.yaml', siteDesign({ site: SITE, redfishPort: Number(new URL(sims[0]!.url).port), nodes: ['n-clash'], root }));
    const t = await finished((await createTask('verify_nodes', {}, `${designUrl}/clash.yaml`)).task_id);
    expect(t.result.status).toBe('failure');
    const owner = (await call('GET', `/v1/nodes/${NODES[0]}`, { headers: { 'X-OpenStack-Ironic-API-Version': '1.78' } })).body.uuid;
    const errors = (await call('GET', `/api/v1.0/tasks/${t.task_id}?subtaskerrors=true`)).body;
    expect(JSON.stringify(errors)).toContain(`Node n-clash: boot_mac: A port with MAC address 52:54:00:5e:00:10 already exists on node ${owner}.`);
  });

  it('prepare_nodes inspects through the ramdisk: an agent without a boot service fails the node, naming why, without touching it', async () => {
    const resets = sims[1]!.state('1').resets.length;
    const t = await finished((await createTask('prepare_nodes', byNode(['n02']))).task_id);
    expect(t.result).toMatchObject({ status: 'failure', successes: [], failures: ['n02'] });
    const messages = t.result.details.messageList.map((m: any) => m.message).join('\n');
    expect(messages).toMatch(/Node n02: .*this agent has no netboot section in its config: it cannot inspect nodes/);
    expect(sims[1]!.state('1').resets.length).toBe(resets);
    const ironic = (await call('GET', '/v1/nodes/n02', { headers: { 'X-OpenStack-Ironic-API-Version': '1.78' } })).body;
    expect(ironic).toMatchObject({ provision_state: 'inspect failed', inspection_finished_at: null });
    expect(ironic.last_error).toContain('no netboot section');
  });

  it('deploy_nodes: nodes fetch their tarballs through the presigned redirect and report; a silent node times out', async () => {
    const task = await createTask('deploy_nodes');
    const [n1, n2] = await Promise.all([waitHook('n01', task.task_id), waitHook('n02', task.task_id)]);
    expect(n1.action_key).toMatch(/^[0-9a-f]{64}$/);
    expect(n1.packages).toEqual(['curl', ['jq', '1.6-2']]);
    expect(n1.actions.map((a: any) => [a.action_name, a.action_status])).toEqual([
      ['install-agent', 'incomplete'],
      ['motd', 'unreported'],
    ]);
    const base = `${stack.url}/api/v1.0/bootactions/nodes`;

    // n01 as the MaaS curtin template does: wget follows the 302 to S3.
    const dl = mkdtempSync(join(tmpdir(), 'slipway-wget-'));
    await run('wget', ['-q', '-O', join(dl, 'units.tgz'), '--header', `X-Bootaction-Key: ${n1.action_key}`, `${base}/n01/units`]);
    await run('wget', ['-q', '-O', join(dl, 'files.tgz'), '--header', `X-Bootaction-Key: ${n1.action_key}`, `${base}/n01/files`]);
    const listing = (await run('tar', ['-tvzf', join(dl, 'files.tgz')])).stdout;
    // Absolute member names, octal modes from the design (0600 by default), uid/gid 0.
    expect(listing).toMatch(new RegExp(`^-rw-r----- 0/0 +10 .* ${root}/etc/agent/ip$`, 'm'));
    expect(listing).toMatch(new RegExp(`^-rw------- 0/0 +8 .* ${root}/etc/motd$`, 'm'));
    expect((await run('tar', ['-tvzf', join(dl, 'units.tgz')])).stdout).toMatch(new RegExp(`^-r--r--r-- 0/0 .* ${root}/etc/systemd/system/agent.service$`, 'm'));
    rmSync(dl, { recursive: true, force: true });
    expect((await report(n1, 'install-agent', { details: [{ message: 'Bootaction starting execution.', error: false }] })).status).toBe(200);
    expect((await report(n1, 'install-agent', { status: 'success', details: [{ message: 'done', error: false, exit_code: 0 }] })).status).toBe(200);

    // n02 with curl -L | tar -xPz (absolute paths, as upstream's installer unpacks).
    await run('sh', ['-c', `curl -sfL -H "X-Bootaction-Key: ${n2.action_key}" ${base}/n02/units | tar -xPz && curl -sfL -H "X-Bootaction-Key: ${n2.action_key}" ${base}/n02/files | tar -xPz`]);
    expect(readFileSync(join(root, 'etc/agent/ip'), 'utf8')).toBe('10.20.0.12');
    expect(statSync(join(root, 'etc/agent/ip')).mode & 0o777).toBe(0o640);
    expect(readFileSync(join(root, 'etc/systemd/system/agent.service'), 'utf8')).toContain(`Description=Agent for n02 in ${SITE}.example`);
    expect(readFileSync(join(root, 'etc/systemd/system/agent.service'), 'utf8')).toContain(`--report ${n2.report_url}${n2.actions[0].action_id}`);
    expect(readFileSync(join(root, 'etc/motd'), 'utf8')).toBe('Welcome\n');
    expect((await report(n2, 'install-agent', { status: 'success' })).status).toBe(200);
    // A non-signalling action takes no reports.
    expect((await report(n2, 'motd', { status: 'success' })).status).toBe(409);

    // n03 never reports: after the deadline its action is "timed out" and the task partial.
    const t = await finished(task.task_id, 90_000);
    expect(t.result.status).toBe('partial_success');
    expect(t.result.successes.sort()).toEqual(['n01', 'n02']);
    expect(t.result.failures).toEqual(['n03']);
    const messages = t.result.details.messageList.map((m: any) => m.message);
    expect(messages).toContain('Node n03: Boot action install-agent timed out.');
    expect(t.result.details.messageList.find((m: any) => m.context_type === 'bootaction' && m.message === 'done')).toMatchObject({ error: false, extra: { exit_code: 0 } });
    for (const s of sims) expect(s.state('1').resets.length).toBeGreaterThan(0);

    const errors = (await call('GET', `/api/v1.0/tasks/${task.task_id}?subtaskerrors=true`)).body;
    expect(Object.values(errors.subtask_errors)).toHaveLength(1);
    const layered = (await call('GET', `/api/v1.0/tasks/${task.task_id}?layers=2`)).body;
    expect(layered.init_task_id).toBe(task.task_id);
    expect(Object.keys(layered)).toHaveLength(1 + 1 + 3);
    expect(layered[t.subtask_id_list[0]].action).toBe('deploy_node');
  }, 120_000);

  it('redeploying a node rotates its key and action ids; the task succeeds with the node in successes', async () => {
    const before = (await call('GET', '/api/v1.0/bootactions/nodes/n01')).body;
    const task = await createTask('deploy_nodes', byNode(['n01']));
    const info = await waitHook('n01', task.task_id);
    expect(info.action_key).not.toBe(before.action_key);
    const old = await fetch(`${stack.url}/api/v1.0/bootactions/nodes/n01/units`, { headers: { 'X-Bootaction-Key': before.action_key }, redirect: 'manual' });
    expect(old.status).toBe(403);
    expect((await report(info, 'install-agent', { status: 'success' })).status).toBe(200);
    const t = await finished(task.task_id);
    expect(t.result).toMatchObject({ status: 'success', successes: ['n01'], failures: [] });
    const nodes = (await call('GET', '/api/v1.0/nodes')).body as { hostname: string; status_name: string }[];
    expect(nodes.find((n) => n.hostname === 'n01')?.status_name).toBe('active');
    expect(nodes.find((n) => n.hostname === 'n03')?.status_name).not.toBe('active');

    // A repeated prepare_nodes never network-boots a deployed node: the step is skipped.
    const resets = sims[0]!.state('1').resets.length;
    const p = await finished((await createTask('prepare_nodes', byNode(['n01']))).task_id);
    expect(p.result).toMatchObject({ status: 'success', successes: ['n01'] });
    const sub = (await call('GET', `/api/v1.0/tasks/${p.subtask_id_list[0]}`)).body;
    expect(sub.result.details.messageList.map((m: any) => m.message)).toContain('Node n01: deployed; not inspected again (no network boot of a deployed node)');
    expect(sims[0]!.state('1').resets.length).toBe(resets);
  }, 60_000);

  it("a design_ref and an asset location inside the site are fetched by the site's agent, bodies over a job result's 60 KiB included", async () => {
    const inside = `http://${SITE_ADDRESS}:${designPort}`;
    // 100 KiB of asset, and a design padded past 60 KiB: both too large for a job's result, so
    // the agent uploads them to a presigned URL and the functions read them back.
    const asset = Array.from({ length: 2000 }, (_, i) => `line ${i} of an asset only the site can serve ${'x'.repeat(20)}`).join('\n');
    expect(asset.length).toBeGreaterThan(100 * 1024);
    designs.set('/inside/asset.txt', asset);
    const design = `${siteDesign({ site: SITE, redfishPort: Number(new URL(sims[0]!.url).port), nodes: NODES, root })}---
schema: drydock/BootAction/v1
metadata:
  schema: metadata/Document/v1
  name: site-asset
data:
  signaling: false
  assets:
    - type: file
      path: ${root}/etc/site-asset
      location: ${inside}/inside/asset.txt
      data_pipeline:
        - utf8_decode
${Array.from({ length: 900 }, (_, i) => `# padding line ${i}: a design may be long ${'-'.repeat(40)}`).join('\n')}
`;
    expect(design.length).toBeGreaterThan(64 * 1024);
    designs.set('/inside/site.yaml', design);
    const claimed = agent.stats.claimed;
    const task = await createTask('deploy_nodes', byNode(['n01']), `${inside}/inside/site.yaml`);
    const info = await waitHook('n01', task.task_id);
    const dl = mkdtempSync(join(tmpdir(), 'slipway-wget-'));
    await run('sh', ['-c', `curl -sfL -H "X-Bootaction-Key: ${info.action_key}" ${stack.url}/api/v1.0/bootactions/nodes/n01/files | tar -xPz -C ${dl}`]);
    expect(readFileSync(join(root, 'etc/site-asset'), 'utf8')).toBe(asset);
    rmSync(dl, { recursive: true, force: true });
    expect((await report(info, 'install-agent', { status: 'success' })).status).toBe(200);
    const t = await finished(task.task_id);
    expect(t.result).toMatchObject({ status: 'success', successes: ['n01'] });
    // Both came to the site's address, from the agent (its claims: the two fetches at least, and the deploy).
    expect(served).toContain(`${SITE_ADDRESS} /inside/site.yaml`);
    expect(served).toContain(`${SITE_ADDRESS} /inside/asset.txt`);
    expect(served.filter((x) => x.startsWith('127.0.0.1 /inside/'))).toEqual([]);
    expect(agent.stats.claimed - claimed).toBeGreaterThanOrEqual(3);
  }, 90_000);

  it('a node filter that selects nothing is a success with "No nodes in scope"', async () => {
    const t = await finished((await createTask('deploy_nodes', byNode(['nope']))).task_id);
    expect(t.result.status).toBe('success');
    expect(t.result.details.messageList.map((m: any) => m.message)).toContain('No nodes in scope');
    expect(t.subtask_id_list).toEqual([]);
  });

  it('relabel_nodes writes the design labels to the node; destroy_nodes revokes the key first, and a node it cannot erase fails after 3 attempts, in maintenance', async () => {
    const r = await finished((await createTask('relabel_nodes', byNode(['n03']))).task_id);
    expect(r.result.status).toBe('success');
    // The design's owner_data, as extra capabilities a lease's resource_properties can select on.
    expect((await getDeps().nodes.getByName('n03'))!.extra).toMatchObject({ position: '3', zone: 'z0' });
    const ironic = (await call('GET', '/v1/nodes/n03', { headers: { 'X-OpenStack-Ironic-API-Version': '1.78' } })).body;
    expect(ironic).toMatchObject({ name: 'n03', driver: 'redfish', conductor_group: SITE });

    // This agent has no boot service, so it cannot erase: the clean job fails, is tried again
    // twice, and the node ends `clean failed` in maintenance (never leased) — but the tenant's
    // key stopped working before anything else.
    const info = (await call('GET', '/api/v1.0/bootactions/nodes/n02')).body;
    const d = await finished((await createTask('destroy_nodes', byNode(['n02']))).task_id);
    expect(d.result).toMatchObject({ status: 'failure', failures: ['n02'] });
    const messages = (await call('GET', `/api/v1.0/tasks/${d.subtask_id_list[0]}`)).body.result.details.messageList.map((m: any) => m.message);
    expect(messages).toContain('Node n02: boot-action key revoked');
    expect(messages.filter((m: string) => /^Node n02: attempt [12] of 3 failed, trying again: /.test(m)), JSON.stringify(messages)).toHaveLength(2);
    expect(messages.at(-1)).toMatch(/^Node n02: clean failed 3 times: .*this agent has no netboot section in its config: it cannot clean nodes/);
    const node = (await call('GET', '/v1/nodes/n02', { headers: { 'X-OpenStack-Ironic-API-Version': '1.78' } })).body;
    expect(node).toMatchObject({ provision_state: 'clean failed', maintenance: true });
    expect(node.maintenance_reason).toContain('failed step deploy.erase_devices');
    const gone = await fetch(`${stack.url}/api/v1.0/bootactions/nodes/n02/files`, { headers: { 'X-Bootaction-Key': info.action_key }, redirect: 'manual' });
    expect(gone.status).toBe(404);
  });

  it('top-level tasks of a site run one at a time, oldest first', async () => {
    const deploy = await createTask('deploy_nodes', byNode(['n03']));
    // The queue orders tasks whose site is known: a task joins its site's queue when its design
    // has been read (Prepare), so the second is created once the first has read its design.
    await waitFor('the deploy to know its site', async () => (await call('GET', `/api/v1.0/tasks/${deploy.task_id}`)).body.status === 'running');
    const verify = await createTask('verify_site');
    // While the deploy waits for n03's reports, the verify_site waits in `queued`.
    await waitHook('n03', deploy.task_id);
    expect((await call('GET', `/api/v1.0/tasks/${verify.task_id}`)).body.status).toBe('queued');
    const dep = await finished(deploy.task_id, 60_000);
    const v = await finished(verify.task_id, 60_000);
    expect(dep.result.status).toBe('failure'); // n03 never reports
    expect(v.result.status).toBe('success');
    expect(Date.parse(v.updated.replace(' ', 'T'))).toBeGreaterThanOrEqual(Date.parse(dep.updated.replace(' ', 'T')));
  }, 60_000);

  it('a task that outlived its workflow (no execution left) stops blocking the site', async () => {
    const deps = getDeps();
    const old = new Date(Date.now() - 3 * 86_400_000).toISOString();
    const ghost = newTaskRecord({ task_id: randomUUID(), action: 'deploy_nodes', design_ref: `${designUrl}/site.yaml`, created: old, status: 'running', site: SITE });
    await deps.drydock.createTask(ghost);
    expect(await deps.drydock.acquireSite(SITE, ghost.task_id, 1)).toBe(true);
    const t = await finished((await createTask('verify_site')).task_id, 30_000);
    expect(t.result.status).toBe('success');
    const evicted = (await call('GET', `/api/v1.0/tasks/${ghost.task_id}`)).body;
    expect(evicted.status).toBe('complete');
    expect(evicted.result.status).toBe('failure');
    expect(await deps.drydock.siteHolders(SITE)).toEqual([]);
  });

  it('stored designs: POST /designs and parts, then a task on slipway://designs/<id>', async () => {
    const d = await call('POST', '/api/v1.0/designs', { body: {} });
    expect(d.status).toBe(201);
    const part = await call('POST', `/api/v1.0/designs/${d.body.design_id}/parts?ingester=yaml`, { rawBody: designs.get('/site.yaml')!, headers: { 'Content-Type': 'application/x-yaml' } });
    expect(part.status, part.text).toBe(201);
    const parts = (await call('GET', `/api/v1.0/designs/${d.body.design_id}/parts`)).body;
    expect(parts).toContainEqual({ kind: 'BaremetalNode', key: 'n01' });
    const node = (await call('GET', `/api/v1.0/designs/${d.body.design_id}/parts/BaremetalNode/n01?source=compiled`)).body;
    expect(node.data.oob).toMatchObject({ type: 'redfish', account: 'admin' });
    const t = await finished((await createTask('validate_design', {}, d.body.design_ref)).task_id);
    expect(t.result.status).toBe('success');
    const filtered = await call('POST', '/api/v1.0/nodefilter', { body: { design_ref: d.body.design_ref, node_filter: { filter_set_type: 'union', filter_set: [{ filter_type: 'intersection', node_labels: { zone: 'z0', position: '3' } }] } } });
    expect(filtered.body).toEqual(['n03']);
  });

  it('POST /validatedesign answers the Status object with code 200 or 400', async () => {
    const good = await call('POST', '/api/v1.0/validatedesign', { body: { rel: 'design', href: `${designUrl}/site.yaml`, type: 'application/x-yaml' } });
    expect(good.status).toBe(200);
    expect(good.body).toMatchObject({ kind: 'Status', status: 'Success', code: 200 });
    const bad = await call('POST', '/api/v1.0/validatedesign', { body: { rel: 'design', href: `${designUrl}/broken.yaml` } });
    expect(bad.status).toBe(400);
    expect(bad.body).toMatchObject({ status: 'Failure', code: 400 });
  });
});
