import { Duration, RemovalPolicy, Stack, type StackProps, Validations } from 'aws-cdk-lib';
import { AttributeType, Billing, ProjectionType, TableV2 } from 'aws-cdk-lib/aws-dynamodb';
import { BlockPublicAccess, Bucket, BucketEncryption, ObjectOwnership } from 'aws-cdk-lib/aws-s3';
import { Key } from 'aws-cdk-lib/aws-kms';
import { EventBus } from 'aws-cdk-lib/aws-events';
import type { Construct } from 'constructs';
import { TABLE_INDEXES, TABLE_KEYS, TTL_ATTRIBUTE } from '#aws/dynamo/schema.ts';

/** The deployment's event bus (fixed, so rules written against it survive a redeploy). */
export const EVENT_BUS_NAME = 'slipway';

/**
 * Everything that holds data, in its own deploy unit (house style 8): a bad code deploy of a
 * stateless stack can never replace the table or the buckets. All data is RETAINed (the event
 * bus holds none: it goes with the stack).
 */
export class StatefulStack extends Stack {
  /** The single table (DESIGN.md §6); keys, indexes and TTL come from `layers/aws/dynamo/schema.ts`. */
  readonly table: TableV2;
  /** Bootdata tarballs, served to deploying nodes through presigned URLs only. */
  readonly bootdataBucket: Bucket;
  /** S3 server access logs of the bootdata bucket (who fetched which node's bootdata, and when). */
  readonly accessLogsBucket: Bucket;
  /** Seals the BMC passwords the cloud holds (DESIGN.md §5). */
  readonly secretsKey: Key;
  /** Lease notifications (`lease.create`, `lease.event.*`), for whatever rules the operator adds. */
  readonly eventBus: EventBus;

  constructor(scope: Construct, id: string, props?: StackProps) {
    super(scope, id, props);
    // Log delivery through a bucket policy, not the legacy LogDeliveryWrite ACL (ACLs stay disabled).
    this.node.setContext('@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy', true);

    const str = (name: string) => ({ name, type: AttributeType.STRING });
    this.table = new TableV2(this, 'Table', {
      partitionKey: str(TABLE_KEYS.partitionKey),
      sortKey: str(TABLE_KEYS.sortKey),
      billing: Billing.onDemand(),
      globalSecondaryIndexes: TABLE_INDEXES.map((ix) => ({
        indexName: ix.indexName,
        partitionKey: str(ix.partitionKey),
        sortKey: str(ix.sortKey),
        // The repositories read whole items from the indexes.
        projectionType: ProjectionType.ALL,
      })),
      timeToLiveAttribute: TTL_ATTRIBUTE,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      deletionProtection: true,
      removalPolicy: RemovalPolicy.RETAIN,
    });

    this.secretsKey = new Key(this, 'SecretsKey', {
      description: 'Slipway: seals BMC passwords held in the table',
      enableKeyRotation: true,
      removalPolicy: RemovalPolicy.RETAIN,
    });

    // Here rather than with the lifecycle: operators' rules and archives attach to it, and they
    // must outlive a redeploy of the functions that publish.
    this.eventBus = new EventBus(this, 'EventBus', { eventBusName: EVENT_BUS_NAME });

    this.accessLogsBucket = new Bucket(this, 'AccessLogs', {
      // Log delivery supports SSE-S3 only, not SSE-KMS.
      encryption: BucketEncryption.S3_MANAGED,
      blockPublicAccess: BlockPublicAccess.BLOCK_ALL,
      objectOwnership: ObjectOwnership.BUCKET_OWNER_ENFORCED,
      enforceSSL: true,
      lifecycleRules: [{ expiration: Duration.days(365) }],
      removalPolicy: RemovalPolicy.RETAIN,
    });
    Validations.of(this.accessLogsBucket).acknowledge({
      id: 'AwsSolutions-S1',
      reason: 'This is the server access log target; logging it into itself would log its own log writes without end.',
    });

    this.bootdataBucket = new Bucket(this, 'Bootdata', {
      encryption: BucketEncryption.S3_MANAGED,
      blockPublicAccess: BlockPublicAccess.BLOCK_ALL,
      objectOwnership: ObjectOwnership.BUCKET_OWNER_ENFORCED,
      enforceSSL: true,
      serverAccessLogsBucket: this.accessLogsBucket,
      serverAccessLogsPrefix: 'bootdata/',
      // Tarballs are rendered per deployment and fetched while it runs; a redeploy renders new
      // ones, so old objects only cost money. Interrupted uploads are cleaned up quickly.
      lifecycleRules: [{ expiration: Duration.days(90), abortIncompleteMultipartUploadAfter: Duration.days(1) }],
      removalPolicy: RemovalPolicy.RETAIN,
    });
  }
}
