import { randomUUID } from 'node:crypto';
import { BatchWriteCommand } from '@aws-sdk/lib-dynamodb';
import type { Dynamo } from '../../layers/aws/dynamo/client.ts';
import { commHostItem } from '../../layers/aws/dynamo/commissaire.ts';
import { ddDesignItem, ddTaskItem } from '../../layers/aws/dynamo/drydock.ts';
import type { CommissaireHost } from '../../layers/core/commissaire/model.ts';
import type { StoredDesign } from '../../layers/core/drydock/store.ts';
import { newTaskRecord, type TaskRecord } from '../../layers/core/drydock/tasks/model.ts';
import type { Principal } from '../../layers/core/identity/identity.ts';

/**
 * Bulk loads of Drydock tasks and designs and Commissaire hosts straight into a table, built with
 * the adapters' own item builders (so the list keys are exactly what the API writes), for the
 * fleet-scale test and bench (issue 16). Items of one kind have the same size, so that read
 * units of equal pages compare exactly.
 */
const BASE = Date.parse('2020-01-01T00:00:00.000Z');

export const admin: Principal = { token_id: 'fleet-admin', project_id: 'admin', user_id: 'admin', roles: ['admin'] };
export const member = (project: string): Principal => ({ token_id: `fleet-${project}`, project_id: project, user_id: `u-${project}`, roles: ['member'] });

/** BatchWriteItem in chunks of 25, 8 in flight, retrying unprocessed items. */
export async function batchPut(d: Dynamo, items: readonly Record<string, unknown>[]): Promise<void> {
  const chunks: Record<string, unknown>[][] = [];
  for (let i = 0; i < items.length; i += 25) chunks.push(items.slice(i, i + 25) as Record<string, unknown>[]);
  let next = 0;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      for (let c = next++; c < chunks.length; c = next++) {
        let pending = chunks[c]!.map((Item) => ({ PutRequest: { Item } }));
        for (let attempt = 0; pending.length > 0; attempt++) {
          if (attempt > 0) await new Promise((r) => setTimeout(r, Math.min(1000, 20 * 2 ** attempt)));
          const res = await d.doc.send(new BatchWriteCommand({ RequestItems: { [d.table]: pending } }));
          pending = (res.UnprocessedItems?.[d.table] ?? []) as typeof pending;
        }
      }
    }),
  );
}

/** Tasks number `from`..`to`-1: created one second apart from 2020-01-01 (a higher number is newer). */
export function tasks(from: number, to: number, project: string | null = null): TaskRecord[] {
  return Array.from({ length: to - from }, (_, k) =>
    newTaskRecord({
      task_id: randomUUID(),
      action: 'verify_site',
      design_ref: 'slipway://designs/00000000-0000-4000-8000-000000000000',
      created: new Date(BASE + (from + k) * 1000).toISOString(),
      status: 'complete',
      project_id: project,
    }),
  );
}

export function designs(from: number, to: number, project: string | null = null): StoredDesign[] {
  return Array.from({ length: to - from }, (_, k) => ({
    design_id: randomUUID(),
    base_design_id: null,
    created: new Date(BASE + (from + k) * 1000).toISOString(),
    created_by: 'fleet',
    project_id: project,
  }));
}

/** Host number i's address: 10.1xx.1yy.1zz, all of one length and in the index's order as i grows. */
export const hostAddress = (i: number) => `10.${100 + Math.floor(i / 10_000)}.${100 + (Math.floor(i / 100) % 100)}.${100 + (i % 100)}`;

/** A registered host as the API stores it; the sealed key is the size of a sealed ed25519 key. */
export function hosts(from: number, to: number): CommissaireHost[] {
  return Array.from({ length: to - from }, (_, k) => ({
    address: hostAddress(from + k),
    status: 'active',
    os: 'fedora',
    cpus: 4,
    memory: 16_000_000,
    space: 500_000_000,
    last_check: '2020-01-01T00:00:00.000Z',
    source: '',
    status_reason: '',
    remote_user: 'root',
    ssh_priv_key_sealed: 'x'.repeat(600),
    ssh_priv_key_sha256: '0'.repeat(64),
    node_id: '00000000-0000-4000-8000-000000000000',
    created_at: '2020-01-01T00:00:00.000Z',
    updated_at: null,
  }));
}

export const seedTasks = (d: Dynamo, ts: readonly TaskRecord[]) => batchPut(d, ts.map(ddTaskItem));
export const seedDesigns = (d: Dynamo, ds: readonly StoredDesign[]) => batchPut(d, ds.map(ddDesignItem));
export const seedHosts = (d: Dynamo, hs: readonly CommissaireHost[]) => batchPut(d, hs.map(commHostItem));
