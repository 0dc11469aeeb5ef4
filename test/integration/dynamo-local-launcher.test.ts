import {
  CreateTableCommand,
  DeleteTableCommand,
  DescribeTableCommand,
  DescribeTimeToLiveCommand,
  DynamoDBClient,
  UpdateTableCommand,
  UpdateTimeToLiveCommand,
} from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand, PutCommand, QueryCommand, TransactWriteCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DynamoLocal, LAUNCHER_CACHED_NOTE, startDynamoLocal } from '../../infra/local/dynamodb.ts';

/**
 * DynamoDB Local as the launcher (infra/local/DynamoLoopback.java) runs it: each table's
 * description is parsed once per distinct description instead of for every item touched. The
 * answers must be the jar's own: tables with different indexes side by side, and a table whose
 * description changes (an index added and removed, TTL turned on) seen changed at once.
 */
let ddb: DynamoLocal;
let raw: DynamoDBClient;
let doc: DynamoDBDocumentClient;

const S = (name: string) => ({ AttributeName: name, AttributeType: 'S' as const });
const key = (pk: string, sk: string) => [
  { AttributeName: pk, KeyType: 'HASH' as const },
  { AttributeName: sk, KeyType: 'RANGE' as const },
];

beforeAll(async () => {
  ddb = await startDynamoLocal({});
  raw = new DynamoDBClient({ endpoint: ddb.endpoint, region: 'us-east-1', credentials: { accessKeyId: 'local', secretAccessKey: 'local' } });
  doc = DynamoDBDocumentClient.from(raw);
}, 60_000);

afterAll(async () => {
  raw?.destroy();
  await ddb?.stop();
});

