import { DeleteCommand, GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import type { IdempotencyRecord, IdempotencyStore } from '#core/ports.ts';
import { type Dynamo, isConditionFailure } from './client.ts';

export const idempotencyKey = (scope: string, key: string) => ({ PK: `IDEMP#${scope}#${key}`, SK: 'META' });

/** Keys are remembered for a day, like most public APIs that take an Idempotency-Key. */
const RETAIN_SECONDS = 86_400;
/** An IN_PROGRESS claim older than this belongs to a crashed request and may be taken over. */
const STALE_CLAIM_SECONDS = 60;

export class DynamoIdempotencyStore implements IdempotencyStore {
  constructor(private readonly d: Dynamo) {}

  async begin(scope: string, key: string, fingerprint: string): Promise<IdempotencyRecord | undefined> {
    const now = Math.floor(Date.now() / 1000);
    try {
      await this.d.doc.send(
        new PutCommand({
          TableName: this.d.table,
          Item: { ...idempotencyKey(scope, key), fingerprint, state: 'IN_PROGRESS', started: now, ttl: now + RETAIN_SECONDS },
          ConditionExpression: 'attribute_not_exists(PK) OR #ttl < :now OR (#state = :ip AND started < :stale)',
          ExpressionAttributeNames: { '#ttl': 'ttl', '#state': 'state' },
          ExpressionAttributeValues: { ':now': now, ':ip': 'IN_PROGRESS', ':stale': now - STALE_CLAIM_SECONDS },
        }),
      );
      return undefined;
    } catch (err) {
      if (!isConditionFailure(err)) throw err;
      const res = await this.d.doc.send(
        new GetCommand({ TableName: this.d.table, Key: idempotencyKey(scope, key), ConsistentRead: true }),
      );
      return res.Item as IdempotencyRecord | undefined;
    }
  }

  async finish(scope: string, key: string, rec: IdempotencyRecord): Promise<void> {
    const now = Math.floor(Date.now() / 1000);
    await this.d.doc.send(
      new PutCommand({ TableName: this.d.table, Item: { ...idempotencyKey(scope, key), ...rec, ttl: now + RETAIN_SECONDS } }),
    );
  }

  async abandon(scope: string, key: string): Promise<void> {
    await this.d.doc.send(new DeleteCommand({ TableName: this.d.table, Key: idempotencyKey(scope, key) }));
  }
}
