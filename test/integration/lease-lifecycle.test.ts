import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RedfishSim, startRedfishSim } from '../../agent/sim/redfish.ts';
import type { Agent } from '../../agent/runner.ts';
import type { LocalStack } from '../../infra/local/stack.ts';
import { call, tokenFor, unique } from '../support/api.ts';
import { agentSite, claim, finish, mac, registerIpmiNode, states, V } from '../support/ironic-agent.ts';
import { startOwnStack } from '../support/own-stack.ts';
import { startTestAgent } from '../support/agent.ts';
import { TestClock } from '../support/clock.ts';
import { waitFor } from '../support/wait.ts';
import { allNodes, assertNoOverlap, blazarIn, hostPool, hostReservation } from '../support/fixtures.ts';
import { blazarCli, explain, jsonFrom } from '../contract/clients.ts';
import { getDeps } from '../../layers/aws/deps.ts';
import { actEvent, beginEvent, commitEvent, finishEvent, sweepEvents } from '../../layers/core/leases/engine.ts';
import { executionName, PREPARE_LEAD_SECONDS } from '../../layers/core/leases/lifecycle.ts';
import { dynamoStats, makeDynamo } from '../../layers/aws/dynamo/client.ts';
import { dueEventSortKey } from '../../layers/aws/dynamo/leases.ts';
import { GetCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { healLease } from '../../layers/core/leases/healing.ts';

/**
 * The lease lifecycle end to end on a stack of its own, whose clock the tests move (no test
 * waits for wall-clock hours): the local scheduler's timers, the sweeper and the synthesized
 * lease-event workflow in aws-local-stepfunctions, real DynamoDB Local, and an agent powering
 * nodes off on a Redfish simulator.
 */
const clock = new TestClock();
let own: Awaited<ReturnType<typeof startOwnStack>> | undefined;
let stack: LocalStack;
let redfish: RedfishSim;
let agent: Agent;
let hook: Server;
const notices: { event_type: string; payload: Record<string, any> }[] = [];
const SITE = 'lifecycle-site';


const getLease = async (id: string) => (await call('GET', `/v1/leases/${id}`)).body.lease;
const leaseStatus = (id: string, status: string, ms?: number) =>
  waitFor(`lease ${id} ${status}`, async () => {
    const l = await getLease(id);
    return l.status === status ? l : undefined;
  }, ms);
const noticesFor = (leaseId: string, type?: string) => notices.filter((n) => n.payload.lease_id === leaseId && (!type || n.event_type === type));

/** Hosts with a BMC on the Redfish simulator (system ids = host names), driven by the test agent. */
async function bmcHosts(n: number, bmcDelayMs = 0, site = SITE) {
  const pool = await hostPool(n);
  for (const h of pool.hosts) {
    redfish.addSystem({ id: h.name, powerState: 'Off', powerDelayMs: bmcDelayMs });
    const res = await call('POST', '/v1/nodes', {
      headers: { 'X-OpenStack-Ironic-API-Version': '1.78' },
      body: { name: h.name, driver: 'redfish', conductor_group: site, driver_info: { redfish_address: redfish.url, redfish_system_id: h.name, redfish_username: 'root', redfish_password: 'calvin' } },
    });
    expect(res.status, res.text).toBe(201);
  }
  return pool;
}

async function createLease(token: string, filter: string, start: string, end: string, extra: Record<string, unknown> = {}) {
  const res = await call('POST', '/v1/leases', {
    token,
    body: { name: unique('lease'), start_date: start, end_date: end, reservations: [hostReservation(filter, 1, 1, extra)], events: [] },
  });
  expect(res.status, res.text).toBe(201);
  return res.body.lease;
}

beforeAll(async () => {
  hook = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      notices.push(JSON.parse(body));
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => hook.listen(0, '127.0.0.1', r));
  process.env.SLIPWAY_NOTIFY_WEBHOOK = `http://127.0.0.1:${(hook.address() as { port: number }).port}/`;
  // The simulator answers for any system id the tests use (one system per host name).
  redfish = await startRedfishSim({ username: 'root', password: 'calvin', systems: [] });
  // The tests run the sweeper themselves (stack.lifecycle.sweep) where they need it.
  own = await startOwnStack('lifecycle', { clock, sweepIntervalMs: 3600_000 });
  stack = own.stack;
  agent = await startTestAgent(SITE);
}, 60_000);

afterAll(async () => {
  await agent?.stop();
  await own?.stop();
  await redfish?.stop();
  hook?.close();
  delete process.env.SLIPWAY_NOTIFY_WEBHOOK;
});

