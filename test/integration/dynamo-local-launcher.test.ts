import {
  CreateTableCommand,
  DeleteTableCommand,
  DescribeTableCommand,
  DescribeTimeToLiveCommand,
  DynamoDBClient,
  UpdateTableCommand,
  UpdateTimeToLiveCommand,
} from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand, PutCommand, QueryCommand, TransactWriteCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DynamoLocal, LAUNCHER_CACHED_NOTE, LAUNCHER_PATCHED_NOTE, startDynamoLocal } from '../../infra/local/dynamodb.ts';
import { readdirSync, readFileSync } from 'node:fs';

/**
 * DynamoDB Local as the launcher (infra/local/DynamoLoopback.java) runs it: each table's
 * description is parsed once per distinct description instead of for every item touched, and
 * (DynamoLocalPatches.java) every transaction shares one object mapper and each expression is
 * parsed once. The answers must be the jar's own: tables with different indexes side by side, a
 * table whose description changes (an index added and removed, TTL turned on) seen changed at
 * once, an expression's values told apart and its errors reported every time, a transaction's
 * idempotency token and cancellation as before. The launcher also keeps each table's description
 * between changes (DynamoLoopback.tableInfo): a change must be seen by the next request, even
 * with writers busy on the table while it is made. And each SQLite call runs in the request's
 * own thread rather than the SQLite queue's (DynamoLoopback.executeInline), one at a time: many
 * writers racing on one item lose no update.
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
  it('runs with the table-description cache and the patched classes in place, and says so when either is turned off', async () => {
    // The launcher's lines are written before the server starts; stderr may arrive a little later.
    const notesOf = async (d: DynamoLocal) => {
      for (let i = 0; i < 50 && d.launcherNotes().length < 2; i++) await new Promise((r) => setTimeout(r, 50));
      return d.launcherNotes();
    };
    expect(await notesOf(ddb)).toEqual([LAUNCHER_CACHED_NOTE, LAUNCHER_PATCHED_NOTE]);
    // Smaller C2 compilations (infra/local/dynamodb.ts): the JVM runs with them.
    const jvmArgs = readFileSync(`/proc/${ddb.pid}/cmdline`, 'utf8').split('\0');
    expect(jvmArgs).toEqual(expect.arrayContaining(['-XX:FreqInlineSize=100', '-XX:InlineSmallCode=500']));
    const withFlags = async (flags: string) => {
      const before = process.env.SLIPWAY_DYNAMODB_JAVA_OPTS;
      process.env.SLIPWAY_DYNAMODB_JAVA_OPTS = flags;
      const d = await startDynamoLocal({}).finally(() => {
        if (before === undefined) delete process.env.SLIPWAY_DYNAMODB_JAVA_OPTS;
        else process.env.SLIPWAY_DYNAMODB_JAVA_OPTS = before;
      });
      try {
        return await notesOf(d);
      } finally {
        await d.stop();
      }
    };
    expect(await withFlags('-Dslipway.schemaCache=false')).toEqual(['DynamoLoopback: table descriptions not cached (-Dslipway.schemaCache=false)', LAUNCHER_PATCHED_NOTE]);
    expect(await withFlags('-Dslipway.patches=false')).toEqual([LAUNCHER_CACHED_NOTE, 'DynamoLoopback: jar classes as shipped (-Dslipway.patches=false)']);
    expect(await withFlags('-Dslipway.sqliteInline=false')).toEqual([
      LAUNCHER_CACHED_NOTE,
      `${LAUNCHER_PATCHED_NOTE.slice(0, LAUNCHER_PATCHED_NOTE.lastIndexOf('; '))}; SQLite jobs in the queue's thread (-Dslipway.sqliteInline=false)`,
    ]);
  }, 120_000);

  it('runs SQLite calls in the request threads, one at a time: racing conditional transactions lose no update', async () => {
    await raw.send(new CreateTableCommand({ TableName: 'race', BillingMode: 'PAY_PER_REQUEST', AttributeDefinitions: [S('PK'), S('SK')], KeySchema: key('PK', 'SK') }));
    await raw.send(new CreateTableCommand({ TableName: 'race-other', BillingMode: 'PAY_PER_REQUEST', AttributeDefinitions: [S('PK'), S('SK')], KeySchema: key('PK', 'SK') }));
    const COUNTERS = 4;
    const WRITERS = 16;
    const WINS = 10;
    for (let c = 0; c < COUNTERS; c++) await doc.send(new PutCommand({ TableName: 'race', Item: { PK: `counter${c}`, SK: 'x', n: 0 } }));
    // How often sqlite4java's queue thread (`SQLiteQueue[…]`) has gone to sleep waiting for work:
    // once per job when every job is handed to it, as shipped.
    const queueSleeps = () => {
      for (const tid of readdirSync(`/proc/${ddb.pid}/task`)) {
        const status = readFileSync(`/proc/${ddb.pid}/task/${tid}/status`, 'utf8');
        if (/^Name:\s*SQLiteQueue/m.test(status)) return Number(/^voluntary_ctxt_switches:\s*(\d+)/m.exec(status)![1]);
      }
      throw new Error('no SQLiteQueue thread in DynamoDB Local');
    };
    const sleeps0 = queueSleeps();
    let won = 0;
    let lost = 0;
    // Four writers per counter, each adding one to it WINS times: read it, then write n + 1 on
    // condition that it is still n, with a log item, in one transaction; a lost race reads again.
    // Meanwhile readers query the log and other writers write to another table.
    const writers = Array.from({ length: WRITERS }, async (_, w) => {
      const counter = `counter${w % COUNTERS}`;
      for (let i = 0; i < WINS; ) {
        const seen = (await doc.send(new GetCommand({ TableName: 'race', Key: { PK: counter, SK: 'x' }, ConsistentRead: true }))).Item!.n as number;
        try {
          await doc.send(
            new TransactWriteCommand({
              TransactItems: [
                { Update: { TableName: 'race', Key: { PK: counter, SK: 'x' }, UpdateExpression: 'SET n = n + :one', ConditionExpression: 'n = :seen', ExpressionAttributeValues: { ':one': 1, ':seen': seen } } },
                { Put: { TableName: 'race', Item: { PK: `log-${counter}`, SK: String(seen + 1).padStart(4, '0'), writer: w }, ConditionExpression: 'attribute_not_exists(PK)' } },
              ],
            }),
          );
          won++;
          i++;
        } catch (err) {
          if ((err as Error).name !== 'TransactionCanceledException') throw err;
          lost++;
        }
      }
    });
    let stop = false;
    const others = Array.from({ length: 4 }, async (_, r) => {
      for (let i = 0; !stop; i++) {
        await doc.send(new QueryCommand({ TableName: 'race', KeyConditionExpression: 'PK = :p', ExpressionAttributeValues: { ':p': `log-counter${r}` }, Limit: 5 }));
        await doc.send(new PutCommand({ TableName: 'race-other', Item: { PK: `r${r}`, SK: String(i) } }));
      }
    });
    await Promise.all(writers).finally(() => (stop = true));
    await Promise.all(others);
    const perCounter = (WRITERS / COUNTERS) * WINS;
    expect(won).toBe(WRITERS * WINS);
    expect(lost).toBeGreaterThan(0);
    for (let c = 0; c < COUNTERS; c++) {
      expect((await doc.send(new GetCommand({ TableName: 'race', Key: { PK: `counter${c}`, SK: 'x' } }))).Item?.n).toBe(perCounter);
      const log = await doc.send(new QueryCommand({ TableName: 'race', KeyConditionExpression: 'PK = :p', ExpressionAttributeValues: { ':p': `log-counter${c}` } }));
      expect(log.Items?.map((x) => Number(x.SK))).toEqual(Array.from({ length: perCounter }, (_, i) => i + 1));
    }
    // Each transaction is several SQLite calls; the queue's thread slept fewer times than there
    // were transactions that went through (it wakes once a second to look at its queue).
    expect(queueSleeps() - sleeps0).toBeLessThan(won);
  }, 120_000);

  it('keeps answering right when more expressions come than it keeps', async () => {
    // Eight trees kept at most: forty distinct expressions, each sent twice, empty the cache
    // again and again, and every update still lands on its own attribute.
    const before = process.env.SLIPWAY_DYNAMODB_JAVA_OPTS;
    process.env.SLIPWAY_DYNAMODB_JAVA_OPTS = '-Dslipway.parseCacheEntries=8';
    const small = await startDynamoLocal({}).finally(() => {
      if (before === undefined) delete process.env.SLIPWAY_DYNAMODB_JAVA_OPTS;
      else process.env.SLIPWAY_DYNAMODB_JAVA_OPTS = before;
    });
    const c = new DynamoDBClient({ endpoint: small.endpoint, region: 'us-east-1', credentials: { accessKeyId: 'local', secretAccessKey: 'local' } });
    const d = DynamoDBDocumentClient.from(c);
    try {
      await c.send(new CreateTableCommand({ TableName: 'many', BillingMode: 'PAY_PER_REQUEST', AttributeDefinitions: [S('PK'), S('SK')], KeySchema: key('PK', 'SK') }));
      await d.send(new PutCommand({ TableName: 'many', Item: { PK: 'p', SK: 'x' } }));
      for (let round = 1; round <= 2; round++) {
        for (let i = 0; i < 40; i++) {
          await d.send(new UpdateCommand({ TableName: 'many', Key: { PK: 'p', SK: 'x' }, UpdateExpression: `SET a${i} = :v`, ConditionExpression: `attribute_exists(PK) AND size(PK) < :max${i}`, ExpressionAttributeValues: { ':v': i * round, [`:max${i}`]: 100 } }));
        }
      }
      const item = (await d.send(new GetCommand({ TableName: 'many', Key: { PK: 'p', SK: 'x' } }))).Item;
      expect(item).toEqual({ PK: 'p', SK: 'x', ...Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`a${i}`, i * 2])) });
    } finally {
      c.destroy();
      await small.stop();
    }
  }, 60_000);

  it('tells apart the values of one expression sent at once, and refuses a bad expression every time', async () => {
    await raw.send(new CreateTableCommand({ TableName: 'exprs', BillingMode: 'PAY_PER_REQUEST', AttributeDefinitions: [S('PK'), S('SK')], KeySchema: key('PK', 'SK') }));
    await Promise.all(Array.from({ length: 40 }, (_, i) => doc.send(new PutCommand({ TableName: 'exprs', Item: { PK: `p${i}`, SK: 'x', n: 0, v: 1 } }))));
    // One update expression, forty items, each its own values; the odd ones' condition fails.
    const results = await Promise.allSettled(
      Array.from({ length: 40 }, (_, i) =>
        doc.send(
          new UpdateCommand({
            TableName: 'exprs',
            Key: { PK: `p${i}`, SK: 'x' },
            UpdateExpression: 'SET #name = :name, #n = #n + :step REMOVE #gone',
            ConditionExpression: '#v = :v',
            ExpressionAttributeNames: { '#name': 'name', '#n': 'n', '#gone': 'v', '#v': 'v' },
            ExpressionAttributeValues: { ':name': `item ${i}`, ':step': i, ':v': i % 2 ? 2 : 1 },
          }),
        ),
      ),
    );
    expect(results.map((r) => r.status)).toEqual(Array.from({ length: 40 }, (_, i) => (i % 2 ? 'rejected' : 'fulfilled')));
    for (const r of results) if (r.status === 'rejected') expect((r.reason as Error).name).toBe('ConditionalCheckFailedException');
    for (let i = 0; i < 40; i++) {
      const item = (await doc.send(new GetCommand({ TableName: 'exprs', Key: { PK: `p${i}`, SK: 'x' } }))).Item;
      expect(item).toEqual(i % 2 ? { PK: `p${i}`, SK: 'x', n: 0, v: 1 } : { PK: `p${i}`, SK: 'x', n: i, name: `item ${i}` });
    }
    // A syntax error, a bad placeholder name and a missing value are refused each time they are sent.
    for (let round = 0; round < 3; round++) {
      await expect(
        doc.send(new UpdateCommand({ TableName: 'exprs', Key: { PK: 'p0', SK: 'x' }, UpdateExpression: 'SET #n = = :v', ExpressionAttributeNames: { '#n': 'n' }, ExpressionAttributeValues: { ':v': 1 } })),
      ).rejects.toThrow(/Syntax error/);
      await expect(
        doc.send(new UpdateCommand({ TableName: 'exprs', Key: { PK: 'p0', SK: 'x' }, UpdateExpression: 'SET #n = :v', ExpressionAttributeNames: { '#n': 'n', 'no-hash': 'x' }, ExpressionAttributeValues: { ':v': 1 } })),
      ).rejects.toThrow(/ExpressionAttributeNames/);
      await expect(
        doc.send(new UpdateCommand({ TableName: 'exprs', Key: { PK: 'p0', SK: 'x' }, UpdateExpression: 'SET #n = :w', ExpressionAttributeNames: { '#n': 'n' }, ExpressionAttributeValues: { ':v': 1 } })),
      ).rejects.toThrow(/:w/);
    }
    expect((await doc.send(new GetCommand({ TableName: 'exprs', Key: { PK: 'p0', SK: 'x' } }))).Item?.n).toBe(0);
  });

  it('keeps a transaction\'s idempotency token and its cancellation reasons', async () => {
    const put = (v: number) => ({ Put: { TableName: 'exprs', Item: { PK: 'tx', SK: 'x', v } } });
    const bump = { Update: { TableName: 'exprs', Key: { PK: 'p0', SK: 'x' }, UpdateExpression: 'SET #n = #n + :one', ExpressionAttributeNames: { '#n': 'n' }, ExpressionAttributeValues: { ':one': 1 } } };
    await doc.send(new TransactWriteCommand({ ClientRequestToken: 'token-1', TransactItems: [put(1), bump] }));
    // The same request again with its token: accepted, not applied twice.
    await doc.send(new TransactWriteCommand({ ClientRequestToken: 'token-1', TransactItems: [put(1), bump] }));
    expect((await doc.send(new GetCommand({ TableName: 'exprs', Key: { PK: 'p0', SK: 'x' } }))).Item?.n).toBe(1);
    // Another request with that token is refused.
    await expect(doc.send(new TransactWriteCommand({ ClientRequestToken: 'token-1', TransactItems: [put(2), bump] }))).rejects.toMatchObject({ name: 'IdempotentParameterMismatchException' });
    // A failed condition cancels the whole transaction, with its reason in the item's place.
    const err = (await doc
      .send(new TransactWriteCommand({ TransactItems: [put(3), { ConditionCheck: { TableName: 'exprs', Key: { PK: 'p1', SK: 'x' }, ConditionExpression: '#v = :v', ExpressionAttributeNames: { '#v': 'v' }, ExpressionAttributeValues: { ':v': 9 } } }] }))
      .then(
        () => undefined,
        (e: unknown) => e,
      )) as { name: string; CancellationReasons?: { Code?: string }[] } | undefined;
    expect(err).toMatchObject({ name: 'TransactionCanceledException' });
    expect(err?.CancellationReasons?.map((r) => r.Code)).toEqual(['None', 'ConditionalCheckFailed']);
    expect((await doc.send(new GetCommand({ TableName: 'exprs', Key: { PK: 'tx', SK: 'x' } }))).Item?.v).toBe(1);
  });

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

  it('sees a table dropped and made again with another key while writers keep writing to it', async () => {
    // The key's type alternates: a description kept from before a change would accept the old
    // type or refuse the new one.
    const make = (type: 'S' | 'N') =>
      raw.send(new CreateTableCommand({ TableName: 'remade', BillingMode: 'PAY_PER_REQUEST', AttributeDefinitions: [{ AttributeName: 'K', AttributeType: type }], KeySchema: [{ AttributeName: 'K', KeyType: 'HASH' }] }));
    const value = (type: 'S' | 'N', i: number) => (type === 'S' ? `k${i}` : i);
    await make('S');
    let stop = false;
    let writes = 0;
    const writers = Array.from({ length: 6 }, async (_, w) => {
      for (let i = 0; !stop; i++) {
        // Either type, whatever the table is at that moment: only the answers after each change are checked.
        await doc.send(new PutCommand({ TableName: 'remade', Item: { K: value(i % 2 ? 'S' : 'N', w * 100_000 + i) } })).then(
          () => writes++,
          () => undefined,
        );
      }
    });
    try {
      for (let round = 0; round < 6; round++) {
        const type = round % 2 ? 'S' : 'N';
        const other = type === 'S' ? 'N' : 'S';
        await raw.send(new DeleteTableCommand({ TableName: 'remade' }));
        await make(type);
        await doc.send(new PutCommand({ TableName: 'remade', Item: { K: value(type, round) } }));
        await expect(doc.send(new PutCommand({ TableName: 'remade', Item: { K: value(other, round) } }))).rejects.toThrow(/type|key/i);
        await doc.send(new TransactWriteCommand({ TransactItems: [{ Put: { TableName: 'remade', Item: { K: value(type, round + 1000) } } }] }));
        expect((await doc.send(new GetCommand({ TableName: 'remade', Key: { K: value(type, round) } }))).Item).toEqual({ K: value(type, round) });
      }
    } finally {
      stop = true;
      await Promise.all(writers);
    }
    expect(writes).toBeGreaterThan(0);
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
