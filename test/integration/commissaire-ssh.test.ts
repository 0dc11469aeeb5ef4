import { mkdtempSync } from 'node:fs';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, ScanCommand } from '@aws-sdk/lib-dynamodb';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Agent } from '../../agent/runner.ts';
import { startOwnStack } from '../support/own-stack.ts';
import { startTestAgent } from '../support/agent.ts';
import { call, tokenFor, unique } from '../support/api.ts';
import { generateUserKey, startSshd, type TestSshd } from '../support/sshd.ts';
import { waitFor } from '../support/wait.ts';
import { startRedfishSim } from '../../agent/sim/redfish.ts';

/**
 * Commissaire hosts investigated and bootstrapped over SSH by the agent, and cluster operations
 * run host by host, against real OpenSSH servers on loopback addresses (127.0.0.2, 127.0.0.3 and
 * ::1 only), on a stack of its own whose Commissaire commands are harmless ones. A fake
 * Kubernetes API on loopback plays the container manager.
 */
const SITE = 'commissaire-ssh-site';
// Fails on the host listening on 127.0.0.3 only (SSH_CONNECTION names the server address).
const FAIL_ON_3 = 'case "$SSH_CONNECTION" in *" 127.0.0.3 "*) echo "no space left" >&2; exit 3;; esac; echo ok';
const COMMANDS = {
  bootstrap: { default: ['echo bootstrapping', 'true'] },
  deploy: { default: ['echo deploying {version}'] },
  upgrade: { default: [FAIL_ON_3] },
  restart: { default: ['echo restarting'] },
};

let own: Awaited<ReturnType<typeof startOwnStack>> | undefined;
let sshA: TestSshd;
let sshB: TestSshd;
let agent: Agent;
let k8s: Server;
let k8sUrl: string;
const k8sRequests: { method: string; url: string; auth: string | undefined; body: string; at: string | undefined }[] = [];
/** The address this stack maps to the site (SLIPWAY_SITE_ADDRESSES): a manager there is called by the site's agent. */
const SITE_ADDRESS = '127.0.0.5';
let k8sInsideUrl: string;
/** While set, the fake API answers every node registration with a 500. */
let k8sRefuses = false;
const k8sNodes = new Map<string, Record<string, unknown>>();

const b64 = (s: string) => Buffer.from(s).toString('base64');


const hostPath = (address: string) => `/api/v0/host/${encodeURIComponent(address)}`;
const hostStatus = (address: string, status: string) =>
  waitFor(`host ${address} ${status}`, async () => {
    const res = await call('GET', hostPath(address));
    if (res.body?.status === 'failed' && status !== 'failed') throw new Error(`host ${address} failed: ${JSON.stringify((await call('GET', `${hostPath(address)}/status`)).body)}`);
    return res.body?.status === status ? res.body : undefined;
  }, 30_000);

async function register(ssh: TestSshd, address: string, extra: Record<string, unknown> = {}) {
  const res = await call('PUT', hostPath(address), { body: { ssh_priv_key: b64(ssh.privateKey), remote_user: ssh.user, ssh_port: ssh.port, ...extra } });
  expect(res.status, res.text).toBe(201);
  return res.body;
}

async function operation(cluster: string, kind: string, body: unknown = {}) {
  const started = await call('PUT', `/api/v0/cluster/${cluster}/${kind}`, { body });
  expect(started.status, started.text).toBe(201);
  expect(started.body.status).toBe('in_process');
  return waitFor(`${kind} of ${cluster}`, async () => {
    const r = await call('GET', `/api/v0/cluster/${cluster}/${kind}`);
    return r.body.status !== 'in_process' ? r.body : undefined;
  }, 30_000);
}

