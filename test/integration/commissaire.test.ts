import { describe, expect, inject, it } from 'vitest';
import { buildDeps } from '../../layers/aws/deps.ts';
import { startInvestigation } from '../../layers/core/commissaire/investigate.ts';
import type { HostStatus } from '../../layers/core/commissaire/model.ts';
import { adminToken, apiUrl, type ApiResponse, call, tokenFor, unique } from '../support/api.ts';

/**
 * Commissaire `/api/v0` over HTTP against the shared local stack (upstream-apis.md §2,
 * client-contracts.md §5). Host statuses that the investigation will set later are set here
 * through the repository. Host addresses are loopback only; nothing connects to them.
 */
const deps = (env: Record<string, string> = {}) => buildDeps({ TABLE_NAME: 'slipway', DYNAMODB_ENDPOINT: inject('dynamoEndpoint'), ...env });

let next = 10;
/** A fresh loopback address for each host (hosts are global, test files share the stack). */
const ip = () => {
  if (next > 254) throw new Error('out of loopback addresses');
  return `127.0.0.${next++}`;
};
const KEY = Buffer.from('-----BEGIN OPENSSH PRIVATE KEY-----\nnot-a-real-key\n-----END OPENSSH PRIVATE KEY-----\n').toString('base64');
const OTHER_KEY = Buffer.from('another key').toString('base64');
const V0 = '/api/v0';

