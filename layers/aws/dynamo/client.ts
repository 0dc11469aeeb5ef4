import { type AttributeValue, DynamoDBClient, GetItemCommand, TransactionCanceledException, type TransactWriteItem, TransactWriteItemsCommand } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, QueryCommand, type QueryCommandInput, type TransactWriteCommandInput } from '@aws-sdk/lib-dynamodb';
import { marshall } from '@aws-sdk/util-dynamodb';
import { ConcurrentModificationError, ValidationError } from '#core/errors.ts';
import { log } from '#core/util/log.ts';
import { traceAwsClient } from '../xray.ts';

export interface DynamoSettings {
  tableName: string;
  /** Set locally (DynamoDB Local); unset on AWS. */
  endpoint?: string;
  region?: string;
}

export interface Dynamo {
  doc: DynamoDBDocumentClient;
  table: string;
  /**
   * The calls of the hot paths — point reads (`getItem`) and transactions (`transactWrite`): a
   * plain client over the same connections and middleware as `doc` that builds its middleware
   * chain once per command type (`cacheMiddleware`, which the document client refuses), its items
   * marshalled and unmarshalled here. The SDK was the largest part of the API process's CPU for
   * `GET /v1/nodes/{uuid}` (issue 16), and of a lease start's at its time; rebuilding and sorting
   * the same chain on every call, twice (document client and client), a good part of it (a
   * lease start's 3-item transaction: 0.64 → 0.45 ms of CPU).
   */
  plain: DynamoDBClient;
}

/**
 * Per-process counters of DynamoDB calls (by command) and of items written in transactions,
 * read by `npm run bench` to report operations per API request. Counting is cheap and keeps
 * no request data.
 */
export const dynamoStats = {
  calls: new Map<string, number>(),
  transactItems: 0,
  /** When true, requests ask for ReturnConsumedCapacity and the units are summed here. */
  measureCapacity: false,
  readUnits: 0,
  writeUnits: 0,
  reset(): void {
    this.calls.clear();
    this.transactItems = 0;
    this.readUnits = 0;
    this.writeUnits = 0;
  },
};

type Capacity = { CapacityUnits?: number; ReadCapacityUnits?: number; WriteCapacityUnits?: number };
const READS = new Set(['GetItemCommand', 'QueryCommand', 'BatchGetItemCommand', 'ScanCommand', 'TransactGetItemsCommand']);

export function makeDynamo(s: DynamoSettings): Dynamo {
  const config = {
    // On AWS the SDK finds the region itself (Lambda sets AWS_REGION; the CLI may use a profile).
    ...(s.region ? { region: s.region } : {}),
    ...(s.endpoint
      ? { endpoint: s.endpoint, region: s.region ?? 'us-east-1', credentials: { accessKeyId: 'local', secretAccessKey: 'local' }, maxAttempts: 5 }
      : {}),
  };
  const client = instrument(new DynamoDBClient(config));
  // Same HTTP handler (one connection pool), same middleware; the chain is built before first use.
  const plain = instrument(new DynamoDBClient({ ...config, requestHandler: client.config.requestHandler, cacheMiddleware: true }));
  const doc = DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } });
  return { doc, table: s.tableName, plain };
}

/** Tracing, the per-process counters and the 400 for values DynamoDB refuses, on a client. */
function instrument(client: DynamoDBClient): DynamoDBClient {
  traceAwsClient(client);
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const name = context.commandName ?? 'unknown';
      dynamoStats.calls.set(name, (dynamoStats.calls.get(name) ?? 0) + 1);
      const input = args.input as { TransactItems?: unknown[]; ReturnConsumedCapacity?: string };
      if (input.TransactItems) dynamoStats.transactItems += input.TransactItems.length;
      if (!dynamoStats.measureCapacity) return next(args);
      input.ReturnConsumedCapacity ??= 'TOTAL';
      const result = await next(args);
      const consumed = (result.output as { ConsumedCapacity?: Capacity | Capacity[] }).ConsumedCapacity;
      for (const c of [consumed ?? []].flat()) {
        const units = c.CapacityUnits ?? (c.ReadCapacityUnits ?? 0) + (c.WriteCapacityUnits ?? 0);
        if (READS.has(name)) dynamoStats.readUnits += c.ReadCapacityUnits ?? units;
        else {
          dynamoStats.readUnits += c.ReadCapacityUnits ?? 0;
          dynamoStats.writeUnits += c.WriteCapacityUnits ?? units;
        }
      }
      return result;
    },
    { step: 'initialize', name: 'slipwayStats' },
  );
  // The last line of defence behind the use-cases' bounds: a value DynamoDB refuses (a key over
  // 2,048 bytes, an item over 400 KB) is the client's doing, a 400, never a 500.
  client.middlewareStack.add(
    (next, context) => async (args) => {
      try {
        return await next(args);
      } catch (err) {
        if (!isStoreValidationFailure(err)) throw err;
        log.warn('store refused a value', { command: context.commandName, error: (err as Error).message });
        throw new ValidationError('The request holds a value that is too long or too large to store');
      }
    },
    { step: 'initialize', name: 'slipwayValidation', priority: 'high' },
  );
  return client;
}