describe('DynamoDB Local through the launcher', () => {
  it('runs with the table-description cache in place, and says so when it is turned off', async () => {
    // The launcher's line is written before the server starts; stderr may arrive a little later.
    const notesOf = async (d: DynamoLocal) => {
      for (let i = 0; i < 50 && d.launcherNotes().length === 0; i++) await new Promise((r) => setTimeout(r, 50));
      return d.launcherNotes();
    };
    expect(await notesOf(ddb)).toEqual([LAUNCHER_CACHED_NOTE]);
    const before = process.env.SLIPWAY_DYNAMODB_JAVA_OPTS;
    process.env.SLIPWAY_DYNAMODB_JAVA_OPTS = '-Dslipway.schemaCache=false';
    const plain = await startDynamoLocal({}).finally(() => {
      if (before === undefined) delete process.env.SLIPWAY_DYNAMODB_JAVA_OPTS;
      else process.env.SLIPWAY_DYNAMODB_JAVA_OPTS = before;
    });
    try {
      expect(await notesOf(plain)).toEqual(['DynamoLoopback: table descriptions not cached (-Dslipway.schemaCache=false)']);
    } finally {
      await plain.stop();
    }
  }, 60_000);

  it('keeps tables with different indexes apart', async () => {
    await raw.send(
      new CreateTableCommand({
        TableName: 'one-index',
        BillingMode: 'PAY_PER_REQUEST',
        AttributeDefinitions: [S('PK'), S('SK'), S('A')],
        KeySchema: key('PK', 'SK'),
        GlobalSecondaryIndexes: [{ IndexName: 'ByA', KeySchema: [{ AttributeName: 'A', KeyType: 'HASH' }], Projection: { ProjectionType: 'ALL' } }],
      }),
    );
    await raw.send(
      new CreateTableCommand({
        TableName: 'other-index',
        BillingMode: 'PAY_PER_REQUEST',
        AttributeDefinitions: [S('PK'), S('SK'), S('B'), S('C')],
        KeySchema: key('PK', 'SK'),
        GlobalSecondaryIndexes: [{ IndexName: 'ByB', KeySchema: key('B', 'C'), Projection: { ProjectionType: 'KEYS_ONLY' } }],
      }),
    );
    for (let i = 0; i < 5; i++) {
      await doc.send(new PutCommand({ TableName: 'one-index', Item: { PK: `p${i}`, SK: 'x', A: i % 2 ? 'odd' : 'even', n: i } }));
      await doc.send(new PutCommand({ TableName: 'other-index', Item: { PK: `p${i}`, SK: 'x', B: 'all', C: `c${4 - i}`, n: i } }));
    }
    const even = await doc.send(new QueryCommand({ TableName: 'one-index', IndexName: 'ByA', KeyConditionExpression: 'A = :a', ExpressionAttributeValues: { ':a': 'even' } }));
    expect(even.Items?.map((x) => x.n).sort()).toEqual([0, 2, 4]);
    const ordered = await doc.send(new QueryCommand({ TableName: 'other-index', IndexName: 'ByB', KeyConditionExpression: 'B = :b', ExpressionAttributeValues: { ':b': 'all' } }));
    // KEYS_ONLY: the keys and no `n`, in C order.
    expect(ordered.Items?.map((x) => x.C)).toEqual(['c0', 'c1', 'c2', 'c3', 'c4']);
    expect(ordered.Items?.every((x) => x.n === undefined)).toBe(true);
    // A key attribute of the other table's index is checked against this table's description.
    await expect(doc.send(new PutCommand({ TableName: 'one-index', Item: { PK: 'bad', SK: 'x', A: 7 } }))).rejects.toThrow(/Type mismatch|ValidationException|index key/i);
    await expect(doc.send(new PutCommand({ TableName: 'other-index', Item: { PK: 'ok', SK: 'x', A: 7 } }))).resolves.toBeDefined();
  });

  it('sees an index added, used and removed, and TTL turned on, at once', async () => {
    await raw.send(new CreateTableCommand({ TableName: 'changing', BillingMode: 'PAY_PER_REQUEST', AttributeDefinitions: [S('PK'), S('SK')], KeySchema: key('PK', 'SK') }));
    await doc.send(new PutCommand({ TableName: 'changing', Item: { PK: 'a', SK: '1', G: 'g1', H: 'h' } }));
    await expect(doc.send(new QueryCommand({ TableName: 'changing', IndexName: 'ByG', KeyConditionExpression: 'G = :g', ExpressionAttributeValues: { ':g': 'g1' } }))).rejects.toThrow(/index/i);

    await raw.send(
      new UpdateTableCommand({
        TableName: 'changing',
        AttributeDefinitions: [S('G'), S('H')],
        GlobalSecondaryIndexUpdates: [{ Create: { IndexName: 'ByG', KeySchema: key('G', 'H'), Projection: { ProjectionType: 'ALL' } } }],
      }),
    );
    // DynamoDB Local, like DynamoDB, builds a new index before it is ACTIVE.
    let added = await raw.send(new DescribeTableCommand({ TableName: 'changing' }));
    for (let i = 0; i < 100 && added.Table?.GlobalSecondaryIndexes?.[0]?.IndexStatus !== 'ACTIVE'; i++) {
      await new Promise((r) => setTimeout(r, 100));
      added = await raw.send(new DescribeTableCommand({ TableName: 'changing' }));
    }
    expect(added.Table?.GlobalSecondaryIndexes?.map((g) => [g.IndexName, g.IndexStatus])).toEqual([['ByG', 'ACTIVE']]);
    // The item written before the index is in it (backfilled), and new ones are checked against it.
    await doc.send(new PutCommand({ TableName: 'changing', Item: { PK: 'b', SK: '1', G: 'g1', H: 'i' } }));
    const inIndex = await doc.send(new QueryCommand({ TableName: 'changing', IndexName: 'ByG', KeyConditionExpression: 'G = :g', ExpressionAttributeValues: { ':g': 'g1' } }));
    expect(inIndex.Items?.map((x) => x.PK)).toEqual(['a', 'b']);
    await expect(doc.send(new PutCommand({ TableName: 'changing', Item: { PK: 'c', SK: '1', G: 5 } }))).rejects.toThrow();

    await raw.send(new UpdateTimeToLiveCommand({ TableName: 'changing', TimeToLiveSpecification: { AttributeName: 'ttl', Enabled: true } }));
    const ttl = await raw.send(new DescribeTimeToLiveCommand({ TableName: 'changing' }));
    expect(ttl.TimeToLiveDescription).toMatchObject({ AttributeName: 'ttl', TimeToLiveStatus: 'ENABLED' });

    await raw.send(new UpdateTableCommand({ TableName: 'changing', GlobalSecondaryIndexUpdates: [{ Delete: { IndexName: 'ByG' } }] }));
    let removed = await raw.send(new DescribeTableCommand({ TableName: 'changing' }));
    for (let i = 0; i < 100 && (removed.Table?.GlobalSecondaryIndexes ?? []).length > 0; i++) {
      await new Promise((r) => setTimeout(r, 100));
      removed = await raw.send(new DescribeTableCommand({ TableName: 'changing' }));
    }
    expect(removed.Table?.GlobalSecondaryIndexes ?? []).toEqual([]);
    // Without the index, G may be any type again.
    await doc.send(new PutCommand({ TableName: 'changing', Item: { PK: 'c', SK: '1', G: 5 } }));
    expect((await doc.send(new GetCommand({ TableName: 'changing', Key: { PK: 'c', SK: '1' } }))).Item?.G).toBe(5);
  });

  it('forgets a deleted table, and a new table of the same name has its own description', async () => {
    await raw.send(new DeleteTableCommand({ TableName: 'one-index' }));
    await expect(doc.send(new GetCommand({ TableName: 'one-index', Key: { PK: 'p0', SK: 'x' } }))).rejects.toThrow(/non-existent table|ResourceNotFound/i);
    await raw.send(
      new CreateTableCommand({
        TableName: 'one-index',
        BillingMode: 'PAY_PER_REQUEST',
        AttributeDefinitions: [S('ID'), S('A')],
        KeySchema: [{ AttributeName: 'ID', KeyType: 'HASH' }],
        GlobalSecondaryIndexes: [{ IndexName: 'ByA', KeySchema: [{ AttributeName: 'A', KeyType: 'HASH' }], Projection: { ProjectionType: 'ALL' } }],
      }),
    );
    // The old key schema (PK, SK) is refused, the new one works, in a transaction too.
    await expect(doc.send(new PutCommand({ TableName: 'one-index', Item: { PK: 'p', SK: 'x' } }))).rejects.toThrow();
    await doc.send(
      new TransactWriteCommand({
        TransactItems: [
          { Put: { TableName: 'one-index', Item: { ID: 'i1', A: 'a' } } },
          { Put: { TableName: 'one-index', Item: { ID: 'i2', A: 'a' } } },
        ],
      }),
    );
    const byA = await doc.send(new QueryCommand({ TableName: 'one-index', IndexName: 'ByA', KeyConditionExpression: 'A = :a', ExpressionAttributeValues: { ':a': 'a' } }));
    expect(byA.Items?.map((x) => x.ID).sort()).toEqual(['i1', 'i2']);
  });
});
