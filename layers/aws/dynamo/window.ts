import { QueryCommand, type QueryCommandInput } from '@aws-sdk/lib-dynamodb';
import type { Dynamo } from './client.ts';

/**
 * A bounded window of one index partition (issue 16: a list answers a page, not the fleet): at
 * most `limit` items, in sort-key order from the start of the key condition, or with `newest`
 * the last `limit` items (read descending, handed back ascending). DynamoDB stops a page at 1 MB,
 * so the window may take several pages, but never reads more than `limit` items: its cost is that
 * of the window whatever the partition holds. The caller names the index in `input`
 * (`IndexName: 'GSI3'`), so the least-privilege analysis reads it where the query is written.
 */
export async function queryWindow<T = Record<string, unknown>>(
  d: Dynamo,
  input: Omit<QueryCommandInput, 'TableName' | 'Limit' | 'ExclusiveStartKey' | 'ScanIndexForward'>,
  window: { limit: number; newest?: boolean },
): Promise<T[]> {
  const out: T[] = [];
  let start: Record<string, unknown> | undefined;
  while (out.length < window.limit) {
    const res = await d.doc.send(
      new QueryCommand({ ...input, TableName: d.table, Limit: window.limit - out.length, ScanIndexForward: !window.newest, ExclusiveStartKey: start }),
    );
    out.push(...((res.Items ?? []) as T[]));
    start = res.LastEvaluatedKey;
    if (!start) break;
  }
  return window.newest ? out.reverse() : out;
}
