import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type LocalStack, startLocalStack } from '../../infra/local/stack.ts';
import { call, tokenFor, unique, useStack } from '../support/api.ts';
import { TestClock } from '../support/clock.ts';
import { blazarIn, hostPool, hostReservation } from '../support/fixtures.ts';

/**
 * Events due while the local stack was stopped run when it starts again (DESIGN.md §8), with
 * the data kept on disk in between; and an ended lease keeps its nodes through the cleaning gap.
 */
const clock = new TestClock();
const dir = mkdtempSync(join(tmpdir(), 'slipway-restart-'));
const TOKEN = 'slp_restart-admin-token-0123456789abc';
let stack: LocalStack | undefined;

async function start(): Promise<LocalStack> {
  stack = await startLocalStack({ port: 0, dataDir: dir, adminToken: TOKEN, clock, env: { SLIPWAY_CLEANING_MINUTES: '30' } });
  useStack(stack.url, stack.adminToken);
  return stack;
}

async function statusOf(id: string): Promise<string> {
  return (await call('GET', `/v1/leases/${id}`)).body.lease.status;
}

async function until(id: string, status: string): Promise<void> {
  const end = Date.now() + 20_000;
  while ((await statusOf(id)) !== status) {
    if (Date.now() > end) throw new Error(`lease ${id} never became ${status} (is ${await statusOf(id)})`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

afterAll(async () => {
  await stack?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('lease events across a restart', () => {
  it('runs the start and end that fell due while the stack was stopped, and honours the cleaning gap', async () => {
    await start();
    const member = await tokenFor('member');
    const pool = await hostPool(1);
    const t0 = clock.now().getTime();
    const body = (name: string, s: number, e: number) => ({ name, start_date: blazarIn(s, t0), end_date: blazarIn(e, t0), reservations: [hostReservation(pool.filter)], events: [] });
    const created = await call('POST', '/v1/leases', { token: member.token, body: body(unique('l'), 10, 70) });
    expect(created.status, created.text).toBe(201);
    const lease = created.body.lease;
    await stack!.stop();
    stack = undefined;

    // Stopped through the start: it runs when the stack is back.
    clock.advanceTo(new Date(Date.parse(lease.start_date) + 5 * 60_000));
    await start();
    await until(lease.id, 'ACTIVE');
    await stack!.stop();
    stack = undefined;

    // Stopped through the end as well.
    clock.advanceTo(new Date(Date.parse(lease.end_date) + 60_000));
    await start();
    await until(lease.id, 'TERMINATED');

    // The node stays out of use for the 30-minute cleaning gap after the end...
    const now = clock.now().getTime();
    const soon = await call('POST', '/v1/leases', { token: member.token, body: { ...body(unique('l'), 0, 0), start_date: blazarIn(10, now), end_date: blazarIn(60, now) } });
    expect(soon.status, soon.text).toBe(409);
    const node = (await call('GET', `/v1.1/admin/nodes/${pool.hosts[0]!.name}`)).body.node;
    expect(node.allocations).toHaveLength(1);
    expect(node.allocations[0].released_at).toEqual(expect.any(String));
    // ...and is bookable after it.
    const later = await call('POST', '/v1/leases', { token: member.token, body: { ...body(unique('l'), 0, 0), start_date: blazarIn(40, now), end_date: blazarIn(90, now) } });
    expect(later.status, later.text).toBe(201);
  });
});
