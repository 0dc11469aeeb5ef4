import { QueryCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import type { Node } from '#core/inventory/node.ts';
import type { LeaseEventRef } from '#core/leases/lifecycle.ts';
import { EVENT_ORDER, type EventStatus, type Lease } from '#core/leases/model.ts';
import type { LeaseEventStore, PreparedGrant } from '#core/ports.ts';
import { type Dynamo, getItem, isConditionFailure, queryAll, transactWrite } from './client.ts';
import { type EventState, type EventStates, indexedEventId, LEASE_EVENT_STATES, leaseMetaKey, type Row, rows, RUNNING_EVENTS, UNDONE_EVENTS } from './leases.ts';
import { INDEX_KEYS, indexDelta, nodeKey, type TransactItem, UpdateBuilder } from './nodes.ts';

/**
 * The lease-event workflow's and the sweeper's writes and reads of leases (LeaseEventStore): an
 * event's transition, with the grants of a start run whole, and the due and running events. Apart
 * from the lease repository (leases.ts), which the API functions use, so that their bundles carry
 * none of it.
 */

/** A reservation row without what META also holds of it (its status and time); other rows as they are. */
const withoutState = (row: Row): Row => {
  if (row.entity !== 'reservation') return row;
  const { status: _s, updated_at: _u, ...rest } = row;
  return rest as Row;
};

/**
 * The events a GSI2 item stands for. A lease's META row (leases.ts leaseIndexKeys): the event it
 * is indexed by, and with `also` every other event of its lease that passes it (the UNDONE
 * events after the indexed one, those due by then: an event waits for the ones before it, and
 * its execution would be started with them). An event row of a lease stored before META held the
 * events' state (`current`): that event.
 */
function refsOf(item: Record<string, unknown>, also?: (e: EventState) => boolean): LeaseEventRef[] {
  if (item.SK !== 'META') return [{ lease_id: String(item.lease_id), event_id: String(item.id), event_type: item.event_type as LeaseEventRef['event_type'], time: String(item.time) }];
  const states = (item[LEASE_EVENT_STATES] ?? {}) as EventStates;
  const indexed = indexedEventId(String(item.GSI2SK));
  return Object.entries(states).flatMap(([id, st]) =>
    st && (id === indexed || also?.(st)) ? [{ lease_id: String(item.id), event_id: id, event_type: st.event_type, time: st.time }] : [],
  );
}

/** Oldest first, and before_end → end → start at equal times (as the index sorts). */
const byDue = (a: LeaseEventRef, b: LeaseEventRef) => a.time.localeCompare(b.time) || EVENT_ORDER[a.event_type] - EVENT_ORDER[b.event_type];

/**
 * A lease start's grant, prepared from the node as read (LeaseEventStore.prepareGrant): the
 * allocation to mark and the node's index attributes that follow (the lessee's list, GSI10; GSI5
 * when a second project holds it). Those depend only on which allocations are granted, not on
 * when, so they are computed now and written later, on condition that the node is still this
 * version.
 */
function prepareGrant(node: Node, reservationId: string): PreparedGrant {
  const held = node.allocations[reservationId];
  if (!held) throw new Error(`node ${node.id} holds no allocation of reservation ${reservationId}`);
  // The grant's time is the write's (grantUpdateItem); any value makes the allocation granted.
  const after: Node = { ...node, allocations: { ...node.allocations, [reservationId]: { ...held, granted_at: held.granted_at ?? 'granted' } } };
  return { node_id: node.id, node_version: node.version, reservation_id: reservationId, store: { index: indexDelta(node, after) } };
}

/** A prepared grant's index changes, as they come back through a workflow's state: checked before they are written. */
const grantIndexChanges = (store: Record<string, unknown>): { set: Record<string, string>; remove: string[] } => {
  const index = store.index as { set?: unknown; remove?: unknown } | undefined;
  const set = index?.set && typeof index.set === 'object' ? (index.set as Record<string, unknown>) : {};
  const remove = Array.isArray(index?.remove) ? index.remove : [];
  // It comes back through a workflow's state: only index attributes, only strings.
  const ok = (k: string) => INDEX_KEYS.includes(k);
  if (!Object.entries(set).every(([k, v]) => ok(k) && typeof v === 'string') || !remove.every((k) => typeof k === 'string' && ok(k))) {
    throw new Error('a prepared grant holds attributes that are not the node\'s index attributes');
  }
  return { set: set as Record<string, string>, remove: remove as string[] };
};

/**
 * The transaction item of a lease start's grant (engine.ts, an event run whole): the allocation
 * gets `granted_at` and the node's index attributes follow, on condition that the node is the
 * version the grant was prepared from — so the index attributes computed from it are right — and
 * still holds the allocation.
 */
function grantUpdateItem(table: string, g: PreparedGrant, grantedAt: string, now: string): TransactItem {
  const index = grantIndexChanges(g.store);
  const b = new UpdateBuilder();
  b.set(['allocations', g.reservation_id, 'granted_at'], grantedAt);
  b.set(['updated_at'], now);
  for (const [k, v] of Object.entries(index.set)) b.set([k], v);
  for (const k of index.remove) b.remove([k]);
  b.names['#alloc'] = 'allocations';
  b.names['#rid'] = g.reservation_id;
  const condition = `#version = ${b.v(g.node_version)} AND attribute_exists(#alloc.#rid)`;
  b.bumpVersion();
  return {
    Update: {
      TableName: table,
      Key: nodeKey(g.node_id),
      UpdateExpression: b.expression(),
      ConditionExpression: condition,
      ExpressionAttributeNames: b.names,
      ExpressionAttributeValues: b.values,
    },
  };
}

export class DynamoLeaseEventStore implements LeaseEventStore {
  constructor(private readonly d: Dynamo) {}

  prepareGrant(node: Node, reservationId: string): PreparedGrant {
    return prepareGrant(node, reservationId);
  }

  async transition(previous: Lease, next: Lease, eventId: string, from: EventStatus, grants: readonly PreparedGrant[] = []): Promise<void> {
    // The event's status is `from` in the lease as read; META's version condition below makes
    // the write conditional on that read (every write of a lease bumps its version).
    const was = previous.events.find((e) => e.id === eventId);
    if (was?.status !== from) throw new Error(`event ${eventId} of lease ${previous.id} is ${was?.status ?? 'missing'}, not ${from}`);
    const before = new Map(rows(previous).map((r) => [r.SK, r]));
    const items: TransactItem[] = [];
    for (const row of rows(next)) {
      const old = before.get(row.SK);
      if (row.SK === 'META') {
        items.push({
          Put: {
            TableName: this.d.table,
            Item: row,
            ConditionExpression: '#v = :v',
            ExpressionAttributeNames: { '#v': 'version' },
            ExpressionAttributeValues: { ':v': previous.version },
          },
        });
      } else if (!old || JSON.stringify(withoutState(old)) !== JSON.stringify(withoutState(row))) {
        // A reservation whose status alone changed is not written, nor an event's (whose row
        // holds no status): META holds both (leases.ts rows).
        items.push({ Put: { TableName: this.d.table, Item: row } });
      }
    }
    // A start run whole grants its nodes in the same write (engine.ts runWhole), at the lease's
    // time of writing.
    const now = new Date().toISOString();
    await this.send([...items, ...grants.map((g) => grantUpdateItem(this.d.table, g, next.updated_at ?? now, now))]);
  }

  async dueEvents(until: Date, limit: number): Promise<LeaseEventRef[]> {
    // `<iso time>#…` sorts by time; '#~' is past every suffix of that time.
    const res = await this.d.doc.send(
      new QueryCommand({
        TableName: this.d.table,
        IndexName: 'GSI2',
        KeyConditionExpression: 'GSI2PK = :p AND GSI2SK <= :t',
        ExpressionAttributeValues: { ':p': UNDONE_EVENTS, ':t': `${until.toISOString()}#~` },
        Limit: limit,
      }),
    );
    const due = (e: EventState) => e.status === 'UNDONE' && Date.parse(e.time) <= until.getTime();
    return (await this.current(res.Items ?? [])).flatMap((item) => refsOf(item, due)).sort(byDue);
  }

  async pendingEvents(): Promise<LeaseEventRef[]> {
    // A lease indexed by a running event may have UNDONE ones after it: those are pending too.
    const items = await Promise.all(
      [UNDONE_EVENTS, RUNNING_EVENTS].map((p) => queryAll(this.d, { IndexName: 'GSI2', KeyConditionExpression: 'GSI2PK = :p', ExpressionAttributeValues: { ':p': p } })),
    );
    const [undone, running] = await Promise.all(items.map((xs) => this.current(xs)));
    const pending = (e: EventState) => e.status === 'UNDONE';
    // A running lease's own entry is its running event, which is not pending; a row of a lease
    // stored before, in the running partition, is such an event too.
    const afterRunning = running!.filter((item) => item.SK === 'META').flatMap((item) => refsOf(item, pending).filter((r) => r.event_id !== indexedEventId(String(item.GSI2SK))));
    return [...undone!.flatMap((item) => refsOf(item, pending)), ...afterRunning];
  }

  async eventsInProgress(startedBefore: Date): Promise<LeaseEventRef[]> {
    const items = await queryAll(this.d, {
      IndexName: 'GSI2',
      KeyConditionExpression: 'GSI2PK = :p AND GSI2SK < :t',
      ExpressionAttributeValues: { ':p': RUNNING_EVENTS, ':t': startedBefore.toISOString() },
    });
    return (await this.current(items)).flatMap((item) => refsOf(item));
  }

  /**
   * Index items without the stale ones: the event rows of a lease stored before META held its
   * events' state (leases.ts LEASE_EVENT_STATES) carry their own index entries. Once the lease
   * has been written since, its META holds the state and its index entry, and those rows' entries
   * are stale: they are dropped here and removed from the rows (so this happens once per row).
   * Until then the rows are the lease's index entries, as before. Nothing to do, and no reads,
   * once every lease has been written since.
   */
  private async current(items: Record<string, unknown>[]): Promise<Record<string, unknown>[]> {
    const old = items.filter((i) => i.SK !== 'META');
    if (old.length === 0) return items;
    const leases = [...new Set(old.map((i) => String(i.lease_id)))];
    const moved = new Set<string>();
    await Promise.all(
      leases.map(async (id) => {
        const meta = await getItem(this.d, leaseMetaKey(id));
        if (!meta || meta[LEASE_EVENT_STATES] !== undefined) moved.add(id);
      }),
    );
    const stale = old.filter((i) => moved.has(String(i.lease_id)));
    await Promise.all(
      stale.map((i) =>
        this.d.doc
          .send(
            new UpdateCommand({
              TableName: this.d.table,
              Key: { PK: i.PK, SK: i.SK },
              UpdateExpression: 'REMOVE GSI2PK, GSI2SK',
              // Not recreated by a delete racing this.
              ConditionExpression: 'attribute_exists(PK)',
            }),
          )
          .catch((err: unknown) => {
            if (!isConditionFailure(err)) throw err;
          }),
      ),
    );
    return items.filter((i) => !stale.includes(i));
  }

  private send(items: TransactItem[]): Promise<void> {
    return transactWrite(this.d, items);
  }
}
