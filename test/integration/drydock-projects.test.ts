import { beforeAll, describe, expect, it } from 'vitest';
import { sharedDeps } from '../support/agent.ts';
import { call, tokenFor, unique } from '../support/api.ts';
import { blazarIn, hostPool, hostReservation } from '../support/fixtures.ts';
import { agentSite, finish, ironic, mac, registerIpmiNode, type Site } from '../support/ironic-agent.ts';
import { waitFor } from '../support/wait.ts';

/**
 * Drydock for projects, over HTTP on the shared stack with the test as the site's agent: project
 * A's member deploys and destroys with a design it stored in Slipway that names two nodes, `held`
 * (A's active lease holds it) and `other` (project B's lease holds it). The held node gets its
 * agent job and ends deployed, then erased; the other fails with the reason and never gets a job
 * nor a state change. Around that: what a project may not do (other actions, URLs as design_ref,
 * asset locations, readers writing) and what it may not see (another project's tasks and designs).
 */
let site: Site;
let a: { token: string; project: string };
let aReader: { token: string };
let b: { token: string; project: string };
const held = { name: '', uuid: '', mac: '' };
const other = { name: '', uuid: '', mac: '' };
let designRef = '';

const drydock = (method: string, path: string, token: string, body?: unknown) => call(method, `/api/v1.0${path}`, { token, ...(body === undefined ? {} : { body }) });

/** A project's design: no oob (the site's BMC registration drives the nodes), inline boot-action data only. */
function projectDesign(nodes: string[], asset = `      data: 'hello {{ node.hostname }}'\n      data_pipeline:\n        - utf8_decode\n        - template\n`): string {
  const doc = (kind: string, name: string, data: string) => `---\nschema: drydock/${kind}/v1\nmetadata:\n  schema: metadata/Document/v1\n  name: ${name}\ndata:\n${data}`;
  return [
    doc('Region', 'tenant-lab', '  {}\n'),
    doc('Network', 'lan', '  cidr: 10.30.0.0/24\n'),
    ...nodes.map((n) => doc('BaremetalNode', n, '  addressing:\n    - network: lan\n      address: dhcp\n  platform:\n    image: debian-12\n')),
    doc('BootAction', 'motd', `  signaling: false\n  assets:\n    - type: file\n      path: /etc/motd\n${asset}`),
  ].join('');
}

async function storeDesign(token: string, yaml: string): Promise<{ design_ref: string; design_id: string; part: Awaited<ReturnType<typeof call>> }> {
  const d = await drydock('POST', '/designs', token, {});
  expect(d.status, d.text).toBe(201);
  const part = await call('POST', `/api/v1.0/designs/${d.body.design_id}/parts?ingester=yaml`, { token, rawBody: yaml, headers: { 'Content-Type': 'application/x-yaml' } });
  return { design_ref: d.body.design_ref, design_id: d.body.design_id, part };
}

async function createTask(token: string, action: string, ref: string) {
  const res = await drydock('POST', '/tasks', token, { action, design_ref: ref, node_filter: null });
  expect(res.status, res.text).toBe(201);
  return res.body as { task_id: string };
}

async function finished(taskId: string, token: string) {
  return waitFor(`task ${taskId} to complete`, async () => {
    const t = (await drydock('GET', `/tasks/${taskId}`, token)).body;
    return t.status === 'complete' ? t : undefined;
  });
}

/** Claims what the site's agent is offered now, without the long poll of `claim` (the task is watched meanwhile). */
async function claimNow(): Promise<any[]> {
  const res = await call('POST', '/api/v1.0/agent/jobs/claim', { token: site.token, body: { wait: 0, max: 5 } });
  expect(res.status, res.text).toBe(200);
  return res.body.jobs as any[];
}