/** A Commissaire error: the status and its bare reason phrase as text/html. */
/** Polls a GET until its body satisfies `ok` (workflows run in the background). */
async function waitForBody(path: string, ok: (body: any) => boolean): Promise<void> {
  const end = Date.now() + 15_000;
  while (!ok((await call('GET', path)).body)) {
    if (Date.now() > end) throw new Error(`timed out waiting on ${path}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function expectPhrase(res: ApiResponse, status: number, phrase: string): void {
  expect(res.status, res.text).toBe(status);
  expect(res.text).toBe(phrase);
  expect(res.headers.get('content-type')).toMatch(/^text\/html/);
}

async function cluster(name = unique('c'), body: Record<string, unknown> = {}): Promise<string> {
  const res = await call('PUT', `${V0}/cluster/${name}`, { body });
  expect(res.status, res.text).toBe(201);
  return name;
}

async function host(address = ip(), body: Record<string, unknown> = {}): Promise<string> {
  const res = await call('PUT', `${V0}/host/${address}`, { body: { ssh_priv_key: KEY, ...body } });
  expect(res.status, res.text).toBe(201);
  return address;
}

const setStatus = async (address: string, status: HostStatus) =>
  expect(await deps().commissaire.updateHost(address, { status }, new Date().toISOString())).toBeDefined();

async function readyHost(status: HostStatus = 'active'): Promise<string> {
  const a = await host();
  await setStatus(a, status);
  return a;
}

describe('Commissaire: authentication and errors', () => {
  it('answers missing or invalid credentials with 403 Forbidden as text/html, on every scheme', async () => {
    expectPhrase(await call('GET', `${V0}/clusters`, { token: null }), 403, 'Forbidden');
    expectPhrase(await call('GET', `${V0}/clusters`, { token: 'slp_nope' }), 403, 'Forbidden');
    expectPhrase(await call('GET', `${V0}/clusters`, { token: null, headers: { Authorization: 'Bearer slp_nope' } }), 403, 'Forbidden');
    const badBasic = `Basic ${Buffer.from('admin:wrong').toString('base64')}`;
    expectPhrase(await call('GET', `${V0}/clusters`, { token: null, headers: { Authorization: badBasic } }), 403, 'Forbidden');
  });

  it('takes the token as X-Auth-Token, Bearer, or Basic password with any user name', async () => {
    expect((await call('GET', `${V0}/clusters`)).status).toBe(200);
    expect((await call('GET', `${V0}/clusters`, { token: null, headers: { Authorization: `Bearer ${adminToken()}` } })).status).toBe(200);
    for (const user of ['commctl', 'anything', '']) {
      const basic = `Basic ${Buffer.from(`${user}:${adminToken()}`).toString('base64')}`;
      const res = await call('GET', `${V0}/clusters`, { token: null, headers: { Authorization: basic } });
      expect(res.status, user).toBe(200);
      expect(Array.isArray(res.body)).toBe(true);
    }
  });

  it('lets readers and members read, only admins change things or see credentials; agent tokens get nothing', async () => {
    const c = await cluster();
    const h = await host();
    for (const role of ['reader', 'member'] as const) {
      const { token } = await tokenFor(role);
      expect((await call('GET', `${V0}/cluster/${c}`, { token })).status, role).toBe(200);
      expect((await call('GET', `${V0}/host/${h}`, { token })).status, role).toBe(200);
      expect((await call('GET', `${V0}/hosts`, { token })).status, role).toBe(200);
      expectPhrase(await call('GET', `${V0}/host/${h}/creds`, { token }), 403, 'Forbidden');
      expectPhrase(await call('PUT', `${V0}/cluster/${unique('c')}`, { token, body: {} }), 403, 'Forbidden');
      expectPhrase(await call('DELETE', `${V0}/cluster/${c}`, { token, body: {} }), 403, 'Forbidden');
    }
    const agent = await tokenFor('agent');
    expectPhrase(await call('GET', `${V0}/clusters`, { token: agent.token }), 403, 'Forbidden');
  });

  it('answers unknown routes 404, a wrong method 405, and malformed JSON 400, as plain phrases', async () => {
    expectPhrase(await call('GET', `${V0}/nope`), 404, 'Not Found');
    expectPhrase(await call('GET', `${V0}/cluster/c/nope/deeper`), 404, 'Not Found');
    expectPhrase(await call('GET', V0), 404, 'Not Found');
    expectPhrase(await call('POST', `${V0}/clusters`, { body: {} }), 405, 'Method Not Allowed');
    expectPhrase(await call('PATCH', `${V0}/cluster/c/`, { body: {} }), 405, 'Method Not Allowed');
    expectPhrase(await call('PUT', `${V0}/cluster/${unique('c')}`, { rawBody: '{"network": ', headers: { 'Content-Type': 'application/json' } }), 400, 'Bad Request');
    expectPhrase(await call('PUT', `${V0}/cluster/${unique('c')}`, { body: { colour: 'blue' } }), 400, 'Bad Request');
    expectPhrase(await call('PUT', `${V0}/cluster/bad.name`, { body: {} }), 400, 'Bad Request');
  });
});

describe('Commissaire: clusters', () => {
  it('creates, reads, lists, re-creates and deletes a cluster, with and without a trailing slash', async () => {
    const name = unique('c');
    const put = await call('PUT', `${V0}/cluster/${name}/`, { body: { network: 'default', container_manager: '' } });
    expect(put.status, put.text).toBe(201);
    expect(put.body).toEqual({ name, status: 'ok', network: 'default', container_manager: '', hosts: { total: 0, available: 0, unavailable: 0 } });
    for (const path of [`${V0}/cluster/${name}`, `${V0}/cluster/${name}/`]) {
      const got = await call('GET', path);
      expect(got.status).toBe(200);
      expect(got.body).toEqual(put.body);
      expect(got.headers.get('content-type')).toBe('application/json');
    }
    for (const path of [`${V0}/clusters`, `${V0}/clusters/`]) expect((await call('GET', path)).body).toContain(name);
    expect((await call('PUT', `${V0}/cluster/${name}`, { body: { container_manager: 'prod' } })).body).toMatchObject({ container_manager: 'prod' });
    const del = await call('DELETE', `${V0}/cluster/${name}/`, { body: {} });
    expect(del.status).toBe(200);
    expect(del.body).toEqual([]);
    expectPhrase(await call('GET', `${V0}/cluster/${name}`), 404, 'Not Found');
    expectPhrase(await call('DELETE', `${V0}/cluster/${name}`), 404, 'Not Found');
    expect((await call('GET', `${V0}/clusters`)).body).not.toContain(name);
  });

  it('puts a cluster on an unknown network silently on default, on a known one as asked', async () => {
    const net = unique('net');
    expect((await call('PUT', `${V0}/network/${net}`, { body: {} })).status).toBe(201);
    expect((await call('GET', `${V0}/cluster/${await cluster(undefined, { network: 'no-such-net' })}`)).body.network).toBe('default');
    expect((await call('GET', `${V0}/cluster/${await cluster(undefined, { network: net })}`)).body.network).toBe(net);
  });

  it('keeps members across a re-PUT of the definition', async () => {
    const c = await cluster();
    const h = await host(ip(), { cluster: c });
    expect((await call('PUT', `${V0}/cluster/${c}`, { body: { network: 'default' } })).body.hosts.total).toBe(1);
    expect((await call('GET', `${V0}/cluster/${c}/hosts`)).body).toEqual([h]);
  });

  it('computes status and host counts from the members on every read', async () => {
    const c = await cluster();
    const expectState = async (status: string, hosts: object) => expect((await call('GET', `${V0}/cluster/${c}`)).body).toMatchObject({ status, hosts });
    await expectState('ok', { total: 0, available: 0, unavailable: 0 });
    const a = await host(ip(), { cluster: c });
    const b = await host(ip(), { cluster: c });
    await expectState('failed', { total: 2, available: 0, unavailable: 2 }); // both investigating
    await setStatus(a, 'active');
    await expectState('degraded', { total: 2, available: 1, unavailable: 1 });
    await setStatus(b, 'active');
    await expectState('ok', { total: 2, available: 2, unavailable: 0 });
    await setStatus(b, 'disassociated');
    await expectState('degraded', { total: 2, available: 1, unavailable: 1 });
    await setStatus(a, 'failed');
    await expectState('failed', { total: 2, available: 0, unavailable: 2 });
  });

  it('deletes a cluster with members: the hosts stay, in no cluster, free to join another', async () => {
    const c = await cluster();
    const h = await host(ip(), { cluster: c });
    await setStatus(h, 'active');
    expect((await call('DELETE', `${V0}/cluster/${c}`)).status).toBe(200);
    expect((await call('GET', `${V0}/host/${h}`)).status).toBe(200);
    expect((await deps().commissaire.getHost(h))?.cluster).toBeUndefined();
    const other = await cluster();
    expect((await call('PUT', `${V0}/cluster/${other}/hosts/${h}`)).status).toBe(200);
  });
});

describe('Commissaire: hosts', () => {
  it('registers a host investigating, seals its key, links an inventory node, and shows it in every read', async () => {
    const a = ip();
    const put = await call('PUT', `${V0}/host/${a}`, { body: { ssh_priv_key: KEY } });
    expect(put.status, put.text).toBe(201);
    const shape = { address: a, status: 'investigating', os: '', cpus: 0, memory: 0, space: 0, last_check: '', source: '' };
    expect(put.body).toEqual(shape);
    expect((await call('GET', `${V0}/host/${a}/`)).body).toEqual(shape);
    const list = await call('GET', `${V0}/hosts`);
    expect(list.body).toContainEqual(shape);
    expect(list.text).not.toContain(KEY);
    expect((await call('GET', `${V0}/host/${a}/status/`)).body).toEqual({ type: 'host_only', host: { last_check: '', status: 'investigating' }, container_manager: {} });

    const stored = (await deps().commissaire.getHost(a))!;
    expect(stored.ssh_priv_key_sealed).not.toContain(KEY);
    expect(stored.remote_user).toBe('root');
    const node = (await deps().nodes.getByAddress(a))!;
    expect(node).toMatchObject({ id: stored.node_id, name: `host-${a.replaceAll('.', '-')}`, addresses: [{ network: 'commissaire', address: a }] });

    for (const path of [`${V0}/host/${a}/creds`, `${V0}/host/${a}/creds/`]) {
      const creds = await call('GET', path);
      expect(creds.status).toBe(200);
      expect(creds.body).toEqual({ address: a, ssh_priv_key: KEY, remote_user: 'root' });
    }
  });

  it('links a host to the inventory node that already has its address', async () => {
    const a = ip();
    const node = await deps().nodes.create({
      id: crypto.randomUUID(),
      name: unique('rack-node'),
      reservable: true,
      facts: {},
      extra: {},
      addresses: [{ network: 'oob', address: a }],
      allocations: {},
      created_at: new Date().toISOString(),
    });
    await host(a, { remote_user: 'core' });
    expect((await deps().commissaire.getHost(a))).toMatchObject({ node_id: node.id, remote_user: 'core' });
    expect((await call('GET', `${V0}/host/${a}/creds`)).body.remote_user).toBe('core');
  });

  it('returns the stored host for a compatible re-registration and 409s the incompatible ones', async () => {
    const c = await cluster();
    const a = await host(ip(), { cluster: c });
    await setStatus(a, 'active');
    const again = await call('PUT', `${V0}/host/${a}/`, { body: { ssh_priv_key: KEY, cluster: c } });
    expect(again.status).toBe(201);
    expect(again.body).toMatchObject({ address: a, status: 'active' });
    expectPhrase(await call('PUT', `${V0}/host/${a}`, { body: { ssh_priv_key: OTHER_KEY } }), 409, 'Conflict');
    expectPhrase(await call('PUT', `${V0}/host/${a}`, { body: { ssh_priv_key: KEY, cluster: await cluster() } }), 409, 'Conflict');
    expectPhrase(await call('PUT', `${V0}/host/${ip()}`, { body: { ssh_priv_key: KEY, cluster: unique('missing') } }), 409, 'Conflict');
  });

  it('adds a new host to the cluster it names', async () => {
    const c = await cluster();
    const a = await host(ip(), { cluster: c });
    expect((await call('GET', `${V0}/cluster/${c}/hosts`)).body).toEqual([a]);
    expect((await deps().commissaire.getHost(a))?.cluster).toBe(c);
  });

  it('refuses bad input with 400: no key, a bad address, address mismatch, extra fields', async () => {
    expectPhrase(await call('PUT', `${V0}/host/${ip()}`, { body: {} }), 400, 'Bad Request');
    expectPhrase(await call('PUT', `${V0}/host/not-an-ip`, { body: { ssh_priv_key: KEY } }), 400, 'Bad Request');
    expectPhrase(await call('PUT', `${V0}/host/${ip()}`, { body: { ssh_priv_key: KEY, address: '127.0.0.254' } }), 400, 'Bad Request');
    expectPhrase(await call('PUT', `${V0}/host/${ip()}`, { body: { ssh_priv_key: KEY, status: 'active' } }), 400, 'Bad Request');
    expectPhrase(await call('GET', `${V0}/host/999.1.1.1`), 400, 'Bad Request');
    expectPhrase(await call('GET', `${V0}/host/${ip()}`), 404, 'Not Found');
    expectPhrase(await call('GET', `${V0}/host/${ip()}/status`), 404, 'Not Found');
    expectPhrase(await call('GET', `${V0}/host/${ip()}/creds`), 404, 'Not Found');
  });

  it('takes the address of PUT /api/v0/host from the body, else from the caller', async () => {
    const a = ip();
    const put = await call('PUT', `${V0}/host/`, { body: { ssh_priv_key: KEY, address: a } });
    expect(put.status, put.text).toBe(201);
    expect(put.body.address).toBe(a);
    // The test talks to the stack over loopback: the source address is 127.0.0.1.
    const self = await call('PUT', `${V0}/host`, { body: { ssh_priv_key: KEY } });
    expect(self.status, self.text).toBe(201);
    expect(self.body.address).toBe('127.0.0.1');
    expectPhrase(await call('PUT', `${V0}/host`, { body: { ssh_priv_key: KEY, address: 'nowhere' } }), 400, 'Bad Request');
  });

  it('accepts IPv6 addresses raw, URL-encoded and in any spelling, as one host', async () => {
    const put = await call('PUT', `${V0}/host/::1`, { body: { ssh_priv_key: KEY } });
    expect(put.status, put.text).toBe(201);
    expect(put.body.address).toBe('::1');
    for (const spelling of ['::1', '%3A%3A1', '0:0:0:0:0:0:0:1', '0000::0001']) {
      const got = await call('GET', `${V0}/host/${spelling}`);
      expect(got.status, spelling).toBe(200);
      expect(got.body.address).toBe('::1');
    }
    expect((await call('GET', `${V0}/host/%3A%3A1/status/`)).status).toBe(200);
    expect((await deps().nodes.getByAddress('::1'))?.name).toBe('host---1');
    const c = await cluster();
    await setStatus('::1', 'disassociated');
    expect((await call('PUT', `${V0}/cluster/${c}/hosts/%3A%3A1`)).body).toEqual(['::1']);
    expect((await call('GET', `${V0}/cluster/${c}/hosts/::1/`)).body).toEqual(['::1']);
    expect((await call('DELETE', `${V0}/host/::1`)).body).toEqual([]);
    expect((await call('GET', `${V0}/cluster/${c}/hosts`)).body).toEqual([]);
  });

  it('deletes a host with its credentials and its membership; the inventory node stays', async () => {
    const c = await cluster();
    const a = await host(ip(), { cluster: c });
    const b = await host(ip(), { cluster: c });
    const del = await call('DELETE', `${V0}/host/${a}/`, { body: {} });
    expect(del.status).toBe(200);
    expect(del.body).toEqual([]);
    expectPhrase(await call('GET', `${V0}/host/${a}`), 404, 'Not Found');
    expectPhrase(await call('GET', `${V0}/host/${a}/creds`), 404, 'Not Found');
    expectPhrase(await call('DELETE', `${V0}/host/${a}`), 404, 'Not Found');
    expect((await call('GET', `${V0}/cluster/${c}/hosts`)).body).toEqual([b]);
    expect(await deps().nodes.getByAddress(a)).toBeDefined();
    // Registered again with another key, it is a new host.
    expect((await call('PUT', `${V0}/host/${a}`, { body: { ssh_priv_key: OTHER_KEY } })).status).toBe(201);
  });

  it('queues an ssh_investigate job for the Commissaire site with the sealed key', async () => {
    const site = unique('site');
    const d = deps({ SLIPWAY_COMMISSAIRE_SITE: site });
    const a = await host();
    const stored = (await d.commissaire.getHost(a))!;
    await startInvestigation(d, stored);
    const [job] = await d.jobs.offered(site, new Date(Date.now() + 60_000), 10);
    expect(job).toMatchObject({
      kind: 'ssh_investigate',
      site,
      node_id: stored.node_id,
      status: 'queued',
      payload: {
        ssh: { address: a, port: 22, username: 'root', private_key: { $sealed: stored.ssh_priv_key_sealed } },
        commissaire: { address: a, step: 'investigate' },
      },
    });
    expect(Object.keys(job!.payload).sort()).toEqual(['commissaire', 'ssh']);
  });
});

describe('Commissaire: cluster membership', () => {
  it('adds, checks and removes one host idempotently; 405 until it is bootstrapped; 404 for unknowns', async () => {
    const c = await cluster();
    const a = await readyHost('active');
    const waiting = await host();
    for (let i = 0; i < 2; i++) {
      const add = await call('PUT', `${V0}/cluster/${c}/hosts/${a}${i ? '/' : ''}`);
      expect(add.status).toBe(200);
      expect(add.body).toEqual([a]);
    }
    expect((await call('GET', `${V0}/cluster/${c}/hosts/${a}`)).body).toEqual([a]);
    expect((await call('GET', `${V0}/cluster/${c}/hosts/`)).body).toEqual([a]);
    expectPhrase(await call('PUT', `${V0}/cluster/${c}/hosts/${waiting}`), 405, 'Method Not Allowed');
    expectPhrase(await call('GET', `${V0}/cluster/${c}/hosts/${waiting}`), 404, 'Not Found');
    expectPhrase(await call('PUT', `${V0}/cluster/${c}/hosts/${ip()}`), 404, 'Not Found');
    expectPhrase(await call('PUT', `${V0}/cluster/${unique('missing')}/hosts/${a}`), 404, 'Not Found');
    expectPhrase(await call('GET', `${V0}/cluster/${unique('missing')}/hosts/${a}`), 404, 'Not Found');
    expectPhrase(await call('GET', `${V0}/cluster/${unique('missing')}/hosts`), 404, 'Not Found');
    expectPhrase(await call('PUT', `${V0}/cluster/${c}/hosts/bad-ip`), 400, 'Bad Request');
    for (let i = 0; i < 2; i++) {
      const del = await call('DELETE', `${V0}/cluster/${c}/hosts/${a}`, { body: {} });
      expect(del.status).toBe(200);
      expect(del.body).toEqual([]);
    }
    expectPhrase(await call('DELETE', `${V0}/cluster/${unique('missing')}/hosts/${a}`), 404, 'Not Found');
    expect((await call('GET', `${V0}/cluster/${c}/hosts`)).body).toEqual([]);
    expect((await deps().commissaire.getHost(a))?.cluster).toBeUndefined();
  });

  it('keeps a host in one cluster at a time (409)', async () => {
    const [c1, c2] = [await cluster(), await cluster()];
    const a = await readyHost('disassociated');
    expect((await call('PUT', `${V0}/cluster/${c1}/hosts/${a}`)).status).toBe(200);
    expectPhrase(await call('PUT', `${V0}/cluster/${c2}/hosts/${a}`), 409, 'Conflict');
    expectPhrase(await call('PUT', `${V0}/cluster/${c2}/hosts`, { body: { old: [], new: [a] } }), 409, 'Conflict');
    expect((await call('DELETE', `${V0}/cluster/${c1}/hosts/${a}`)).status).toBe(200);
    expect((await call('PUT', `${V0}/cluster/${c2}/hosts/${a}`)).status).toBe(200);
  });

  it('replaces the host list when old matches the current one as a set', async () => {
    const c = await cluster();
    const [a, b, d] = [await readyHost(), await readyHost('disassociated'), await readyHost()];
    const first = await call('PUT', `${V0}/cluster/${c}/hosts/`, { body: { old: [], new: [a, b] } });
    expect(first.status, first.text).toBe(200);
    expect(first.body).toEqual({ name: c, status: 'degraded', network: 'default', container_manager: '', hosts: { total: 2, available: 1, unavailable: 1 }, hostset: [a, b] });
    const second = await call('PUT', `${V0}/cluster/${c}/hosts`, { body: { old: [b, a, b], new: [d, b] } });
    expect(second.status, second.text).toBe(200);
    expect(second.body.hostset).toEqual([d, b]);
    expect((await deps().commissaire.getHost(a))?.cluster).toBeUndefined();
    expect((await deps().commissaire.getHost(d))?.cluster).toBe(c);
    expectPhrase(await call('PUT', `${V0}/cluster/${c}/hosts`, { body: { old: [a, b], new: [] } }), 409, 'Conflict');
    expectPhrase(await call('PUT', `${V0}/cluster/${c}/hosts`, { body: { old: [d, b] } }), 400, 'Bad Request');
    expectPhrase(await call('PUT', `${V0}/cluster/${c}/hosts`, { body: { new: [] } }), 400, 'Bad Request');
    expectPhrase(await call('PUT', `${V0}/cluster/${c}/hosts`, { body: { old: [d, b], new: ['nope'] } }), 400, 'Bad Request');
    expectPhrase(await call('PUT', `${V0}/cluster/${c}/hosts`, { body: { old: [d, b], new: [d, b, await host()] } }), 405, 'Method Not Allowed');
    expectPhrase(await call('PUT', `${V0}/cluster/${c}/hosts`, { body: { old: [d, b], new: [ip()] } }), 404, 'Not Found');
    expectPhrase(await call('PUT', `${V0}/cluster/${unique('missing')}/hosts`, { body: { old: [], new: [] } }), 404, 'Not Found');
    expect((await call('GET', `${V0}/cluster/${c}/hosts`)).body).toEqual([d, b]);
  });

  it('lets exactly one of 10 parallel changes with the same old list win; the rest get 409', async () => {
    const c = await cluster();
    const hosts = await Promise.all(Array.from({ length: 10 }, () => readyHost()));
    const results = await Promise.all(hosts.map((h) => call('PUT', `${V0}/cluster/${c}/hosts`, { body: { old: [], new: [h] } })));
    const statuses = results.map((r) => r.status).sort();
    expect(statuses).toEqual([200, ...Array(9).fill(409)]);
    const winner = results.find((r) => r.status === 200)!.body.hostset as string[];
    expect(winner).toHaveLength(1);
    expect((await call('GET', `${V0}/cluster/${c}/hosts`)).body).toEqual(winner);
    const members = (await deps().commissaire.getHosts(hosts)).filter((h) => h.cluster === c).map((h) => h.address);
    expect(members).toEqual(winner);
  });
});

describe('Commissaire: cluster operations', () => {
  const stamp = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}$/;

  it('starts a deploy (201, in_process), shows it, and refuses any second operation while it runs (409)', async () => {
    const c = await cluster();
    const a = await host(ip(), { cluster: c });
    // An Atomic host: deploy has commands for it (an OS without them fails the step at once).
    await deps().commissaire.updateHost(a, { os: 'atomic' }, new Date().toISOString());
    expectPhrase(await call('GET', `${V0}/cluster/${c}/deploy`), 404, 'Not Found');
    const put = await call('PUT', `${V0}/cluster/${c}/deploy`, { body: { version: '7.2.6' } });
    expect(put.status, put.text).toBe(201);
    expect(put.body).toEqual({ name: c, status: 'in_process', version: '7.2.6', deployed: [], in_process: [], started_at: expect.stringMatching(stamp), finished_at: '' });
    // The workflow takes the first host (its job then waits: no agent serves this stack's Commissaire site).
    for (const path of [`${V0}/cluster/${c}/deploy`, `${V0}/cluster/${c}/deploy/`]) {
      await waitForBody(path, (b) => b.in_process?.length === 1);
      expect((await call('GET', path)).body).toEqual({ ...put.body, in_process: [a] });
    }
    expectPhrase(await call('PUT', `${V0}/cluster/${c}/deploy`, { body: { version: '7.2.7' } }), 409, 'Conflict');
    expectPhrase(await call('PUT', `${V0}/cluster/${c}/upgrade`, { body: {} }), 409, 'Conflict');
    expectPhrase(await call('PUT', `${V0}/cluster/${c}/restart/`), 409, 'Conflict');
    expectPhrase(await call('GET', `${V0}/cluster/${c}/upgrade`), 404, 'Not Found');

    // The workflow (issue 6 part 2) finishes it through the repository; then the next may start.
    const d = deps();
    const op = (await d.commissaire.getOperation(c, 'deploy'))!;
    const done = { ...op, status: 'finished' as const, done: [a], finished_at: new Date().toISOString() };
    expect(await d.commissaire.finishOperation(done)).toBe(true);
    expect(await d.commissaire.finishOperation(done)).toBe(false);
    expect((await call('GET', `${V0}/cluster/${c}/deploy`)).body).toMatchObject({ status: 'finished', deployed: [a], finished_at: expect.stringMatching(stamp) });
    const upgrade = await call('PUT', `${V0}/cluster/${c}/upgrade/`, { body: {} });
    expect(upgrade.status, upgrade.text).toBe(201);
    expect(upgrade.body).toEqual({ name: c, status: 'in_process', upgraded: [], in_process: [], started_at: expect.stringMatching(stamp), finished_at: '' });
  });

  it('lets exactly one of 10 parallel operations on a cluster start', async () => {
    const c = await cluster();
    // A member whose step never completes here keeps the winner in process.
    await deps().commissaire.updateHost(await host(ip(), { cluster: c }), { os: 'atomic' }, new Date().toISOString());
    const kinds = ['deploy', 'upgrade', 'restart'] as const;
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) => call('PUT', `${V0}/cluster/${c}/${kinds[i % 3]}`, { body: kinds[i % 3] === 'deploy' ? { version: `v${i}` } : {} })),
    );
    expect(results.map((r) => r.status).sort()).toEqual([201, ...Array(9).fill(409)]);
  });

  it('starts a restart without a body; 400 for a deploy without version; 404 for an unknown cluster', async () => {
    const c = await cluster();
    const restart = await call('PUT', `${V0}/cluster/${c}/restart`);
    expect(restart.status, restart.text).toBe(201);
    expect(restart.body).toMatchObject({ name: c, status: 'in_process', restarted: [], in_process: [] });
    expect(restart.body).not.toHaveProperty('version');
    const other = await cluster();
    expectPhrase(await call('PUT', `${V0}/cluster/${other}/deploy`, { body: {} }), 400, 'Bad Request');
    expectPhrase(await call('PUT', `${V0}/cluster/${other}/deploy`, { body: { version: '' } }), 400, 'Bad Request');
    expectPhrase(await call('PUT', `${V0}/cluster/${other}/deploy`), 400, 'Bad Request');
    expectPhrase(await call('PUT', `${V0}/cluster/${other}/upgrade`, { body: { version: '1' } }), 400, 'Bad Request');
    for (const kind of ['deploy', 'upgrade', 'restart']) {
      const missing = unique('missing');
      expectPhrase(await call('PUT', `${V0}/cluster/${missing}/${kind}`, { body: kind === 'deploy' ? { version: '1' } : {} }), 404, 'Not Found');
      expectPhrase(await call('GET', `${V0}/cluster/${missing}/${kind}`), 404, 'Not Found');
    }
    // Deleting the cluster deletes its operation records.
    expect((await call('DELETE', `${V0}/cluster/${c}`)).status).toBe(200);
    await cluster(c);
    expectPhrase(await call('GET', `${V0}/cluster/${c}/restart`), 404, 'Not Found');
  });
});

describe('Commissaire: networks', () => {
  it('always has the default network, which cannot be redefined or deleted', async () => {
    expect((await call('GET', `${V0}/networks`)).body[0]).toBe('default');
    const def = { name: 'default', type: 'flannel_etcd', options: {} };
    expect((await call('GET', `${V0}/network/default/`)).body).toEqual(def);
    const same = await call('PUT', `${V0}/network/default`, { body: { type: 'flannel_etcd', options: {} } });
    expect(same.status).toBe(201);
    expect(same.body).toEqual(def);
    expectPhrase(await call('PUT', `${V0}/network/default`, { body: { type: 'flannel_server', options: { address: '127.0.0.1:8080' } } }), 409, 'Conflict');
    expectPhrase(await call('DELETE', `${V0}/network/default`), 409, 'Conflict');
  });

  it('creates once (identical re-PUT 201, different 409), validates, lists and deletes', async () => {
    const name = unique('net');
    const body = { type: 'flanneld_service', options: { address: '127.0.0.1:8080' } };
    const put = await call('PUT', `${V0}/network/${name}/`, { body });
    expect(put.status, put.text).toBe(201);
    expect(put.body).toEqual({ name, type: 'flannel_server', options: { address: '127.0.0.1:8080' } });
    expect((await call('PUT', `${V0}/network/${name}`, { body: { type: 'flannel_server', options: { address: '127.0.0.1:8080' } } })).status).toBe(201);
    expectPhrase(await call('PUT', `${V0}/network/${name}`, { body: { type: 'flannel_server', options: { address: '127.0.0.1:8081' } } }), 409, 'Conflict');
    expect((await call('GET', `${V0}/network/${name}`)).body).toEqual(put.body);
    expect((await call('GET', `${V0}/networks/`)).body).toContain(name);
    expectPhrase(await call('PUT', `${V0}/network/${unique('net')}`, { body: { type: 'calico' } }), 400, 'Bad Request');
    expectPhrase(await call('PUT', `${V0}/network/${unique('net')}`, { body: { type: 'flannel_server' } }), 400, 'Bad Request');
    expectPhrase(await call('PUT', `${V0}/network/${unique('net')}`, { body: { name: 'other' } }), 400, 'Bad Request');
    expect((await call('DELETE', `${V0}/network/${name}`)).body).toEqual([]);
    expectPhrase(await call('DELETE', `${V0}/network/${name}`), 404, 'Not Found');
    expectPhrase(await call('GET', `${V0}/network/${name}`), 404, 'Not Found');
  });
});

describe('Commissaire: container managers', () => {
  it('creates once (identical re-PUT 201, different 409), takes apiserver for server_url, validates, lists and deletes', async () => {
    const name = unique('cm');
    const put = await call('PUT', `${V0}/containermanager/${name}`, { body: { type: 'openshift', options: { apiserver: 'https://127.0.0.1:8443', token: 'sekrit' } } });
    expect(put.status, put.text).toBe(201);
    // The token is stored sealed and shown to no one (the SSH test proves the manager gets it).
    const stored = { name, type: 'openshift', options: { server_url: 'https://127.0.0.1:8443', token: '******' } };
    expect(put.body).toEqual(stored);
    expect((await call('PUT', `${V0}/containermanager/${name}/`, { body: { options: { server_url: 'https://127.0.0.1:8443', token: 'sekrit' } } })).status).toBe(201);
    expectPhrase(await call('PUT', `${V0}/containermanager/${name}`, { body: { options: { server_url: 'https://127.0.0.1:9443' } } }), 409, 'Conflict');
    expect((await call('GET', `${V0}/containermanager/${name}`)).body).toEqual(stored);
    const reader = await tokenFor('reader');
    expect((await call('GET', `${V0}/containermanager/${name}`, { token: reader.token })).body.options.token).toBe('******');
    expect((await call('GET', `${V0}/containermanagers/`)).body).toContain(name);
    for (const body of [{ type: 'kubernetes' }, { options: {} }, { options: { server_url: 'ftp://x' } }, { options: { server_url: 'http://x', certificate_path: '/c' } }]) {
      expectPhrase(await call('PUT', `${V0}/containermanager/${unique('cm')}`, { body }), 400, 'Bad Request');
    }
    expect((await call('DELETE', `${V0}/containermanager/${name}/`, { body: {} })).body).toEqual([]);
    expectPhrase(await call('DELETE', `${V0}/containermanager/${name}`), 404, 'Not Found');
    expectPhrase(await call('GET', `${V0}/containermanager/${name}`), 404, 'Not Found');
  });

  it('gives exactly one of 10 parallel different definitions its 201; the rest get 409', async () => {
    const name = unique('cm');
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) => call('PUT', `${V0}/containermanager/${name}`, { body: { options: { server_url: `https://127.0.0.1:${8000 + i}` } } })),
    );
    expect(results.map((r) => r.status).sort()).toEqual([201, ...Array(9).fill(409)]);
    const winner = results.find((r) => r.status === 201)!.body;
    expect((await call('GET', `${V0}/containermanager/${name}`)).body).toEqual(winner);
  });
});

