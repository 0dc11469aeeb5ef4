import { PutCommand } from '@aws-sdk/lib-dynamodb';
import type { PropertyRecord, PropertyRepository } from '#core/ports.ts';
import { type Dynamo, queryAll } from './client.ts';

export const propertyKey = (resourceType: string, name: string) => ({ PK: `PROPERTY#${resourceType}`, SK: name });

export class DynamoPropertyRepository implements PropertyRepository {
  constructor(private readonly d: Dynamo) {}

  async list(resourceType: string): Promise<PropertyRecord[]> {
    const items = await queryAll(this.d, {
      KeyConditionExpression: 'PK = :p',
      ExpressionAttributeValues: { ':p': propertyKey(resourceType, '').PK },
      ConsistentRead: true,
    });
    return items.map(({ PK: _p, SK: _s, ...rest }) => rest as unknown as PropertyRecord);
  }

  async put(rec: PropertyRecord): Promise<void> {
    await this.d.doc.send(
      new PutCommand({ TableName: this.d.table, Item: { ...propertyKey(rec.resource_type, rec.property_name), ...rec } }),
    );
  }
}
