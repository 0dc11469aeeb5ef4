import { TransactionCanceledException } from '@aws-sdk/client-dynamodb';
import { TransactWriteCommand } from '@aws-sdk/lib-dynamodb';
import { ConflictError, NotFoundError } from '#core/errors.ts';
import type { AppCredentialRecord, UserRecord, UserRepository } from '#core/identity/model.ts';
import { type Dynamo, failedIndexes, getItem, queryAll, translateTransactionError } from './client.ts';

/**
 * Keystone users and application credentials (issue 15). Key builders are the only place these
 * keys are spelled:
 *   user by id                 PK=USER#<id>                 SK=META   (whole record; GSI3PK=USERS, GSI3SK=<name>)
 *   user by name (uniqueness)  PK=USERNAME#<name>           SK=META   (the same record: one read either way)
 *   application credential     PK=APPCRED#<id>              SK=META   (whole record)
 *   its name, per user         PK=USER#<user id>            SK=APPCRED#<name>  (the same record: uniqueness and the user's list)
 * Each pair is written and deleted in one transaction, the uniqueness items with
 * `attribute_not_exists`: two concurrent creates of one name cannot both succeed.
 */
export const userKey = (id: string) => ({ PK: `USER#${id}`, SK: 'META' });
export const userNameKey = (name: string) => ({ PK: `USERNAME#${name}`, SK: 'META' });
export const appCredKey = (id: string) => ({ PK: `APPCRED#${id}`, SK: 'META' });
export const userAppCredKey = (userId: string, name: string) => ({ PK: `USER#${userId}`, SK: `APPCRED#${name}` });
const USERS_INDEX = 'USERS';

function strip<T>(item: Record<string, unknown>): T {
  const { PK: _pk, SK: _sk, GSI3PK: _g, GSI3SK: _gs, ttl: _t, ...rest } = item;
  return rest as T;
}

export class DynamoUserRepository implements UserRepository {
  constructor(private readonly d: Dynamo) {}

  async get(id: string): Promise<UserRecord | undefined> {
    const item = await getItem(this.d, userKey(id));
    return item ? strip<UserRecord>(item) : undefined;
  }

  async getByName(name: string): Promise<UserRecord | undefined> {
    const item = await getItem(this.d, userNameKey(name));
    return item ? strip<UserRecord>(item) : undefined;
  }

  async list(): Promise<UserRecord[]> {
    const items = await queryAll(this.d, {
      IndexName: 'GSI3',
      KeyConditionExpression: 'GSI3PK = :p',
      ExpressionAttributeValues: { ':p': USERS_INDEX },
    });
    return items.map((i) => strip<UserRecord>(i));
  }

  async create(user: UserRecord): Promise<void> {
    try {
      await this.d.doc.send(
        new TransactWriteCommand({
          TransactItems: [
            { Put: { TableName: this.d.table, Item: { ...userNameKey(user.name), ...user }, ConditionExpression: 'attribute_not_exists(PK)' } },
            {
              Put: {
                TableName: this.d.table,
                Item: { ...userKey(user.id), GSI3PK: USERS_INDEX, GSI3SK: user.name, ...user },
                ConditionExpression: 'attribute_not_exists(PK)',
              },
            },
          ],
        }),
      );
    } catch (err) {
      if (failedIndexes(err).includes(0)) throw new ConflictError(`Conflict occurred attempting to store user - Duplicate entry found with name ${user.name}.`);
      translateTransactionError(err);
    }
  }

  async delete(user: UserRecord): Promise<boolean> {
    try {
      await this.d.doc.send(
        new TransactWriteCommand({
          TransactItems: [
            { Delete: { TableName: this.d.table, Key: userKey(user.id), ConditionExpression: 'attribute_exists(PK)' } },
            // The name item only if it is still this user's (not a namesake created since).
            { Delete: { TableName: this.d.table, Key: userNameKey(user.name), ConditionExpression: '#id = :id', ExpressionAttributeNames: { '#id': 'id' }, ExpressionAttributeValues: { ':id': user.id } } },
          ],
        }),
      );
      return true;
    } catch (err) {
      if (err instanceof TransactionCanceledException && failedIndexes(err).length > 0) return false;
      return translateTransactionError(err);
    }
  }

  async createAppCredential(cred: AppCredentialRecord): Promise<void> {
    try {
      await this.d.doc.send(
        new TransactWriteCommand({
          TransactItems: [
            { Put: { TableName: this.d.table, Item: { ...userAppCredKey(cred.user_id, cred.name), ...cred }, ConditionExpression: 'attribute_not_exists(PK)' } },
            { Put: { TableName: this.d.table, Item: { ...appCredKey(cred.id), ...cred }, ConditionExpression: 'attribute_not_exists(PK)' } },
            // The user still exists: a credential never outlives its user's deletion.
            { ConditionCheck: { TableName: this.d.table, Key: userKey(cred.user_id), ConditionExpression: 'attribute_exists(PK)' } },
          ],
        }),
      );
    } catch (err) {
      const failed = failedIndexes(err);
      if (failed.includes(2)) throw new NotFoundError(`Could not find user: ${cred.user_id}.`);
      if (failed.includes(0)) throw new ConflictError(`Conflict occurred attempting to store application_credential - Duplicate entry found with name ${cred.name}.`);
      translateTransactionError(err);
    }
  }

  async getAppCredential(id: string): Promise<AppCredentialRecord | undefined> {
    const item = await getItem(this.d, appCredKey(id));
    return item ? strip<AppCredentialRecord>(item) : undefined;
  }

  async listAppCredentials(userId: string): Promise<AppCredentialRecord[]> {
    const items = await queryAll(this.d, {
      KeyConditionExpression: 'PK = :pk AND begins_with(SK, :sk)',
      ExpressionAttributeValues: { ':pk': userKey(userId).PK, ':sk': 'APPCRED#' },
      ConsistentRead: true,
    });
    return items.map((i) => strip<AppCredentialRecord>(i));
  }

  async deleteAppCredential(cred: AppCredentialRecord): Promise<boolean> {
    try {
      await this.d.doc.send(
        new TransactWriteCommand({
          TransactItems: [
            { Delete: { TableName: this.d.table, Key: appCredKey(cred.id), ConditionExpression: 'attribute_exists(PK)' } },
            { Delete: { TableName: this.d.table, Key: userAppCredKey(cred.user_id, cred.name) } },
          ],
        }),
      );
      return true;
    } catch (err) {
      if (err instanceof TransactionCanceledException && failedIndexes(err).length > 0) return false;
      return translateTransactionError(err);
    }
  }
}
