import { randomUUID } from 'node:crypto';
import { GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import { describe, expect, inject, it } from 'vitest';
import { dynamoStats, getItem, makeDynamo } from '../../layers/aws/dynamo/client.ts';
import { call } from '../support/api.ts';

/**
 * The hot read path (issue 16): `getItem`, the point read of a node by id and a token by hash,
 * answers exactly what the document client's GetCommand answers, for every kind of value.
 */
describe('hot read path', () => {
  it('getItem reads an item as the document client does, every attribute type included', async () => {
    const d = makeDynamo({ tableName: 'slipway', endpoint: inject('dynamoEndpoint') });
    const key = { PK: `HOTPATH#${randomUUID()}`, SK: 'META' };
    const item = {
      ...key,
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
    await d.doc.send(new PutCommand({ TableName: 'slipway', Item: item }));
    const viaDoc = (await d.doc.send(new GetCommand({ TableName: 'slipway', Key: key, ConsistentRead: true }))).Item;
    const viaGetItem = await getItem(d, key);
    expect(viaGetItem).toEqual(viaDoc);
    // Same attribute order too: what is serialised from it (a node's JSON) is byte for byte the same.
    expect(Object.keys(viaGetItem!)).toEqual(Object.keys(viaDoc!));
    expect(viaGetItem!.big).toBe(2n ** 60n);
    expect(await getItem(d, { PK: `HOTPATH#${randomUUID()}`, SK: 'META' })).toBeUndefined();
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