/**
 * One item by its key, read consistently (what the document client's GetCommand answers, as
 * `unmarshall` gives it), or undefined. For the reads every request makes: a node by id, a token
 * by hash.
 */
export async function getItem(d: Dynamo, key: Record<string, string>): Promise<Record<string, unknown> | undefined> {
  const Key: Record<string, AttributeValue> = {};
  for (const k in key) Key[k] = { S: key[k]! };
  const res = await d.plain.send(new GetItemCommand({ TableName: d.table, Key, ConsistentRead: true }));
  return res.Item ? (fromAttributes(res.Item) as Record<string, unknown>) : undefined;
}

/**
 * An AttributeValue map as native values, exactly as @aws-sdk/util-dynamodb's `unmarshall`
 * converts them with the document client's defaults: numbers as numbers (BigInt beyond the safe
 * integers), sets as Sets, binaries as Uint8Arrays.
 */
function fromAttributes(m: Record<string, AttributeValue>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k in m) out[k] = fromAttribute(m[k]!);
  return out;
}

function fromAttribute(v: AttributeValue): unknown {
  if (v.S !== undefined) return v.S;
  if (v.N !== undefined) return fromNumber(v.N);
  if (v.BOOL !== undefined) return Boolean(v.BOOL);
  if (v.NULL !== undefined) return null;
  if (v.M !== undefined) return fromAttributes(v.M);
  if (v.L !== undefined) return v.L.map(fromAttribute);
  if (v.SS !== undefined) return new Set(v.SS);
  if (v.NS !== undefined) return new Set(v.NS.map(fromNumber));
  if (v.B !== undefined) return v.B;
  if (v.BS !== undefined) return new Set(v.BS);
  throw new Error(`Unsupported type passed: ${Object.keys(v).join(', ')}`);
}

function fromNumber(n: string): number | bigint {
  const x = Number(n);
  if ((x > Number.MAX_SAFE_INTEGER || x < Number.MIN_SAFE_INTEGER) && Number.isFinite(x)) {
    try {
      return BigInt(n);
    } catch {
      throw new Error(`${n} can't be converted to BigInt. Set options.wrapNumbers to get string value.`);
    }
  }
  return x;
}

/** DynamoDB's own refusal of a request's values, directly or as one reason of a transaction. */
function isStoreValidationFailure(err: unknown): boolean {
  const e = err as { name?: string; CancellationReasons?: { Code?: string }[] };
  if (e?.name === 'ValidationException') return true;
  return err instanceof TransactionCanceledException && (e.CancellationReasons ?? []).some((r) => r.Code === 'ValidationError');
}

/** Runs a query to the end (all pages). */
export async function queryAll<T = Record<string, unknown>>(d: Dynamo, input: Omit<QueryCommandInput, 'TableName'>): Promise<T[]> {
  const out: T[] = [];
  let start: Record<string, unknown> | undefined;
  do {
    const res = await d.doc.send(new QueryCommand({ ...input, TableName: d.table, ExclusiveStartKey: start }));
    out.push(...((res.Items ?? []) as T[]));
    start = res.LastEvaluatedKey;
  } while (start);
  return out;
}

/**
 * Keyset window over an index whose sort key starts with the group id (`<id>` or `<id>#...`):
 * the items of the `groups` groups after `after` (ascending) or before `before` (read
 * descending, returned ascending). Reads page by page and stops at the first item of the group
 * after the last one needed, so groups are always complete.
 */
