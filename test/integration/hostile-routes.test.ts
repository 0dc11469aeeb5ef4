import { createHash } from 'node:crypto';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, ScanCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Agent } from '../../agent/runner.ts';
import { type RedfishSim, startRedfishSim } from '../../agent/sim/redfish.ts';
import { type FunctionName, type RouteSpec, routes } from '../../infra/routes.ts';
import { startTestAgent } from '../support/agent.ts';
import { apiUrl, call, tokenFor, unique } from '../support/api.ts';
import { blazarIn, hostPool, leaseBody } from '../support/fixtures.ts';
import { startOwnStack } from '../support/own-stack.ts';

/**
 * Every route of `infra/routes.ts` (generated from the table, so a new route is covered without
 * anyone remembering to) × every kind of caller × a fixed corpus of hostile inputs. For each
 * request it asserts: no 5xx; the documented status where the answer is decided before the
 * route's own logic (401 without valid credentials, 403 for the wrong role, 400 for an
 * identifier over the bounds, 413 for an oversized body); every 4xx in the surface's own error
 * format, with no internals; and no change to stored data after a refused write (the table is
 * compared before and after).
 *
 * It runs on a stack of its own, so that no other test file writes while the table is compared,
 * with a Redfish BMC simulator and an agent for the fixture node's site, so that the routes that
 * wait on a BMC answer at once.
 */

type CallerKind = 'none' | 'garbage' | 'expired' | 'revoked' | 'other' | 'reader' | 'member' | 'agent' | 'admin';
const CALLERS: CallerKind[] = ['none', 'garbage', 'expired', 'revoked', 'other', 'reader', 'member', 'agent', 'admin'];
interface Caller {
  kind: CallerKind;
  token: string | null;
  project: string;
}

interface Input {
  name: string;
  /** Path parameters to replace (name → value). */
  params?: Record<string, string>;
  query?: string;
  body?: string;
  contentType?: string;
  /** The status this input must get from a caller allowed on the route (undefined: any 4xx or 2xx). */
  expect?: number;
}

const A3K = 'a'.repeat(3000);
const A10K = 'a'.repeat(10_000);
const deep = (levels: number) => '{"a":'.repeat(levels) + '1' + '}'.repeat(levels);
const deepArray = (levels: number) => '['.repeat(levels) + ']'.repeat(levels);