beforeAll(async () => {
  k8s = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      k8sRequests.push({ method: req.method!, url: req.url!, auth: req.headers.authorization, body, at: req.socket.localAddress });
      const m = /^\/api\/v1\/nodes(?:\/(.+))?$/.exec(req.url!);
      if (req.method === 'POST' && m && !m[1]) {
        if (k8sRefuses) return res.writeHead(500).end('{"message":"etcd unavailable"}');
        const name = JSON.parse(body).metadata.name as string;
        if (k8sNodes.has(name)) return res.writeHead(409).end();
        k8sNodes.set(name, { kind: 'Node', metadata: { name }, status: { conditions: [{ type: 'Ready', status: 'True' }] } });
        return res.writeHead(201, { 'Content-Type': 'application/json' }).end(JSON.stringify(k8sNodes.get(name)));
      }
      const node = m?.[1] && k8sNodes.get(decodeURIComponent(m[1]));
      if (req.method === 'GET' && node) return res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify(node));
      if (req.method === 'DELETE' && node) {
        k8sNodes.delete(decodeURIComponent(m![1]!));
        return res.writeHead(200).end('{}');
      }
      res.writeHead(404).end();
    });
  });
  // 0.0.0.0: the same fake API is public (127.0.0.1) and inside the site (127.0.0.5) for this stack.
  await new Promise<void>((r) => k8s.listen(0, '0.0.0.0', r));
  k8sUrl = `http://127.0.0.1:${(k8s.address() as { port: number }).port}`;
  k8sInsideUrl = `http://${SITE_ADDRESS}:${(k8s.address() as { port: number }).port}`;
  [sshA, sshB] = await Promise.all([startSshd({ address: '127.0.0.2' }), startSshd({ address: '127.0.0.3' })]);
  own = await startOwnStack('commissaire', {
    env: { SLIPWAY_COMMISSAIRE_SITE: SITE, SLIPWAY_COMMISSAIRE_COMMANDS: JSON.stringify(COMMANDS), SLIPWAY_SITE_ADDRESSES: JSON.stringify({ [SITE]: [SITE_ADDRESS] }) },
  });
  agent = await startTestAgent(SITE);
}, 60_000);

afterAll(async () => {
  await agent?.stop();
  await own?.stop();
  await Promise.all([sshA?.stop(), sshB?.stop()]);
  k8s?.close();
});