/** Every job the site's agent is offered until the task completes (the test answers them with `answer`). */
async function jobsUntilDone(taskId: string, token: string, answer: (job: any) => Record<string, unknown>): Promise<{ task: any; jobs: any[] }> {
  const jobs: any[] = [];
  const end = Date.now() + 30_000;
  for (;;) {
    if (Date.now() > end) throw new Error(`task ${taskId} did not complete`);
    await new Promise((r) => setTimeout(r, 100));
    for (const job of await claimNow()) {
      jobs.push(job);
      expect((await finish(site.token, job, answer(job))).status).toBe(200);
    }
    const t = (await drydock('GET', `/tasks/${taskId}`, token)).body;
    if (t.status === 'complete') return { task: t, jobs };
  }
}

const messagesOf = (t: any): string[] => t.result.details.messageList.map((m: any) => m.message);
const state = async (name: string) => (await ironic('GET', `/v1/nodes/${name}`)).body.provision_state as string;

beforeAll(async () => {
  site = await agentSite('ddp-site');
  [a, b] = await Promise.all([tokenFor('member'), tokenFor('member')]);
  aReader = await tokenFor('reader', a.project);
  const [poolA, poolB] = await Promise.all([hostPool(1), hostPool(1)]);
  for (const [n, pool] of [
    [held, poolA],
    [other, poolB],
  ] as const) {
    n.mac = mac();
    Object.assign(n, await registerIpmiNode(site, { address: '10.9.9.9', password: 'secret-pw' }, { name: pool.hosts[0]!.name, ports: [n.mac] }));
  }
  const lease = async (who: { token: string }, filter: string) => {
    const res = await call('POST', '/v1/leases', { token: who.token, body: { name: unique('lease'), start_date: 'now', end_date: blazarIn(180), reservations: [hostReservation(filter, 1, 1)], events: [] } });
    expect(res.status, res.text).toBe(201);
    await waitFor('the lease to start', async () => (await call('GET', `/v1/leases/${res.body.lease.id}`, { token: who.token })).body.lease.status === 'ACTIVE', 30_000);
  };
  await Promise.all([lease(a, poolA.filter), lease(b, poolB.filter)]);
  const d = await storeDesign(a.token, projectDesign([held.name, other.name]));
  expect(d.part.status, d.part.text).toBe(201);
  designRef = d.design_ref;
}, 60_000);