/** Bodies every body-taking route gets (fixed, so that CI runs the same corpus). */
const BODIES: Input[] = [
  { name: 'malformed JSON', body: '{"name": ', expect: 400 },
  { name: 'array', body: '[]' },
  { name: 'string', body: '"text"' },
  { name: 'number', body: '42' },
  { name: 'null', body: 'null' },
  { name: 'wrong types', body: JSON.stringify({ name: 7, id: [], uuid: {}, start_date: 1, end_date: false, reservations: 'x', extra: 'x', properties: [], options: 3, hosts: 'x', status: 9 }) },
  { name: 'nested 40 levels', body: deep(40), expect: 400 },
  { name: 'nested 2000 levels', body: deep(2000), expect: 400 },
  { name: 'array nested 5000 levels', body: deepArray(5000), expect: 400 },
  { name: '__proto__ key', body: '{"__proto__": {"roles": ["admin"]}, "name": "x"}', expect: 400 },
  { name: 'constructor key', body: '{"constructor": {"prototype": {"x": 1}}, "extra": {"constructor": 1}}', expect: 400 },
  { name: 'prototype key nested', body: JSON.stringify({ extra: { a: { prototype: 1 } }, capabilities: { prototype: 1 } }), expect: 400 },
  { name: 'oversized body (2 MiB)', body: JSON.stringify({ name: 'x', pad: 'p'.repeat(2 * 1024 * 1024) }), expect: 413 },
  {
    name: '3 KB identifiers',
    body: JSON.stringify({ name: A3K, id: A3K, uuid: A3K, node_uuid: A3K, project_id: A3K, address: A3K, hostname: A3K, driver: A3K, lease_id: A3K, design_ref: A3K, node_id: A3K, action: A3K }),
  },
  {
    name: '10 KB identifiers',
    body: JSON.stringify({ name: A10K, id: A10K, uuid: A10K, address: A10K, hostname: A10K }),
  },
  { name: 'NUL in names', body: JSON.stringify({ name: 'a\u0000b', hostname: 'h\u0000', address: 'x\u0000' }) },
  { name: '../ in names', body: JSON.stringify({ name: '../../etc/passwd', hostname: 'x/../y', id: '..' }) },
  { name: 'bad dates', body: JSON.stringify({ name: 'x', start_date: '9999-99-99 99:99', end_date: '0000-00-00', before_end_date: 'yesterday', expires_at: 'never' }) },
  { name: 'extreme numbers', body: JSON.stringify({ name: 'x', min: -5, max: 1e308, limit: -1, vcpus: -1, memory_mb: 1e400, local_gb: Number.MAX_SAFE_INTEGER * 4 }) },
  { name: 'huge free-form', body: JSON.stringify({ name: 'x', extra: { blob: 'b'.repeat(500_000) }, properties: { blob: 'b'.repeat(300_000) } }) },
  { name: 'not JSON content type', body: 'name=x', contentType: 'application/x-www-form-urlencoded' },
  // Surface-specific shapes of the same attacks (every body route gets them: a route that does
  // not know the fields must refuse or ignore them just as safely).
  {
    name: 'lease filter nested 2000 levels in its JSON string',
    body: JSON.stringify({
      name: 'deep-filter',
      start_date: '2030-01-01 00:00',
      end_date: '2030-01-02 00:00',
      reservations: [{ resource_type: 'physical:host', min: 1, max: 1, hypervisor_properties: '', resource_properties: '['.repeat(2000) + ']'.repeat(2000) }],
      events: [],
    }),
  },
  {
    name: 'lease filter on prototype names',
    body: JSON.stringify({
      name: 'proto-filter',
      start_date: '2030-01-01 00:00',
      end_date: '2030-01-02 00:00',
      reservations: [{ resource_type: 'physical:host', min: 1, max: 1, hypervisor_properties: '["==", "$__proto__", "x"]', resource_properties: '["==", "$constructor", "x"]' }],
      events: [],
    }),
  },
  { name: 'lease ending 9999-12-31', body: JSON.stringify({ name: 'forever', start_date: 'now', end_date: '9999-12-31 23:59', reservations: [{ resource_type: 'physical:host', min: 1, max: 1, hypervisor_properties: '', resource_properties: '' }], events: [] }) },
  { name: 'sealed values offered as plain input', body: JSON.stringify({ name: 'sealed', driver_info: { ipmi_username: { $sealed: 'v1:AAAA:BBBB:CCCC' } }, options: { token: { $sealed: 'v1:AAAA:BBBB:CCCC' } } }) },
  {
    name: 'JSON patch: sealed value, bad names, prototype paths',
    body: JSON.stringify([
      { op: 'add', path: '/driver_info/ipmi_username', value: { $sealed: 'v1:AAAA:BBBB:CCCC' } },
      { op: 'replace', path: '/name', value: 'x/../y' },
      { op: 'add', path: '/extra/__proto__', value: { admin: true } },
    ]),
  },
  { name: 'JSON patch: empty name', body: JSON.stringify([{ op: 'replace', path: '/name', value: '' }]) },
  { name: 'boot-action report with a detail nested 40 levels', body: JSON.stringify({ status: 'Success', details: [{ message: 'm', error: false, blob: JSON.parse(deep(40)) }] }) },
  { name: 'agent result with a huge output', body: JSON.stringify({ claim_token: 'x', status: 'succeeded', output: { blob: 'o'.repeat(600_000) } }) },
];

const QUERIES: Input[] = [
  { name: 'negative limit', query: 'limit=-1' },
  { name: 'huge limit', query: 'limit=99999999999999999999999' },
  { name: 'not a number limit', query: 'limit=ten' },
  { name: '3 KB marker', query: `marker=${A3K}`, expect: 400 },
  { name: 'unknown marker', query: 'marker=no-such-marker' },
  { name: 'prototype sort keys', query: 'sort_by=__proto__&sort_key=constructor&sort_dir=sideways' },
  { name: 'bad dates in query', query: 'start_date=9999-99-99&end_date=yesterday&changes_since=never' },
  { name: 'NUL in a filter', query: 'name=a%00b&provision_state=%00' },
];

