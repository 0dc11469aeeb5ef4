import { randomUUID } from 'node:crypto';
import { GetItemCommand } from '@aws-sdk/client-dynamodb';
import { GetCommand, PutCommand, TransactWriteCommand } from '@aws-sdk/lib-dynamodb';
import { describe, expect, inject, it } from 'vitest';
import { dynamoStats, getItem, makeDynamo, transactWrite } from '../../layers/aws/dynamo/client.ts';
import { call } from '../support/api.ts';

/**
 * The hot path (issue 16): `getItem`, the point read of a node by id and a token by hash,
 * answers exactly what the document client's GetCommand answers, for every kind of value; and
 * `transactWrite`, the transaction of lease creates and lease events, writes exactly what the
 * document client's TransactWriteCommand writes.
 */
/** A value of every kind DynamoDB stores, as the document client takes them. */
const EVERY_KIND = {
  s: 'text',
  empty: '',
  n: 42,
  neg: -3.25,
  big: 2n ** 60n,
  t: true,
  f: false,
  nothing: null,
  m: { nested: { deep: [1, 'two', { three: 3 }] }, 'with space': 'x' },
  l: [],
  ss: new Set(['a', 'b']),
  ns: new Set([1, 2.5]),
  b: new Uint8Array([0, 1, 254, 255]),
  bs: new Set([new Uint8Array([1]), new Uint8Array([2, 3])]),
};

describe('hot read path', () => {
  it('getItem reads an item as the document client does, every attribute type included', async () => {
    const d = makeDynamo({ tableName: 'slipway', endpoint: inject('dynamoEndpoint') });
    const key = { PK: `HOTPATH#${randomUUID()}`, SK: 'META' };
    const item = { ...key, ...EVERY_KIND };
    await d.doc.send(new PutCommand({ TableName: 'slipway', Item: item }));
    const viaDoc = (await d.doc.send(new GetCommand({ TableName: 'slipway', Key: key, ConsistentRead: true }))).Item;
    const viaGetItem = await getItem(d, key);
    expect(viaGetItem).toEqual(viaDoc);
    // Same attribute order too: what is serialised from it (a node's JSON) is byte for byte the same.
    expect(Object.keys(viaGetItem!)).toEqual(Object.keys(viaDoc!));
    expect(viaGetItem!.big).toBe(2n ** 60n);
    expect(await getItem(d, { PK: `HOTPATH#${randomUUID()}`, SK: 'META' })).toBeUndefined();
  });

  it('transactWrite writes items as the document client does, every attribute type and each kind of item included', async () => {
    const d = makeDynamo({ tableName: 'slipway', endpoint: inject('dynamoEndpoint') });
    const id = randomUUID();
    // Undefined values too, at the top and nested: left out, as the document client leaves them.
    const value = { ...EVERY_KIND, gone: undefined, m: { ...EVERY_KIND.m, deep: { gone: undefined, kept: 1 } } };
    // The same writes, one transaction through the document client, one through transactWrite:
    // a Put with a condition, an Update with values and a Delete with a condition (a
    // ConditionCheck below).
    const items = (side: string) => [
      { Put: { TableName: 'slipway', Item: { PK: `TW#${id}#${side}`, SK: 'put', ...value }, ConditionExpression: 'attribute_not_exists(PK) OR #n <> :n', ExpressionAttributeNames: { '#n': 'n' }, ExpressionAttributeValues: { ':n': value.neg } } },
      { Update: { TableName: 'slipway', Key: { PK: `TW#${id}#${side}`, SK: 'update' }, UpdateExpression: 'SET #m = :m, #ss = :ss, #b = :b', ExpressionAttributeNames: { '#m': 'm', '#ss': 'ss', '#b': 'b' }, ExpressionAttributeValues: { ':m': value.m, ':ss': value.ss, ':b': value.b } } },
      { Delete: { TableName: 'slipway', Key: { PK: `TW#${id}#${side}`, SK: 'absent' }, ConditionExpression: 'attribute_not_exists(PK) OR #t = :t', ExpressionAttributeNames: { '#t': 't' }, ExpressionAttributeValues: { ':t': true } } },
    ];
    await d.doc.send(new TransactWriteCommand({ TransactItems: items('doc') }));
    await transactWrite(d, items('ours'));
    // Compared as DynamoDB stores them (AttributeValues), so that no conversion on the way back hides a difference.
    const raw = async (side: string, sk: string) => (await d.plain.send(new GetItemCommand({ TableName: 'slipway', Key: { PK: { S: `TW#${id}#${side}` }, SK: { S: sk } }, ConsistentRead: true }))).Item;
    for (const sk of ['put', 'update']) {
      const [viaDoc, viaOurs] = [await raw('doc', sk), await raw('ours', sk)];
      expect(viaDoc).toBeDefined();
      expect({ ...viaOurs, PK: undefined }).toEqual({ ...viaDoc, PK: undefined });
    }
    expect((await raw('ours', 'put'))!.gone).toBeUndefined();
    // A failed condition is a lost race, nothing of the transaction written.
    const before = await raw('ours', 'update');
    await expect(
      transactWrite(d, [
        { Update: { TableName: 'slipway', Key: { PK: `TW#${id}#ours`, SK: 'update' }, UpdateExpression: 'SET #x = :x', ExpressionAttributeNames: { '#x': 'x' }, ExpressionAttributeValues: { ':x': 1 } } },
        { ConditionCheck: { TableName: 'slipway', Key: { PK: `TW#${id}#ours`, SK: 'put' }, ConditionExpression: '#n = :n', ExpressionAttributeNames: { '#n': 'n' }, ExpressionAttributeValues: { ':n': 41 } } },
      ]),
    ).rejects.toMatchObject({ name: 'ConcurrentModificationError' });
    expect(await raw('ours', 'update')).toEqual(before);
  });

  it('counts its reads like any other call', async () => {
    const d = makeDynamo({ tableName: 'slipway', endpoint: inject('dynamoEndpoint') });
    const before = dynamoStats.calls.get('GetItemCommand') ?? 0;
    await getItem(d, { PK: `HOTPATH#${randomUUID()}`, SK: 'META' });
    await getItem(d, { PK: `HOTPATH#${randomUUID()}`, SK: 'META' });
    expect((dynamoStats.calls.get('GetItemCommand') ?? 0) - before).toBe(2);
  });

  it('answers GET /v1/nodes/{uuid} from the node as registered', async () => {
    const name = `hot-${randomUUID().slice(0, 8)}`;
    const created = await call('POST', '/v1/nodes', { body: { name, driver: 'ipmi', driver_info: { ipmi_address: '10.9.0.7', ipmi_username: 'u' } } });
    expect(created.status).toBe(201);
    const got = await call('GET', `/v1/nodes/${created.body.uuid}`);
    expect(got.status).toBe(200);
    expect(got.body).toEqual(created.body);
    const byName = await call('GET', `/v1/nodes/${name}`);
    expect(byName.body).toEqual(created.body);
  });
});