describe('Drydock for projects', () => {
  it('a member deploys with its stored design: the node its lease holds is deployed, the other fails with the reason and gets no job', async () => {
    const t = await createTask(a.token, 'deploy_nodes', designRef);
    const { task, jobs } = await jobsUntilDone(t.task_id, a.token, () => ({ status: 'succeeded', output: { method: 'image', image: 'debian-12' } }));
    // One job, for the held node, through the BMC the site registered (not one from the design).
    expect(jobs.map((j) => [j.kind, j.node_id])).toEqual([['deploy_node', held.uuid]]);
    expect(jobs[0].payload).toMatchObject({ driver: 'ipmi', hostname: held.name, image: 'debian-12', macs: [held.mac] });
    expect(jobs[0].payload.bootaction).toMatchObject({ node_name: held.name, actions: [{ action_name: 'motd', action_status: 'unreported' }] });
    expect(task.result).toMatchObject({ status: 'partial_success', successes: [held.name], failures: [other.name] });
    const messages = messagesOf(task);
    expect(messages).toContain(`Node ${other.name}: not held by an active lease of project ${a.project}; not touched`);
    expect(messages).toContain(`1 of 2 nodes succeeded; failed: ${other.name}`);
    const sub = (await drydock('GET', `/tasks/${task.subtask_id_list[0]}`, a.token)).body;
    expect(messagesOf(sub)[0]).toMatch(new RegExp(`^Node ${held.name}: held by lease [0-9a-f-]{36} of project ${a.project}$`));
    expect(await state(held.name)).toBe('active');
    // The other node: no key made, no state written.
    expect(await state(other.name)).toBe('enroll');
    expect((await call('GET', `/api/v1.0/bootactions/nodes/${held.name}`)).status).toBe(200);
    expect((await call('GET', `/api/v1.0/bootactions/nodes/${other.name}`)).status).toBe(404);
    expect(await sharedDeps().jobs.offered(site.name, new Date(Date.now() + 60_000), 10)).toEqual([]);

    // A's reader reads it; B does not see it, exactly as a task that does not exist.
    expect((await drydock('GET', `/tasks/${t.task_id}`, aReader.token)).status).toBe(200);
    const hidden = await drydock('GET', `/tasks/${t.task_id}`, b.token);
    expect(hidden.status).toBe(404);
    expect(hidden.body).toMatchObject({ type: 'error', message: `Task ${t.task_id} does not exist`, retry: false });
    expect((await drydock('GET', `/tasks/${task.subtask_id_list[0]}`, b.token)).status).toBe(404);
    expect((await drydock('GET', `/tasks/${t.task_id}/builddata`, b.token)).status).toBe(404);
  });

  it('destroy_nodes likewise: the held node is erased and released, the other is not touched; B cannot destroy A\'s node', async () => {
    const t = await createTask(a.token, 'destroy_nodes', designRef);
    const { task, jobs } = await jobsUntilDone(t.task_id, a.token, () => ({ status: 'succeeded', output: { disks: [{ name: '/dev/vda', size: 1, method: 'zero', verified_bytes: 1 }], boot_mac: held.mac } }));
    expect(jobs.map((j) => [j.kind, j.node_id])).toEqual([['clean', held.uuid]]);
    expect(task.result).toMatchObject({ status: 'partial_success', successes: [held.name], failures: [other.name] });
    expect(messagesOf(task)).toContain(`Node ${other.name}: not held by an active lease of project ${a.project}; not touched`);
    expect(await state(held.name)).toBe('available');
    expect(await state(other.name)).toBe('enroll');
    // The held node's key was revoked.
    expect((await call('GET', `/api/v1.0/bootactions/nodes/${held.name}`)).status).toBe(404);

    // B, with a design of its own naming A's node: failure, and no job for it.
    const mine = await storeDesign(b.token, projectDesign([held.name]));
    expect(mine.part.status, mine.part.text).toBe(201);
    const bt = await createTask(b.token, 'destroy_nodes', mine.design_ref);
    const res = await jobsUntilDone(bt.task_id, b.token, () => ({ status: 'failed', error: 'no job was expected' }));
    expect(res.jobs).toEqual([]);
    expect(res.task.result).toMatchObject({ status: 'failure', successes: [], failures: [held.name] });
    expect(messagesOf(res.task)).toContain(`Node ${held.name}: not held by an active lease of project ${b.project}; not touched`);
    expect(await state(held.name)).toBe('available');

    // Each project lists only its own tasks (subtasks included) and designs; the admin sees all.
    const ids = async (token: string) => ((await drydock('GET', '/tasks', token)).body as any[]).map((x) => x.task_id);
    const [aIds, bIds] = await Promise.all([ids(a.token), ids(b.token)]);
    const adminIds = ((await call('GET', '/api/v1.0/tasks')).body as any[]).map((x) => x.task_id);
    expect(aIds).toContain(t.task_id);
    expect(aIds).not.toContain(bt.task_id);
    expect(bIds.sort()).toEqual([bt.task_id, ...res.task.subtask_id_list].sort());
    expect(adminIds).toEqual(expect.arrayContaining([t.task_id, bt.task_id]));
    expect((await drydock('GET', '/designs', b.token)).body).toEqual([mine.design_id]);
    expect((await drydock('GET', `/designs/${designRef.split('/').at(-1)}`, b.token)).status).toBe(404);
  });

  it('a member may not run any other action, a reader nothing: 403 in Drydock\'s format', async () => {
    for (const action of ['validate_design', 'verify_site', 'prepare_site', 'verify_nodes', 'prepare_nodes', 'relabel_nodes']) {
      const res = await drydock('POST', '/tasks', a.token, { action, design_ref: designRef, node_filter: null });
      expect(res.status, action).toBe(403);
      expect(res.body).toMatchObject({ type: 'error', message: `Action ${action} is restricted to administrators; a project may run deploy_nodes and destroy_nodes on the nodes its active leases hold`, retry: false });
    }
    const reader = await drydock('POST', '/tasks', aReader.token, { action: 'deploy_nodes', design_ref: designRef, node_filter: null });
    expect(reader.status).toBe(403);
    expect(reader.body).toMatchObject({ type: 'error', message: 'This token may only read (role reader)' });
    expect((await drydock('POST', '/designs', aReader.token, {})).status).toBe(403);
    // What stays the site's: the node list (BMC addresses), node build data, purging tasks.
    for (const [method, path] of [
      ['GET', '/nodes'],
      ['GET', `/nodes/${held.name}/builddata`],
      ['DELETE', '/tasks?days=0'],
      ['GET', '/health/extended'],
    ]) {
      expect((await drydock(method!, path!, a.token)).status, path).toBe(403);
    }
  });

  it('a project reads only designs it stored: a URL, s3 or the site\'s design is refused with 400, and a design with an asset location is refused', async () => {
    const refText =
      "A project's design_ref is a design the project stored in Slipway, slipway://designs/<id> (POST /api/v1.0/designs and its parts); http(s), s3 and other references are read for administrators only";
    for (const ref of ['http://169.254.169.254/latest/meta-data/', 'https://127.0.0.1:8443/site.yaml', 'deckhand+http://deckhand/api/v1.0/revisions/1/rendered-documents', 's3://slipway-bootdata/tasks/x/design.json']) {
      const res = await drydock('POST', '/tasks', a.token, { action: 'deploy_nodes', design_ref: ref, node_filter: null });
      expect(res.status, ref).toBe(400);
      expect(res.body).toMatchObject({ type: 'error', message: refText, retry: false });
      // The read-only routes that take a design_ref follow the same rule.
      expect((await drydock('POST', '/nodefilter', a.token, { design_ref: ref, node_filter: null })).status).toBe(400);
      const v = await drydock('POST', '/validatedesign', a.token, { rel: 'design', href: ref });
      expect(v.status).toBe(400);
      expect(v.body.details.messageList[0].message).toBe(refText);
    }
    // The site's stored design (it may hold BMC credentials) and B's are not A's to use.
    const siteDesign = await call('POST', '/api/v1.0/designs', { body: {} });
    const bDesign = (await drydock('POST', '/designs', b.token, {})).body;
    for (const id of [siteDesign.body.design_id, bDesign.design_id]) {
      const res = await drydock('POST', '/tasks', a.token, { action: 'deploy_nodes', design_ref: `slipway://designs/${id}`, node_filter: null });
      expect(res.status).toBe(400);
      expect(res.body.message).toBe(`Design ${id} does not exist`);
      expect((await drydock('POST', '/designs', a.token, { base_design_id: id })).status).toBe(400);
      expect((await drydock('GET', `/designs/${id}`, a.token)).status).toBe(404);
    }

    // An asset location would make the control plane fetch a URL: refused when the part is added.
    const bad = await storeDesign(a.token, projectDesign([held.name], '      location: http://169.254.169.254/latest/user-data\n'));
    expect(bad.part.status).toBe(400);
    expect((bad.part.body as { message: string }).message).toMatch(/^Asset 0 \(file\) of BootAction motd has a location: a project's design may not make Slipway fetch URLs\./);
    // Its nodes need no oob, and its own design validates (as a project's design) and filters.
    expect((await drydock('POST', '/validatedesign', a.token, { rel: 'design', href: designRef })).body).toMatchObject({ status: 'Success', code: 200 });
    expect((await drydock('POST', '/nodefilter', a.token, { design_ref: designRef, node_filter: null })).body).toEqual([held.name, other.name]);
  });
});