/** Inputs that replace one path parameter at a time. */
const paramInputs = (param: string): Input[] => [
  { name: `3 KB ${param}`, params: { [param]: A3K }, expect: 400 },
  { name: `10 KB ${param}`, params: { [param]: A10K }, expect: 400 },
  { name: `NUL in ${param}`, params: { [param]: 'x\u0000y' }, expect: 400 },
  { name: `../ in ${param}`, params: { [param]: '../../x' } },
  { name: `prototype ${param}`, params: { [param]: '__proto__' } },
];

const METHODS_WITH_BODY = new Set(['POST', 'PUT', 'PATCH']);
/** The methods a catch-all (`ANY`) route is tried with. */
const ANY_METHODS = ['GET', 'POST', 'DELETE'];

let stop: (() => Promise<void>) | undefined;
let redfish: RedfishSim | undefined;
let agent: Agent | undefined;
let doc: DynamoDBDocumentClient;
const callers = new Map<CallerKind, Caller>();
/** Real objects for the path parameters, so that inputs reach the routes' own logic. */
const fixtures: Record<string, string> = {};
const site = unique('hostile-site');

beforeAll(async () => {
  const own = await startOwnStack('hostile', { env: { SLIPWAY_COMMISSAIRE_SITE: 'hostile-commissaire' } });
  stop = own.stop;
  doc = DynamoDBDocumentClient.from(new DynamoDBClient({ endpoint: own.stack.dynamoEndpoint, region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'x' } }));
  redfish = await startRedfishSim({ username: 'root', password: 'calvin', systems: [{ id: 'n1', powerState: 'Off' }] });
  agent = await startTestAgent(site, { poll_seconds: 0.2 });

  const project = unique('tenant');
  const admin = { kind: 'admin' as const, token: own.stack.adminToken, project: 'admin' };
  const member = await tokenFor('member', project);
  const reader = await tokenFor('reader', project);
  const other = await tokenFor('member');
  const agentToken = await tokenFor('agent', unique('other-site'));
  const revoked = await tokenFor('member', project);
  expect((await call('DELETE', `/v1.1/admin/tokens/${revoked.id}`)).status).toBe(204);
  const expiring = await call('POST', '/v1.1/admin/tokens', { body: { project_id: project, role: 'member', expires_at: new Date(Date.now() + 1500).toISOString() } });
  expect(expiring.status).toBe(202);
  for (const c of [
    admin,
    { kind: 'member' as const, token: member.token, project },
    { kind: 'reader' as const, token: reader.token, project },
    { kind: 'other' as const, token: other.token, project: other.project },
    { kind: 'agent' as const, token: agentToken.token, project: agentToken.project },
    { kind: 'revoked' as const, token: revoked.token, project },
    { kind: 'expired' as const, token: expiring.body.token.token as string, project },
    { kind: 'garbage' as const, token: 'slp_not-a-token-at-all-0000000000000000000000', project },
    { kind: 'none' as const, token: null, project },
  ]) {
    callers.set(c.kind, c);
  }

  // A BMC-backed node of the agent's site, with a port.
  const V = { 'X-OpenStack-Ironic-API-Version': '1.78' };
  const node = await call('POST', '/v1/nodes', {
    headers: V,
    body: { name: unique('bm'), driver: 'redfish', conductor_group: site, driver_info: { redfish_address: redfish.url, redfish_system_id: 'n1', redfish_username: 'root', redfish_password: 'calvin' } },
  });
  expect(node.status, node.text).toBe(201);
  fixtures.node_ident = node.body.uuid;
  fixtures.node_id = node.body.uuid;
  fixtures.hostname = node.body.name;
  const port = await call('POST', '/v1/ports', { headers: V, body: { address: '52:54:00:12:34:56', node_uuid: node.body.uuid } });
  expect(port.status, port.text).toBe(201);
  fixtures.port_id = port.body.uuid;
  fixtures.driver_name = 'redfish';
  fixtures.method = 'get_power_state';

  // A host the member's project holds with an active lease.
  const pool = await hostPool(1);
  fixtures.host_id = pool.hosts[0]!.id;
  fixtures.property_name = 'pool';
  const lease = await call('POST', '/v1/leases', { token: member.token, body: leaseBody(pool.filter, { start: 'now', end: blazarIn(24 * 60) }) });
  expect(lease.status, lease.text).toBe(201);
  fixtures.lease_id = lease.body.lease.id;

  // Commissaire definitions and a Drydock design.
  for (const [kind, body] of [
    ['network', { type: 'flannel_etcd', options: {} }],
    ['containermanager', { type: 'trivial', options: {} }],
    ['cluster', {}],
  ] as const) {
    const name = unique(kind);
    const res = await call('PUT', `/api/v0/${kind}/${name}`, { body });
    expect(res.status, res.text).toBe(201);
    fixtures[`name:${kind}`] = name;
  }
  fixtures.IP = '192.0.2.10';
  const design = await call('POST', '/api/v1.0/designs', { body: {} });
  expect(design.status, design.text).toBe(201);
  fixtures.design_id = design.body.design_id;
  fixtures.kind = 'HostProfile';

  // Let the expiring token expire, and the lease start.
  await new Promise((r) => setTimeout(r, 1600));
}, 120_000);

