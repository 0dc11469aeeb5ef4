import { DeleteCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import type { TokenRecord } from '#core/identity/identity.ts';
import type { TokenRepository } from '#core/ports.ts';
import { type Dynamo, getItem, queryAll } from './client.ts';

/** Key builders for tokens (the only place these keys are spelled). */
export const tokenKey = (hash: string) => ({ PK: `TOKEN#${hash}`, SK: 'META' });
const TOKENS_INDEX = 'TOKENS';

function strip(item: Record<string, unknown>): TokenRecord {
  const { PK: _pk, SK: _sk, GSI3PK: _g, GSI3SK: _gs, ttl: _t, ...rest } = item;
  return rest as unknown as TokenRecord;
}

export class DynamoTokenRepository implements TokenRepository {
  constructor(private readonly d: Dynamo) {}

  async get(hash: string): Promise<TokenRecord | undefined> {
    // Consistent: a token revoked a moment ago is never read back (the cache in front of this
    // read, layers/http/token-cache.ts, bounds how long a warm container keeps accepting it).
    const item = await getItem(this.d, tokenKey(hash));
    return item ? strip(item) : undefined;
  }

  async put(rec: TokenRecord): Promise<void> {
    await this.d.doc.send(
      new PutCommand({
        TableName: this.d.table,
        Item: {
          ...tokenKey(rec.token_hash),
          GSI3PK: TOKENS_INDEX,
          GSI3SK: rec.token_id,
          ...rec,
          // Expired tokens disappear on their own a day after expiry (kept a while for audit).
          ...(rec.expires_at ? { ttl: Math.floor(Date.parse(rec.expires_at) / 1000) + 86_400 } : {}),
        },
        ConditionExpression: 'attribute_not_exists(PK)',
      }),
    );
  }

  async list(): Promise<TokenRecord[]> {
    const items = await queryAll(this.d, {
      IndexName: 'GSI3',
      KeyConditionExpression: 'GSI3PK = :p',
      ExpressionAttributeValues: { ':p': TOKENS_INDEX },
    });
    return items.map(strip);
  }

  async revoke(tokenId: string): Promise<boolean> {
    const items = await queryAll(this.d, {
      IndexName: 'GSI3',
      KeyConditionExpression: 'GSI3PK = :p AND GSI3SK = :id',
      ExpressionAttributeValues: { ':p': TOKENS_INDEX, ':id': tokenId },
    });
    for (const item of items) {
      await this.d.doc.send(new DeleteCommand({ TableName: this.d.table, Key: { PK: item.PK, SK: item.SK } }));
    }
    return items.length > 0;
  }
}
