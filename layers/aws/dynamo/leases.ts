import { QueryCommand, type TransactWriteCommandInput, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { ConflictError } from '#core/errors.ts';
import { EVENT_ORDER, LEASE_EVENT_SEQUENCE, type Lease, type LeaseEvent, type Reservation, sortEvents } from '#core/leases/model.ts';
import type { LeaseEventRef } from '#core/leases/lifecycle.ts';
import { type ProjectUsage, type UsageEntry, type UsageGuard, usageEntry } from '#core/leases/usage.ts';
import type { AllocationChange, KeysetRange, LeaseRepository, PreparedGrant } from '#core/ports.ts';
import { type Dynamo, queryAll, queryGroups, transactWrite } from './client.ts';
import { log } from '#core/util/log.ts';
import { allocationUpdateItem, nodeKey, refreshNodeIndexes, rewriteCalendar, UpdateBuilder } from './nodes.ts';

/** Key builders for leases and their children (the only place these keys are spelled). */
export const leasePk = (id: string) => `LEASE#${id}`;
export const leaseMetaKey = (id: string) => ({ PK: leasePk(id), SK: 'META' });
export const reservationKey = (leaseId: string, id: string) => ({ PK: leasePk(leaseId), SK: `RES#${id}` });
export const eventKey = (leaseId: string, id: string) => ({ PK: leasePk(leaseId), SK: `EVENT#${id}` });
const projectIndex = (project: string) => `LEASES#${project}`;
/**
 * A project's usage partition (the host cap, `#core/leases/usage.ts`): one entry per lease
 * (window, host count), kept by every lease write, and a version item that usage-raising writes
 * check and bump. Read with one consistent query.
 */
export const usagePk = (project: string) => `USAGE#${project}`;
export const usageVersionKey = (project: string) => ({ PK: usagePk(project), SK: 'VERSION' });
export const usageEntryKey = (project: string, leaseId: string) => ({ PK: usagePk(project), SK: `LEASE#${leaseId}` });
const ALL_LEASES = 'LEASES';
export const UNDONE_EVENTS = 'EVENTS#UNDONE';
export const RUNNING_EVENTS = 'EVENTS#IN_PROGRESS';
/** Sort key of the due-events index: time, then Blazar's before_end → end → start order. */
export const dueEventSortKey = (e: LeaseEvent) => `${e.time}#${EVENT_ORDER[e.event_type]}#${e.lease_id}#${e.id}`;
/** Sort key of the running-events index: when it started (its last update). */
const runningEventSortKey = (e: LeaseEvent) => `${e.updated_at ?? e.created_at}#${e.lease_id}#${e.id}`;

/**
 * The lease's place in GSI2, on its META row: while one of its events runs, that event by start
 * time in IN_PROGRESS (the sweeper finds the ones whose execution died); otherwise its next
 * UNDONE event (the first in start → before_end → end order, the only one that may run: an
 * event waits for the ones before it) by due time in UNDONE (the sweeper's query); nothing when
 * every event is done. One entry per lease rather than one per event row: an event's
 * transition then writes META alone (LEASE_EVENT_STATES). Both sort keys end with the event's
 * id, which `indexedEventId` reads back.
 */
function leaseIndexKeys(events: readonly LeaseEvent[]): Record<string, string> {
  const running = events.find((e) => e.status === 'IN_PROGRESS');
  if (running) return { GSI2PK: RUNNING_EVENTS, GSI2SK: runningEventSortKey(running) };
  const next = events.filter((e) => e.status === 'UNDONE').sort((a, b) => LEASE_EVENT_SEQUENCE[a.event_type] - LEASE_EVENT_SEQUENCE[b.event_type])[0];
  return next ? { GSI2PK: UNDONE_EVENTS, GSI2SK: dueEventSortKey(next) } : {};
}

/** The id of the event a GSI2 entry of either kind is for: its sort key's last part. */
export const indexedEventId = (sortKey: string) => sortKey.slice(sortKey.lastIndexOf('#') + 1);

/** DynamoDB allows 100 actions per transaction. */
const MAX_TRANSACTION_ITEMS = 100;

type TransactItem = NonNullable<TransactWriteCommandInput['TransactItems']>[number];
export type Row = Record<string, unknown> & { PK: string; SK: string };

const listingKeys = (lease: Pick<Lease, 'id' | 'project_id'>, sk: string) => ({
  GSI1PK: projectIndex(lease.project_id),
  GSI1SK: `${lease.id}#${sk}`,
  GSI3PK: ALL_LEASES,
  GSI3SK: `${lease.id}#${sk}`,
});

/**
 * Leases by name (issue 16: the `blazar` client resolves a name by listing; `?name=` answers it
 * from this index): GSI7PK=LEASENAME#<name>, GSI7SK=<project>#<lease id>, on the META row only.
 * Names are not unique (upstream dropped that in 2017), so this is a lookup, not a constraint;
 * a rename moves it with the row.
 */
export const leaseNamePk = (name: string) => `LEASENAME#${name}`;

/**
 * Each reservation's status and its time, kept on the lease's META row as well as on the
 * reservation's own row, and read from META: an event's transition (start: pending → active,
 * end: active → deleted) changes only these, so it writes META, not every reservation row (one
 * item fewer per start: issue 16, docs/fleet-scale.md). A lease stored before has no such map:
 * its reservation rows say.
 */
const RESERVATION_STATES = 'reservation_states';
type ReservationState = Pick<Reservation, 'status' | 'updated_at'>;

/**
 * Each event's state — type, time, status, why and when — on the lease's META row only, with the
 * lease's place in the events index (leaseIndexKeys): an event's transition writes META (and a
 * start's node grants), not the event's row, so a start run whole is a transaction of two items,
 * not three (issue 16: 500 leases due at one minute; docs/fleet-scale.md). An event's own row
 * holds what never changes (id, lease, type, time, creation) and no status, so that nothing can
 * read a stale one. A lease stored before has no such map: its event rows hold their state and
 * their own index entries, which DynamoLeaseEventStore tidies once META has the map.
 */
export const LEASE_EVENT_STATES = 'event_states';
export type EventState = Pick<LeaseEvent, 'event_type' | 'time' | 'status' | 'status_reason' | 'updated_at'>;
export type EventStates = Record<string, EventState | undefined>;

const eventState = (e: LeaseEvent): EventState => ({ event_type: e.event_type, time: e.time, status: e.status, status_reason: e.status_reason, updated_at: e.updated_at });

export function rows(lease: Lease): Row[] {
  const { reservations, events, ...meta } = lease;
  const states: Record<string, ReservationState> = Object.fromEntries(reservations.map((r) => [r.id, { status: r.status, updated_at: r.updated_at }]));
  const out: Row[] = [
    {
      ...leaseMetaKey(lease.id),
      ...listingKeys(lease, 'META'),
      GSI7PK: leaseNamePk(lease.name),
      GSI7SK: `${lease.project_id}#${lease.id}`,
      ...leaseIndexKeys(events),
      entity: 'lease',
      ...meta,
      [RESERVATION_STATES]: states,
      [LEASE_EVENT_STATES]: Object.fromEntries(events.map((e) => [e.id, eventState(e)])),
    },
  ];
  for (const r of reservations) {
    const k = reservationKey(lease.id, r.id);
    out.push({ ...k, ...listingKeys(lease, k.SK), entity: 'reservation', ...r });
  }
  for (const { status: _s, status_reason: _r, updated_at: _u, ...e } of events) {
    const k = eventKey(lease.id, e.id);
    out.push({ ...k, ...listingKeys(lease, k.SK), entity: 'event', ...e });
  }
  return out;
}

/**
 * Every item a new lease is stored as (its rows and its project usage entry): what `commit`
 * writes for a create, and what `npm run bench` writes in batches to seed 50,000 leases.
 */
export function newLeaseItems(lease: Lease): Record<string, unknown>[] {
  return [...rows(lease), { ...usageEntryKey(lease.project_id, lease.id), entity: 'lease_usage', ...usageEntry(lease) }];
}

const STRIP = new Set(['PK', 'SK', 'GSI1PK', 'GSI1SK', 'GSI2PK', 'GSI2SK', 'GSI3PK', 'GSI3SK', 'GSI7PK', 'GSI7SK', 'entity', RESERVATION_STATES, LEASE_EVENT_STATES]);
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
    const states = (g.meta[RESERVATION_STATES] ?? {}) as Record<string, ReservationState | undefined>;
    const eventStates = g.meta[LEASE_EVENT_STATES] as EventStates | undefined;
    out.push({
      ...clean<Omit<Lease, 'reservations' | 'events'>>(g.meta),
      reservations: g.res
        .map((r) => {
          const st = states[r.id];
          return st ? { ...r, status: st.status, updated_at: st.updated_at } : r;
        })
        .sort((a, b) => a.created_at.localeCompare(b.created_at) || a.id.localeCompare(b.id)),
      events: sortEvents(eventStates ? g.ev.map((e) => ({ ...e, ...eventStates[e.id] }) as LeaseEvent) : g.ev),
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

  async page(projectId: string | undefined, range: KeysetRange): Promise<Lease[]> {
    const items = await queryGroups(
      this.d,
      projectId === undefined
        ? { index: 'GSI3', pkName: 'GSI3PK', skName: 'GSI3SK', pk: ALL_LEASES, ...range, groups: range.limit }
        : { index: 'GSI1', pkName: 'GSI1PK', skName: 'GSI1SK', pk: projectIndex(projectId), ...range, groups: range.limit },
    );
    return assemble(items);
  }

  async findByName(projectId: string | undefined, name: string, limit: number): Promise<Lease[]> {
    const res = await this.d.doc.send(
      new QueryCommand({
        TableName: this.d.table,
        IndexName: 'GSI7',
        KeyConditionExpression: projectId === undefined ? 'GSI7PK = :pk' : 'GSI7PK = :pk AND begins_with(GSI7SK, :project)',
        ExpressionAttributeValues: { ':pk': leaseNamePk(name), ...(projectId === undefined ? {} : { ':project': `${projectId}#` }) },
        Limit: limit,
      }),
    );
    // The index holds META rows; each lease is then read whole (one query each, in parallel).
    const leases = await Promise.all((res.Items ?? []).map((it) => this.get(String(it.id))));
    return leases.filter((l): l is Lease => l !== undefined && l.name === name).sort((a, b) => a.id.localeCompare(b.id));
  }

  async projectUsage(projectId: string): Promise<ProjectUsage> {
    const items = await queryAll(this.d, {
      KeyConditionExpression: 'PK = :pk',
      ExpressionAttributeValues: { ':pk': usagePk(projectId) },
      ConsistentRead: true,
    });
    let version = 0;
    const entries: UsageEntry[] = [];
    for (const item of items) {
      if (item.SK === 'VERSION') version = Number(item.version ?? 0);
      else entries.push({ lease_id: String(item.lease_id), start: String(item.start), end: String(item.end), hosts: Number(item.hosts ?? 0) });
    }
    return { version, entries };
  }

  /**
   * The usage items of a lease write: its entry when it changed, and with a guard the version
   * compare-and-set plus the pruned entries.
   */
  private usageItems(next: Lease, previous: Lease | undefined, guard: UsageGuard | undefined): TransactItem[] {
    const out: TransactItem[] = [];
    const entry = usageEntry(next);
    const old = previous && usageEntry(previous);
    if (!old || old.start !== entry.start || old.end !== entry.end || old.hosts !== entry.hosts) {
      out.push({ Put: { TableName: this.d.table, Item: { ...usageEntryKey(next.project_id, next.id), entity: 'lease_usage', ...entry } } });
    }
    if (guard) {
      out.push({
        Update: {
          TableName: this.d.table,
          Key: usageVersionKey(next.project_id),
          UpdateExpression: 'SET #v = if_not_exists(#v, :zero) + :one',
          ConditionExpression: guard.expectedVersion === 0 ? 'attribute_not_exists(PK)' : '#v = :expected',
          ExpressionAttributeNames: { '#v': 'version' },
          ExpressionAttributeValues: { ':zero': 0, ':one': 1, ...(guard.expectedVersion === 0 ? {} : { ':expected': guard.expectedVersion }) },
        },
      });
      for (const id of guard.prune) {
        if (id !== next.id) out.push({ Delete: { TableName: this.d.table, Key: usageEntryKey(next.project_id, id) } });
      }
    }
    return out;
  }

  async commit(next: Lease, previous: Lease | undefined, nodes: AllocationChange[], guard?: UsageGuard): Promise<void> {
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
    items.push(...this.usageItems(next, previous, guard));
    if (items.length + nodes.length <= MAX_TRANSACTION_ITEMS) await this.transact(items, nodes);
    else await this.phasedCommit(items, previous, nodes);
    await this.refreshGrants(previous, nodes);
  }

  /**
   * The lessee index (GSI10) follows grants: after a write that may have granted (a node added
   * to a running reservation) or revoked (a started lease's entry removed) a node, its index
   * attributes are brought up to date. A lease that never started holds no grant: no reads then.
   */
  private async refreshGrants(previous: Lease | undefined, nodes: AllocationChange[]): Promise<void> {
    const started = previous?.reservations.some((r) => r.status !== 'pending') ?? false;
    const touched = nodes.filter((c) => c.set.some((a) => a.granted_at) || (started && c.remove.length > 0));
    await Promise.all(touched.map((c) => refreshNodeIndexes(this.d, c.nodeId)));
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
      // Its usage entry goes with it (no version check: a delete only lowers usage).
      { Delete: { TableName: this.d.table, Key: usageEntryKey(previous.project_id, previous.id) } },
    ];
    if (items.length + nodes.length <= MAX_TRANSACTION_ITEMS) {
      await this.transact(items, nodes);
      return this.refreshGrants(previous, nodes);
    }
    // Too large for one transaction: the lease goes first, then its calendar entries. A crash in
    // between leaves entries of a deleted lease, which only block nodes (never double-book)
    // until reconcileCalendars drops them.
    await this.transact(items, []);
    await this.finalize(nodes.map((c) => ({ nodeId: c.nodeId, set: [], remove: c.remove })));
  }

  /**
   * A booking too large for one transaction (Chameleon runs 100-node leases), in three steps
   * that keep the invariant at every instant:
   *  1. holds: per chunk of nodes, one transaction that adds the new allocations under each
   *     node's version check. Where the reservation already held the node (an update), the new
   *     window goes under a separate `<id>#hold` key and the old one stays, so nothing is ever
   *     released before the lease commits. A lost race rolls back the chunks already written.
   *  2. the lease items, in one transaction with the lease version check (rolled back likewise).
   *  3. final calendars: holds become the allocations, removed ones go. Only shrinks, so these
   *     writes need no check; a crash here leaves holds that only over-reserve.
   */
  private async phasedCommit(leaseItems: TransactItem[], previous: Lease | undefined, nodes: AllocationChange[]): Promise<void> {
    if (leaseItems.length > MAX_TRANSACTION_ITEMS) {
      throw new ConflictError('This lease has too many reservations and events to store atomically', 'LEASE_TOO_LARGE');
    }
    const now = new Date().toISOString();
    const heldBefore = new Set(previous?.reservations.flatMap((r) => r.node_ids.map((n) => `${n}/${r.id}`)) ?? []);
    const holdKey = (nodeId: string, rid: string) => (heldBefore.has(`${nodeId}/${rid}`) ? `${rid}#hold` : rid);
    const holds = nodes.filter((c) => c.set.length > 0);
    const written: AllocationChange[] = [];
    try {
      for (let i = 0; i < holds.length; i += MAX_TRANSACTION_ITEMS) {
        const chunk = holds.slice(i, i + MAX_TRANSACTION_ITEMS);
        const items = chunk.map((c) => {
          const b = new UpdateBuilder();
          for (const a of c.set) b.set(['allocations', holdKey(c.nodeId, a.reservation_id)], { ...a, held_at: now });
          b.set(['updated_at'], now);
          b.bumpVersion();
          b.values[':expected'] = c.expectedVersion;
          return {
            Update: {
              TableName: this.d.table,
              Key: nodeKey(c.nodeId),
              UpdateExpression: b.expression(),
              ConditionExpression: '#version = :expected',
              ExpressionAttributeNames: b.names,
              ExpressionAttributeValues: b.values,
            },
          };
        });
        await this.send(items);
        written.push(...chunk);
      }
      await this.send(leaseItems);
    } catch (err) {
      await this.forEachNode(written, (c) => this.updateNode(c.nodeId, [], c.set.map((a) => holdKey(c.nodeId, a.reservation_id))));
      throw err;
    }
    await this.finalize(
      nodes.map((c) => ({
        nodeId: c.nodeId,
        set: c.set,
        remove: [...c.remove, ...c.set.filter((a) => heldBefore.has(`${c.nodeId}/${a.reservation_id}`)).map((a) => `${a.reservation_id}#hold`)],
      })),
    );
  }

  /** Step 3: shrink-only calendar writes; failures are logged, leaving safe over-reservations. */
  private async finalize(changes: { nodeId: string; set: AllocationChange['set']; remove: string[] }[]): Promise<void> {
    await this.forEachNode(changes, (c) => this.updateNode(c.nodeId, c.set, c.remove));
  }

  private async forEachNode<T extends { nodeId: string }>(xs: T[], fn: (x: T) => Promise<void>): Promise<void> {
    const queue = [...xs];
    const worker = async () => {
      for (let x = queue.shift(); x; x = queue.shift()) {
        for (let attempt = 1; ; attempt++) {
          try {
            await fn(x);
            break;
          } catch (err) {
            if (attempt >= 3) {
              log.error('calendar write failed; reconcileCalendars will repair it', { node_id: x.nodeId, error: (err as Error).name });
              break;
            }
          }
        }
      }
    };
    await Promise.all(Array.from({ length: 10 }, worker));
  }

  private updateNode(nodeId: string, set: AllocationChange['set'], remove: string[]): Promise<void> {
    return rewriteCalendar(this.d, nodeId, set, remove);
  }

  private send(items: TransactItem[]): Promise<void> {
    return transactWrite(this.d, items);
  }

  /** One transaction: the lease items and every node's calendar change with its version check. */
  private async transact(leaseItems: TransactItem[], nodes: AllocationChange[]): Promise<void> {
    const now = new Date().toISOString();
    await this.send([...leaseItems, ...nodes.map((c) => allocationUpdateItem(this.d.table, c, now))]);
  }
}

/**
 * One-off backfill of the lease name index (GSI7) for leases written before issue 16: each
 * lease's META row gets the attributes its next write would give it. Idempotent. Returns how
 * many leases it updated.
 */
export async function backfillLeaseNames(d: Dynamo): Promise<number> {
  const items = await queryAll(d, {
    IndexName: 'GSI3',
    KeyConditionExpression: 'GSI3PK = :p',
    FilterExpression: 'SK = :meta AND attribute_not_exists(GSI7PK)',
    ExpressionAttributeValues: { ':p': ALL_LEASES, ':meta': 'META' },
  });
  for (const item of items) {
    await d.doc
      .send(
        new UpdateCommand({
          TableName: d.table,
          Key: { PK: item.PK, SK: 'META' },
          UpdateExpression: 'SET GSI7PK = :pk, GSI7SK = :sk',
          ConditionExpression: '#name = :name',
          ExpressionAttributeNames: { '#name': 'name' },
          ExpressionAttributeValues: { ':pk': leaseNamePk(String(item.name)), ':sk': `${item.project_id}#${item.id}`, ':name': item.name },
        }),
      )
      .catch((err) => {
        if ((err as Error).name !== 'ConditionalCheckFailedException') throw err; // renamed meanwhile: that write indexed it
      });
  }
  return items.length;
}