afterAll(async () => {
  await agent?.stop();
  await redfish?.stop();
  await stop?.();
});

/** Values that name nothing, for DELETE routes (so the fixtures survive) and unknown kinds. */
const MISSING: Record<string, string> = {
  lease_id: '00000000-0000-4000-8000-000000000000',
  host_id: '999999',
  node_ident: '00000000-0000-4000-8000-000000000001',
  node_id: '00000000-0000-4000-8000-000000000001',
  port_id: '00000000-0000-4000-8000-000000000002',
  token_id: '0123456789abcdef',
  job_id: '00000000-0000-4000-8000-000000000003',
  task_id: '00000000-0000-4000-8000-000000000004',
  design_id: '00000000-0000-4000-8000-000000000005',
  action_id: '01ARZ3NDEKTSV4RRFFQ69G5FAV',
  name: 'no-such-name',
  IP: '192.0.2.99',
  hostname: 'no-such-host',
  proxy: 'no/such/path',
};

function paramValue(route: RouteSpec, param: string, caller: Caller, method: string): string {
  if (param === 'project_id') return caller.project;
  if (param === 'proxy+') return MISSING.proxy!;
  if (method === 'DELETE') return MISSING[param] ?? 'missing';
  if (param === 'name') {
    const kind = /\/api\/v0\/(cluster|network|containermanager)\//.exec(route.path)?.[1];
    return (kind && fixtures[`name:${kind}`]) ?? MISSING.name!;
  }
  return fixtures[param] ?? MISSING[param] ?? 'missing';
}

function pathFor(route: RouteSpec, caller: Caller, method: string, override: Record<string, string> = {}): string {
  return route.path.replace(/\{([^}]+)\}/g, (_, name: string) => {
    const key = name.replace(/\+$/, '');
    const value = override[key] ?? paramValue(route, name, caller, method);
    return name.endsWith('+') ? value : encodeURIComponent(value);
  });
}

const paramsOf = (route: RouteSpec) => [...route.path.matchAll(/\{([^}+]+)\}/g)].map((m) => m[1]!);

/** The status every caller of this kind must get on this route, whatever the input. */
function decidedStatus(route: RouteSpec, method: string, caller: CallerKind): number | undefined {
  if (route.auth === 'none' && route.method !== 'ANY') return undefined;
  const unauthenticated = caller === 'none' || caller === 'garbage' || caller === 'expired' || caller === 'revoked';
  if (unauthenticated) return route.fn === 'commissaire' ? 403 : 401;
  if (route.method === 'ANY') return undefined; // a catch-all: 404 or 405 after the role check
  if (route.fn === 'agent') return caller === 'agent' ? undefined : 403;
  if (caller === 'agent') return 403;
  // Keystone lets any user revoke its own tokens and manage its own application credentials:
  // the identity use-cases decide (403 for what a reader may not do, 400/404 for bad input).
  if (caller === 'reader' && method !== 'GET' && route.fn !== 'identity') return 403;
  return undefined;
}

