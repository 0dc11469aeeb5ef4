import { GetCommand, QueryCommand, TransactWriteCommand } from '@aws-sdk/lib-dynamodb';
import type { TransactWriteCommandInput } from '@aws-sdk/lib-dynamodb';
import { ConflictError, NotFoundError } from '#core/errors.ts';
import type { BaremetalPort, BaremetalPortRepository } from '#core/ironic/model.ts';
import { type Dynamo, failedIndexes, queryAll, translateTransactionError } from './client.ts';
import { nodeKey } from './nodes.ts';

type TransactItem = NonNullable<TransactWriteCommandInput['TransactItems']>[number];

/** Key builders for Ironic ports (the only place these keys are spelled). */
export const portKey = (uuid: string) => ({ PK: `BMPORT#${uuid}`, SK: 'META' });
/** One item per MAC address in use: the uniqueness check is its conditional put. */
export const portMacKey = (address: string) => ({ PK: `BMPORTMAC#${address}`, SK: 'META' });
const PORTS_INDEX = 'BMPORTS';
const nodePortsIndex = (nodeId: string) => `BMPORTS#NODE#${nodeId}`;

function toPort(item: Record<string, unknown>): BaremetalPort {
  const { PK: _p, SK: _s, GSI1PK: _g1, GSI1SK: _g1s, GSI3PK: _g3, GSI3SK: _g3s, GSI6PK: _g6, GSI6SK: _g6s, entity: _e, ...rest } = item;
  return rest as unknown as BaremetalPort;
}

export class DynamoBaremetalPortRepository implements BaremetalPortRepository {
  constructor(private readonly d: Dynamo) {}

  private item(port: BaremetalPort) {
    return {
      ...portKey(port.uuid),
      GSI1PK: nodePortsIndex(port.node_uuid),
      GSI1SK: port.uuid,
      GSI3PK: PORTS_INDEX,
      GSI3SK: port.uuid,
      // Creation order, Ironic's default sort: the port list's pages (GSI6 is shared with nodes).
      GSI6PK: PORTS_INDEX,
      GSI6SK: `${port.created_at}#${port.uuid}`,
      entity: 'port',
      ...port,
    };
  }

  private macPut(port: BaremetalPort): TransactItem {
    return { Put: { TableName: this.d.table, Item: { ...portMacKey(port.address), port_id: port.uuid }, ConditionExpression: 'attribute_not_exists(PK)' } };
  }

  async create(port: BaremetalPort): Promise<void> {
    const items: TransactItem[] = [
      { Put: { TableName: this.d.table, Item: this.item(port), ConditionExpression: 'attribute_not_exists(PK)' } },
      this.macPut(port),
      { ConditionCheck: { TableName: this.d.table, Key: nodeKey(port.node_uuid), ConditionExpression: 'attribute_exists(PK)' } },
    ];
    try {
      await this.d.doc.send(new TransactWriteCommand({ TransactItems: items }));
    } catch (err) {
      const failed = failedIndexes(err);
      if (failed.includes(1)) throw new ConflictError(`A port with MAC address ${port.address} already exists.`, 'MACAlreadyExists');
      if (failed.includes(0)) throw new ConflictError(`A port with UUID ${port.uuid} already exists.`, 'PortAlreadyExists');
      if (failed.includes(2)) throw new NotFoundError(`Node ${port.node_uuid} could not be found.`);
      translateTransactionError(err);
    }
  }

  async get(uuid: string): Promise<BaremetalPort | undefined> {
    const res = await this.d.doc.send(new GetCommand({ TableName: this.d.table, Key: portKey(uuid), ConsistentRead: true }));
    return res.Item ? toPort(res.Item) : undefined;
  }

  async getByAddress(address: string): Promise<BaremetalPort | undefined> {
    const res = await this.d.doc.send(new GetCommand({ TableName: this.d.table, Key: portMacKey(address), ConsistentRead: true }));
    const id = res.Item?.port_id as string | undefined;
    return id ? this.get(id) : undefined;
  }

  async list(): Promise<BaremetalPort[]> {
    const items = await queryAll(this.d, { IndexName: 'GSI3', KeyConditionExpression: 'GSI3PK = :p', ExpressionAttributeValues: { ':p': PORTS_INDEX } });
    return items.map(toPort);
  }

  async listByCreation(q: { after?: string; desc: boolean; limit: number }, cursor: unknown): Promise<{ ports: BaremetalPort[]; cursor?: unknown }> {
    const res = await this.d.doc.send(
      new QueryCommand({
        TableName: this.d.table,
        IndexName: 'GSI6',
        KeyConditionExpression: q.after === undefined ? 'GSI6PK = :pk' : `GSI6PK = :pk AND GSI6SK ${q.desc ? '<' : '>'} :after`,
        ExpressionAttributeValues: { ':pk': PORTS_INDEX, ...(q.after === undefined ? {} : { ':after': q.after }) },
        ScanIndexForward: !q.desc,
        // The caller pages on with the cursor; DynamoDB refuses a huge Limit.
        Limit: Math.min(1000, q.limit),
        ExclusiveStartKey: cursor as Record<string, unknown> | undefined,
      }),
    );
    return { ports: (res.Items ?? []).map(toPort), ...(res.LastEvaluatedKey ? { cursor: res.LastEvaluatedKey } : {}) };
  }

  async listByNode(nodeId: string): Promise<BaremetalPort[]> {
    const items = await queryAll(this.d, { IndexName: 'GSI1', KeyConditionExpression: 'GSI1PK = :p', ExpressionAttributeValues: { ':p': nodePortsIndex(nodeId) } });
    return items.map(toPort);
  }

  async update(previous: BaremetalPort, next: BaremetalPort): Promise<void> {
    const items: TransactItem[] = [
      {
        Put: {
          TableName: this.d.table,
          Item: this.item(next),
          ConditionExpression: '#v = :v',
          ExpressionAttributeNames: { '#v': 'version' },
          ExpressionAttributeValues: { ':v': previous.version },
        },
      },
    ];
    if (next.address !== previous.address) {
      items.push(this.macPut(next), {
        Delete: {
          TableName: this.d.table,
          Key: portMacKey(previous.address),
          ConditionExpression: 'port_id = :me',
          ExpressionAttributeValues: { ':me': previous.uuid },
        },
      });
    }
    if (next.node_uuid !== previous.node_uuid) {
      items.push({ ConditionCheck: { TableName: this.d.table, Key: nodeKey(next.node_uuid), ConditionExpression: 'attribute_exists(PK)' } });
    }
    try {
      await this.d.doc.send(new TransactWriteCommand({ TransactItems: items }));
    } catch (err) {
      const failed = failedIndexes(err);
      if (next.address !== previous.address && failed.includes(1) && !failed.includes(0)) {
        throw new ConflictError(`A port with MAC address ${next.address} already exists.`, 'MACAlreadyExists');
      }
      translateTransactionError(err);
    }
  }

  async delete(port: BaremetalPort): Promise<void> {
    try {
      await this.d.doc.send(
        new TransactWriteCommand({
          TransactItems: [
            { Delete: { TableName: this.d.table, Key: portKey(port.uuid) } },
            { Delete: { TableName: this.d.table, Key: portMacKey(port.address), ConditionExpression: 'attribute_not_exists(PK) OR port_id = :me', ExpressionAttributeValues: { ':me': port.uuid } } },
          ],
        }),
      );
    } catch (err) {
      translateTransactionError(err);
    }
  }
}
