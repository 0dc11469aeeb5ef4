import { QueryCommand, TransactWriteCommand, type TransactWriteCommandInput } from '@aws-sdk/lib-dynamodb';
import { ConflictError } from '#core/errors.ts';
import { EVENT_ORDER, type Lease, type LeaseEvent, type Reservation, sortEvents } from '#core/leases/model.ts';
import type { AllocationChange, LeaseRepository } from '#core/ports.ts';
import { type Dynamo, queryAll, translateTransactionError } from './client.ts';
import { allocationUpdateItem } from './nodes.ts';

/** Key builders for leases and their children (the only place these keys are spelled). */
export const leasePk = (id: string) => `LEASE#${id}`;
export const leaseMetaKey = (id: string) => ({ PK: leasePk(id), SK: 'META' });
export const reservationKey = (leaseId: string, id: string) => ({ PK: leasePk(leaseId), SK: `RES#${id}` });
export const eventKey = (leaseId: string, id: string) => ({ PK: leasePk(leaseId), SK: `EVENT#${id}` });
const projectIndex = (project: string) => `LEASES#${project}`;
const ALL_LEASES = 'LEASES';
export const UNDONE_EVENTS = 'EVENTS#UNDONE';
/** Sort key of the due-events index: time, then Blazar's before_end → end → start order. */
export const dueEventSortKey = (e: LeaseEvent) => `${e.time}#${EVENT_ORDER[e.event_type]}#${e.lease_id}#${e.id}`;

/** DynamoDB allows 100 actions per transaction. */
const MAX_TRANSACTION_ITEMS = 100;

type TransactItem = NonNullable<TransactWriteCommandInput['TransactItems']>[number];
type Row = Record<string, unknown> & { PK: string; SK: string };

const listingKeys = (lease: Pick<Lease, 'id' | 'project_id'>, sk: string) => ({
  GSI1PK: projectIndex(lease.project_id),
  GSI1SK: `${lease.id}#${sk}`,
  GSI3PK: ALL_LEASES,
  GSI3SK: `${lease.id}#${sk}`,
});

function rows(lease: Lease): Row[] {
  const { reservations, events, ...meta } = lease;
  const out: Row[] = [{ ...leaseMetaKey(lease.id), ...listingKeys(lease, 'META'), entity: 'lease', ...meta }];
  for (const r of reservations) {
    const k = reservationKey(lease.id, r.id);
    out.push({ ...k, ...listingKeys(lease, k.SK), entity: 'reservation', ...r });
  }
  for (const e of events) {
    const k = eventKey(lease.id, e.id);
    // The due-events index is sparse: only UNDONE events are in it.
    const due = e.status === 'UNDONE' ? { GSI2PK: UNDONE_EVENTS, GSI2SK: dueEventSortKey(e) } : {};
    out.push({ ...k, ...listingKeys(lease, k.SK), ...due, entity: 'event', ...e });
  }
  return out;
}

const STRIP = new Set(['PK', 'SK', 'GSI1PK', 'GSI1SK', 'GSI2PK', 'GSI2SK', 'GSI3PK', 'GSI3SK', 'entity']);
function clean<T>(item: Record<string, unknown>): T {
  return Object.fromEntries(Object.entries(item).filter(([k]) => !STRIP.has(k))) as T;
}

/** Groups the items of one or more leases (META, RES#, EVENT#) back into leases. */
function assemble(items: Record<string, unknown>[]): Lease[] {
  const byId = new Map<string, { meta?: Record<string, unknown>; res: Reservation[]; ev: LeaseEvent[] }>();
  for (const item of items) {
    const pk = String(item.PK);
    const g = byId.get(pk) ?? { res: [], ev: [] };
    byId.set(pk, g);
    const sk = String(item.SK);
    if (sk === 'META') g.meta = item;
    else if (sk.startsWith('RES#')) g.res.push(clean<Reservation>(item));
    else if (sk.startsWith('EVENT#')) g.ev.push(clean<LeaseEvent>(item));
  }
  const out: Lease[] = [];
  for (const g of byId.values()) {
    if (!g.meta) continue; // a lease being deleted concurrently
    out.push({
      ...clean<Omit<Lease, 'reservations' | 'events'>>(g.meta),
      reservations: g.res.sort((a, b) => a.created_at.localeCompare(b.created_at) || a.id.localeCompare(b.id)),
      events: sortEvents(g.ev),
    });
  }
  return out;
}