/** The surface's own error format, and nothing of the internals. */
function checkErrorFormat(fn: FunctionName, status: number, text: string, contentType: string | null, where: string): void {
  expect.soft(text, `${where}: internals in the answer`).not.toMatch(/\bat [^ ]+\.[jt]s:\d+|Exception\b|DynamoDB|TypeError|RangeError|node_modules/);
  if (fn === 'commissaire') {
    expect.soft(contentType, where).toMatch(/text\/html/);
    expect.soft(text.length, where).toBeGreaterThan(0);
    return;
  }
  let body: any;
  try {
    body = JSON.parse(text);
  } catch {
    expect.soft(text, `${where}: the ${status} answer is not JSON`).toBe("a JSON body");
    return;
  }
  switch (fn) {
    case 'ironic':
      expect.soft(typeof body.error_message, where).toBe('string');
      expect.soft(JSON.parse(body.error_message), where).toMatchObject({ faultcode: 'Client', faultstring: expect.any(String) });
      break;
    case 'drydock':
    case 'agent':
      expect.soft(body, where).toMatchObject({ type: 'error', message: expect.any(String), retry: false });
      break;
    case 'identity':
      expect.soft(body, where).toEqual({ error: { code: status, title: expect.any(String), message: expect.any(String) } });
      break;
    case 'bootactions':
      expect.soft(body, where).toMatchObject({ title: expect.stringMatching(new RegExp(`^${status}`)), description: expect.any(String) });
      break;
    default:
      expect.soft(body, where).toMatchObject({ error_code: status, error_message: expect.any(String) });
      expect.soft(body.error_name, where).toBeDefined();
  }
}

/** The table, minus what the running agent changes by itself (its presence), as one digest. */
async function snapshot(): Promise<{ digest: string; items: Map<string, string>; busy: boolean }> {
  const items = new Map<string, string>();
  let busy = false;
  let start: Record<string, unknown> | undefined;
  do {
    const res = await doc.send(new ScanCommand({ TableName: 'slipway', ExclusiveStartKey: start, ConsistentRead: true }));
    for (const item of res.Items ?? []) {
      if (String(item.PK).startsWith('AGENTS#')) continue;
      if (item.entity === 'job' && item.site === site && (item.status === 'queued' || item.status === 'claimed')) busy = true;
      items.set(`${item.PK}|${item.SK}`, JSON.stringify(item, Object.keys(item).sort()));
    }
    start = res.LastEvaluatedKey;
  } while (start);
  const digest = createHash('sha256')
    .update([...items.entries()].sort().join('\n'))
    .digest('hex');
  return { digest, items, busy };
}

/** After an accepted write, waits for the agent to finish what it queued and the table to rest. */
async function settle(): Promise<Awaited<ReturnType<typeof snapshot>>> {
  let last = await snapshot();
  for (let i = 0; i < 60; i++) {
    await new Promise((r) => setTimeout(r, 150));
    const next = await snapshot();
    if (!next.busy && next.digest === last.digest) return next;
    last = next;
  }
  return last;
}

function changes(before: Map<string, string>, after: Map<string, string>): string[] {
  const out: string[] = [];
  for (const [k, v] of after) if (before.get(k) !== v) out.push(`${before.has(k) ? 'changed' : 'added'} ${k}`);
  for (const k of before.keys()) if (!after.has(k)) out.push(`removed ${k}`);
  return out;
}

interface Sent {
  input: Input;
  method: string;
  status: number;
  where: string;
}

async function send(route: RouteSpec, method: string, caller: Caller, input: Input): Promise<Sent> {
  let path = pathFor(route, caller, method, input.params);
  if (input.query) path += `?${input.query}`;
  const headers: Record<string, string> = { Accept: 'application/json', 'X-OpenStack-Ironic-API-Version': '1.78' };
  if (caller.token) headers['X-Auth-Token'] = caller.token;
  if (input.body !== undefined) headers['Content-Type'] = input.contentType ?? 'application/json';
  const res = await fetch(`${apiUrl()}${path}`, { method, headers, body: input.body });
  const text = await res.text();
  const where = `${method} ${route.path} as ${caller.kind} with ${input.name} → ${res.status} ${text.slice(0, 300)}`;
  if (res.status >= 500) totals.fiveHundreds += 1;
  expect.soft(res.status, where).toBeLessThan(500);
  // A HEAD answer has no body to check (HEAD /v3/auth/tokens).
  if (res.status >= 400 && method !== 'HEAD') checkErrorFormat(route.fn, res.status, text, res.headers.get('content-type'), where);
  return { input, method, status: res.status, where };
}

function inputsFor(route: RouteSpec, method: string): Input[] {
  const base: Input = { name: 'a plain request', ...(METHODS_WITH_BODY.has(method) ? { body: '{}' } : {}) };
  const inputs = [base, ...QUERIES];
  for (const p of paramsOf(route)) if (p !== 'project_id') inputs.push(...paramInputs(p));
  if (METHODS_WITH_BODY.has(method)) inputs.push(...BODIES);
  return inputs;
}