export async function queryGroups(
  d: Dynamo,
  q: { index: string; pkName: string; skName: string; pk: string; after?: string; before?: string; groups: number },
): Promise<Record<string, unknown>[]> {
  const descending = q.before !== undefined;
  const groupOf = (item: Record<string, unknown>) => String(item[q.skName]).split('#')[0]!;
  const cond = descending
    ? { expr: `#pk = :pk AND #sk < :b`, values: { ':pk': q.pk, ':b': `${q.before}#` } }
    : q.after !== undefined
      ? { expr: `#pk = :pk AND #sk > :a`, values: { ':pk': q.pk, ':a': `${q.after}#~` } }
      : { expr: '#pk = :pk', values: { ':pk': q.pk } };
  const out: Record<string, unknown>[] = [];
  const seen: string[] = [];
  let start: Record<string, unknown> | undefined;
  do {
    const res = await d.doc.send(
      new QueryCommand({
        TableName: d.table,
        IndexName: q.index,
        KeyConditionExpression: cond.expr,
        ExpressionAttributeNames: { '#pk': q.pkName, ...(cond.expr.includes('#sk') ? { '#sk': q.skName } : {}) },
        ExpressionAttributeValues: cond.values,
        ScanIndexForward: !descending,
        Limit: Math.min(1000, (q.groups + 1) * 6),
        ExclusiveStartKey: start,
      }),
    );
    for (const item of res.Items ?? []) {
      const g = groupOf(item);
      if (seen[seen.length - 1] !== g) {
        if (seen.length === q.groups) return descending ? out.reverse() : out;
        seen.push(g);
      }
      out.push(item);
    }
    start = res.LastEvaluatedKey;
  } while (start);
  return descending ? out.reverse() : out;
}

export function isConditionFailure(err: unknown): boolean {
  return err instanceof Error && err.name === 'ConditionalCheckFailedException';
}

/**
 * One transaction of `items` (none: nothing sent), written as the document client would write
 * them (its marshalling, undefined values left out) through `plain`; a lost race thrown as
 * ConcurrentModificationError.
 */
export async function transactWrite(d: Dynamo, items: NonNullable<TransactWriteCommandInput['TransactItems']>): Promise<void> {
  if (items.length === 0) return;
  try {
    await d.plain.send(new TransactWriteItemsCommand({ TransactItems: items.map(toWire) }));
  } catch (err) {
    translateTransactionError(err);
  }
}

type DocItem = NonNullable<TransactWriteCommandInput['TransactItems']>[number];
const MARSHALL = { removeUndefinedValues: true };

/** One transaction item with native values (the document client's shape) as AttributeValues. */
function toWire(item: DocItem): TransactWriteItem {
  const out: Record<string, unknown> = {};
  for (const [kind, op] of Object.entries(item) as [string, Record<string, unknown> | undefined][]) {
    if (!op) continue;
    const wire: Record<string, unknown> = { ...op };
    for (const field of ['Item', 'Key', 'ExpressionAttributeValues'] as const) {
      if (op[field] !== undefined) wire[field] = marshall(op[field] as Record<string, unknown>, MARSHALL);
    }
    out[kind] = wire;
  }
  return out as TransactWriteItem;
}

/**
 * A cancelled transaction because a condition failed or another transaction touched the same
 * item is a lost race, which the use-case may retry; anything else is a real failure.
 */
export function translateTransactionError(err: unknown): never {
  if (err instanceof TransactionCanceledException) {
    const codes = (err.CancellationReasons ?? []).map((r) => r.Code ?? 'None');
    if (codes.some((c) => c === 'ConditionalCheckFailed' || c === 'TransactionConflict')) {
      throw new ConcurrentModificationError();
    }
  }
  if (err instanceof Error && err.name === 'TransactionConflictException') throw new ConcurrentModificationError();
  throw err;
}

/** Which transaction items failed their condition (indexes), for precise error messages. */
export function failedIndexes(err: unknown): number[] {
  if (!(err instanceof TransactionCanceledException)) return [];
  return (err.CancellationReasons ?? []).flatMap((r, i) => (r.Code === 'ConditionalCheckFailed' ? [i] : []));
}
