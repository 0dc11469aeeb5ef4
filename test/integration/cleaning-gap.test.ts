import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LocalStack, startLocalStack } from '../../infra/local/stack.ts';

/**
 * Deployment settings change behaviour: a stack of its own with a 30-minute cleaning gap
 * (Blazar `cleaning_time`) and no default before_end event.
 */
let stack: LocalStack;
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'slipway-cleaning-'));
  stack = await startLocalStack({
    port: 0,
    dataDir: dir,
    ephemeral: true,
    adminToken: 'slp_cleaning-admin-token-0000000000',
    env: { SLIPWAY_CLEANING_MINUTES: '30', SLIPWAY_MINUTES_BEFORE_END_LEASE: '0' },
  });
});
afterAll(async () => {
  await stack?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const pad = (n: number) => String(n).padStart(2, '0');
const at = (min: number) => {
  const d = new Date(Math.floor((Date.now() + min * 60_000) / 60_000) * 60_000);
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}`;
};

async function post(path: string, body: unknown) {
  const res = await fetch(`${stack.url}${path}`, {
    method: 'POST',
    headers: { 'X-Auth-Token': stack.adminToken, 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as any };
}

const lease = (start: number, end: number) => ({
  name: `gap-${start}`,
  start_date: at(start),
  end_date: at(end),
  reservations: [{ resource_type: 'physical:host', min: 1, max: 1, hypervisor_properties: '', resource_properties: '["==", "$pool", "gap"]' }],
});

describe('cleaning gap and before_end settings', () => {
  it('keeps the cleaning gap free between leases on a node and creates no default before_end', async () => {
    expect((await post('/v1/os-hosts', { name: 'gap-host', pool: 'gap' })).status).toBe(201);
    const first = await post('/v1/leases', lease(600, 660));
    expect(first.status).toBe(201);
    expect(first.body.lease.events.map((e: any) => e.event_type)).toEqual(['start_lease', 'end_lease']);
    // Back-to-back is refused: the node needs 30 minutes of cleaning after the first lease.
    const refused = await post('/v1/leases', lease(660, 720));
    expect(refused.status).toBe(409);
    // The reason names the gap, not only "not enough hosts".
    expect(refused.body.error_message).toMatch(/0 free of 1 matching host\(s\) for this period \(of the others: 1 only inside the 30-minute cleaning gap/);
    expect((await post('/v1/leases', lease(689, 720))).status).toBe(409);
    expect((await post('/v1/leases', lease(690, 720))).status).toBe(201);
    // ... and before it.
    expect((await post('/v1/leases', lease(520, 571))).status).toBe(409);
    expect((await post('/v1/leases', lease(520, 570))).status).toBe(201);
  });
});