describe('Commissaire over SSH', () => {
  it('investigates and bootstraps a host over SSH: investigating → disassociated, with its facts', async () => {
    const created = await register(sshA, sshA.address);
    expect(created.status).toBe('investigating');
    const host = await hostStatus(sshA.address, 'disassociated');
    expect(host.os).toEqual(expect.any(String));
    expect(host.os.length).toBeGreaterThan(0);
    expect(host.cpus).toBeGreaterThanOrEqual(1);
    expect(host.memory).toBeGreaterThan(0);
    expect(host.space).toBeGreaterThan(0);
    expect(host.last_check).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}$/);
    // The key comes back only to admins, as it was given.
    const creds = await call('GET', `${hostPath(sshA.address)}/creds`);
    expect(creds.body).toEqual({ address: sshA.address, ssh_priv_key: b64(sshA.privateKey), remote_user: sshA.user });
    const reader = await tokenFor('reader');
    expect((await call('GET', `${hostPath(sshA.address)}/creds`, { token: reader.token })).status).toBe(403);
  });

  it('marks a host it cannot log in to failed, with the reason', async () => {
    const other = await generateUserKey(mkdtempSync(join(tmpdir(), 'slipway-key-')));
    const address = sshA.address6 ?? '127.0.0.4';
    const res = await call('PUT', hostPath(address), { body: { ssh_priv_key: b64(other.privateKey), remote_user: sshA.user, ssh_port: sshA.port } });
    expect(res.status, res.text).toBe(201);
    await hostStatus(address, 'failed');
    const status = await call('GET', `${hostPath(address)}/status`);
    expect(status.body.host.status_reason).toMatch(/investigation failed: auth/);
    expect((await call('DELETE', hostPath(address))).status).toBe(200);
  });

  it('registers a bootstrapped host with its cluster’s container manager (active), reports the node, and removes it when it leaves', async () => {
    const cm = unique('cm');
    expect((await call('PUT', `/api/v0/containermanager/${cm}`, { body: { type: 'openshift', options: { server_url: k8sUrl, token: 'k8s-secret' } } })).status).toBe(201);
    const cluster = unique('c');
    expect((await call('PUT', `/api/v0/cluster/${cluster}`, { body: { container_manager: cm } })).status).toBe(201);
    await register(sshB, sshB.address, { cluster });
    await hostStatus(sshB.address, 'active');
    const post = k8sRequests.find((r) => r.method === 'POST' && JSON.parse(r.body).metadata.name === sshB.address);
    expect(post?.auth).toBe('Bearer k8s-secret');
    const status = await call('GET', `${hostPath(sshB.address)}/status`);
    expect(status.body).toMatchObject({ type: 'host_only', host: { status: 'active' }, container_manager: { kind: 'Node', metadata: { name: sshB.address } } });
    expect((await call('GET', `/api/v0/cluster/${cluster}`)).body).toMatchObject({ status: 'ok', hosts: { total: 1, available: 1, unavailable: 0 } });

    // Leaving the cluster removes the node from the manager; the host is disassociated again.
    expect((await call('DELETE', `/api/v0/cluster/${cluster}/hosts/${sshB.address}`, { body: {} })).status).toBe(200);
    expect(k8sNodes.has(sshB.address)).toBe(false);
    expect((await call('GET', hostPath(sshB.address))).body.status).toBe('disassociated');
    // Joining again registers it again.
    expect((await call('PUT', `/api/v0/cluster/${cluster}/hosts/${sshB.address}`)).status).toBe(200);
    expect((await call('GET', hostPath(sshB.address))).body.status).toBe('active');
    expect(k8sNodes.has(sshB.address)).toBe(true);
    expect((await call('DELETE', `/api/v0/cluster/${cluster}/hosts/${sshB.address}`, { body: {} })).status).toBe(200);
  });

  it("a container manager inside the site is called by the site's agent, its token sealed until the agent's claim", async () => {
    await hostStatus(sshA.address, 'disassociated');
    const cm = unique('cm-in');
    const token = `inside-secret-${process.pid}`;
    expect((await call('PUT', `/api/v0/containermanager/${cm}`, { body: { type: 'openshift', options: { server_url: k8sInsideUrl, token } } })).status).toBe(201);
    const cluster = unique('c-in');
    expect((await call('PUT', `/api/v0/cluster/${cluster}`, { body: { container_manager: cm } })).status).toBe(201);
    const claimed = agent.stats.claimed;
    const seen = k8sRequests.length;

    // Joining: the registration is an agent job; its result makes the host active.
    expect((await call('PUT', `/api/v0/cluster/${cluster}/hosts/${sshA.address}`)).status).toBe(200);
    await hostStatus(sshA.address, 'active');
    const post = k8sRequests.slice(seen).find((r) => r.method === 'POST' && JSON.parse(r.body).metadata.name === sshA.address);
    expect(post).toMatchObject({ at: SITE_ADDRESS, auth: `Bearer ${token}` });
    // The status read goes through the agent too, and answers what the manager said.
    const status = await call('GET', `${hostPath(sshA.address)}/status`);
    expect(status.body).toMatchObject({ host: { status: 'active' }, container_manager: { kind: 'Node', metadata: { name: sshA.address } } });
    // Leaving removes the node through the agent.
    expect((await call('DELETE', `/api/v0/cluster/${cluster}/hosts/${sshA.address}`, { body: {} })).status).toBe(200);
    await waitFor('the node removed from the manager', async () => !k8sNodes.has(sshA.address) || undefined, 15_000);
    expect(k8sRequests.slice(seen).every((r) => r.at === SITE_ADDRESS)).toBe(true);
    expect(agent.stats.claimed - claimed).toBeGreaterThanOrEqual(3);
    expect((await call('GET', hostPath(sshA.address))).body.status).toBe('disassociated');

    // No stored item, the fetch jobs included, holds the token in plaintext.
    const doc = DynamoDBDocumentClient.from(new DynamoDBClient({ endpoint: own!.stack.dynamoEndpoint, region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'x' } }));
    let start: Record<string, unknown> | undefined;
    let fetchJobs = 0;
    do {
      const res = await doc.send(new ScanCommand({ TableName: 'slipway', ExclusiveStartKey: start }));
      for (const item of res.Items ?? []) {
        expect(JSON.stringify(item)).not.toContain(token);
        if (item.kind === 'fetch' && JSON.stringify(item).includes(k8sInsideUrl)) fetchJobs++;
      }
      start = res.LastEvaluatedKey;
    } while (start);
    expect(fetchJobs).toBeGreaterThanOrEqual(3);

    // A manager that already has the node answers 409 to the registration, which counts as registered.
    k8sNodes.set(sshA.address, { kind: 'Node', metadata: { name: sshA.address } });
    expect((await call('PUT', `/api/v0/cluster/${cluster}/hosts/${sshA.address}`)).status).toBe(200);
    await hostStatus(sshA.address, 'active');
    expect((await call('DELETE', `/api/v0/cluster/${cluster}/hosts/${sshA.address}`, { body: {} })).status).toBe(200);
    await waitFor('the node removed again', async () => !k8sNodes.has(sshA.address) || undefined, 15_000);

    // A host bootstrapped into that cluster while the manager refuses: failed, with the manager's answer.
    const sshC = await startSshd({ address: '127.0.0.6' });
    try {
      k8sRefuses = true;
      await register(sshC, sshC.address, { cluster });
      await hostStatus(sshC.address, 'failed');
      const failed = await call('GET', `${hostPath(sshC.address)}/status`);
      expect(failed.body.host.status_reason).toBe(`registration failed: the container manager ${cm} answered 500 to the node registration`);
      expect(k8sRequests.filter((r) => r.method === 'POST' && r.body.includes(sshC.address)).map((r) => r.at)).toEqual([SITE_ADDRESS]);
      expect((await call('DELETE', hostPath(sshC.address))).status).toBe(200);
    } finally {
      k8sRefuses = false;
      await sshC.stop();
    }
  });

  it('deploys, upgrades and restarts a cluster one host at a time, and stops at the first failing host', async () => {
    await hostStatus(sshA.address, 'disassociated');
    await hostStatus(sshB.address, 'disassociated');
    const cluster = unique('ops');
    expect((await call('PUT', `/api/v0/cluster/${cluster}`, { body: {} })).status).toBe(201);
    const join = await call('PUT', `/api/v0/cluster/${cluster}/hosts`, { body: { old: [], new: [sshA.address, sshB.address] } });
    expect(join.status, join.text).toBe(200);

    const deployed = await operation(cluster, 'deploy', { version: '7.2.6' });
    expect(deployed).toMatchObject({ name: cluster, status: 'finished', version: '7.2.6', deployed: [sshA.address, sshB.address], in_process: [] });
    expect(deployed.finished_at).not.toBe('');

    const restarted = await operation(cluster, 'restart');
    expect(restarted).toMatchObject({ status: 'finished', restarted: [sshA.address, sshB.address], in_process: [] });

    // The upgrade command fails on 127.0.0.3: 127.0.0.2 is upgraded, 127.0.0.3 stays in process.
    const upgraded = await operation(cluster, 'upgrade');
    expect(upgraded).toMatchObject({ status: 'failed', upgraded: [sshA.address], in_process: [sshB.address] });
    // The lock is released: another operation may start.
    const again = await operation(cluster, 'deploy', { version: '7.2.7' });
    expect(again.status).toBe('finished');
    const leave = await call('PUT', `/api/v0/cluster/${cluster}/hosts`, { body: { old: [sshA.address, sshB.address], new: [] } });
    expect(leave.status, leave.text).toBe(200);
  });

  it('restarts a host whose inventory node has a BMC by power-cycling it through the agent', async () => {
    const sim = await startRedfishSim({ username: 'root', password: 'calvin', systems: [{ id: 'h2', powerState: 'On' }] });
    try {
      // The inventory node Commissaire linked to 127.0.0.2 gets a BMC through the Ironic API.
      const node = `host-${sshA.address.replace(/[:.]/g, '-')}`;
      const bmc = await call('POST', '/v1/nodes', {
        headers: { 'X-OpenStack-Ironic-API-Version': '1.78' },
        body: { name: node, driver: 'redfish', conductor_group: SITE, driver_info: { redfish_address: sim.url, redfish_system_id: 'h2', redfish_username: 'root', redfish_password: 'calvin' } },
      });
      expect(bmc.status, bmc.text).toBe(201);
      const cluster = unique('bmc');
      expect((await call('PUT', `/api/v0/cluster/${cluster}`, { body: {} })).status).toBe(201);
      expect((await call('PUT', `/api/v0/cluster/${cluster}/hosts/${sshA.address}`)).status).toBe(200);
      const restarted = await operation(cluster, 'restart');
      expect(restarted).toMatchObject({ status: 'finished', restarted: [sshA.address] });
      // A reboot through Redfish, not a command over SSH.
      expect(sim.state('h2').resets.length).toBeGreaterThan(0);
    } finally {
      await sim.stop();
    }
  });
});