const totals = { requests: 0, refusedWrites: 0, changedByRefused: 0, fiveHundreds: 0 };

/** A batch got a 2xx: what it started (agent jobs, lease events) may still be writing. */
let dirty = false;

/**
 * One route, one caller: every input, then one comparison of the table when every write was
 * refused. When the agent was still busy with earlier work, the refused writes are sent again
 * one at a time, each between two snapshots of a table at rest.
 */
async function exercise(route: RouteSpec, method: string, caller: Caller): Promise<void> {
  const decided = decidedStatus(route, method, caller.kind);
  const isWrite = method !== 'GET';
  const before = isWrite ? (dirty ? await settle() : await snapshot()) : undefined;
  if (isWrite) dirty = false;
  const sent: Sent[] = [];
  for (const input of inputsFor(route, method)) {
    const s = await send(route, method, caller, input);
    sent.push(s);
    if (decided !== undefined) expect.soft(s.status, s.where).toBe(decided);
    else if (input.expect !== undefined && route.method !== 'ANY') {
      // Inputs refused before the route's logic: the bound's own status, or an earlier refusal
      // of this caller (401 without a node key, 403 for a lessee's forbidden action, 404 for
      // what it cannot see).
      expect.soft([input.expect, 401, 403, 404, 405], s.where).toContain(s.status);
    }
  }
  totals.requests += sent.length;
  if (sent.some((s) => s.status < 400)) dirty = true;
  if (!before) return;
  const refused = sent.filter((s) => s.status >= 400);
  totals.refusedWrites += refused.length;
  if (refused.length === 0) return;
  if (refused.length === sent.length) {
    const after = await snapshot();
    if (after.digest === before.digest) return;
    if (!before.busy && !after.busy) {
      totals.changedByRefused += 1;
      expect(changes(before.items, after.items), `${method} ${route.path} as ${caller.kind}: refused writes changed stored data`).toEqual([]);
    }
  }
  // Some writes were accepted, or the agent was busy: the refused writes again, as one group on
  // a table at rest, and one at a time only if that cannot tell.
  const b = await settle();
  const again: Sent[] = [];
  for (const s of refused) again.push(await send(route, method, caller, s.input));
  const a = await snapshot();
  dirty = true;
  if (a.digest === b.digest) return;
  if (again.every((s) => s.status >= 400) && !a.busy) {
    totals.changedByRefused += 1;
    expect(changes(b.items, a.items), `${method} ${route.path} as ${caller.kind}: refused writes changed stored data`).toEqual([]);
  }
  for (const s of again.filter((x) => x.status >= 400)) {
    const b1 = await settle();
    const one = await send(route, method, caller, s.input);
    if (one.status < 400) continue;
    const diff = changes(b1.items, (await snapshot()).items);
    if (diff.length > 0) totals.changedByRefused += 1;
    expect(diff, `${one.where}: a refused write changed stored data`).toEqual([]);
  }
}

describe('every route × every caller × hostile inputs', () => {
  const byFn = new Map<FunctionName, RouteSpec[]>();
  for (const r of routes) byFn.set(r.fn, [...(byFn.get(r.fn) ?? []), r]);

  for (const [fn, list] of byFn) {
    it(`${fn}: ${list.length} routes — no 5xx, documented statuses, error format, refused writes change nothing`, async () => {
      for (const route of list) {
        const methods = route.method === 'ANY' ? ANY_METHODS : [route.method];
        for (const method of methods) {
          for (const kind of CALLERS) await exercise(route, method, callers.get(kind)!);
        }
      }
    }, 600_000);
  }

  it('covers every route of the table', () => {
    // The per-surface tests above iterate `routes` itself; this records the size of the run.
    expect(totals.requests).toBeGreaterThan(routes.length * CALLERS.length);
    expect(totals.fiveHundreds).toBe(0);
    expect(totals.changedByRefused).toBe(0);
    console.info(`hostile routes: ${routes.length} routes × ${CALLERS.length} callers: ${totals.requests} requests, ${totals.refusedWrites} refused writes, 0 answers of 5xx, 0 refused writes that changed data`);
  });
});
