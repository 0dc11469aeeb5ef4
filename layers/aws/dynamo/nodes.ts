import { createHash } from 'node:crypto';
import {
  BatchGetCommand,
  GetCommand,
  QueryCommand,
  TransactWriteCommand,
  type TransactWriteCommandInput,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import { ConcurrentModificationError, ConflictError, NotFoundError } from '#core/errors.ts';
import { type Allocation, grantsOf, type Node, type NodeCreate, type NodePatch, resourceClassOf } from '#core/inventory/node.ts';
import type { AllocationChange, HostScan, HostScanPage, KeysetRange, NodeIndexQuery, NodeRepository } from '#core/ports.ts';
import { capabilityIndexValue, indexedCapabilities } from '#core/leases/filters.ts';
import { type Dynamo, failedIndexes, getItem, queryAll, translateTransactionError } from './client.ts';

/** Key builders for nodes (the only place these keys are spelled). */
export const nodeKey = (id: string) => ({ PK: `NODE#${id}`, SK: 'META' });
export const nodeNameKey = (name: string) => ({ PK: `NODENAME#${name}`, SK: 'META' });
export const hostIdKey = (hostId: string) => ({ PK: `HOSTID#${hostId}`, SK: 'META' });
const hostCounterKey = { PK: 'COUNTER#host', SK: 'META' };
const NODES_INDEX = 'NODES';

/**
 * Issue 16: lookups that read what their answer needs. A node's addresses and, once it is a
 * Blazar host, its capabilities are written as small lookup items (PK=NODEADDR#…, HOSTCAP#…;
 * SK=node id) in the same transaction as the node, so they are exactly the node's; an enrolled
 * host is in the sparse GSI4 pool the allocator reads from a random id. Each node has at most
 * MAX_INDEXED_ADDRESSES + MAX_INDEXED_CAPABILITIES such items (so that a write replacing all of
 * them still fits a 100-item transaction); a node over either bound has none of that kind and is
 * listed in GSI5 instead, which every lookup also reads (normally empty).
 */
export const nodeAddressKey = (address: string, nodeId: string) => ({ PK: `NODEADDR#${address}`, SK: nodeId });
const digest = (s: string) => createHash('sha256').update(s).digest('hex');
export const hostCapabilityPk = (key: string, value: string | number) => `HOSTCAP#${key.length}#${key}=${capabilityIndexValue(value, digest)}`;
/** The most items one Query asks for (DynamoDB refuses a huge Limit, and a page must stay bounded). */
const QUERY_LIMIT = 1000;
const MAX_INDEXED_ADDRESSES = 8;
const MAX_INDEXED_CAPABILITIES = 32;
const HOSTS_POOL = 'HOSTS';
const UNINDEXED = 'NODES#UNINDEXED';

type IndexedShape = Pick<Node, 'id' | 'host_id' | 'addresses' | 'facts' | 'extra' | 'bmc' | 'allocations' | 'created_at'>;

/**
 * The node lists' indexes (Ironic's `GET /v1/nodes` filters), all in creation order (upstream's
 * default sort, `id`): every node (GSI6), by provision state (GSI7), driver (GSI8), resource
 * class (GSI9), and the project its running lease granted it to (GSI10, the lessee's list).
 */
export const creationKey = (n: Pick<Node, 'created_at' | 'id'>) => `${n.created_at}#${n.id}`;
export const NODE_LIST_INDEXES = {
  all: { pk: () => NODES_INDEX },
  provision_state: { pk: (v: string) => `NODES#PS#${v}` },
  driver: { pk: (v: string) => `NODES#DRIVER#${v}` },
  resource_class: { pk: (v: string) => `NODES#RC#${v}` },
  lessee: { pk: (v: string) => `NODES#LESSEE#${v}` },
} as const;
export const INDEX_KEYS = [4, 5, 6, 7, 8, 9, 10].flatMap((i) => [`GSI${i}PK`, `GSI${i}SK`]);

/** The lookup items of a node as it is (keys only), and whether some did not fit the bounds. */
function lookupItems(n: IndexedShape): { keys: { PK: string; SK: string }[]; overflow: boolean } {
  const addresses = [...new Set(n.addresses.map((a) => a.address))];
  const caps = n.host_id === undefined ? [] : indexedCapabilities(n);
  const keys: { PK: string; SK: string }[] = [];
  if (addresses.length <= MAX_INDEXED_ADDRESSES) keys.push(...addresses.map((a) => nodeAddressKey(a, n.id)));
  if (caps.length <= MAX_INDEXED_CAPABILITIES) keys.push(...caps.map(([k, v]) => ({ PK: hostCapabilityPk(k, v), SK: n.id })));
  return { keys, overflow: addresses.length > MAX_INDEXED_ADDRESSES || caps.length > MAX_INDEXED_CAPABILITIES };
}

/** The index attributes of the node item itself (sparse: absent attributes leave the index). */
function indexAttributes(n: IndexedShape): Record<string, string> {
  const created = creationKey(n);
  const grants = grantsOf(n).sort();
  const rc = resourceClassOf(n);
  const ix = NODE_LIST_INDEXES;
  return {
    ...(n.host_id !== undefined ? { GSI4PK: HOSTS_POOL, GSI4SK: n.id } : {}),
    // A node granted to two projects at once (a late end) is listed for the first; the others find it here.
    ...(lookupItems(n).overflow || grants.length > 1 ? { GSI5PK: UNINDEXED, GSI5SK: n.id } : {}),
    GSI6PK: ix.all.pk(),
    GSI6SK: created,
    GSI7PK: ix.provision_state.pk(n.bmc?.provision_state ?? 'enroll'),
    GSI7SK: created,
    ...(n.bmc ? { GSI8PK: ix.driver.pk(n.bmc.driver), GSI8SK: created } : {}),
    ...(rc !== null ? { GSI9PK: ix.resource_class.pk(rc), GSI9SK: created } : {}),
    ...(grants[0] !== undefined ? { GSI10PK: ix.lessee.pk(grants[0]), GSI10SK: created } : {}),
  };
}

/** The SETs and REMOVEs that move a node item's index attributes from `before` to `after`. */
export function indexDelta(before: IndexedShape | Record<string, unknown>, after: IndexedShape): { set: Record<string, string>; remove: string[] } {
  // A node as the code holds it (toNode strips the index attributes): its attributes are computed;
  // a raw item (refreshNodeIndexes) has its stored ones, none for a record older than the indexes.
  const raw = 'PK' in before;
  const old = raw ? (before as Record<string, string>) : indexAttributes(before as IndexedShape);
  const now = indexAttributes(after);
  const set: Record<string, string> = {};
  const remove: string[] = [];
  for (const k of INDEX_KEYS) {
    if (now[k] !== undefined && now[k] !== old[k]) set[k] = now[k];
    else if (now[k] === undefined && old[k] !== undefined) remove.push(k);
  }
  return { set, remove };
}

/** Puts and deletes that turn the lookup items of `before` into those of `after`. */
function lookupChanges(table: string, before: IndexedShape | undefined, after: IndexedShape | undefined): TransactItem[] {
  const old = new Map((before ? lookupItems(before).keys : []).map((k) => [`${k.PK}|${k.SK}`, k]));
  const now = new Map((after ? lookupItems(after).keys : []).map((k) => [`${k.PK}|${k.SK}`, k]));
  const out: TransactItem[] = [];
  for (const [id, k] of old) if (!now.has(id)) out.push({ Delete: { TableName: table, Key: k } });
  for (const [id, k] of now) if (!old.has(id)) out.push({ Put: { TableName: table, Item: { ...k, node_id: k.SK, entity: 'node_lookup' } } });
  return out;
}

/**
 * Brings the index attributes that follow the calendar (the lessee's GSI10, GSI5) up to date
 * after a calendar write that may have granted or revoked the node (start and end of a lease,
 * a running lease changed or deleted). Calendar writes do not read the node, so this compares
 * the item as written (`item`, from ReturnValues) or as read, and writes only on a difference,
 * conditioned on the version it computed from; a lost race re-reads (the other writer's own
 * refresh may already have done it).
 */
export async function refreshNodeIndexes(d: Dynamo, nodeId: string, item?: Record<string, unknown>): Promise<void> {
  let current = item;
  for (let attempt = 0; attempt < 5; attempt++) {
    if (!current) current = (await d.doc.send(new GetCommand({ TableName: d.table, Key: nodeKey(nodeId), ConsistentRead: true }))).Item;
    if (!current) return;
    const { set, remove } = indexDelta(current, toNode(current));
    if (Object.keys(set).length === 0 && remove.length === 0) return;
    const b = new UpdateBuilder();
    for (const [k, v] of Object.entries(set)) b.set([k], v);
    for (const k of remove) b.remove([k]);
    try {
      await d.doc.send(
        new UpdateCommand({
          TableName: d.table,
          Key: nodeKey(nodeId),
          UpdateExpression: b.expression(),
          ConditionExpression: `#version = ${b.v(current.version)}`,
          ExpressionAttributeNames: { ...b.names, '#version': 'version' },
          ExpressionAttributeValues: b.values,
        }),
      );
      return;
    } catch (err) {
      if ((err as Error).name !== 'ConditionalCheckFailedException') throw err;
      current = undefined;
    }
  }
}

/** SET or REMOVE of the node item's index attributes when they change. */
function setIndexAttributes(b: UpdateBuilder, before: IndexedShape, after: IndexedShape): void {
  const { set, remove } = indexDelta(before, after);
  for (const [k, v] of Object.entries(set)) b.set([k], v);
  for (const k of remove) b.remove([k]);
}

/** The node as a patch leaves it (the fields the lookup items depend on). */
function patched(n: Node, patch: NodePatch, hostId?: string): IndexedShape {
  const facts: Record<string, unknown> = { ...n.facts };
  for (const [k, v] of Object.entries(patch.facts ?? {})) {
    if (v === undefined || v === null) delete facts[k];
    else facts[k] = v;
  }
  const extra: Record<string, string> = { ...(patch.replaceExtra ?? n.extra) };
  for (const [k, v] of Object.entries(patch.extra ?? {})) {
    if (v === null) delete extra[k];
    else extra[k] = v;
  }
  const bmc = patch.bmc === null ? undefined : (patch.bmc ?? n.bmc);
  return { ...n, host_id: hostId ?? n.host_id, addresses: patch.addresses ?? n.addresses, facts: facts as Node['facts'], extra, bmc };
}

export type TransactItem = NonNullable<TransactWriteCommandInput['TransactItems']>[number];

const INDEX_ATTRIBUTE = /^GSI\d+(PK|SK)$/;

function toNode(item: Record<string, unknown>): Node {
  const { PK: _a, SK: _b, entity: _e, ...rest } = item;
  for (const k of Object.keys(rest)) if (INDEX_ATTRIBUTE.test(k)) delete rest[k];
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
  const res = await d.doc
    .send(
      new UpdateCommand({
        TableName: d.table,
        Key: nodeKey(nodeId),
        UpdateExpression: b.expression(),
        ConditionExpression: 'attribute_exists(PK)',
        ExpressionAttributeNames: b.names,
        ExpressionAttributeValues: b.values,
        ReturnValues: 'ALL_NEW',
      }),
    )
    .catch((err) => {
      if ((err as Error).name !== 'ConditionalCheckFailedException') throw err; // node gone: nothing to do
      return undefined;
    });
  if (res?.Attributes) await refreshNodeIndexes(d, nodeId, res.Attributes);
}

/**
 * Every item a new node is stored as (the node with its index attributes, its name and host id
 * uniqueness items, its lookup items): what `create` writes in one transaction, and what
 * `npm run bench` writes in batches to seed a large fleet.
 */
export function newNodeItems(node: NodeCreate): Record<string, unknown>[] {
  const full: Node = { ...node, version: 1, updated_at: null };
  return [
    { ...nodeKey(node.id), GSI3PK: NODES_INDEX, GSI3SK: node.id, ...indexAttributes(full), entity: 'node', ...full },
    { ...nodeNameKey(node.name), node_id: node.id },
    ...(node.host_id ? [{ ...hostIdKey(node.host_id), node_id: node.id }] : []),
    ...lookupItems(full).keys.map((k) => ({ ...k, node_id: k.SK, entity: 'node_lookup' })),
  ];
}

export class DynamoNodeRepository implements NodeRepository {
  constructor(private readonly d: Dynamo) {}

  async create(node: NodeCreate): Promise<Node> {
    const full: Node = { ...node, version: 1, updated_at: null };
    // The node, then its uniqueness items (name at index 1), each only if absent, then lookups.
    const items: TransactItem[] = newNodeItems(node).map((Item) => ({
      Put: { TableName: this.d.table, Item, ...(Item.entity === 'node_lookup' ? {} : { ConditionExpression: 'attribute_not_exists(PK)' }) },
    }));
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
    // The hot read (`GET /v1/nodes/{uuid}`): client.ts `getItem`, still a consistent read.
    const item = await getItem(this.d, nodeKey(id));
    return item ? toNode(item) : undefined;
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
    // One query of the address's lookup items (first node id wins, as before), plus the nodes
    // whose addresses were too many to index (normally none).
    const [res, unindexed] = await Promise.all([
      this.d.doc.send(
        new QueryCommand({
          TableName: this.d.table,
          KeyConditionExpression: 'PK = :pk',
          ExpressionAttributeValues: { ':pk': nodeAddressKey(address, '').PK },
          ConsistentRead: true,
          Limit: 1,
        }),
      ),
      this.unindexed(),
    ]);
    const ids = [String(res.Items?.[0]?.SK ?? ''), ...unindexed.filter((n) => n.addresses.some((a) => a.address === address)).map((n) => n.id)]
      .filter(Boolean)
      .sort();
    return ids[0] === undefined ? undefined : this.get(ids[0]);
  }

  async listByCreation(q: NodeIndexQuery, cursor: unknown): Promise<{ nodes: Node[]; cursor?: unknown }> {
    const ix = NODE_LIST_INDEXES[q.by];
    // Spelled out here too: the least-privilege analysis (test/infra/code-needs.ts) reads the
    // `IndexName: '…'` literals of each method to derive the grants.
    const { IndexName } = ({ all: { IndexName: 'GSI6' }, provision_state: { IndexName: 'GSI7' }, driver: { IndexName: 'GSI8' }, resource_class: { IndexName: 'GSI9' }, lessee: { IndexName: 'GSI10' } } as const)[q.by];
    const [pk, sk] = [`${IndexName}PK`, `${IndexName}SK`];
    const res = await this.d.doc.send(
      new QueryCommand({
        TableName: this.d.table,
        IndexName,
        KeyConditionExpression: q.after === undefined ? '#pk = :pk' : `#pk = :pk AND #sk ${q.desc ? '<' : '>'} :after`,
        ExpressionAttributeNames: { '#pk': pk, ...(q.after === undefined ? {} : { '#sk': sk }) },
        ExpressionAttributeValues: { ':pk': ix.pk(q.value ?? ''), ...(q.after === undefined ? {} : { ':after': q.after }) },
        ScanIndexForward: !q.desc,
        // The caller pages on with the cursor: one bounded query at a time.
        Limit: Math.min(QUERY_LIMIT, q.limit),
        ExclusiveStartKey: cursor as Record<string, unknown> | undefined,
      }),
    );
    return { nodes: (res.Items ?? []).map(toNode), ...(res.LastEvaluatedKey ? { cursor: res.LastEvaluatedKey } : {}) };
  }

  async unindexed(): Promise<Node[]> {
    const items = await queryAll(this.d, { IndexName: 'GSI5', KeyConditionExpression: 'GSI5PK = :p', ExpressionAttributeValues: { ':p': UNINDEXED } });
    return items.map(toNode);
  }

  async getMany(ids: readonly string[], consistent: boolean): Promise<Node[]> {
    const out: Node[] = [];
    const unique = [...new Set(ids)];
    for (let i = 0; i < unique.length; i += 100) {
      let keys = unique.slice(i, i + 100).map(nodeKey);
      while (keys.length > 0) {
        const res = await this.d.doc.send(
          new BatchGetCommand({ RequestItems: { [this.d.table]: { Keys: keys, ConsistentRead: consistent } } }),
        );
        out.push(...(res.Responses?.[this.d.table] ?? []).map(toNode));
        keys = (res.UnprocessedKeys?.[this.d.table]?.Keys ?? []) as typeof keys;
      }
    }
    return out;
  }

  /**
   * One page of a host scan: the enrolled hosts (GSI4) or those holding one capability (HOSTCAP#
   * items), in id order from just after `q.from` to the end, then from the start through
   * `q.from` (a wrap), so that allocations starting at random ids spread over the pool. The
   * cursor is undefined once the whole pool was read.
   */
  async scanHosts(q: HostScan, cursor: unknown, limit: number): Promise<HostScanPage> {
    const at = (cursor as { wrapped: boolean; key?: Record<string, unknown> } | undefined) ?? { wrapped: false };
    const capability = q.capability && hostCapabilityPk(q.capability.key, q.capability.value);
    const [pk, sk] = capability ? ['PK', 'SK'] : ['GSI4PK', 'GSI4SK'];
    const res = await this.d.doc.send(
      new QueryCommand({
        TableName: this.d.table,
        ...(capability ? {} : { IndexName: 'GSI4' }),
        KeyConditionExpression: `#pk = :pk AND #sk ${at.wrapped ? '<=' : '>'} :from`,
        ExpressionAttributeNames: { '#pk': pk, '#sk': sk },
        ExpressionAttributeValues: { ':pk': capability ?? HOSTS_POOL, ':from': q.from },
        Limit: limit,
        ExclusiveStartKey: at.key,
      }),
    );
    const items = res.Items ?? [];
    let nodes: Node[];
    if (capability) nodes = await this.getMany(items.map((it) => String(it.SK)), q.consistent);
    else if (q.consistent) nodes = await this.getMany(items.map((it) => String(it.id)), true); // GSIs lag; a retry re-reads
    else nodes = items.map(toNode);
    const next = res.LastEvaluatedKey ? { wrapped: at.wrapped, key: res.LastEvaluatedKey } : at.wrapped ? undefined : { wrapped: true };
    return { nodes, cursor: next };
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
    // A node is one item (its group is itself): a page is `limit` items of the index, not the
    // six per group queryGroups reads ahead for leases.
    const descending = range.before !== undefined;
    const bound = descending ? range.before : range.after;
    // At most QUERY_LIMIT items a query (DynamoDB refuses a huge Limit; a client may ask for one).
    const items: Node[] = [];
    let start: Record<string, unknown> | undefined;
    do {
      const res = await this.d.doc.send(
        new QueryCommand({
          TableName: this.d.table,
          IndexName: 'GSI3',
          KeyConditionExpression: bound === undefined ? 'GSI3PK = :pk' : `GSI3PK = :pk AND GSI3SK ${descending ? '<' : '>'} :b`,
          ExpressionAttributeValues: { ':pk': NODES_INDEX, ...(bound === undefined ? {} : { ':b': bound }) },
          ScanIndexForward: !descending,
          Limit: Math.min(QUERY_LIMIT, range.limit - items.length),
          ExclusiveStartKey: start,
        }),
      );
      items.push(...(res.Items ?? []).map(toNode));
      start = res.LastEvaluatedKey;
    } while (start && items.length < range.limit);
    return descending ? items.reverse() : items;
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
    let namePut = -1;
    if (patch.name !== undefined && patch.name !== current.name) {
      items.push(
        { Delete: { TableName: this.d.table, Key: nodeNameKey(current.name) } },
        uniquePut(this.d.table, nodeNameKey(patch.name), id),
      );
      namePut = 2;
    }
    const next = patched(current, patch);
    setIndexAttributes(b, current, next);
    update.Update!.UpdateExpression = b.expression();
    items.push(...lookupChanges(this.d.table, current, next));
    try {
      await this.d.doc.send(new TransactWriteCommand({ TransactItems: items }));
    } catch (err) {
      if (namePut > 0 && failedIndexes(err).includes(namePut)) throw new ConflictError(`A node named ${patch.name} already exists`, 'DUPLICATE_NAME');
      translateTransactionError(err);
    }
    return (await this.get(id))!;
  }

  async enrol(id: string, expectedVersion: number, hostId: string, patch: NodePatch): Promise<Node> {
    const now = new Date().toISOString();
    // The lookup items are computed from the node at `expectedVersion` (the write checks it).
    const current = await this.get(id);
    if (!current) throw new NotFoundError(`Node ${id} not found`);
    if (current.version !== expectedVersion) throw new ConcurrentModificationError();
    const next = patched(current, patch, hostId);
    const b = new UpdateBuilder();
    applyPatch(b, patch, now);
    setIndexAttributes(b, current, next);
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
            ...lookupChanges(this.d.table, current, next),
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
            ...lookupChanges(this.d.table, node, undefined),
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
      const res = await this.d.doc.send(
        new UpdateCommand({
          TableName: this.d.table,
          Key: nodeKey(id),
          UpdateExpression: b.expression(),
          // The write is the check: an allocation released or reconciled away is not recreated.
          ConditionExpression: 'attribute_exists(#alloc.#rid)',
          ExpressionAttributeNames: b.names,
          ExpressionAttributeValues: b.values,
          ReturnValues: 'ALL_NEW',
        }),
      );
      // A grant or a release changes who may list the node (GSI10).
      await refreshNodeIndexes(this.d, id, res.Attributes);
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
    const after: IndexedShape = { ...node, host_id: undefined, extra: {} };
    const delta = indexDelta(node, after);
    try {
      await this.d.doc.send(
        new TransactWriteCommand({
          TransactItems: [
            {
              Update: {
                TableName: this.d.table,
                Key: nodeKey(id),
                // The condition is the check: no allocation may exist at the moment of the write.
                // Out of the host pool (GSI4), and no capability lookup items (they follow host_id).
                UpdateExpression: `REMOVE #host${delta.remove.map((k) => `, ${k}`).join('')} SET #extra = :empty, #ver = #ver + :one, #upd = :now${Object.keys(delta.set).map((k) => `, ${k} = :${k}`).join('')}`,
                ConditionExpression: '#ver = :v AND (attribute_not_exists(#alloc) OR size(#alloc) = :zero)',
                ExpressionAttributeNames: { '#host': 'host_id', '#extra': 'extra', '#ver': 'version', '#upd': 'updated_at', '#alloc': 'allocations' },
                ExpressionAttributeValues: {
                  ':empty': {},
                  ':one': 1,
                  ':now': new Date().toISOString(),
                  ':v': node.version,
                  ':zero': 0,
                  ...Object.fromEntries(Object.entries(delta.set).map(([k, v]) => [`:${k}`, v])),
                },
              },
            },
            { Delete: { TableName: this.d.table, Key: hostIdKey(node.host_id) } },
            ...lookupChanges(this.d.table, node, after),
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

/**
 * One-off backfill for records written before issue 16's indexes (on AWS; a local table is new
 * each start): every node gets its index attributes (host pool, lists, lessee) and its lookup
 * items (addresses, capabilities). Idempotent, safe while the API runs: attribute writes are
 * conditioned on the node's version (refreshNodeIndexes), lookup items are plain puts of what
 * the node holds. Returns how many nodes it read.
 */
export async function backfillNodeIndexes(d: Dynamo): Promise<number> {
  const items = await queryAll(d, { IndexName: 'GSI3', KeyConditionExpression: 'GSI3PK = :p', ExpressionAttributeValues: { ':p': NODES_INDEX } });
  for (const item of items) {
    const node = toNode(item);
    await refreshNodeIndexes(d, node.id, item);
    const puts = lookupItems(node).keys.map((k) => ({ Put: { TableName: d.table, Item: { ...k, node_id: k.SK, entity: 'node_lookup' } } }));
    for (let i = 0; i < puts.length; i += 100) await d.doc.send(new TransactWriteCommand({ TransactItems: puts.slice(i, i + 100) }));
  }
  return items.length;
}
