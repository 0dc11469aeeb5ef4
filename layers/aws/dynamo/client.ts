import { DynamoDBClient, TransactionCanceledException } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, QueryCommand, type QueryCommandInput } from '@aws-sdk/lib-dynamodb';
import { ConcurrentModificationError } from '#core/errors.ts';

export interface DynamoSettings {
  tableName: string;
  /** Set locally (DynamoDB Local); unset on AWS. */
  endpoint?: string;
  region?: string;
}

export interface Dynamo {
  doc: DynamoDBDocumentClient;
  table: string;
}

/**
 * Per-process counters of DynamoDB calls (by command) and of items written in transactions,
 * read by `npm run bench` to report operations per API request. Counting is cheap and keeps
 * no request data.
 */
export const dynamoStats = {
  calls: new Map<string, number>(),
  transactItems: 0,
  reset(): void {
    this.calls.clear();
    this.transactItems = 0;
  },
};

export function makeDynamo(s: DynamoSettings): Dynamo {
  const client = new DynamoDBClient({
    // On AWS the SDK finds the region itself (Lambda sets AWS_REGION; the CLI may use a profile).
    ...(s.region ? { region: s.region } : {}),
    ...(s.endpoint
      ? { endpoint: s.endpoint, region: s.region ?? 'us-east-1', credentials: { accessKeyId: 'local', secretAccessKey: 'local' }, maxAttempts: 5 }
      : {}),
  });
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const name = context.commandName ?? 'unknown';
      dynamoStats.calls.set(name, (dynamoStats.calls.get(name) ?? 0) + 1);
      const items = (args.input as { TransactItems?: unknown[] }).TransactItems;
      if (items) dynamoStats.transactItems += items.length;
      return next(args);
    },
    { step: 'initialize', name: 'slipwayStats' },
  );
  const doc = DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } });
  return { doc, table: s.tableName };
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

export function isConditionFailure(err: unknown): boolean {
  return err instanceof Error && err.name === 'ConditionalCheckFailedException';
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