describe('lease lifecycle', () => {
  it('starts a lease created without a start date within seconds, grants its nodes, and at its end powers them off and frees them', async () => {
    const member = await tokenFor('member');
    const pool = await bmcHosts(1);
    const host = pool.hosts[0]!;
    const lease = await createLease(member.token, pool.filter, 'now', blazarIn(120, clock.now().getTime()));
    const active = await leaseStatus(lease.id, 'ACTIVE', 10_000);
    expect(active.reservations[0].status).toBe('active');
    expect(active.events.find((e: any) => e.event_type === 'start_lease').status).toBe('DONE');

    // The project sees and operates its node now; another project does not.
    const mine = await call('GET', `/v1.1/${member.project}/nodes`, { token: member.token });
    expect(mine.body.nodes.map((n: any) => n.name)).toEqual([host.name]);
    const other = await tokenFor('member');
    expect((await call('GET', `/v1.1/${other.project}/nodes`, { token: other.token })).body.nodes).toEqual([]);
    const on = await call('PUT', `/v1/nodes/${host.name}/states/power`, { token: member.token, headers: V, body: { target: 'power on' } });
    expect(on.status, on.text).toBe(202);
    await waitFor('power on', async () => redfish.state(host.name).PowerState === 'On');
    expect((await call('PUT', `/v1/nodes/${host.name}/states/power`, { token: other.token, headers: V, body: { target: 'power off' } })).status).toBe(404);
    // ...and its vendor passthru.
    const methods = await call('GET', `/v1/nodes/${host.name}/vendor_passthru/methods`, { token: member.token, headers: V });
    expect(methods.status, methods.text).toBe(200);
    expect((await call('GET', `/v1/nodes/${host.name}/vendor_passthru/methods`, { token: other.token, headers: V })).status).toBe(404);
    await waitFor('power state recorded', async () => (await call('GET', `/v1/nodes/${host.name}`, { headers: V })).body.target_power_state === null);
    // Ironic names the project as the node's lessee, and lists by it.
    const leased = await call('GET', `/v1/nodes?lessee=${member.project}&fields=name,lessee,owner`, { token: member.token, headers: V });
    expect(leased.body.nodes).toEqual([{ name: host.name, lessee: member.project, owner: null, links: expect.any(Array) }]);
    expect((await call('GET', `/v1/nodes?lessee=${other.project}`, { headers: V })).body.nodes).toEqual([]);

    // Two hours later, by the test clock.
    clock.advanceTo(active.end_date);
    const ended = await leaseStatus(lease.id, 'TERMINATED');
    expect(ended.reservations[0].status).toBe('deleted');
    expect(ended.events.map((e: any) => [e.event_type, e.status])).toEqual([
      ['start_lease', 'DONE'],
      ['before_end_lease', 'DONE'],
      ['end_lease', 'DONE'],
    ]);
    expect(redfish.state(host.name).PowerState).toBe('Off');
    expect((await call('GET', `/v1.1/${member.project}/nodes`, { token: member.token })).body.nodes).toEqual([]);
    expect((await call('GET', `/v1/nodes/${host.name}`, { headers: V })).body.lessee).toBeNull();
    const node = (await call('GET', `/v1.1/admin/nodes/${host.name}`)).body.node;
    expect(node.allocations).toEqual([]);

    // Free for the next lease at once.
    const next = await createLease(member.token, pool.filter, 'now', blazarIn(60, clock.now().getTime()));
    await leaseStatus(next.id, 'ACTIVE', 10_000);

    await waitFor('notifications', async () => noticesFor(lease.id, 'lease.event.end_lease').length === 1);
    expect(noticesFor(lease.id).map((n) => n.event_type)).toEqual([
      'lease.create',
      'lease.event.start_lease',
      'lease.event.before_end_lease',
      'lease.event.end_lease',
    ]);
    expect(noticesFor(lease.id, 'lease.event.end_lease')[0]!.payload).toMatchObject({ event_status: 'DONE', lease_status: 'TERMINATED', project_id: member.project });
  });

  it('runs back-to-back leases on one node at the same minute: the end before the start', async () => {
    const alice = await tokenFor('member');
    const bob = await tokenFor('member');
    const pool = await bmcHosts(1);
    const t0 = clock.now().getTime();
    const a = await createLease(alice.token, pool.filter, blazarIn(10, t0), blazarIn(70, t0));
    const b = await createLease(bob.token, pool.filter, blazarIn(70, t0), blazarIn(130, t0));
    clock.advanceTo(a.start_date);
    await leaseStatus(a.id, 'ACTIVE');
    clock.advanceTo(b.start_date);
    const [ea, eb] = await Promise.all([leaseStatus(a.id, 'TERMINATED'), leaseStatus(b.id, 'ACTIVE')]);
    const endA = ea.events.find((e: any) => e.event_type === 'end_lease');
    const startB = eb.events.find((e: any) => e.event_type === 'start_lease');
    expect(Date.parse(startB.updated_at)).toBeGreaterThanOrEqual(Date.parse(endA.updated_at));
    expect((await call('GET', `/v1.1/${bob.project}/nodes`, { token: bob.token })).body.nodes).toHaveLength(1);
    expect((await call('GET', `/v1.1/${alice.project}/nodes`, { token: alice.token })).body.nodes).toEqual([]);
    const node = (await call('GET', `/v1.1/admin/nodes/${pool.hosts[0]!.name}`)).body.node;
    expect(node.allocations.map((x: any) => x.lease_id)).toEqual([b.id]);
  });

  it('starts and ends 50 leases due at the same minute, each event once, even when the sweeper fires too', async () => {
    const member = await tokenFor('member');
    const pool = await hostPool(50);
    const t0 = clock.now().getTime();
    const start = blazarIn(30, t0);
    const end = blazarIn(90, t0);
    const leases = await Promise.all(pool.hosts.map((h) => createLease(member.token, JSON.stringify(['==', '$hypervisor_hostname', h.name]), start, end)));
    const ids = new Set(leases.map((l) => l.id));
    clock.advanceTo(leases[0].start_date);
    // The sweeper delivers the same due events a second time, while the timers run them.
    await stack.lifecycle.sweep(0);
    for (const l of leases) await leaseStatus(l.id, 'ACTIVE');
    clock.advanceTo(leases[0].end_date);
    await stack.lifecycle.sweep(0);
    for (const l of leases) await leaseStatus(l.id, 'TERMINATED');
    await stack.lifecycle.runner.idle();
    for (const type of ['lease.event.start_lease', 'lease.event.end_lease']) {
      const per = new Map<string, number>();
      for (const n of notices.filter((x) => x.event_type === type && ids.has(x.payload.lease_id))) per.set(n.payload.lease_id, (per.get(n.payload.lease_id) ?? 0) + 1);
      expect(per.size, type).toBe(50);
      expect([...per.values()].every((c) => c === 1), type).toBe(true);
    }
  });

  it('runs an event once when the Scheduler delivers it twice and the sweeper a third time', async () => {
    const member = await tokenFor('member');
    const pool = await hostPool(1);
    const lease = await createLease(member.token, pool.filter, blazarIn(5, clock.now().getTime()), blazarIn(60, clock.now().getTime()));
    const start = lease.events.find((e: any) => e.event_type === 'start_lease');
    const ref = { lease_id: lease.id, event_id: start.id, event_type: 'start_lease' as const, time: start.time };
    const before = { ...stack.lifecycle.runner.stats };
    clock.advanceTo(start.time);
    // Two deliveries with different names (a retried schedule and a manual start), plus the sweeper.
    await Promise.all([
      stack.lifecycle.runner.start(ref, `${start.id}-dup1`),
      stack.lifecycle.runner.start(ref, `${start.id}-dup2`),
      stack.lifecycle.sweep(0),
    ]);
    await leaseStatus(lease.id, 'ACTIVE');
    await stack.lifecycle.runner.idle();
    expect(noticesFor(lease.id, 'lease.event.start_lease')).toHaveLength(1);
    const after = stack.lifecycle.runner.stats;
    expect(after.executions - before.executions).toBeGreaterThanOrEqual(3);
    expect(after.skipped - before.skipped).toBeGreaterThanOrEqual(2);
  });

  it('refuses to delete or update a lease while its end runs (409), then lets it go', async () => {
    const member = await tokenFor('member');
    // A site whose agent is not running yet keeps the end event waiting for its power-off job.
    const site = unique('site');
    const pool = await bmcHosts(1, 0, site);
    const lease = await createLease(member.token, pool.filter, 'now', blazarIn(60, clock.now().getTime()));
    const active = await leaseStatus(lease.id, 'ACTIVE', 10_000);
    clock.advanceTo(active.end_date);
    let late: Agent | undefined;
    try {
      await leaseStatus(lease.id, 'TERMINATING');
      // The node is no longer the project's even before it is powered off.
      await waitFor('grant revoked', async () => (await call('GET', `/v1.1/${member.project}/nodes`, { token: member.token })).body.nodes.length === 0);
      const del = await call('DELETE', `/v1/leases/${lease.id}`, { token: member.token });
      expect(del.status, del.text).toBe(409);
      expect(del.body.error_message).toMatch(/TERMINATING/);
      expect((await call('PUT', `/v1/leases/${lease.id}`, { token: member.token, body: { end_date: blazarIn(600, clock.now().getTime()) } })).status).toBe(409);
      // A rename is allowed in any state.
      expect((await call('PUT', `/v1/leases/${lease.id}`, { token: member.token, body: { name: unique('renamed') } })).status).toBe(200);
      late = await startTestAgent(site);
      await leaseStatus(lease.id, 'TERMINATED');
    } finally {
      // Whatever happened above, the end must not stay waiting (later tests wait for the runner to be idle).
      late ??= await startTestAgent(site);
      await leaseStatus(lease.id, 'TERMINATED').finally(() => late!.stop());
    }
    expect(redfish.state(pool.hosts[0]!.name).PowerState).toBe('Off');
    expect((await call('DELETE', `/v1/leases/${lease.id}`, { token: member.token })).status).toBe(204);
  });

  it('never leaves a lease in ERROR after a refused update, and moves its end when prolonged', async () => {
    const member = await tokenFor('member');
    const pool = await hostPool(1);
    const lease = await createLease(member.token, pool.filter, 'now', blazarIn(60, clock.now().getTime()));
    await leaseStatus(lease.id, 'ACTIVE', 10_000);
    const t = clock.now().getTime();
    for (const body of [{ end_date: blazarIn(-30, t) }, { start_date: blazarIn(10, t) }, { before_end_date: blazarIn(600, t) }, { end_date: 'yesterday' }]) {
      const res = await call('PUT', `/v1/leases/${lease.id}`, { token: member.token, body });
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect((await getLease(lease.id)).status).toBe('ACTIVE');
    }
    const longer = await call('PUT', `/v1/leases/${lease.id}`, { token: member.token, body: { end_date: blazarIn(180, t) } });
    expect(longer.status, longer.text).toBe(200);
    // The old end passes: nothing happens, even with the sweeper.
    clock.advanceTo(new Date(Date.parse(lease.end_date) + 60_000));
    await stack.lifecycle.sweep(0);
    await stack.lifecycle.runner.idle();
    expect((await getLease(lease.id)).status).toBe('ACTIVE');
    clock.advanceTo(longer.body.lease.end_date);
    await leaseStatus(lease.id, 'TERMINATED');
  });

  it('records an unsupported snapshot before_end action with its reason, and ends a lease early with end_date now', async () => {
    const member = await tokenFor('member');
    const pool = await hostPool(1);
    const t = clock.now().getTime();
    const lease = await createLease(member.token, pool.filter, 'now', blazarIn(240, t), { before_end: 'snapshot' });
    await leaseStatus(lease.id, 'ACTIVE', 10_000);
    const early = await call('PUT', `/v1/leases/${lease.id}`, { token: member.token, body: { end_date: 'now' } });
    expect(early.status, early.text).toBe(200);
    const ended = await leaseStatus(lease.id, 'TERMINATED');
    const be = ended.events.find((e: any) => e.event_type === 'before_end_lease');
    expect(be.status).toBe('DONE');
    expect(be.status_reason).toMatch(/snapshot/);
  });

  it("powers a running lease's nodes off when it is deleted", async () => {
    const member = await tokenFor('member');
    const pool = await bmcHosts(1);
    const host = pool.hosts[0]!;
    const lease = await createLease(member.token, pool.filter, 'now', blazarIn(60, clock.now().getTime()));
    await leaseStatus(lease.id, 'ACTIVE', 10_000);
    expect((await call('PUT', `/v1/nodes/${host.name}/states/power`, { token: member.token, headers: V, body: { target: 'power on' } })).status).toBe(202);
    await waitFor('power on', async () => redfish.state(host.name).PowerState === 'On');
    await waitFor('power state recorded', async () => (await call('GET', `/v1/nodes/${host.name}`, { headers: V })).body.target_power_state === null);
    expect((await call('DELETE', `/v1/leases/${lease.id}`, { token: member.token })).status).toBe(204);
    await waitFor('power off', async () => redfish.state(host.name).PowerState === 'Off');
    expect((await call('GET', `/v1.1/${member.project}/nodes`, { token: member.token })).body.nodes).toEqual([]);
    await waitFor('delete notice', async () => noticesFor(lease.id, 'lease.delete').length === 1);
  });

  it('works from the real blazar CLI: lease-create without a start date is ACTIVE at once and TERMINATED at its end', async () => {
    const member = await tokenFor('member');
    const pool = await bmcHosts(1);
    const end = blazarIn(90, clock.now().getTime());
    const created = await blazarCli(stack.url, member.token, ['lease-create', '--physical-reservation', `min=1,max=1,resource_properties=${pool.filter}`, '--end-date', end, '-f', 'json', unique('cli')]);
    expect(created.code, explain(created)).toBe(0);
    const id = jsonFrom(created.stdout).id as string;
    await leaseStatus(id, 'ACTIVE', 10_000);
    const shown = await blazarCli(stack.url, member.token, ['lease-show', '-f', 'json', id]);
    expect(shown.code, explain(shown)).toBe(0);
    expect(jsonFrom(shown.stdout).status).toBe('ACTIVE');
    clock.advanceTo(new Date(Date.parse(`${end.replace(' ', 'T')}:00Z`)));
    await leaseStatus(id, 'TERMINATED');
    const after = await blazarCli(stack.url, member.token, ['lease-show', '-f', 'json', id]);
    expect(jsonFrom(after.stdout).status).toBe('TERMINATED');
    expect(redfish.state(pool.hosts[0]!.name).PowerState).toBe('Off');
  });

  it('takes an event once when ten workflows begin it at the same moment: a start run whole grants once, an end is claimed once and finished once', async () => {
    const member = await tokenFor('member');
    const pool = await hostPool(1);
    const t = clock.now().getTime();
    const lease = await createLease(member.token, pool.filter, blazarIn(5, t), blazarIn(60, t));
    const ref = (type: string) => {
      const e = lease.events.find((x: any) => x.event_type === type);
      return { lease_id: lease.id, event_id: e.id, event_type: type as 'start_lease', time: e.time as string };
    };
    // This test plays the workflow's steps itself: the events' own triggers are taken away.
    for (const type of ['start_lease', 'before_end_lease', 'end_lease']) await stack.lifecycle.scheduler.remove(ref(type));
    const deps = getDeps();
    const outcomes = (results: PromiseSettledResult<{ outcome: string }>[], winner: string) => {
      expect(results.filter((r) => r.status === 'fulfilled' && r.value.outcome === winner)).toHaveLength(1);
      // The others saw the event taken, or lost the compare-and-set (the state machine retries those, then sees it taken).
      for (const r of results) {
        if (r.status === 'rejected') expect((r.reason as Error).name).toBe('ConcurrentModificationError');
        else if (r.value.outcome !== winner) expect(r.value.outcome).toBe('skip');
      }
    };

    // The start has no agent work: Begin runs it whole, the grant in the event's own write.
    clock.advanceTo(ref('start_lease').time);
    outcomes(await Promise.allSettled(Array.from({ length: 10 }, () => beginEvent(deps, ref('start_lease')))), 'done');
    const started = await getLease(lease.id);
    expect(started.status).toBe('ACTIVE');
    expect(started.events.find((e: any) => e.event_type === 'start_lease').status).toBe('DONE');
    // The lessee's node list follows the grant made in that same write.
    const mine = await call('GET', `/v1.1/${member.project}/nodes`, { token: member.token });
    expect(mine.body.nodes.map((n: any) => n.name)).toEqual([pool.hosts[0]!.name]);

    // The end has agent work (a power-off): one Begin claims it, Finish runs once however often it is called.
    const before = ref('before_end_lease');
    clock.advanceTo(ref('end_lease').time);
    if (lease.events.some((e: any) => e.event_type === 'before_end_lease')) expect((await beginEvent(deps, before)).outcome).toBe('done');
    outcomes(await Promise.allSettled(Array.from({ length: 10 }, () => beginEvent(deps, ref('end_lease')))), 'run');
    expect((await getLease(lease.id)).status).toBe('TERMINATING');
    const finishes = await Promise.allSettled(Array.from({ length: 5 }, () => finishEvent(deps, { ...ref('end_lease'), error: {}, act: { notes: [] }, results: [] })));
    expect(finishes.every((f) => f.status === 'fulfilled' && f.value.event_status === 'DONE')).toBe(true);
    expect((await getLease(lease.id)).status).toBe('TERMINATED');
    await waitFor('notices', async () => noticesFor(lease.id, 'lease.event.end_lease').length > 0);
    await new Promise((r) => setTimeout(r, 300));
    expect(noticesFor(lease.id, 'lease.event.start_lease')).toHaveLength(1);
    expect(noticesFor(lease.id, 'lease.event.end_lease')).toHaveLength(1);
  });

  it('grants a start run whole in the same write as the event, or not at all, while bookings of later windows move its node', async () => {
    const member = await tokenFor('member');
    const pool = await hostPool(1);
    const t = clock.now().getTime();
    const lease = await createLease(member.token, pool.filter, blazarIn(5, t), blazarIn(30, t));
    const e = lease.events.find((x: any) => x.event_type === 'start_lease');
    const ref = { lease_id: lease.id, event_id: e.id, event_type: 'start_lease' as const, time: e.time as string };
    await stack.lifecycle.scheduler.remove(ref);
    clock.advanceTo(ref.time);
    const deps = getDeps();
    // A later lease books the same node between the start's read of it and its write: the node's
    // version moved, so that write must fail whole (the workflow retries Begin with fresh reads).
    let booked = false;
    const racing = {
      ...deps,
      nodes: new Proxy(deps.nodes, {
        get(target, prop) {
          const value = Reflect.get(target, prop, target);
          if (prop !== 'get') return typeof value === 'function' ? value.bind(target) : value;
          return async (id: string) => {
            const node = await target.get(id);
            if (!booked) {
              booked = true;
              await createLease(member.token, pool.filter, blazarIn(60, t), blazarIn(80, t));
            }
            return node;
          };
        },
      }),
    };
    await expect(beginEvent(racing, ref)).rejects.toThrow(expect.objectContaining({ name: 'ConcurrentModificationError' }));
    expect(booked).toBe(true);
    // The lost write wrote nothing: the event is still UNDONE, the lease PENDING, the node not granted.
    const lost = await getLease(lease.id);
    expect(lost.status).toBe('PENDING');
    expect(lost.events.find((x: any) => x.id === e.id).status).toBe('UNDONE');
    expect((await call('GET', `/v1.1/${member.project}/nodes`, { token: member.token })).body.nodes).toEqual([]);
    // More bookings race the retries; the retries win in the end, as the workflow's would.
    const bookings = Array.from({ length: 6 }, (_, i) => createLease(member.token, pool.filter, blazarIn(90 + i * 30, t), blazarIn(110 + i * 30, t)));
    let outcome = '';
    for (let attempt = 0; attempt < 20 && outcome !== 'done'; attempt++) {
      try {
        outcome = (await beginEvent(deps, ref)).outcome;
      } catch (err) {
        expect((err as Error).name).toBe('ConcurrentModificationError');
      }
    }
    await Promise.all(bookings);
    expect(outcome).toBe('done');
    expect((await getLease(lease.id)).status).toBe('ACTIVE');
    expect((await call('GET', `/v1.1/${member.project}/nodes`, { token: member.token })).body.nodes.map((n: any) => n.name)).toEqual([pool.hosts[0]!.name]);
    // Every booking kept its window: the grant wrote one allocation's granted_at, nothing else.
    const node = (await allNodes()).find((n: any) => n.name === pool.hosts[0]!.name);
    expect(node.allocations).toHaveLength(8);
    expect(node.allocations.filter((a: any) => a.granted_at).map((a: any) => a.lease_id)).toEqual([lease.id]);
  });

  it('lets a client change or delete a lease right after creating it to start now (waits for the start instead of 409)', async () => {
    const member = await tokenFor('member');
    const pool = await hostPool(10);
    const t = clock.now().getTime();
    const leases = await Promise.all(pool.hosts.map((h) => createLease(member.token, JSON.stringify(['==', '$hypervisor_hostname', h.name]), 'now', blazarIn(60, t))));
    const answers = await Promise.all(
      leases.map((l, i) =>
        i % 2 === 0
          ? call('PUT', `/v1/leases/${l.id}`, { token: member.token, body: { end_date: blazarIn(120, t) } })
          : call('DELETE', `/v1/leases/${l.id}`, { token: member.token }),
      ),
    );
    expect(answers.map((a) => a.status)).toEqual(leases.map((_, i) => (i % 2 === 0 ? 200 : 204)));
    for (const [i, l] of leases.entries()) if (i % 2 === 0) await leaseStatus(l.id, 'ACTIVE');
  });

  it('erases the nodes it can at its end: one back in the pool, one whose erase failed in maintenance; the lease terminates; a node without a MAC is powered off, noted', async () => {
    // A site whose agent is the test (it answers the jobs), nodes with known MACs (ports).
    const site = await agentSite('end-clean');
    const member = await tokenFor('member');
    const pool = await hostPool(3);
    const [ok, bad, nomac] = pool.hosts.map((h) => h.name) as [string, string, string];
    const macs: Record<string, string> = { [ok]: mac(), [bad]: mac() };
    for (const name of [ok, bad, nomac]) {
      await registerIpmiNode(site, { address: '10.9.9.10', password: 'end-pw' }, { name, ports: macs[name] ? [macs[name]!] : [] });
    }
    const res = await call('POST', '/v1/leases', {
      token: member.token,
      body: { name: unique('lease'), start_date: 'now', end_date: blazarIn(60, clock.now().getTime()), reservations: [hostReservation(pool.filter, 3, 3)], events: [] },
    });
    expect(res.status, res.text).toBe(201);
    const active = await leaseStatus(res.body.lease.id, 'ACTIVE', 10_000);
    clock.advanceTo(active.end_date);

    // The end queues an erase of each node with a MAC (with the workflow's task token), a power-off of the other.
    const jobs: any[] = [];
    await waitFor('the end jobs', async () => {
      jobs.push(...(await claim(site.token, 3)));
      return jobs.length >= 3;
    }, 30_000);
    const byNode = new Map<string, any>();
    for (const j of jobs) byNode.set((await call('GET', `/v1/nodes/${j.node_id}`, { headers: { 'X-OpenStack-Ironic-API-Version': '1.78' } })).body.name, j);
    expect(byNode.get(ok)).toMatchObject({ kind: 'clean', payload: { macs: [macs[ok]] } });
    expect(byNode.get(bad)).toMatchObject({ kind: 'clean' });
    expect(byNode.get(nomac)).toMatchObject({ kind: 'power', payload: { target: 'power off' } });
    expect((await states(ok)).provision_state).toBe('cleaning');
    expect((await finish(site.token, byNode.get(ok), { status: 'succeeded', output: { disks: [], boot_mac: macs[ok] } })).status).toBe(200);
    expect((await finish(site.token, byNode.get(bad), { status: 'failed', error: 'erasing /dev/sda failed: dd: Input/output error' })).status).toBe(200);
    expect((await finish(site.token, byNode.get(nomac), { status: 'succeeded', output: { power_state: 'power off' } })).status).toBe(200);

    const ended = await leaseStatus(res.body.lease.id, 'TERMINATED');
    const end = ended.events.find((e: any) => e.event_type === 'end_lease');
    expect(end.status).toBe('DONE');
    expect(end.status_reason).toContain(`node ${bad} could not be erased and is in maintenance: Node `);
    expect(end.status_reason).toContain(`node ${nomac} was powered off, not erased: it has no known MAC address`);
    expect(await states(ok)).toMatchObject({ provision_state: 'available', last_error: null });
    const failed = (await call('GET', `/v1/nodes/${bad}`, { headers: { 'X-OpenStack-Ironic-API-Version': '1.78' } })).body;
    expect(failed).toMatchObject({ provision_state: 'clean failed', maintenance: true });
    expect(failed.maintenance_reason).toContain('erasing /dev/sda failed');
    // The node in maintenance is never allocated: three nodes cannot be had again, two can.
    const again = await call('POST', '/v1/leases', {
      token: member.token,
      body: { name: unique('lease'), start_date: 'now', end_date: blazarIn(60, clock.now().getTime()), reservations: [hostReservation(pool.filter, 3, 3)], events: [] },
    });
    expect(again.status, again.text).toBe(409);
    expect(again.body.error_message).toMatch(/Not enough hosts available/);
    // The site hears of each erase, with the lease and project it ended.
    await waitFor('clean notifications', async () => noticesFor(res.body.lease.id).filter((n) => n.event_type.startsWith('baremetal.node.clean.')).length === 2);
    const cleans = noticesFor(res.body.lease.id).filter((n) => n.event_type.startsWith('baremetal.node.clean.'));
    expect(cleans.map((n) => [n.event_type, n.payload.node_name, n.payload.project_id]).sort()).toEqual(
      [
        ['baremetal.node.clean.end', ok, member.project],
        ['baremetal.node.clean.error', bad, member.project],
      ].sort(),
    );
  });

  it("deploys a reservation's slipway:image (and config drive) at its start: ACTIVE once the nodes deployed, a node that failed named on the event", async () => {
    const site = await agentSite('start-deploy');
    const member = await tokenFor('member');
    const pool = await hostPool(2);
    const answer = async (kind: string, body: Record<string, unknown>) => {
      const [job] = await claim(site.token);
      expect(job).toMatchObject({ kind });
      expect((await finish(site.token, job, body)).status).toBe(200);
    };
    for (const h of pool.hosts) {
      const m = mac();
      await registerIpmiNode(site, { address: '10.9.9.11', password: 'start-pw' }, { name: h.name, ports: [m] });
      expect((await call('PUT', `/v1/nodes/${h.name}/states/provision`, { headers: V, body: { target: 'manage' } })).status).toBe(202);
      await answer('power_state', { status: 'succeeded', output: { power_state: 'power off' } });
      expect((await call('PUT', `/v1/nodes/${h.name}/states/provision`, { headers: V, body: { target: 'provide' } })).status).toBe(202);
      await answer('clean', { status: 'succeeded', output: { disks: [], boot_mac: m } });
      expect((await states(h.name)).provision_state).toBe('available');
    }
    // A URL image without its sha256 is refused when the lease is created.
    const bad = await call('POST', '/v1/leases', {
      token: member.token,
      body: { name: unique('lease'), start_date: 'now', end_date: blazarIn(60, clock.now().getTime()), reservations: [hostReservation(pool.filter, 2, 2, { 'slipway:image': 'https://images.example.com/x.raw' })], events: [] },
    });
    expect(bad.status).toBe(400);
    expect(bad.body.error_message).toMatch(/needs its sha256/);

    const drive = { meta_data: { public_keys: { k: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIleasekey lease@a' } }, user_data: '#!/bin/sh\necho leased > /root/marker\n' };
    const res = await call('POST', '/v1/leases', {
      token: member.token,
      body: { name: unique('lease'), start_date: 'now', end_date: blazarIn(60, clock.now().getTime()), reservations: [hostReservation(pool.filter, 2, 2, { 'slipway:image': 'debian-12', 'slipway:config_drive': drive })], events: [] },
    });
    expect(res.status, res.text).toBe(201);
    expect(res.body.lease.reservations[0]['slipway:image']).toBe('debian-12');
    const jobs: any[] = [];
    await waitFor('the start deploys', async () => {
      jobs.push(...(await claim(site.token, 2)));
      return jobs.length >= 2;
    }, 30_000);
    expect(jobs.map((j) => [j.kind, j.payload.image, j.payload.require_image])).toEqual([
      ['deploy_node', 'debian-12', true],
      ['deploy_node', 'debian-12', true],
    ]);
    // The lease's config drive reaches the agent, opened, with every node's deploy.
    for (const j of jobs) expect(j.payload.configdrive).toEqual(drive);
    // Starting while its nodes deploy.
    expect((await getLease(res.body.lease.id)).status).toBe('STARTING');
    const [okJob, badJob] = jobs;
    expect((await finish(site.token, okJob, { status: 'succeeded', output: { method: 'image' } })).status).toBe(200);
    expect((await finish(site.token, badJob, { status: 'failed', error: 'image "debian-12" is not in the agent\'s image catalog' })).status).toBe(200);
    const active = await leaseStatus(res.body.lease.id, 'ACTIVE');
    const start = active.events.find((e: any) => e.event_type === 'start_lease');
    expect(start.status).toBe('DONE');
    const nameOf = async (j: any) => (await call('GET', `/v1/nodes/${j.node_id}`, { headers: V })).body;
    const [okNode, badNode] = [await nameOf(okJob), await nameOf(badJob)];
    expect(start.status_reason).toContain(`node ${badNode.name} failed to deploy: Failed to deploy: image "debian-12" is not in the agent's image catalog`);
    expect(okNode).toMatchObject({ provision_state: 'active', instance_info: { image_source: 'debian-12' } });
    expect(badNode).toMatchObject({ provision_state: 'deploy failed' });
    await waitFor('deploy notifications', async () => noticesFor(res.body.lease.id).filter((n) => n.event_type.startsWith('baremetal.node.deploy.')).length === 2);
    const deploys = noticesFor(res.body.lease.id).filter((n) => n.event_type.startsWith('baremetal.node.deploy.'));
    expect(deploys.map((n) => [n.event_type, n.payload.node_name, n.payload.project_id, n.payload.provision_state]).sort()).toEqual(
      [
        ['baremetal.node.deploy.end', okNode.name, member.project, 'active'],
        ['baremetal.node.deploy.error', badNode.name, member.project, 'deploy failed'],
      ].sort(),
    );
  });

  it('a lease starting right after another waits for its node to be erased', async () => {
    const site = await agentSite('b2b-clean');
    const member = await tokenFor('member');
    const pool = await hostPool(1);
    const name = pool.hosts[0]!.name;
    const m = mac();
    await registerIpmiNode(site, { address: '10.9.9.12', password: 'b2b-pw' }, { name, ports: [m] });
    const now = clock.now().getTime();
    const first = await call('POST', '/v1/leases', {
      token: member.token,
      body: { name: unique('lease'), start_date: 'now', end_date: blazarIn(60, now), reservations: [hostReservation(pool.filter, 1, 1)], events: [] },
    });
    expect(first.status, first.text).toBe(201);
    const active = await leaseStatus(first.body.lease.id, 'ACTIVE', 10_000);
    const second = await call('POST', '/v1/leases', {
      token: member.token,
      body: { name: unique('lease'), start_date: blazarIn(60, now), end_date: blazarIn(120, now), reservations: [hostReservation(pool.filter, 1, 1)], events: [] },
    });
    expect(second.status, second.text).toBe(201);
    clock.advanceTo(active.end_date);
    // The first lease's end erases the node; while the erase runs, the second lease does not start.
    let clean: any;
    await waitFor('the erase job', async () => {
      [clean] = await claim(site.token);
      return clean !== undefined;
    }, 30_000);
    expect(clean).toMatchObject({ kind: 'clean' });
    await new Promise((r) => setTimeout(r, 1500));
    expect((await getLease(second.body.lease.id)).status).not.toBe('ACTIVE');
    expect((await states(name)).provision_state).toBe('cleaning');
    expect((await finish(site.token, clean, { status: 'succeeded', output: { disks: [], boot_mac: m } })).status).toBe(200);
    await leaseStatus(first.body.lease.id, 'TERMINATED');
    // The start is retried by its own execution; the sweeper runs any event still due.
    await waitFor('the second lease to start', async () => {
      await stack.lifecycle.sweep(0);
      return (await getLease(second.body.lease.id)).status === 'ACTIVE';
    }, 60_000);
  });

  it('heals a lease waiting for a node whose erase failed onto a free node; with none left, its start fails with the reason and frees its nodes', async () => {
    const site = await agentSite('heal');
    const member = await tokenFor('member');
    const pool = await hostPool(3);
    const macs = new Map<string, string>();
    const enrol = async (name: string) => {
      macs.set(name, mac());
      await registerIpmiNode(site, { address: '10.9.9.13', password: 'heal-pw' }, { name, ports: [macs.get(name)!] });
    };
    for (const h of pool.hosts) await enrol(h.name);
    const x = pool.hosts[0]!.name;
    const now = clock.now().getTime();
    const first = await createLease(member.token, JSON.stringify(['==', '$hypervisor_hostname', x]), 'now', blazarIn(60, now));
    await leaseStatus(first.id, 'ACTIVE', 10_000);
    // The next lease holds all three, x included.
    const next = await call('POST', '/v1/leases', {
      token: member.token,
      body: { name: unique('lease'), start_date: blazarIn(120, now), end_date: blazarIn(180, now), reservations: [hostReservation(pool.filter, 3, 3)], events: [] },
    });
    expect(next.status, next.text).toBe(201);
    const leaseId = next.body.lease.id as string;
    // A fourth host joins the pool: the one free node that can take x's place.
    const spare = `${pool.pool}-h3`;
    expect((await call('POST', '/v1/os-hosts', { body: { name: spare, pool: pool.pool, vcpus: 16, memory_mb: 65536, local_gb: 480 } })).status).toBe(201);
    await enrol(spare);
    const holders = async () => (await allNodes()).filter((n) => n.allocations.some((a: any) => a.lease_id === leaseId)).map((n) => n.name).sort();
    expect(await holders()).toEqual(pool.hosts.map((h) => h.name).sort());

    // The first lease ends; x's erase fails: x goes to maintenance, and at the next sweep (every
    // minute on AWS) the waiting lease gets the spare.
    clock.advanceTo(first.end_date);
    let clean: any;
    await waitFor('the erase job', async () => {
      [clean] = await claim(site.token);
      return clean !== undefined;
    }, 30_000);
    expect((await finish(site.token, clean, { status: 'failed', error: 'erasing /dev/sda failed: dd: Input/output error' })).status).toBe(200);
    await leaseStatus(first.id, 'TERMINATED');
    expect(await states(x)).toMatchObject({ provision_state: 'clean failed' });
    // Not before the sweep: the agent API only records the failure.
    expect(await holders()).toEqual(pool.hosts.map((h) => h.name).sort());
    await stack.lifecycle.sweep(0);
    expect(await holders()).toEqual([...pool.hosts.slice(1).map((h) => h.name), spare].sort());
    const healed = await getLease(leaseId);
    expect(healed).toMatchObject({ status: 'PENDING', degraded: false });
    await waitFor('the heal notice', async () => noticesFor(leaseId, 'lease.heal').length === 1);
    expect(noticesFor(leaseId, 'lease.heal')[0]!.payload.replaced).toEqual([{ reservation_id: healed.reservations[0].id, lost: [x], added: [spare] }]);

    // Another of its nodes is put in maintenance by hand, and no node is left to take its place:
    // the start fails the lease with the reason, and its calendar entries are freed.
    const down = pool.hosts[1]!.name;
    expect((await call('PUT', `/v1/nodes/${down}/maintenance`, { headers: V, body: { reason: 'fan failure' } })).status).toBe(202);
    clock.advanceTo(healed.start_date);
    const failed = await leaseStatus(leaseId, 'ERROR', 30_000);
    const start = failed.events.find((e: any) => e.event_type === 'start_lease');
    expect(start.status).toBe('ERROR');
    expect(start.status_reason).toMatch(new RegExp(`^The lease cannot start: node\\(s\\) ${down} of reservation .* are out of service \\(maintenance or failed\\) and no other node can take their place: Not enough hosts available: 1 more needed, 0 free of 4 matching host\\(s\\) for this period \\(of the others: 2 in maintenance, being cleaned or failed\\)`));
    expect(failed.degraded).toBe(true);
    expect(failed.reservations[0]).toMatchObject({ missing_resources: true, status: 'error' });
    await waitFor('its calendar entries freed', async () => (await holders()).length === 0);
    // Nothing was granted or queued for it.
    expect(await claim(site.token)).toEqual([]);
  });

  it('heals once when heals race each other and a create wanting the same free node: never a double booking', async () => {
    const member = await tokenFor('member');
    const pool = await hostPool(2);
    const [x, spare] = pool.hosts.map((h) => h.name) as [string, string];
    const site = await agentSite('heal-race');
    for (const name of [x, spare]) await registerIpmiNode(site, { address: '10.9.9.14', password: 'race-pw' }, { name, ports: [mac()] });
    const t = clock.now().getTime();
    const waiting = await createLease(member.token, JSON.stringify(['==', '$hypervisor_hostname', x]), blazarIn(120, t), blazarIn(180, t));
    expect((await call('PUT', `/v1/nodes/${x}/maintenance`, { headers: V, body: { reason: 'disk failure' } })).status).toBe(202);
    // Five heals of the waiting lease (say, failed erases reported at once) race a create that wants the one free node.
    const deps = getDeps();
    const [create, ...heals] = await Promise.allSettled([
      call('POST', '/v1/leases', { token: member.token, body: { name: unique('lease'), start_date: blazarIn(110, t), end_date: blazarIn(190, t), reservations: [hostReservation(pool.filter, 1, 1)], events: [] } }),
      ...Array.from({ length: 5 }, () => healLease(deps, waiting.id)),
    ]);
    expect(create.status).toBe('fulfilled');
    const created = (create as PromiseFulfilledResult<any>).value;
    const nodes = (await allNodes()).filter((n) => n.name === x || n.name === spare);
    expect(assertNoOverlap(nodes)).toBeGreaterThan(0);
    const onSpare = nodes.find((n) => n.name === spare)!.allocations.map((a: any) => a.lease_id);
    expect(onSpare).toHaveLength(1);
    const after = await getLease(waiting.id);
    if (created.status === 201) {
      // The create won the node: the waiting lease has none to take and says so.
      expect(onSpare).toEqual([created.body.lease.id]);
      expect(after).toMatchObject({ degraded: true, reservations: [{ missing_resources: true }] });
    } else {
      expect(created.status).toBe(409);
      expect(onSpare).toEqual([waiting.id]);
      expect(after).toMatchObject({ degraded: false, reservations: [{ missing_resources: false }] });
    }
    // Each heal either did the swap, found it done, or lost the race and said so.
    const swaps = heals.filter((h) => h.status === 'fulfilled' && (h.value?.replaced.length ?? 0) > 0).length;
    expect(swaps).toBe(created.status === 201 ? 0 : 1);
    for (const h of heals) if (h.status === 'rejected') expect((h.reason as Error).name).toBe('ConcurrentModificationError');
  });
});

/**
 * Issue 16: a start without an image and a before_end are prepared before their time (engine.ts
 * prepareEvent). Their trigger fires PREPARE_LEAD_SECONDS early, Begin reads and checks then, the
 * workflow waits for the event's time (AtEventTime) and Commit writes the plan in one
 * transaction, conditioned on the lease and nodes being as read; anything changed in between
 * sends it back to Begin.
 */
describe('lease events prepared before their time', () => {
  /** Blazar's second-precision stamp (`2030-01-01 10:00:00`) as epoch ms. */
  const stampMs = (s: string) => Date.parse(`${s.replace(' ', 'T')}Z`);
  const startOf = (lease: any) => {
    const e = lease.events.find((x: any) => x.event_type === 'start_lease');
    return { e, ref: { lease_id: lease.id as string, event_id: e.id as string, event_type: 'start_lease' as const, time: e.time as string } };
  };
  /** A member's one-host lease on `pool`, from 5 to 30 minutes ahead by the test clock, and its start. */
  const leaseSoon = async (pool: { filter: string }) => {
    const member = await tokenFor('member');
    const t = clock.now().getTime();
    const lease = await createLease(member.token, pool.filter, blazarIn(5, t), blazarIn(30, t));
    return { member, t, lease, ...startOf(lease) };
  };
  const pathOf = (ref: { lease_id: string; event_id: string; event_type: 'start_lease'; time: string }) =>
    waitFor('the execution to finish', async () => stack.lifecycle.runner.statesEntered(executionName(ref, 'schedule')), 15_000);

  it('fires the start early, reads then, and at its time writes it in one transaction: ACTIVE at its time, not before', async () => {
    const member = await tokenFor('member');
    const pool = await hostPool(1);
    const t = clock.now().getTime();
    // Five hours long: its before_end (an hour before its end) is not due with it.
    const lease = await createLease(member.token, pool.filter, blazarIn(5, t), blazarIn(300, t));
    const { e, ref } = startOf(lease);
    const due = Date.parse(e.time);
    expect(lease.events.filter((x: any) => Date.parse(x.time) === due)).toHaveLength(1);
    expect(PREPARE_LEAD_SECONDS).toBeGreaterThan(6);
    const transactions = dynamoStats.calls.get('TransactWriteItemsCommand') ?? 0;
    const items = dynamoStats.transactItems;
    // Five seconds before its time: its trigger (30 s early) fires, and Begin prepares it.
    clock.advanceTo(new Date(due - 5000));
    await new Promise((r) => setTimeout(r, 1500));
    const waiting = await getLease(lease.id);
    expect(clock.now().getTime()).toBeLessThan(due);
    expect(waiting.status).toBe('PENDING');
    expect(waiting.events.find((x: any) => x.id === e.id).status).toBe('UNDONE');
    expect((await call('GET', `/v1.1/${member.project}/nodes`, { token: member.token })).body.nodes).toEqual([]);

    const active = await leaseStatus(lease.id, 'ACTIVE', 10_000);
    expect(await pathOf(ref)).toEqual(['Init', 'Begin', 'Outcome', 'AtEventTime', 'Commit']);
    const done = active.events.find((x: any) => x.id === e.id);
    expect(done.status).toBe('DONE');
    // Written at its time (stamps have whole seconds), the reservation's status and time with it.
    expect(stampMs(done.updated_at)).toBeGreaterThanOrEqual(Math.floor(due / 1000) * 1000);
    expect(active.reservations[0].status).toBe('active');
    expect(active.reservations[0].updated_at).toBe(done.updated_at);
    // One transaction of two items: the lease's META row and the node's grant (no reservation or
    // event row: META holds their status).
    expect((dynamoStats.calls.get('TransactWriteItemsCommand') ?? 0) - transactions).toBe(1);
    expect(dynamoStats.transactItems - items).toBe(2);
    expect((await call('GET', `/v1.1/${member.project}/nodes`, { token: member.token })).body.nodes.map((n: any) => n.name)).toEqual([pool.hosts[0]!.name]);
    await waitFor('the start notice', async () => noticesFor(lease.id, 'lease.event.start_lease').length === 1);
  });

  it('runs a prepared start as a due one when its node was booked again before its time, and writes nothing for a lease deleted before its time', async () => {
    const member = await tokenFor('member');
    const pool = await hostPool(2);
    const t = clock.now().getTime();
    const [a, b] = pool.hosts;
    const moved = await createLease(member.token, `["==", "$hypervisor_hostname", "${a!.name}"]`, blazarIn(5, t), blazarIn(30, t));
    const gone = await createLease(member.token, `["==", "$hypervisor_hostname", "${b!.name}"]`, blazarIn(5, t), blazarIn(30, t));
    const due = Date.parse(startOf(moved).e.time);
    // Six seconds before their time: both prepared, with time to spare for the changes below.
    clock.advanceTo(new Date(due - 6000));
    await new Promise((r) => setTimeout(r, 1000));
    // Between the prepare and the event's time: a later lease books the first node (its version
    // moves), the second lease is deleted.
    const later = await createLease(member.token, `["==", "$hypervisor_hostname", "${a!.name}"]`, blazarIn(60, t), blazarIn(90, t));
    expect((await call('DELETE', `/v1/leases/${gone.id}`, { token: member.token })).status).toBe(204);

    await leaseStatus(moved.id, 'ACTIVE', 10_000);
    // The plan was stale: Commit handed back to Begin, which read again and ran it whole.
    expect(await pathOf(startOf(moved).ref)).toEqual(['Init', 'Begin', 'Outcome', 'AtEventTime', 'Commit', 'Begin', 'Outcome', 'Done']);
    const nodeA = (await allNodes()).find((n: any) => n.name === a!.name);
    expect(nodeA.allocations.map((x: any) => [x.lease_id, !!x.granted_at]).sort()).toEqual([[later.id, false], [moved.id, true]].sort());
    // The deleted lease's plan wrote nothing: Begin found it gone.
    expect(await pathOf(startOf(gone).ref)).toEqual(['Init', 'Begin', 'Outcome', 'AtEventTime', 'Commit', 'Begin', 'Outcome', 'Skipped']);
    expect((await call('GET', `/v1/leases/${gone.id}`, { token: member.token })).status).toBe(404);
    const nodeB = (await allNodes()).find((n: any) => n.name === b!.name);
    expect(nodeB.allocations).toEqual([]);
    expect(noticesFor(gone.id, 'lease.event.start_lease')).toEqual([]);
    expect((await call('GET', `/v1.1/${member.project}/nodes`, { token: member.token })).body.nodes.map((n: any) => n.name)).toEqual([a!.name]);
  });

  it('prepares only for a workflow that can carry the plan, puts nothing of the nodes but their grant in it, and commits it once, at its time', async () => {
    const pool = await bmcHosts(1);
    const { lease, e, ref } = await leaseSoon(pool);
    // This test plays the workflow's steps itself: the event's own trigger is taken away.
    await stack.lifecycle.scheduler.remove(ref);
    clock.advanceTo(new Date(Date.parse(e.time) - 10_000));
    const deps = getDeps();
    // An older definition (no can_prepare) is told to wait, as before.
    expect((await beginEvent(deps, ref)).outcome).toBe('wait');
    const prepared = await beginEvent(deps, { ...ref, can_prepare: true });
    expect(prepared.outcome).toBe('prepared');
    expect(Date.parse(prepared.due!)).toBe(Date.parse(`${e.time}Z`));
    const plan = prepared.plan!;
    // The workflow's state carries the lease and, of each node, its id, version and index changes:
    // no BMC address, user or (sealed) password, no facts.
    expect(plan.grants.map((g) => Object.keys(g).sort())).toEqual([['node_id', 'node_version', 'reservation_id', 'store']]);
    const text = JSON.stringify(plan);
    for (const secret of ['calvin', 'root', redfish.url, 'driver_info', 'bmc', 'redfish']) expect(text).not.toContain(secret);
    // Too early by this clock: stale, nothing written.
    await expect(commitEvent(deps, { ...ref, plan })).rejects.toMatchObject({ name: 'PreparedPlanStaleError', message: 'not due yet' });
    expect((await getLease(lease.id)).status).toBe('PENDING');
    // At its time, ten deliveries of the same plan: one writes it, the others find it written.
    clock.advanceTo(e.time);
    const results = await Promise.allSettled(Array.from({ length: 10 }, () => commitEvent(deps, { ...ref, plan: structuredClone(plan) })));
    expect(results.filter((r) => r.status === 'fulfilled').map((r) => r.value)).toEqual([{ outcome: 'done' }]);
    const stale = results.flatMap((r) => (r.status === 'rejected' ? [r.reason] : []));
    expect(stale.map((err) => [err.name, err.message])).toEqual(Array(9).fill(['PreparedPlanStaleError', 'the lease or a node changed since it was prepared']));
    const active = await getLease(lease.id);
    expect(active.status).toBe('ACTIVE');
    expect(active.events.find((x: any) => x.id === e.id).status).toBe('DONE');
    // A stale delivery goes back to Begin, which finds the event done.
    expect((await beginEvent(deps, { ...ref, can_prepare: true })).outcome).toBe('skip');
    await waitFor('the start notice', async () => noticesFor(lease.id, 'lease.event.start_lease').length > 0);
    await new Promise((r) => setTimeout(r, 300));
    expect(noticesFor(lease.id, 'lease.event.start_lease')).toHaveLength(1);
    const node = (await allNodes()).find((n: any) => n.name === pool.hosts[0]!.name);
    expect(node.allocations.filter((x: any) => x.granted_at).map((x: any) => x.lease_id)).toEqual([lease.id]);
  });

  it("reads a lease stored before reservation states moved to its META row from its reservations' rows, and keeps them on META from its start", async () => {
    const pool = await hostPool(1);
    const { member, t, lease, e } = await leaseSoon(pool);
    const d = makeDynamo({ tableName: process.env.TABLE_NAME!, endpoint: process.env.DYNAMODB_ENDPOINT! });
    const meta = { PK: `LEASE#${lease.id}`, SK: 'META' };
    // As a lease written before: no reservation_states on META.
    await d.doc.send(new UpdateCommand({ TableName: d.table, Key: meta, UpdateExpression: 'REMOVE reservation_states' }));
    const before = await getLease(lease.id);
    expect(before.reservations[0].status).toBe('pending');
    clock.advanceTo(e.time);
    const active = await leaseStatus(lease.id, 'ACTIVE', 10_000);
    expect(active.reservations[0].status).toBe('active');
    const stored = (await d.doc.send(new GetCommand({ TableName: d.table, Key: meta, ConsistentRead: true }))).Item!;
    expect(stored.reservation_states).toEqual({ [lease.reservations[0].id]: { status: 'active', updated_at: expect.any(String) } });
    // The reservation's own row kept what it had: META is what is read.
    const row = (await d.doc.send(new GetCommand({ TableName: d.table, Key: { PK: `LEASE#${lease.id}`, SK: `RES#${lease.reservations[0].id}` }, ConsistentRead: true }))).Item!;
    expect(row.status).toBe('pending');
    // A change of the lease writes every row again: the row then says the same as META.
    const prolonged = await call('PUT', `/v1/leases/${lease.id}`, { token: member.token, body: { end_date: blazarIn(40, t) } });
    expect(prolonged.status, prolonged.text).toBe(200);
    const rewritten = (await d.doc.send(new GetCommand({ TableName: d.table, Key: { PK: `LEASE#${lease.id}`, SK: `RES#${lease.reservations[0].id}` }, ConsistentRead: true }))).Item!;
    expect(rewritten.status).toBe('active');
    expect((await getLease(lease.id)).reservations[0].status).toBe('active');
  });

  it('indexes a lease by its running event while one runs: the sweeper finds it when its execution died and puts it back, and its later events stay pending', async () => {
    const pool = await hostPool(1);
    const { member, lease, e, ref } = await leaseSoon(pool);
    await stack.lifecycle.scheduler.remove(ref);
    const deps = getDeps();
    // As Begin leaves a start with agent work: IN_PROGRESS, the lease STARTING. Then its execution dies.
    const read = (await deps.leases.get(lease.id))!;
    const stamp = new Date(clock.now().getTime() - 60_000).toISOString();
    await deps.leaseEvents.transition(read, { ...read, status: 'STARTING', version: read.version + 1, updated_at: stamp, events: read.events.map((x) => (x.id === e.id ? { ...x, status: 'IN_PROGRESS', updated_at: stamp } : x)) }, e.id, 'UNDONE');
    const later = lease.events.filter((x: any) => x.id !== e.id).map((x: any) => x.event_type).sort();
    const far = new Date(Date.parse(lease.end_date) + 3600_000);
    expect((await deps.leaseEvents.eventsInProgress(clock.now())).filter((r) => r.lease_id === lease.id)).toEqual([{ ...ref, time: expect.any(String) }]);
    expect((await deps.leaseEvents.eventsInProgress(new Date(Date.parse(stamp) - 1000))).filter((r) => r.lease_id === lease.id)).toEqual([]);
    expect((await deps.leaseEvents.dueEvents(far, 1000)).filter((r) => r.lease_id === lease.id)).toEqual([]);
    expect((await deps.leaseEvents.pendingEvents()).filter((r) => r.lease_id === lease.id).map((r) => r.event_type).sort()).toEqual(later);

    const started: string[] = [];
    const result = await sweepEvents({ ...deps, runner: { start: async (r) => void started.push(r.event_id) } }, { staleMs: 0 });
    expect(result.reset).toBeGreaterThanOrEqual(1);
    const back = await getLease(lease.id);
    expect(back.status).toBe('PENDING');
    expect(back.events.find((x: any) => x.id === e.id).status).toBe('UNDONE');
    expect((await deps.leaseEvents.eventsInProgress(clock.now())).filter((r) => r.lease_id === lease.id)).toEqual([]);
    // Indexed by its next event again, with the events after it that are due by then, oldest first.
    // (A before_end at the start's time comes first, as the index sorts equal times.)
    const dueBy = async (until: Date) => (await deps.leaseEvents.dueEvents(until, 1000)).filter((r) => r.lease_id === lease.id);
    const all = await dueBy(far);
    expect(all).toContainEqual({ ...ref, time: expect.any(String) });
    expect(all.map((r) => r.time)).toEqual(all.map((r) => r.time).sort());
    expect(all.map((r) => r.event_type).sort()).toEqual(lease.events.map((x: any) => x.event_type).sort());
    const startTime = new Date(Date.parse(all.find((r) => r.event_id === e.id)!.time));
    expect(await dueBy(startTime)).toEqual(all.filter((r) => Date.parse(r.time) <= startTime.getTime()));
    expect(await dueBy(new Date(startTime.getTime() - 1000))).toEqual([]);
    await call('DELETE', `/v1/leases/${lease.id}`, { token: member.token });
  });

  it("reads a lease stored before event states moved to its META row from its event rows; from its start META holds them, and the sweeper's queries drop the rows' index entries once", async () => {
    const pool = await hostPool(1);
    const { lease, e } = await leaseSoon(pool);
    const d = makeDynamo({ tableName: process.env.TABLE_NAME!, endpoint: process.env.DYNAMODB_ENDPOINT! });
    const deps = getDeps();
    const meta = { PK: `LEASE#${lease.id}`, SK: 'META' };
    const rowKey = (id: string) => ({ PK: `LEASE#${lease.id}`, SK: `EVENT#${id}` });
    const stored = async (key: Record<string, string>) => (await d.doc.send(new GetCommand({ TableName: d.table, Key: key, ConsistentRead: true }))).Item!;
    // New: the event rows hold no state and no index entry; META holds both.
    expect(Object.keys(await stored(rowKey(e.id))).filter((k) => ['status', 'updated_at', 'GSI2PK'].includes(k))).toEqual([]);
    expect((await stored(meta)).GSI2SK).toBe(dueEventSortKey({ ...(await stored(rowKey(e.id))), status: 'UNDONE' } as never));
    // As a lease written before: its state and index entries on its event rows, none on META.
    await d.doc.send(new UpdateCommand({ TableName: d.table, Key: meta, UpdateExpression: 'REMOVE event_states, GSI2PK, GSI2SK' }));
    for (const ev of lease.events) {
      const row = await stored(rowKey(ev.id));
      await d.doc.send(
        new UpdateCommand({
          TableName: d.table,
          Key: rowKey(ev.id),
          UpdateExpression: 'SET #s = :s, status_reason = :null, updated_at = :null, GSI2PK = :pk, GSI2SK = :sk',
          ExpressionAttributeNames: { '#s': 'status' },
          ExpressionAttributeValues: { ':s': 'UNDONE', ':null': null, ':pk': 'EVENTS#UNDONE', ':sk': dueEventSortKey({ ...row, status: 'UNDONE' } as never) },
        }),
      );
    }
    const far = new Date(Date.parse(lease.end_date) + 3600_000);
    const mine = async () => (await deps.leaseEvents.dueEvents(far, 1000)).filter((r) => r.lease_id === lease.id).map((r) => r.event_type).sort();
    const types = lease.events.map((x: any) => x.event_type).sort();
    // Read from its rows: every event UNDONE, each found once by the sweeper's query.
    expect((await getLease(lease.id)).events.map((x: any) => x.status)).toEqual(lease.events.map(() => 'UNDONE'));
    expect(await mine()).toEqual(types);
    expect((await deps.leaseEvents.pendingEvents()).filter((r) => r.lease_id === lease.id)).toHaveLength(lease.events.length);

    clock.advanceTo(e.time);
    const active = await leaseStatus(lease.id, 'ACTIVE', 10_000);
    expect(active.events.find((x: any) => x.id === e.id).status).toBe('DONE');
    const states = (await stored(meta)).event_states;
    expect(states[e.id]).toMatchObject({ event_type: 'start_lease', status: 'DONE' });
    // The start's row was not written: its old state and index entry are still there, now stale...
    expect((await stored(rowKey(e.id))).GSI2PK).toBe('EVENTS#UNDONE');
    // ...until the sweeper's query meets it: the events left, once each, and no row indexed any more.
    expect(await mine()).toEqual(types.filter((x: string) => x !== 'start_lease'));
    for (const ev of lease.events) expect((await stored(rowKey(ev.id))).GSI2PK).toBeUndefined();
    expect(await mine()).toEqual(types.filter((x: string) => x !== 'start_lease'));
    expect((await deps.leaseEvents.pendingEvents()).filter((r) => r.lease_id === lease.id).map((r) => r.event_type).sort()).toEqual(types.filter((x: string) => x !== 'start_lease'));
    expect((await getLease(lease.id)).events.find((x: any) => x.id === e.id).status).toBe('DONE');
  });
});