describe('Commissaire: what commctl sends (client-contracts.md §5)', () => {
  /** Exactly commctl's requests: Basic auth, JSON content type on every request, `{}` on DELETE. */
  async function commctl(method: 'GET' | 'PUT' | 'DELETE', path: string, body?: unknown): Promise<ApiResponse> {
    const headers = {
      Authorization: `Basic ${Buffer.from(`operator:${adminToken()}`).toString('base64')}`,
      'Content-Type': 'application/json',
      Accept: '*/*',
      'User-Agent': 'python-requests/2.31.0',
    };
    const res = await fetch(`${apiUrl()}${path}`, { method, headers, body: method === 'DELETE' ? '{}' : body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      // plain text
    }
    return { status: res.status, headers: res.headers, body: parsed, text };
  }

  it('runs a commctl session: cluster create/list/get, host create/get/status/list, join, deploy, networks, unjoin, deletes', async () => {
    const name = unique('commctl');
    const create = await commctl('PUT', `${V0}/cluster/${name}`, { type: 'kubernetes', network: 'default', container_manager: '' });
    expect(create.status, create.text).toBe(201);
    expect((await commctl('GET', `${V0}/clusters`)).body).toContain(name);
    expect((await commctl('GET', `${V0}/cluster/${name}`)).body).toMatchObject({ name, status: 'ok', network: 'default', container_manager: '' });

    const a = ip();
    const host = await commctl('PUT', `${V0}/host/${a}`, { ssh_priv_key: KEY, cluster: name });
    expect(host.status, host.text).toBe(201);
    expect((await commctl('GET', `${V0}/host/${a}`)).body).toMatchObject({ address: a, status: 'investigating' });
    expect((await commctl('GET', `${V0}/host/${a}/status`)).body).toMatchObject({ type: 'host_only', host: { status: 'investigating' } });
    expect((await commctl('GET', `${V0}/hosts`)).body).toContainEqual(expect.objectContaining({ address: a }));
    expect((await commctl('GET', `${V0}/cluster/${name}/hosts`)).body).toEqual([a]);

    const b = ip();
    expect((await commctl('PUT', `${V0}/host/${b}`, { ssh_priv_key: KEY, cluster: null })).status).toBe(201);
    await setStatus(b, 'active');
    expect((await commctl('PUT', `${V0}/cluster/${name}/hosts/${b}`)).body).toEqual([b]);
    expect((await commctl('GET', `${V0}/cluster/${name}`)).body.hosts).toEqual({ total: 2, available: 1, unavailable: 1 });

    // Atomic hosts, so that the deploy has commands and waits for this stack's (absent) agent.
    for (const x of [a, b]) await deps().commissaire.updateHost(x, { os: 'atomic' }, new Date().toISOString());
    const deploy = await commctl('PUT', `${V0}/cluster/${name}/deploy`, { version: '7.2.6' });
    expect(deploy.status, deploy.text).toBe(201);
    expect((await commctl('GET', `${V0}/cluster/${name}/deploy`)).body).toMatchObject({ name, status: 'in_process', version: '7.2.6' });
    expect((await commctl('PUT', `${V0}/cluster/${name}/upgrade`, {})).status).toBe(409);

    expect((await commctl('GET', `${V0}/networks`)).body).toContain('default');
    expect((await commctl('GET', `${V0}/network/default`)).body).toEqual({ name: 'default', type: 'flannel_etcd', options: {} });
    expect(Array.isArray((await commctl('GET', `${V0}/containermanagers`)).body)).toBe(true);
    // commctl prints "No object found." for a 404 and exits 0.
    expect((await commctl('GET', `${V0}/containermanager/${unique('none')}`)).status).toBe(404);

    for (const [path, expected] of [
      [`${V0}/cluster/${name}/hosts/${b}`, []],
      [`${V0}/host/${a}`, []],
      [`${V0}/host/${b}`, []],
      [`${V0}/cluster/${name}`, []],
    ] as const) {
      const res = await commctl('DELETE', path);
      expect(res.status, `${path}: ${res.text}`).toBe(200);
      expect(res.body).toEqual(expected);
    }
    expect((await commctl('GET', `${V0}/cluster/${name}`)).status).toBe(404);
  });
});
