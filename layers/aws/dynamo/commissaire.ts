import {
  BatchGetCommand,
  DeleteCommand,
  GetCommand,
  PutCommand,
  TransactWriteCommand,
  type TransactWriteCommandInput,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import {
  type Cluster,
  type ClusterOperation,
  type CommissaireHost,
  type ContainerManager,
  fingerprint,
  type HostPatch,
  type Network,
  OPERATION_KINDS,
  type OperationKind,
  READY_STATUSES,
} from '#core/commissaire/model.ts';
import { ConcurrentModificationError, ConflictError, NotFoundError } from '#core/errors.ts';
import type { CommissaireRepository, HostsetChange } from '#core/ports.ts';
import { log } from '#core/util/log.ts';
import { type Dynamo, isConditionFailure, translateTransactionError } from './client.ts';
import { queryWindow } from './window.ts';

/**
 * Key builders for Commissaire's entities (the only place these keys are spelled). A cluster's
 * operation records live in its partition, so deleting the cluster finds them without an index.
 */
export const commClusterKey = (name: string) => ({ PK: `COMM#CLUSTER#${name}`, SK: 'META' });
export const commOperationKey = (cluster: string, kind: OperationKind) => ({ PK: `COMM#CLUSTER#${cluster}`, SK: `OP#${kind}` });
export const commHostKey = (address: string) => ({ PK: `COMM#HOST#${address}`, SK: 'META' });
export const commNetworkKey = (name: string) => ({ PK: `COMM#NETWORK#${name}`, SK: 'META' });
export const commContainerManagerKey = (name: string) => ({ PK: `COMM#CM#${name}`, SK: 'META' });
/** GSI3 partitions listing each entity (sort key = name or address). */
const LIST = { clusters: 'COMM#CLUSTERS', hosts: 'COMM#HOSTS', networks: 'COMM#NETWORKS', containerManagers: 'COMM#CONTAINERMANAGERS' } as const;
/**
 * Most clusters, networks or container managers one list reads (upstream answers names only, and
 * commctl sends no paging): a site has a few of each, and a list never reads without bound.
 */
export const COMM_LIST_MAX = 1000;

/** A host's item with its list keys (exported for bulk loads: the bench seeds with it). */
export const commHostItem = (host: CommissaireHost): Record<string, unknown> => ({ ...commHostKey(host.address), GSI3PK: LIST.hosts, GSI3SK: host.address, entity: 'commissaire_host', ...host });

type TransactItem = NonNullable<TransactWriteCommandInput['TransactItems']>[number];

const STRIP = new Set(['PK', 'SK', 'GSI3PK', 'GSI3SK', 'entity', 'fingerprint']);
const strip = <T>(item: Record<string, unknown>): T => Object.fromEntries(Object.entries(item).filter(([k]) => !STRIP.has(k))) as T;
const toCluster = (item: Record<string, unknown>): Cluster => {
  const c = strip<Cluster>(item);
  return { ...c, hostset: c.hostset ?? [], hostset_version: c.hostset_version ?? 0 };
};

export class DynamoCommissaireRepository implements CommissaireRepository {
  constructor(private readonly d: Dynamo) {}

  private async getItem(key: { PK: string; SK: string }): Promise<Record<string, unknown> | undefined> {
    const res = await this.d.doc.send(new GetCommand({ TableName: this.d.table, Key: key, ConsistentRead: true }));
    return res.Item;
  }

  /** The first COMM_LIST_MAX items of a list partition, by name (one item more says that others exist). */
  private async listed(pk: string): Promise<Record<string, unknown>[]> {
    const items = await queryWindow(this.d, { IndexName: 'GSI3', KeyConditionExpression: 'GSI3PK = :p', ExpressionAttributeValues: { ':p': pk } }, { limit: COMM_LIST_MAX + 1 });
    if (items.length <= COMM_LIST_MAX) return items;
    log.warn('a Commissaire list holds more items than one answer lists', { list: pk, listed: COMM_LIST_MAX });
    return items.slice(0, COMM_LIST_MAX);
  }

  private async transact(items: TransactItem[]): Promise<void> {
    try {
      await this.d.doc.send(new TransactWriteCommand({ TransactItems: items }));
    } catch (err) {
      translateTransactionError(err);
    }
  }

  /** The cluster's hostset replaced, guarded by the version the caller read. */
  private hostsetItem(name: string, expectedVersion: number, hostset: string[], now: string): TransactItem {
    return {
      Update: {
        TableName: this.d.table,
        Key: commClusterKey(name),
        UpdateExpression: 'SET #hs = :hs, #ver = #ver + :one, #upd = :now',
        ConditionExpression: '#ver = :v',
        ExpressionAttributeNames: { '#hs': 'hostset', '#ver': 'hostset_version', '#upd': 'updated_at' },
        ExpressionAttributeValues: { ':hs': hostset, ':one': 1, ':now': now, ':v': expectedVersion },
      },
    };
  }

  // --- clusters -------------------------------------------------------------------------------

  async getCluster(name: string): Promise<Cluster | undefined> {
    const item = await this.getItem(commClusterKey(name));
    return item ? toCluster(item) : undefined;
  }

  async listClusters(): Promise<Cluster[]> {
    return (await this.listed(LIST.clusters)).map(toCluster);
  }

  async putCluster(def: Pick<Cluster, 'name' | 'network' | 'container_manager'>, now: string): Promise<Cluster> {
    // One write whether new or existing: the definition is replaced, members and the
    // operation lock are kept (if_not_exists), so a re-PUT never races a membership change.
    const res = await this.d.doc.send(
      new UpdateCommand({
        TableName: this.d.table,
        Key: commClusterKey(def.name),
        UpdateExpression:
          'SET #name = :name, #net = :net, #cm = :cm, GSI3PK = :gpk, GSI3SK = :name, entity = :entity, ' +
          '#hs = if_not_exists(#hs, :empty), #ver = if_not_exists(#ver, :zero), #created = if_not_exists(#created, :now), #upd = :now',
        ExpressionAttributeNames: {
          '#name': 'name',
          '#net': 'network',
          '#cm': 'container_manager',
          '#hs': 'hostset',
          '#ver': 'hostset_version',
          '#created': 'created_at',
          '#upd': 'updated_at',
        },
        ExpressionAttributeValues: {
          ':name': def.name,
          ':net': def.network,
          ':cm': def.container_manager,
          ':gpk': LIST.clusters,
          ':entity': 'commissaire_cluster',
          ':empty': [],
          ':zero': 0,
          ':now': now,
        },
        ReturnValues: 'ALL_NEW',
      }),
    );
    return toCluster(res.Attributes!);
  }

  async deleteCluster(cluster: Cluster, members: readonly string[]): Promise<void> {
    await this.transact([
      {
        Delete: {
          TableName: this.d.table,
          Key: commClusterKey(cluster.name),
          ConditionExpression: '#ver = :v',
          ExpressionAttributeNames: { '#ver': 'hostset_version' },
          ExpressionAttributeValues: { ':v': cluster.hostset_version },
        },
      },
      ...OPERATION_KINDS.map((kind): TransactItem => ({ Delete: { TableName: this.d.table, Key: commOperationKey(cluster.name, kind) } })),
      ...members.map((address) => this.leaveItem(address, cluster.name)),
    ]);
  }

  /** A host joins: still ready and in no other cluster at the moment of the write. */
  private joinItem(address: string, cluster: string, now: string): TransactItem {
    return {
      Update: {
        TableName: this.d.table,
        Key: commHostKey(address),
        UpdateExpression: 'SET #cl = :c, #upd = :now',
        ConditionExpression: 'attribute_exists(PK) AND #st IN (:r0, :r1) AND (attribute_not_exists(#cl) OR #cl = :c)',
        ExpressionAttributeNames: { '#cl': 'cluster', '#st': 'status', '#upd': 'updated_at' },
        ExpressionAttributeValues: { ':c': cluster, ':now': now, ':r0': READY_STATUSES[0], ':r1': READY_STATUSES[1] },
      },
    };
  }

  /** A member leaves (only hosts whose `cluster` is this one). */
  private leaveItem(address: string, cluster: string): TransactItem {
    return {
      Update: {
        TableName: this.d.table,
        Key: commHostKey(address),
        UpdateExpression: 'REMOVE #cl',
        ConditionExpression: 'attribute_exists(PK) AND #cl = :c',
        ExpressionAttributeNames: { '#cl': 'cluster' },
        ExpressionAttributeValues: { ':c': cluster },
      },
    };
  }

  async setHostset(name: string, expectedVersion: number, change: HostsetChange, now: string): Promise<Cluster> {
    await this.transact([
      this.hostsetItem(name, expectedVersion, change.hostset, now),
      ...change.add.map((a) => this.joinItem(a, name, now)),
      ...change.remove.map((a) => this.leaveItem(a, name)),
    ]);
    const fresh = await this.getCluster(name);
    if (!fresh) throw new ConcurrentModificationError();
    return fresh;
  }

  // --- hosts ----------------------------------------------------------------------------------

  async getHost(address: string): Promise<CommissaireHost | undefined> {
    const item = await this.getItem(commHostKey(address));
    return item ? strip<CommissaireHost>(item) : undefined;
  }

  async getHosts(addresses: readonly string[]): Promise<CommissaireHost[]> {
    const out: CommissaireHost[] = [];
    const unique = [...new Set(addresses)];
    for (let i = 0; i < unique.length; i += 100) {
      let keys: Record<string, unknown>[] = unique.slice(i, i + 100).map(commHostKey);
      while (keys.length > 0) {
        const res = await this.d.doc.send(new BatchGetCommand({ RequestItems: { [this.d.table]: { Keys: keys, ConsistentRead: true } } }));
        out.push(...(res.Responses?.[this.d.table] ?? []).map((it) => strip<CommissaireHost>(it)));
        keys = res.UnprocessedKeys?.[this.d.table]?.Keys ?? [];
      }
    }
    return out;
  }

  async hostWindow(w: { limit: number; after?: string }): Promise<CommissaireHost[]> {
    // The host list partition is sorted by address: a page is one key range, whatever the fleet.
    const items = await queryWindow(
      this.d,
      {
        IndexName: 'GSI3',
        KeyConditionExpression: w.after === undefined ? 'GSI3PK = :p' : 'GSI3PK = :p AND GSI3SK > :a',
        ExpressionAttributeValues: w.after === undefined ? { ':p': LIST.hosts } : { ':p': LIST.hosts, ':a': w.after },
      },
      { limit: w.limit },
    );
    return items.map((it) => strip<CommissaireHost>(it));
  }

  async createHost(host: CommissaireHost, cluster?: { name: string; expectedVersion: number; hostset: string[] }): Promise<void> {
    const put: TransactItem = {
      Put: {
        TableName: this.d.table,
        Item: commHostItem(host),
        ConditionExpression: 'attribute_not_exists(PK)',
      },
    };
    await this.transact(cluster ? [put, this.hostsetItem(cluster.name, cluster.expectedVersion, cluster.hostset, host.created_at)] : [put]);
  }

  async updateHost(address: string, patch: HostPatch, now: string, expectStatus?: CommissaireHost['status']): Promise<CommissaireHost | undefined> {
    const names: Record<string, string> = { '#upd': 'updated_at' };
    const values: Record<string, unknown> = { ':now': now };
    const sets = ['#upd = :now'];
    Object.entries(patch).forEach(([k, v], i) => {
      if (v === undefined) return;
      names[`#f${i}`] = k;
      values[`:f${i}`] = v;
      sets.push(`#f${i} = :f${i}`);
    });
    let condition = 'attribute_exists(PK)';
    if (expectStatus !== undefined) {
      names['#st'] = 'status';
      values[':expect'] = expectStatus;
      condition += ' AND #st = :expect';
    }
    try {
      const res = await this.d.doc.send(
        new UpdateCommand({
          TableName: this.d.table,
          Key: commHostKey(address),
          UpdateExpression: `SET ${sets.join(', ')}`,
          ConditionExpression: condition,
          ExpressionAttributeNames: names,
          ExpressionAttributeValues: values,
          ReturnValues: 'ALL_NEW',
        }),
      );
      return strip<CommissaireHost>(res.Attributes!);
    } catch (err) {
      if (isConditionFailure(err)) return undefined;
      throw err;
    }
  }

  async deleteHost(host: CommissaireHost, cluster?: Cluster): Promise<void> {
    const del: TransactItem = {
      Delete: {
        TableName: this.d.table,
        Key: commHostKey(host.address),
        // Still in the cluster the caller read (or in none), so the hostset below is the right one.
        ConditionExpression: cluster ? 'attribute_exists(PK) AND #cl = :c' : 'attribute_exists(PK) AND attribute_not_exists(#cl)',
        ExpressionAttributeNames: { '#cl': 'cluster' },
        ...(cluster ? { ExpressionAttributeValues: { ':c': cluster.name } } : {}),
      },
    };
    const now = new Date().toISOString();
    await this.transact(
      cluster ? [del, this.hostsetItem(cluster.name, cluster.hostset_version, cluster.hostset.filter((a) => a !== host.address), now)] : [del],
    );
  }

  // --- networks and container managers: create, or identical re-create, else 409 ---------------

  /** The write is the check: absent, or present with the same definition (its fingerprint). */
  private async putDefinition(
    key: { PK: string; SK: string },
    list: string,
    entity: string,
    def: Network | ContainerManager,
    what: string,
    fp = fingerprint({ type: def.type, options: def.options }),
  ): Promise<void> {
    try {
      await this.d.doc.send(
        new PutCommand({
          TableName: this.d.table,
          Item: { ...key, GSI3PK: list, GSI3SK: def.name, entity, fingerprint: fp, ...def },
          ConditionExpression: 'attribute_not_exists(PK) OR fingerprint = :fp',
          ExpressionAttributeValues: { ':fp': fp },
        }),
      );
    } catch (err) {
      if (isConditionFailure(err)) throw new ConflictError(`${what} ${def.name} already exists with another definition`);
      throw err;
    }
  }

  private async deleteIfExists(key: { PK: string; SK: string }): Promise<boolean> {
    try {
      await this.d.doc.send(new DeleteCommand({ TableName: this.d.table, Key: key, ConditionExpression: 'attribute_exists(PK)' }));
      return true;
    } catch (err) {
      if (isConditionFailure(err)) return false;
      throw err;
    }
  }

  async getNetwork(name: string): Promise<Network | undefined> {
    const item = await this.getItem(commNetworkKey(name));
    return item ? strip<Network>(item) : undefined;
  }

  async listNetworks(): Promise<Network[]> {
    return (await this.listed(LIST.networks)).map((it) => strip<Network>(it));
  }

  putNetwork(net: Network): Promise<void> {
    return this.putDefinition(commNetworkKey(net.name), LIST.networks, 'commissaire_network', net, 'Network');
  }

  deleteNetwork(name: string): Promise<boolean> {
    return this.deleteIfExists(commNetworkKey(name));
  }

  async getContainerManager(name: string): Promise<ContainerManager | undefined> {
    const item = await this.getItem(commContainerManagerKey(name));
    return item ? strip<ContainerManager>(item) : undefined;
  }

  async listContainerManagers(): Promise<ContainerManager[]> {
    return (await this.listed(LIST.containerManagers)).map((it) => strip<ContainerManager>(it));
  }

  putContainerManager(cm: ContainerManager, definition?: string): Promise<void> {
    return this.putDefinition(commContainerManagerKey(cm.name), LIST.containerManagers, 'commissaire_container_manager', cm, 'Container manager', definition);
  }

  deleteContainerManager(name: string): Promise<boolean> {
    return this.deleteIfExists(commContainerManagerKey(name));
  }

  // --- cluster operations -----------------------------------------------------------------------

  async getOperation(cluster: string, kind: OperationKind): Promise<ClusterOperation | undefined> {
    const item = await this.getItem(commOperationKey(cluster, kind));
    return item ? strip<ClusterOperation>(item) : undefined;
  }

  private operationPut(op: ClusterOperation, condition?: string): TransactItem {
    return {
      Put: {
        TableName: this.d.table,
        Item: { ...commOperationKey(op.cluster, op.kind), entity: 'commissaire_operation', ...op },
        ...(condition
          ? {
              ConditionExpression: condition,
              ExpressionAttributeNames: { '#st': 'status', '#sa': 'started_at' },
              ExpressionAttributeValues: { ':ip': 'in_process', ':sa': op.started_at },
            }
          : {}),
      },
    };
  }

  async startOperation(op: ClusterOperation): Promise<void> {
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        await this.transact([
          {
            Update: {
              TableName: this.d.table,
              Key: commClusterKey(op.cluster),
              // The lock: no operation of any kind may be in process on the cluster.
              UpdateExpression: 'SET #op = :kind, #upd = :now',
              ConditionExpression: 'attribute_exists(PK) AND attribute_not_exists(#op)',
              ExpressionAttributeNames: { '#op': 'operation', '#upd': 'updated_at' },
              ExpressionAttributeValues: { ':kind': op.kind, ':now': op.started_at },
            },
          },
          this.operationPut(op),
        ]);
        return;
      } catch (err) {
        if (!(err instanceof ConcurrentModificationError)) throw err;
        const cluster = await this.getCluster(op.cluster);
        if (!cluster) throw new NotFoundError(`Cluster ${op.cluster} not found`);
        if (cluster.operation) throw new ConflictError(`A ${cluster.operation} is in process on cluster ${op.cluster}`, 'OPERATION_IN_PROCESS');
        // Neither: another write to the cluster item collided with ours; try again.
      }
    }
    throw new ConcurrentModificationError();
  }

  async updateOperation(op: ClusterOperation): Promise<boolean> {
    try {
      await this.d.doc.send(new PutCommand(this.operationPut(op, '#st = :ip AND #sa = :sa').Put!));
      return true;
    } catch (err) {
      if (isConditionFailure(err)) return false;
      throw err;
    }
  }

  async finishOperation(op: ClusterOperation): Promise<boolean> {
    try {
      await this.transact([
        this.operationPut(op, '#st = :ip AND #sa = :sa'),
        {
          Update: {
            TableName: this.d.table,
            Key: commClusterKey(op.cluster),
            UpdateExpression: 'REMOVE #op SET #upd = :now',
            ConditionExpression: '#op = :kind',
            ExpressionAttributeNames: { '#op': 'operation', '#upd': 'updated_at' },
            ExpressionAttributeValues: { ':kind': op.kind, ':now': op.finished_at || new Date().toISOString() },
          },
        },
      ]);
      return true;
    } catch (err) {
      if (err instanceof ConcurrentModificationError) return false;
      throw err;
    }
  }
}
