import { Annotations, CfnOutput, Duration, RemovalPolicy, Stack, type StackProps, Validations } from 'aws-cdk-lib';
import { AttributeType, Billing, ProjectionType, TableV2 } from 'aws-cdk-lib/aws-dynamodb';
import { BlockPublicAccess, Bucket, BucketEncryption, ObjectOwnership } from 'aws-cdk-lib/aws-s3';
import { Key } from 'aws-cdk-lib/aws-kms';
import { EventBus } from 'aws-cdk-lib/aws-events';
import { Topic } from 'aws-cdk-lib/aws-sns';
import { EmailSubscription } from 'aws-cdk-lib/aws-sns-subscriptions';
import type { Construct } from 'constructs';
import { TABLE_INDEXES, TABLE_KEYS, TTL_ATTRIBUTE } from '#aws/dynamo/schema.ts';
import { BUCKET_PREFIXES, FETCHED_EXPIRY_DAYS } from '../constructs/access.ts';
import { deadLetterQueue } from '../constructs/alarms.ts';
import { deploymentName, deploymentOptions } from '../constructs/deployment.ts';

/**
 * The deployment's event bus (fixed, so rules written against it survive a redeploy; prefixed
 * with the deployment name, `slipway:deployment`, when there is one).
 */
export const EVENT_BUS_NAME = 'slipway';

/** How long rendered bootdata tarballs are kept: a node fetches its own while it deploys, and a redeploy renders new ones. */
export const BOOTDATA_EXPIRY_DAYS = 90;

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
  /** Seals the secrets the cloud holds (DESIGN.md §5), one encryption context per kind (layers/core/secrets.ts). */
  readonly secretsKey: Key;
  /** Lease notifications (`lease.create`, `lease.event.*`), for whatever rules the operator adds. */
  readonly eventBus: EventBus;
  /** Every alarm of every stack tells this topic; its subscription is `slipway:alarmEmail`. */
  readonly alarmTopic: Topic;

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
      description: 'Slipway: seals BMC passwords, SSH keys, node keys, config drives and tokens held in the table (one encryption context per kind)',
      enableKeyRotation: true,
      removalPolicy: RemovalPolicy.RETAIN,
    });

    // Here rather than with the lifecycle: operators' rules and archives attach to it, and they
    // must outlive a redeploy of the functions that publish.
    this.eventBus = new EventBus(this, 'EventBus', { eventBusName: deploymentName(this, EVENT_BUS_NAME) });

    // Here, with the data, because every other stack's alarms tell it and it must outlive them.
    this.alarmTopic = new Topic(this, 'AlarmTopic', { displayName: `Slipway alarms${deploymentOptions(this).prefix ? ` (${deploymentName(this, 'slipway')})` : ''}`, enforceSSL: true });
    Validations.of(this.alarmTopic).acknowledge({
      id: 'AwsSolutions-SNS2',
      reason:
        'Alarm notifications carry alarm names, states and metric values only (no lease, node or secret data); CloudWatch cannot publish to a topic under the AWS-managed SNS key, and a customer key for this text alone would cost a key per deployment.',
    });
    const email = deploymentOptions(this).alarmEmail;
    if (email) {
      // An e-mail that bounces for days is kept here rather than lost (Serverless-SNSRedrivePolicy).
      // No alarm on its depth: that alarm would mail through the very subscription that failed.
      const undelivered = deadLetterQueue(this, 'AlarmUndelivered', 'alarm e-mails SNS could not deliver');
      this.alarmTopic.addSubscription(new EmailSubscription(email, { deadLetterQueue: undelivered }));
    } else {
      Annotations.of(this).addWarningV2('slipway:alarmEmail', "slipway:alarmEmail is not set: alarms go to a topic nobody is subscribed to; set it (-c slipway:alarmEmail=ops@example.com) or subscribe to the AlarmTopic output");
    }
    new CfnOutput(this, 'AlarmTopicArn', { value: this.alarmTopic.topicArn, description: 'Every Slipway alarm publishes here (ALARM and OK)' });

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
      // Only rendered tarballs expire: they are rendered per deployment and fetched while it runs,
      // and a redeploy renders new ones, so old ones only cost money. Designs kept for s3://
      // references (designs/), task design snapshots (tasks/) and agent images (images/) are
      // the operator's records and stay; agents' large fetched bodies (fetched/) are transient. Interrupted uploads anywhere are cleaned up quickly.
      lifecycleRules: [
        { id: 'ExpireRenderedBootdata', prefix: BUCKET_PREFIXES.bootdata, expiration: Duration.days(BOOTDATA_EXPIRY_DAYS) },
        // Agents' uploads of large fetched bodies are deleted once read; this catches the rest.
        { id: 'ExpireFetchedUploads', prefix: BUCKET_PREFIXES.fetched, expiration: Duration.days(FETCHED_EXPIRY_DAYS) },
        { id: 'AbortIncompleteUploads', abortIncompleteMultipartUploadAfter: Duration.days(1) },
      ],
      removalPolicy: RemovalPolicy.RETAIN,
    });
  }
}
