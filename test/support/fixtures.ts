import { expect } from 'vitest';
import { call, unique } from './api.ts';

/** Enrols `n` hosts that share a unique capability, so a lease can target exactly them. */
export async function hostPool(n: number, facts: Record<string, unknown> = {}) {
  const pool = unique('pool');
  const hosts: { id: string; name: string }[] = [];
  for (let i = 0; i < n; i++) {
    const name = `${pool}-h${i}`;
    const res = await call('POST', '/v1/os-hosts', { body: { name, pool, vcpus: 16, memory_mb: 65536, local_gb: 480, ...facts } });
    expect(res.status, res.text).toBe(201);
    hosts.push({ id: res.body.host.id, name });
  }
  return { pool, hosts, filter: JSON.stringify(['==', '$pool', pool]) };
}

const pad = (n: number) => String(n).padStart(2, '0');
/** Blazar input format `YYYY-MM-DD HH:MM` (UTC) for now + `minutes`. */
export function blazarIn(minutesFromNow: number, base = Date.now()): string {
  const d = new Date(Math.floor((base + minutesFromNow * 60_000) / 60_000) * 60_000);
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}`;
}

export function hostReservation(filter: string, min = 1, max = min, extra: Record<string, unknown> = {}) {
  return { resource_type: 'physical:host', min, max, hypervisor_properties: '', resource_properties: filter, ...extra };
}

export function leaseBody(filter: string, opts: { name?: string; start?: string; end?: string; min?: number; max?: number; before_end_date?: string | null } = {}) {
  return {
    name: opts.name ?? unique('lease'),
    start_date: opts.start ?? blazarIn(24 * 60),
    end_date: opts.end ?? blazarIn(48 * 60),
    reservations: [hostReservation(filter, opts.min ?? 1, opts.max ?? opts.min ?? 1)],
    events: [],
    before_end_date: opts.before_end_date ?? null,
  };
}

/** Every node with its allocations, straight from the native API (admin view). */
export async function allNodes(): Promise<any[]> {
  const res = await call('GET', '/v1.1/admin/nodes');
  expect(res.status).toBe(200);
  return res.body.nodes;
}

/** Asserts that no node holds two allocations that overlap (the no-double-booking invariant). */
export function assertNoOverlap(nodes: any[]): number {
  let checked = 0;
  for (const n of nodes) {
    const allocs = [...n.allocations].sort((a: any, b: any) => a.start.localeCompare(b.start));
    for (let i = 1; i < allocs.length; i++) {
      const prev = allocs[i - 1];
      const cur = allocs[i];
      expect(Date.parse(cur.start) >= Date.parse(prev.end), `node ${n.name}: ${JSON.stringify(prev)} overlaps ${JSON.stringify(cur)}`).toBe(true);
    }
    checked += allocs.length;
  }
  return checked;
}
