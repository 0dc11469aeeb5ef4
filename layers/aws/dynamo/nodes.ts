import {
  BatchGetCommand,
  GetCommand,
  TransactWriteCommand,
  type TransactWriteCommandInput,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import { ConcurrentModificationError, ConflictError, NotFoundError } from '#core/errors.ts';
import type { Allocation, Node, NodeCreate, NodePatch } from '#core/inventory/node.ts';
import type { AllocationChange, KeysetRange, NodeRepository } from '#core/ports.ts';
import { type Dynamo, failedIndexes, queryAll, queryGroups, translateTransactionError } from './client.ts';

/** Key builders for nodes (the only place these keys are spelled). */
export const nodeKey = (id: string) => ({ PK: `NODE#${id}`, SK: 'META' });
export const nodeNameKey = (name: string) => ({ PK: `NODENAME#${name}`, SK: 'META' });
export const hostIdKey = (hostId: string) => ({ PK: `HOSTID#${hostId}`, SK: 'META' });
const hostCounterKey = { PK: 'COUNTER#host', SK: 'META' };
const NODES_INDEX = 'NODES';

type TransactItem = NonNullable<TransactWriteCommandInput['TransactItems']>[number];

function toNode(item: Record<string, unknown>): Node {
  const { PK: _a, SK: _b, GSI3PK: _c, GSI3SK: _d, entity: _e, ...rest } = item;
  const n = rest as unknown as Node;
  return { ...n, facts: n.facts ?? {}, extra: n.extra ?? {}, allocations: n.allocations ?? {}, addresses: n.addresses ?? [] };
}

/** Builds an UpdateExpression from a patch, with generated placeholder names. */
export class UpdateBuilder {
  private sets: string[] = [];
  private removes: string[] = [];
  names: Record<string, string> = {};
  values: Record<string, unknown> = {};
  private n = 0;

  private name(part: string): string {
    const k = `#n${this.n++}`;
    this.names[k] = part;
    return k;
  }
  private value(v: unknown): string {
    const k = `:v${this.n++}`;
    this.values[k] = v;
    return k;
  }
  set(path: string[], v: unknown): this {
    this.sets.push(`${path.map((p) => this.name(p)).join('.')} = ${this.value(v)}`);
    return this;
  }
  raw(expr: string): this {
    this.sets.push(expr);
    return this;
  }
  remove(path: string[]): this {
    this.removes.push(path.map((p) => this.name(p)).join('.'));
    return this;
  }
  expression(): string {
    return [this.sets.length ? `SET ${this.sets.join(', ')}` : '', this.removes.length ? `REMOVE ${this.removes.join(', ')}` : '']
      .filter(Boolean)
      .join(' ');
  }
  /** Adds a placeholder value for use in conditions. */
  v(v: unknown): string {
    return this.value(v);
  }
  /** `version = version + 1`: every node write moves the version bookings check against. */
  bumpVersion(): this {
    this.names['#version'] = 'version';
    this.values[':one'] = 1;
    return this.raw('#version = #version + :one');
  }
}

/** A uniqueness item (name or host id → node id), written only if absent. */
const uniquePut = (table: string, key: { PK: string; SK: string }, nodeId: string): TransactItem => ({
  Put: { TableName: table, Item: { ...key, node_id: nodeId }, ConditionExpression: 'attribute_not_exists(PK)' },
});

function applyPatch(b: UpdateBuilder, patch: NodePatch, now: string): void {
  if (patch.name !== undefined) b.set(['name'], patch.name);
  if (patch.reservable !== undefined) b.set(['reservable'], patch.reservable);
  for (const [k, v] of Object.entries(patch.facts ?? {})) {
    if (v === undefined || v === null) b.remove(['facts', k]);
    else b.set(['facts', k], v);
  }
  if (patch.replaceExtra) b.set(['extra'], patch.replaceExtra);
  for (const [k, v] of Object.entries(patch.extra ?? {})) {
    if (v === null) b.remove(['extra', k]);
    else b.set(['extra', k], v);
  }
  if (patch.addresses) b.set(['addresses'], patch.addresses);
  if (patch.bmc === null) b.remove(['bmc']);
  else if (patch.bmc !== undefined) b.set(['bmc'], patch.bmc);
  b.set(['updated_at'], now);
}

/**
 * The transaction item that applies one node's allocation change: set/remove allocations and
 * bump the version, on condition that the version is still the one the plan was computed
 * against. This condition is what makes double booking impossible (DESIGN.md §6 invariant 1).
 */
export function allocationUpdateItem(table: string, change: AllocationChange, now: string): TransactItem {
  const b = new UpdateBuilder();
  for (const a of change.set) b.set(['allocations', a.reservation_id], a);
  for (const rid of change.remove) b.remove(['allocations', rid]);
  b.set(['updated_at'], now);
  if (change.expectedVersion === undefined && change.set.length > 0) throw new Error('a booking needs the node version');
  const condition = change.expectedVersion === undefined ? 'attribute_exists(PK)' : `#version = ${b.v(change.expectedVersion)}`;
  b.bumpVersion();
  return {
    Update: {
      TableName: table,
      Key: nodeKey(change.nodeId),
      UpdateExpression: b.expression(),
      ConditionExpression: condition,
      ExpressionAttributeNames: b.names,
      ExpressionAttributeValues: b.values,
    },
  };
}

/**
 * Calendar write without a version check (it still bumps the version, so concurrent bookings
 * re-read). Only for changes that cannot create an overlap: releasing, shrinking to a window
 * the node already holds, rolling back holds. Never creates a node that was deleted.
 */
export async function rewriteCalendar(d: Dynamo, nodeId: string, set: Allocation[], removeKeys: string[]): Promise<void> {
  if (set.length === 0 && removeKeys.length === 0) return;
  const b = new UpdateBuilder();
  for (const a of set) b.set(['allocations', a.reservation_id], a);
  for (const k of removeKeys) b.remove(['allocations', k]);
  b.set(['updated_at'], new Date().toISOString());
  b.bumpVersion();
  await d.doc
    .send(
      new UpdateCommand({
        TableName: d.table,
        Key: nodeKey(nodeId),
        UpdateExpression: b.expression(),
        ConditionExpression: 'attribute_exists(PK)',
        ExpressionAttributeNames: b.names,
        ExpressionAttributeValues: b.values,
      }),
    )
    .catch((err) => {
      if ((err as Error).name !== 'ConditionalCheckFailedException') throw err; // node gone: nothing to do
    });
}

export class DynamoNodeRepository implements NodeRepository {
  constructor(private readonly d: Dynamo) {}

  async create(node: NodeCreate): Promise<Node> {
    const full: Node = { ...node, version: 1, updated_at: null };
    const items: TransactItem[] = [
      {
        Put: {
          TableName: this.d.table,
          Item: { ...nodeKey(node.id), GSI3PK: NODES_INDEX, GSI3SK: node.id, entity: 'node', ...full },
          ConditionExpression: 'attribute_not_exists(PK)',
        },
      },
      uniquePut(this.d.table, nodeNameKey(node.name), node.id),
    ];
    if (node.host_id) items.push(uniquePut(this.d.table, hostIdKey(node.host_id), node.id));
    try {
      await this.d.doc.send(new TransactWriteCommand({ TransactItems: items }));
    } catch (err) {
      if (failedIndexes(err).includes(1)) throw new ConflictError(`A node named ${node.name} already exists`, 'DUPLICATE_NAME');
      translateTransactionError(err);
    }
    return full;
  }

  async nextHostId(): Promise<string> {
    // Host ids are all digits (blazarclient treats anything else as a name); a counter gives
    // short ones. It is taken after the whole request was checked, so a refused enrolment takes
    // none; an enrolment that then loses a race leaves a gap, as an SQL autoincrement does.
    const counter = await this.d.doc.send(
      new UpdateCommand({
        TableName: this.d.table,
        Key: hostCounterKey,
        UpdateExpression: 'ADD #v :one',
        ExpressionAttributeNames: { '#v': 'value' },
        ExpressionAttributeValues: { ':one': 1 },
        ReturnValues: 'UPDATED_NEW',
      }),
    );
    return String(counter.Attributes?.value);
  }

  async get(id: string): Promise<Node | undefined> {
    const res = await this.d.doc.send(new GetCommand({ TableName: this.d.table, Key: nodeKey(id), ConsistentRead: true }));
    return res.Item ? toNode(res.Item) : undefined;
  }

  private async viaIndexItem(key: { PK: string; SK: string }): Promise<Node | undefined> {
    const res = await this.d.doc.send(new GetCommand({ TableName: this.d.table, Key: key, ConsistentRead: true }));
    const id = res.Item?.node_id as string | undefined;
    return id ? this.get(id) : undefined;
  }

  getByName(name: string): Promise<Node | undefined> {
    return this.viaIndexItem(nodeNameKey(name));
  }

  getByHostId(hostId: string): Promise<Node | undefined> {
    return this.viaIndexItem(hostIdKey(hostId));
  }

  async getByAddress(address: string): Promise<Node | undefined> {
    // NOTE: a full read of the node index filtered here: fine for the fleets this serves (a few
    // thousand nodes, one query page per ~1 MB). An ADDRESS#<address> uniqueness item written
    // with the node, like NODENAME#, is the way to make it one read when it matters.
    const hits = (await this.list()).filter((n) => n.addresses.some((a) => a.address === address));
    hits.sort((a, b) => a.id.localeCompare(b.id));
    return hits[0] && this.get(hits[0].id);
  }

  async list(opts: { consistent?: boolean } = {}): Promise<Node[]> {
    const items = await queryAll(this.d, {
      IndexName: 'GSI3',
      KeyConditionExpression: 'GSI3PK = :p',
      ExpressionAttributeValues: { ':p': NODES_INDEX },
    });
    if (!opts.consistent) return items.map(toNode);
    // GSIs are eventually consistent; a retry after a lost race re-reads the base items.
    const out: Node[] = [];
    for (let i = 0; i < items.length; i += 100) {
      let keys = items.slice(i, i + 100).map((it) => nodeKey(String(it.id)));
      while (keys.length > 0) {
        const res = await this.d.doc.send(
          new BatchGetCommand({ RequestItems: { [this.d.table]: { Keys: keys, ConsistentRead: true } } }),
        );
        out.push(...(res.Responses?.[this.d.table] ?? []).map(toNode));
        keys = (res.UnprocessedKeys?.[this.d.table]?.Keys ?? []) as typeof keys;
      }
    }
    return out;
  }

  async page(range: KeysetRange): Promise<Node[]> {
    const items = await queryGroups(this.d, { index: 'GSI3', pkName: 'GSI3PK', skName: 'GSI3SK', pk: NODES_INDEX, ...range, groups: range.limit });
    return items.map(toNode);
  }

  async update(id: string, expectedVersion: number, patch: NodePatch): Promise<Node> {
    const current = await this.get(id);
    if (!current) throw new NotFoundError(`Node ${id} not found`);
    if (current.version !== expectedVersion) throw new ConcurrentModificationError();
    const now = new Date().toISOString();
    const b = new UpdateBuilder();
    applyPatch(b, patch, now);
    b.bumpVersion();
    b.values[':expected'] = expectedVersion;
    const update: TransactItem = {
      Update: {
        TableName: this.d.table,
        Key: nodeKey(id),
        UpdateExpression: b.expression(),
        ConditionExpression: '#version = :expected',
        ExpressionAttributeNames: b.names,
        ExpressionAttributeValues: b.values,
      },
    };
    const items: TransactItem[] = [update];
    if (patch.name !== undefined && patch.name !== current.name) {
      items.push(
        { Delete: { TableName: this.d.table, Key: nodeNameKey(current.name) } },
        uniquePut(this.d.table, nodeNameKey(patch.name), id),
      );
    }
    try {
      await this.d.doc.send(new TransactWriteCommand({ TransactItems: items }));
    } catch (err) {
      if (failedIndexes(err).includes(2)) throw new ConflictError(`A node named ${patch.name} already exists`, 'DUPLICATE_NAME');
      translateTransactionError(err);
    }
    return (await this.get(id))!;
  }

  async enrol(id: string, expectedVersion: number, hostId: string, patch: NodePatch): Promise<Node> {
    const now = new Date().toISOString();
    const b = new UpdateBuilder();
    applyPatch(b, patch, now);
    b.set(['host_id'], hostId);
    b.bumpVersion();
    b.names['#host'] = 'host_id';
    b.values[':expected'] = expectedVersion;
    try {
      await this.d.doc.send(
        new TransactWriteCommand({
          TransactItems: [
            {
              Update: {
                TableName: this.d.table,
                Key: nodeKey(id),
                UpdateExpression: b.expression(),
                ConditionExpression: '#version = :expected AND attribute_not_exists(#host)',
                ExpressionAttributeNames: b.names,
                ExpressionAttributeValues: b.values,
              },
            },
            uniquePut(this.d.table, hostIdKey(hostId), id),
          ],
        }),
      );
    } catch (err) {
      const fresh = await this.get(id);
      if (fresh?.host_id) throw new ConflictError(`Node ${fresh.name} is already enrolled as host ${fresh.host_id}`, 'HOST_EXISTS');
      translateTransactionError(err);
    }
    return (await this.get(id))!;
  }

  async delete(id: string, expectedVersion: number): Promise<void> {
    const node = await this.get(id);
    if (!node) return;
    try {
      await this.d.doc.send(
        new TransactWriteCommand({
          TransactItems: [
            {
              Delete: {
                TableName: this.d.table,
                Key: nodeKey(id),
                // Never a node that is a Blazar host or has calendar entries.
                ConditionExpression: '#ver = :v AND attribute_not_exists(host_id) AND (attribute_not_exists(#alloc) OR size(#alloc) = :zero)',
                ExpressionAttributeNames: { '#ver': 'version', '#alloc': 'allocations' },
                ExpressionAttributeValues: { ':v': expectedVersion, ':zero': 0 },
              },
            },
            { Delete: { TableName: this.d.table, Key: nodeNameKey(node.name) } },
          ],
        }),
      );
    } catch (err) {
      translateTransactionError(err);
    }
  }

  async markAllocation(id: string, reservationId: string, fields: Pick<Allocation, 'granted_at' | 'released_at'>): Promise<boolean> {
    const b = new UpdateBuilder();
    for (const [k, v] of Object.entries(fields)) if (v !== undefined) b.set(['allocations', reservationId, k], v);
    b.set(['updated_at'], new Date().toISOString());
    b.bumpVersion();
    b.names['#alloc'] = 'allocations';
    b.names['#rid'] = reservationId;
    try {
      await this.d.doc.send(
        new UpdateCommand({
          TableName: this.d.table,
          Key: nodeKey(id),
          UpdateExpression: b.expression(),
          // The write is the check: an allocation released or reconciled away is not recreated.
          ConditionExpression: 'attribute_exists(#alloc.#rid)',
          ExpressionAttributeNames: b.names,
          ExpressionAttributeValues: b.values,
        }),
      );
      return true;
    } catch (err) {
      if ((err as Error).name === 'ConditionalCheckFailedException') return false;
      throw err;
    }
  }

  rewriteAllocations(id: string, set: Allocation[], removeKeys: string[]): Promise<void> {
    return rewriteCalendar(this.d, id, set, removeKeys);
  }

  async unenrol(id: string): Promise<void> {
    const node = await this.get(id);
    if (!node?.host_id) throw new NotFoundError(`Host of node ${id} not found`);
    try {
      await this.d.doc.send(
        new TransactWriteCommand({
          TransactItems: [
            {
              Update: {
                TableName: this.d.table,
                Key: nodeKey(id),
                // The condition is the check: no allocation may exist at the moment of the write.
                UpdateExpression: 'REMOVE #host SET #extra = :empty, #ver = #ver + :one, #upd = :now',
                ConditionExpression: '#ver = :v AND (attribute_not_exists(#alloc) OR size(#alloc) = :zero)',
                ExpressionAttributeNames: { '#host': 'host_id', '#extra': 'extra', '#ver': 'version', '#upd': 'updated_at', '#alloc': 'allocations' },
                ExpressionAttributeValues: { ':empty': {}, ':one': 1, ':now': new Date().toISOString(), ':v': node.version, ':zero': 0 },
              },
            },
            { Delete: { TableName: this.d.table, Key: hostIdKey(node.host_id) } },
          ],
        }),
      );
    } catch (err) {
      const fresh = await this.get(id);
      if (fresh && Object.keys(fresh.allocations).length > 0) {
        throw new ConflictError(`Can't delete host ${node.host_id}. The host is reserved.`, 'HOST_RESERVED');
      }
      translateTransactionError(err);
    }
  }
}