export class DynamoLeaseRepository implements LeaseRepository {
  constructor(private readonly d: Dynamo) {}

  async get(id: string): Promise<Lease | undefined> {
    const res = await this.d.doc.send(
      new QueryCommand({
        TableName: this.d.table,
        KeyConditionExpression: 'PK = :pk',
        ExpressionAttributeValues: { ':pk': leasePk(id) },
        ConsistentRead: true,
      }),
    );
    return assemble(res.Items ?? [])[0];
  }

  async list(projectId?: string): Promise<Lease[]> {
    const items = await queryAll(
      this.d,
      projectId === undefined
        ? { IndexName: 'GSI3', KeyConditionExpression: 'GSI3PK = :p', ExpressionAttributeValues: { ':p': ALL_LEASES } }
        : { IndexName: 'GSI1', KeyConditionExpression: 'GSI1PK = :p', ExpressionAttributeValues: { ':p': projectIndex(projectId) } },
    );
    return assemble(items);
  }

  async commit(next: Lease, previous: Lease | undefined, nodes: AllocationChange[]): Promise<void> {
    const items: TransactItem[] = [];
    const newRows = rows(next);
    const [meta, ...children] = newRows;
    items.push({
      Put: {
        TableName: this.d.table,
        Item: meta!,
        ...(previous
          ? {
              ConditionExpression: '#v = :v',
              ExpressionAttributeNames: { '#v': 'version' },
              ExpressionAttributeValues: { ':v': previous.version },
            }
          : { ConditionExpression: 'attribute_not_exists(PK)' }),
      },
    });
    // Children are plain puts: the META condition in the same transaction guards them.
    for (const row of children) items.push({ Put: { TableName: this.d.table, Item: row } });
    if (previous) {
      const keep = new Set(newRows.map((r) => r.SK));
      for (const row of rows(previous)) {
        if (!keep.has(row.SK)) items.push({ Delete: { TableName: this.d.table, Key: { PK: row.PK, SK: row.SK } } });
      }
    }
    await this.transact(items, nodes);
  }

  async delete(previous: Lease, nodes: AllocationChange[]): Promise<void> {
    const [meta, ...children] = rows(previous);
    const items: TransactItem[] = [
      {
        Delete: {
          TableName: this.d.table,
          Key: { PK: meta!.PK, SK: meta!.SK },
          ConditionExpression: '#v = :v',
          ExpressionAttributeNames: { '#v': 'version' },
          ExpressionAttributeValues: { ':v': previous.version },
        },
      },
      ...children.map((r) => ({ Delete: { TableName: this.d.table, Key: { PK: r.PK, SK: r.SK } } })),
    ];
    await this.transact(items, nodes);
  }

  private async transact(leaseItems: TransactItem[], nodes: AllocationChange[]): Promise<void> {
    const now = new Date().toISOString();
    const items = [...leaseItems, ...nodes.map((c) => allocationUpdateItem(this.d.table, c, now))];
    if (items.length > MAX_TRANSACTION_ITEMS) {
      throw new ConflictError(
        `This change touches ${nodes.length} nodes; at most ${MAX_TRANSACTION_ITEMS - leaseItems.length} nodes can be booked atomically with this lease`,
        'LEASE_TOO_LARGE',
      );
    }
    try {
      await this.d.doc.send(new TransactWriteCommand({ TransactItems: items }));
    } catch (err) {
      translateTransactionError(err);
    }
  }
}
