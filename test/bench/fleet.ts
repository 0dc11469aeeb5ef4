import { randomUUID } from 'node:crypto';
import { BatchWriteCommand } from '@aws-sdk/lib-dynamodb';
import { type Dynamo, makeDynamo } from '#aws/dynamo/client.ts';
import { newLeaseItems } from '#aws/dynamo/leases.ts';
import { newNodeItems } from '#aws/dynamo/nodes.ts';
import { DEFAULT_TABLE_NAME } from '#aws/dynamo/schema.ts';
import type { Allocation, NodeCreate } from '#core/inventory/node.ts';
import type { Lease } from '#core/leases/model.ts';

/**
 * A large fleet written straight into DynamoDB Local with BatchWriteItem, from the repositories'
 * own item builders (`newNodeItems`, `newLeaseItems`), so that a 10,000-host / 50,000-lease
 * fleet is seeded in seconds rather than through 60,000 HTTP calls. The items are exactly what
 * the API would have written: hosts enrolled (host ids from `firstHostId`), each lease holding
 * one host in a window far in the future (windows of a host never overlap), its events UNDONE.
 * The operations measured afterwards go over HTTP.
 */
export interface SeededFleet {
  hosts: { id: string; name: string }[];
  /** Extra capability every seeded host has (`["==", "$fleet", <tag>]` selects them). */
  tag: string;
}

const DAY = 86_400_000;

async function batchWrite(d: Dynamo, items: Record<string, unknown>[], parallel = 8): Promise<void> {
  const chunks: Record<string, unknown>[][] = [];
  for (let i = 0; i < items.length; i += 25) chunks.push(items.slice(i, i + 25));
  let next = 0;
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      for (let i = next++; i < chunks.length; i = next++) {
        let pending = chunks[i]!.map((Item) => ({ PutRequest: { Item } }));
        while (pending.length > 0) {
          const res = await d.doc.send(new BatchWriteCommand({ RequestItems: { [d.table]: pending } }));
          pending = (res.UnprocessedItems?.[d.table] ?? []) as typeof pending;
        }
      }
    }),
  );
}

export async function seedFleet(
  endpoint: string,
  opts: { hosts: number; leases: number; firstHostId: number; tag?: string; nonHosts?: number },
): Promise<SeededFleet> {
  const d = makeDynamo({ tableName: DEFAULT_TABLE_NAME, endpoint });
  const tag = opts.tag ?? `fleet-${randomUUID().slice(0, 8)}`;
  const now = new Date().toISOString();
  const nodes: NodeCreate[] = Array.from({ length: opts.hosts }, (_, i) => ({
    id: randomUUID(),
    name: `${tag}-h${i}`,
    host_id: String(opts.firstHostId + i),
    reservable: true,
    facts: { vcpus: 16, memory_mb: 65536, local_gb: 480 },
    extra: { fleet: tag, rack: `r${i % 40}` },
    addresses: [{ network: 'oob', address: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}` }],
    allocations: {},
    created_at: now,
  }));
  // Nodes that are not Blazar hosts (Ironic-only, say): in the lists, not in the host pool.
  for (let i = 0; i < (opts.nonHosts ?? 0); i++) {
    nodes.push({ id: randomUUID(), name: `${tag}-n${i}`, reservable: true, facts: {}, extra: {}, addresses: [], allocations: {}, created_at: now });
  }
  const project = `${tag}-project`;
  const leases: Lease[] = [];
  const base = Date.now() + 30 * DAY;
  for (let i = 0; i < opts.leases && opts.hosts > 0; i++) {
    const node = nodes[i % opts.hosts]!;
    const slot = Math.floor(i / opts.hosts);
    const start = new Date(base + slot * 2 * 3_600_000).toISOString();
    const end = new Date(base + slot * 2 * 3_600_000 + 3_600_000).toISOString();
    const id = randomUUID();
    const rid = randomUUID();
    const ev = (type: 'start_lease' | 'end_lease', time: string) => ({ id: randomUUID(), lease_id: id, event_type: type, time, status: 'UNDONE' as const, created_at: now, updated_at: null });
    leases.push({
      id,
      name: `${tag}-l${i}`,
      user_id: 'bench',
      project_id: project,
      trust_id: null,
      status: 'PENDING',
      degraded: false,
      start_date: start,
      end_date: end,
      created_at: now,
      updated_at: null,
      version: 1,
      reservations: [
        {
          id: rid,
          lease_id: id,
          resource_type: 'physical:host',
          resource_id: rid,
          status: 'pending',
          missing_resources: false,
          resources_changed: false,
          params: { min: 1, max: 1, hypervisor_properties: '', resource_properties: '', before_end: 'default' },
          node_ids: [node.id],
          created_at: now,
          updated_at: null,
        },
      ],
      events: [ev('start_lease', start), ev('end_lease', end)],
    });
    const a: Allocation = { reservation_id: rid, lease_id: id, project_id: project, start, end };
    node.allocations[rid] = a;
  }
  await batchWrite(d, nodes.flatMap(newNodeItems));
  await batchWrite(d, leases.flatMap(newLeaseItems));
  return { hosts: nodes.slice(0, opts.hosts).map((n) => ({ id: n.id, name: n.name })), tag };
}
