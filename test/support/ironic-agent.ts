import { randomBytes } from 'node:crypto';
import { expect } from 'vitest';
import { call, tokenFor, unique } from './api.ts';

/**
 * Ironic over HTTP with the test as the site's agent: it speaks the real agent API with an agent
 * token of the node's site (claims the node's jobs, checks what they carry, posts what a BMC or
 * a ramdisk would have answered). Shared by the inspection and cleaning tests.
 */
export const V = { 'X-OpenStack-Ironic-API-Version': '1.78' };
export const ironic = (method: string, path: string, body?: unknown, token?: string) => call(method, path, { body, headers: V, ...(token ? { token } : {}) });
export const fault = (res: { body: any }) => JSON.parse(res.body.error_message);
/** A random unicast MAC. */
export const mac = () => [...randomBytes(6)].map((b, i) => (i === 0 ? b & 0xfe : b).toString(16).padStart(2, '0')).join(':');
export const GiB = 1024 ** 3;

export interface Site {
  name: string;
  token: string;
}

/** A site with its agent token. */
export async function agentSite(prefix: string): Promise<Site> {
  const name = unique(prefix);
  const { token } = await tokenFor('agent', name);
  return { name, token };
}

/** A node of `at` with an IPMI BMC (its password sealed), and Ironic ports for `ports`. */
export async function registerIpmiNode(
  at: { name: string },
  bmc: { address: string; password: string },
  opts: { name?: string; ports?: string[]; automated_clean?: boolean } = {},
): Promise<{ name: string; uuid: string }> {
  const name = opts.name ?? unique('bm');
  const res = await ironic('POST', '/v1/nodes', {
    name,
    driver: 'ipmi',
    conductor_group: at.name,
    driver_info: { ipmi_address: bmc.address, ipmi_username: 'admin', ipmi_password: bmc.password },
    ...(opts.automated_clean === undefined ? {} : { automated_clean: opts.automated_clean }),
  });
  expect(res.status, res.text).toBe(201);
  for (const address of opts.ports ?? []) expect((await ironic('POST', '/v1/ports', { address, node_uuid: res.body.uuid })).status).toBe(201);
  return { name, uuid: res.body.uuid as string };
}

/** Claims up to `max` of the site's jobs as its agent. */
export async function claim(token: string, max = 1): Promise<any[]> {
  const res = await call('POST', '/api/v1.0/agent/jobs/claim', { token, body: { wait: 2, max } });
  expect(res.status, res.text).toBe(200);
  return res.body.jobs as any[];
}

/** Posts a claimed job's result as the agent. */
export const finish = (token: string, job: any, body: Record<string, unknown>) =>
  call('POST', `/api/v1.0/agent/jobs/${job.id}/result`, { token, body: { claim_token: job.claim_token, ...body } });

export const states = async (ident: string) => (await ironic('GET', `/v1/nodes/${ident}/states`)).body;

/** `manage`, with the test answering the BMC read as the site's agent: the node is `manageable`. */
export async function manageable(at: Site, ident: string): Promise<void> {
  expect((await ironic('PUT', `/v1/nodes/${ident}/states/provision`, { target: 'manage' })).status).toBe(202);
  const [job] = await claim(at.token);
  expect(job).toMatchObject({ kind: 'power_state' });
  expect((await finish(at.token, job, { status: 'succeeded', output: { power_state: 'power off' } })).status).toBe(200);
  expect((await states(ident)).provision_state).toBe('manageable');
}
