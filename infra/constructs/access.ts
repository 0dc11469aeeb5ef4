import type { ITableV2 } from 'aws-cdk-lib/aws-dynamodb';
import { PolicyStatement } from 'aws-cdk-lib/aws-iam';
import type { IKey } from 'aws-cdk-lib/aws-kms';
import { TABLE_INDEXES } from '#aws/dynamo/schema.ts';
import { contextOf, LEGACY_CONTEXT } from '#aws/kms-secrets.ts';
import type { SecretKind } from '#core/secrets.ts';
import type { LambdaEntry } from '../bundling.ts';

/**
 * What each function may do to the table and to the secrets key: least privilege per function
 * (issue 12), written out here for review and checked against the code by
 * test/infra/least-privilege.test.ts, which derives from each function's bundle the port methods
 * it calls, what those adapter methods read and write, and the kinds of secret it seals and
 * opens. Both directions fail that test: a grant the code does not need, and a need nothing
 * grants (which no local test would notice: DynamoDB Local and the local secret box enforce no
 * IAM).
 */

/**
 * Every partition-key prefix of the single table (layers/aws/dynamo/*: the key builders), or a
 * whole key where the partition is one item (`COUNTER#host`). The IAM conditions name these:
 * `dynamodb:LeadingKeys` is the partition key of every item a request touches.
 */
export const TABLE_PARTITIONS = [
  'TOKEN#',
  // Keystone users (by id and by name) and application credentials (layers/aws/dynamo/users.ts).
  'USER#',
  'USERNAME#',
  'APPCRED#',
  'IDEMP#',
  'NODE#',
  'NODENAME#',
  // A node's addresses and a host's capabilities, one lookup item each (issue 16: point reads).
  'NODEADDR#',
  'HOSTCAP#',
  'HOSTID#',
  'COUNTER#host',
  'BMPORT#',
  'BMPORTMAC#',
  'LEASE#',
  'USAGE#',
  'PROPERTY#',
  'JOB#',
  'AGENTS#',
  'COMM#CLUSTER#',
  'COMM#HOST#',
  'COMM#NETWORK#',
  'COMM#CM#',
  'DDTASK#',
  'DDSITE#',
  'DDDESIGN#',
  'DDBANODE#',
  'DDBA#',
] as const;
export type Partition = (typeof TABLE_PARTITIONS)[number];
export type IndexName = (typeof TABLE_INDEXES)[number]['indexName'];

export type ReadAction = 'GetItem' | 'BatchGetItem' | 'Query';
export type WriteAction = 'PutItem' | 'UpdateItem' | 'DeleteItem' | 'BatchWriteItem' | 'ConditionCheckItem';

export interface TableGrant {
  /** Read actions, on items of these partitions. */
  read: { actions: readonly ReadAction[]; partitions: readonly Partition[] };
  /** Write actions (and the condition checks of transactions), on items of these partitions. */
  write?: { actions: readonly WriteAction[]; partitions: readonly Partition[] };
  /** Indexes queried (an index query names no table partition; see `grantTable`). */
  indexes: readonly IndexName[];
}

/**
 * Per function. Every surface but `system` reads its caller's token (`TOKEN#`); those with
 * authenticated POST routes keep Idempotency-Key records (`IDEMP#`). A partition among the
 * writes is one a method that writes touches: such a method may read it too, so it is among the
 * reads as well. `system` (`GET /healthz`, anonymous) touches nothing.
 */
export const TABLE_GRANTS: Record<LambdaEntry, TableGrant | undefined> = {
  // Claims, heartbeats and results of every kind of job: the job, its node (deploy and erase
  // outcomes, inspection's ports), its lease (start and end steps), its Commissaire host.
  'functions/api/agent.ts': {
    // AGENTS#: whether the site has an agent, before a container manager's call is queued for it.
    read: { actions: ['GetItem', 'Query'], partitions: ['AGENTS#', 'BMPORT#', 'BMPORTMAC#', 'COMM#CLUSTER#', 'COMM#CM#', 'COMM#HOST#', 'HOSTCAP#', 'IDEMP#', 'JOB#', 'NODE#', 'NODEADDR#', 'NODENAME#', 'TOKEN#'] },
    write: {
      actions: ['ConditionCheckItem', 'DeleteItem', 'PutItem', 'UpdateItem'],
      partitions: ['AGENTS#', 'BMPORT#', 'BMPORTMAC#', 'COMM#HOST#', 'HOSTCAP#', 'IDEMP#', 'JOB#', 'NODE#', 'NODEADDR#', 'NODENAME#'],
    },
    indexes: ['GSI2'],
  },
  // Leases (with the node calendars and the project's usage), hosts (enrolment, the host id counter), properties.
  'functions/api/blazar.ts': {
    read: { actions: ['BatchGetItem', 'GetItem', 'Query'], partitions: ['HOSTCAP#', 'HOSTID#', 'IDEMP#', 'LEASE#', 'NODE#', 'NODEADDR#', 'NODENAME#', 'PROPERTY#', 'TOKEN#', 'USAGE#'] },
    write: {
      actions: ['DeleteItem', 'PutItem', 'UpdateItem'],
      partitions: ['COUNTER#host', 'HOSTCAP#', 'HOSTID#', 'IDEMP#', 'JOB#', 'LEASE#', 'NODE#', 'NODEADDR#', 'NODENAME#', 'PROPERTY#', 'USAGE#'],
    },
    indexes: ['GSI1', 'GSI3', 'GSI4', 'GSI5', 'GSI7'],
  },
  // Node-facing: a node's boot-action context and rows, and the task messages its reports append
  // (no authenticated POST, so no Idempotency-Key records). No node, lease or BMC.
  'functions/api/bootactions.ts': {
    read: { actions: ['BatchGetItem', 'GetItem'], partitions: ['DDBA#', 'DDBANODE#', 'TOKEN#'] },
    write: { actions: ['ConditionCheckItem', 'PutItem', 'UpdateItem'], partitions: ['DDBA#', 'DDTASK#'] },
    indexes: [],
  },
  // Clusters, hosts, networks, container managers; a host's inventory node and its agent jobs
  // (Commissaire's API is PUT and DELETE only: no Idempotency-Key records).
  'functions/api/commissaire.ts': {
    // AGENTS# and JOB#: a container manager inside a site is asked by its agent (a `fetch` job waited for).
    // USERNAME#: a user by name, for `Basic user:password` (layers/http/credentials.ts).
    read: { actions: ['BatchGetItem', 'GetItem', 'Query'], partitions: ['AGENTS#', 'COMM#CLUSTER#', 'COMM#CM#', 'COMM#HOST#', 'COMM#NETWORK#', 'HOSTCAP#', 'JOB#', 'NODE#', 'NODEADDR#', 'NODENAME#', 'TOKEN#', 'USERNAME#'] },
    write: {
      actions: ['DeleteItem', 'PutItem', 'UpdateItem'],
      partitions: ['COMM#CLUSTER#', 'COMM#CM#', 'COMM#HOST#', 'COMM#NETWORK#', 'HOSTCAP#', 'HOSTID#', 'JOB#', 'NODE#', 'NODEADDR#', 'NODENAME#'],
    },
    indexes: ['GSI3', 'GSI5'],
  },
  // Tasks and designs; reads nodes (node filters) and site configs; an agent `fetch` job for a
  // design inside a site (validatedesign, nodefilter), with its agents' presence. The workflow does the rest.
  'functions/api/drydock.ts': {
    read: { actions: ['BatchGetItem', 'GetItem', 'Query'], partitions: ['AGENTS#', 'DDDESIGN#', 'DDSITE#', 'DDTASK#', 'IDEMP#', 'JOB#', 'NODE#', 'TOKEN#'] },
    write: { actions: ['BatchWriteItem', 'DeleteItem', 'PutItem'], partitions: ['DDDESIGN#', 'DDTASK#', 'IDEMP#', 'JOB#'] },
    indexes: ['GSI1', 'GSI3'],
  },
  // Nodes and ports (with their name and MAC uniqueness items), the jobs their actions queue.
  // Keystone sign-in: tokens, users (by id and name), application credentials; the
  // Idempotency-Key records of its POSTs.
  'functions/api/identity.ts': {
    read: { actions: ['GetItem', 'Query'], partitions: ['APPCRED#', 'IDEMP#', 'TOKEN#', 'USER#', 'USERNAME#'] },
    write: { actions: ['ConditionCheckItem', 'DeleteItem', 'PutItem'], partitions: ['APPCRED#', 'IDEMP#', 'TOKEN#', 'USER#', 'USERNAME#'] },
    indexes: ['GSI3'],
  },
  'functions/api/ironic.ts': {
    read: { actions: ['BatchGetItem', 'GetItem', 'Query'], partitions: ['AGENTS#', 'BMPORT#', 'BMPORTMAC#', 'HOSTCAP#', 'IDEMP#', 'JOB#', 'NODE#', 'NODEADDR#', 'NODENAME#', 'TOKEN#'] },
    write: {
      actions: ['ConditionCheckItem', 'DeleteItem', 'PutItem', 'UpdateItem'],
      partitions: ['BMPORT#', 'BMPORTMAC#', 'HOSTCAP#', 'HOSTID#', 'IDEMP#', 'JOB#', 'NODE#', 'NODEADDR#', 'NODENAME#'],
    },
    indexes: ['GSI1', 'GSI10', 'GSI3', 'GSI5', 'GSI6', 'GSI7', 'GSI8', 'GSI9'],
  },
  // Tokens (the admin token routes), leases read, node actions of the native API; the sites view
  // (agents seen per site, the site's unfinished jobs in the offer index GSI2).
  'functions/api/native.ts': {
    read: { actions: ['BatchGetItem', 'GetItem', 'Query'], partitions: ['AGENTS#', 'HOSTCAP#', 'IDEMP#', 'LEASE#', 'NODE#', 'NODEADDR#', 'NODENAME#', 'TOKEN#'] },
    write: { actions: ['DeleteItem', 'PutItem', 'UpdateItem'], partitions: ['HOSTCAP#', 'IDEMP#', 'JOB#', 'NODE#', 'NODEADDR#', 'NODENAME#', 'TOKEN#'] },
    indexes: ['GSI1', 'GSI10', 'GSI2', 'GSI3', 'GSI5', 'GSI6', 'GSI7', 'GSI8', 'GSI9'],
  },
  'functions/api/system.ts': undefined,
  // The web console's page and files (functions/api/console.ts), built into the bundle: no table, no secret.
  'functions/api/console.ts': undefined,
  // One operation record per step, the cluster's lock and hostset, the host's node, one agent job.
  'functions/workflows/cluster-operations.ts': {
    read: { actions: ['GetItem'], partitions: ['COMM#CLUSTER#', 'COMM#HOST#', 'HOSTCAP#', 'NODE#', 'NODEADDR#', 'NODENAME#'] },
    write: { actions: ['DeleteItem', 'PutItem', 'UpdateItem'], partitions: ['COMM#CLUSTER#', 'HOSTCAP#', 'JOB#', 'NODE#', 'NODEADDR#', 'NODENAME#'] },
    indexes: [],
  },
  // Prepare: the task and its subtasks, stored designs; an agent `fetch` job for a design inside a site (and its agents' presence).
  'functions/workflows/drydock-prepare.ts': {
    read: { actions: ['GetItem', 'Query'], partitions: ['AGENTS#', 'DDDESIGN#', 'DDTASK#', 'JOB#'] },
    write: { actions: ['BatchWriteItem', 'PutItem'], partitions: ['DDTASK#', 'JOB#'] },
    indexes: [],
  },
  // The later steps: tasks, site slots, boot-action contexts; node registration (nodes, ports) and agent jobs.
  'functions/workflows/drydock-tasks.ts': {
    read: {
      actions: ['BatchGetItem', 'GetItem', 'Query'],
      partitions: ['AGENTS#', 'BMPORT#', 'BMPORTMAC#', 'DDBA#', 'DDBANODE#', 'DDSITE#', 'DDTASK#', 'HOSTCAP#', 'JOB#', 'NODE#', 'NODEADDR#', 'NODENAME#'],
    },
    write: {
      actions: ['BatchWriteItem', 'ConditionCheckItem', 'DeleteItem', 'PutItem', 'UpdateItem'],
      partitions: ['BMPORT#', 'BMPORTMAC#', 'DDBA#', 'DDBANODE#', 'DDSITE#', 'DDTASK#', 'HOSTCAP#', 'HOSTID#', 'JOB#', 'NODE#', 'NODEADDR#', 'NODENAME#'],
    },
    indexes: ['GSI1', 'GSI2'],
  },
  // A lease's events and reservations, its nodes' calendars, its project's usage, agent jobs.
  'functions/workflows/lease-events.ts': {
    read: { actions: ['BatchGetItem', 'GetItem', 'Query'], partitions: ['HOSTCAP#', 'LEASE#', 'NODE#', 'NODEADDR#', 'NODENAME#', 'USAGE#'] },
    write: { actions: ['DeleteItem', 'PutItem', 'UpdateItem'], partitions: ['HOSTCAP#', 'JOB#', 'LEASE#', 'NODE#', 'NODEADDR#', 'NODENAME#', 'USAGE#'] },
    indexes: ['GSI1', 'GSI3', 'GSI4', 'GSI5'],
  },
  // Due and stale events, calendars it reconciles, agents seen per site (the silent-site metric).
  'functions/workflows/sweeper.ts': {
    read: { actions: ['BatchGetItem', 'GetItem', 'Query'], partitions: ['AGENTS#', 'HOSTCAP#', 'LEASE#', 'NODE#', 'NODEADDR#', 'NODENAME#', 'USAGE#'] },
    write: { actions: ['DeleteItem', 'PutItem', 'UpdateItem'], partitions: ['HOSTCAP#', 'JOB#', 'LEASE#', 'NODE#', 'NODEADDR#', 'NODENAME#', 'USAGE#'] },
    indexes: ['GSI1', 'GSI10', 'GSI2', 'GSI3', 'GSI4', 'GSI5', 'GSI6', 'GSI7', 'GSI8', 'GSI9'],
  },
};

/** A partition as a `dynamodb:LeadingKeys` pattern: a prefix matches every key it starts, a whole key itself. */
export const leadingKeyPattern = (p: Partition): string => (p.endsWith('#') ? `${p}*` : p);

/**
 * The grant: read and write statements on the table's items, each limited to its partitions by
 * `dynamodb:LeadingKeys`, and Query on the named indexes only. The index statement has no
 * LeadingKeys condition: an index query names the index's partition (`EVENTS#UNDONE`), not the
 * table's, and AWS does not document which of the two that condition key then holds.
 */
export function tableStatements(table: ITableV2, grant: TableGrant): PolicyStatement[] {
  const onPartitions = (partitions: readonly Partition[]) => ({ 'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': partitions.map(leadingKeyPattern) } });
  const out = [
    new PolicyStatement({ actions: grant.read.actions.map((a) => `dynamodb:${a}`), resources: [table.tableArn], conditions: onPartitions(grant.read.partitions) }),
  ];
  if (grant.write) {
    out.push(new PolicyStatement({ actions: grant.write.actions.map((a) => `dynamodb:${a}`), resources: [table.tableArn], conditions: onPartitions(grant.write.partitions) }));
  }
  if (grant.indexes.length > 0) {
    out.push(new PolicyStatement({ actions: ['dynamodb:Query'], resources: grant.indexes.map((ix) => `${table.tableArn}/index/${ix}`) }));
  }
  return out;
}

export interface SecretGrant {
  seal: readonly SecretKind[];
  open: readonly SecretKind[];
}

/**
 * The kinds of secret each function seals and opens (layers/core/secrets.ts). Sealing needs
 * kms:Encrypt (short secrets) and kms:GenerateDataKey (envelopes, for what exceeds KMS's 4 KiB:
 * SSH keys, config drives), opening kms:Decrypt — each only with the encryption contexts of those
 * kinds. So the boot-action function, which opens node keys, cannot open a BMC password; only the
 * agent API, which hands them to the site's agent in a claimed job, can.
 */
export const SECRET_GRANTS: Record<LambdaEntry, SecretGrant | undefined> = {
  // Every secret an agent job carries: BMC passwords, SSH keys, node keys, config drives; container
  // manager tokens for Commissaire's node registration. It seals nothing (the lease code that
  // seals a config drive runs in the sweeper and the lease-event steps).
  'functions/api/agent.ts': { seal: [], open: ['bmc-password', 'config-drive', 'node-key', 'ssh-key', 'container-manager-token'] },
  // A lease's config drive (slipway:config_drive), sealed when the lease is written.
  'functions/api/blazar.ts': { seal: ['config-drive'], open: [] },
  // The boot-action admin view and the node's own bootdata: node keys only.
  'functions/api/bootactions.ts': { seal: [], open: ['node-key'] },
  // Hosts' SSH keys (sealed at registration, opened for `GET …/creds`) and container manager tokens.
  'functions/api/commissaire.ts': { seal: ['ssh-key', 'container-manager-token'], open: ['ssh-key', 'container-manager-token'] },
  'functions/api/drydock.ts': undefined,
  // An application credential's secret in its Idempotency-Key replay.
  'functions/api/identity.ts': { seal: ['idempotent-reply'], open: ['idempotent-reply'] },
  // driver_info passwords and a deploy's config drive, sealed on the way in; never opened here.
  'functions/api/ironic.ts': { seal: ['bmc-password', 'config-drive'], open: [] },
  // A new token's secret in its Idempotency-Key replay; a node deploy's config drive.
  'functions/api/native.ts': { seal: ['config-drive', 'idempotent-reply'], open: ['idempotent-reply'] },
  'functions/api/system.ts': undefined,
  // The web console's page and files (functions/api/console.ts), built into the bundle: no table, no secret.
  'functions/api/console.ts': undefined,
  'functions/workflows/cluster-operations.ts': undefined,
  // Prepare reads designs (an agent `fetch` job carries no secret).
  'functions/workflows/drydock-prepare.ts': undefined,
  // Node registration seals BMC passwords and opens the stored ones; rendering seals node keys.
  'functions/workflows/drydock-tasks.ts': { seal: ['bmc-password', 'node-key'], open: ['bmc-password'] },
  // A lease's start deploy seals a config drive given in plain (an Ironic-style deploy path).
  'functions/workflows/lease-events.ts': { seal: ['config-drive'], open: [] },
  'functions/workflows/sweeper.ts': { seal: ['config-drive'], open: [] },
};

export const SEAL_ACTIONS = ['kms:Encrypt', 'kms:GenerateDataKey'];
export const OPEN_ACTIONS = ['kms:Decrypt'];

/**
 * The grant on the secrets key: each action with a `kms:EncryptionContext:purpose` condition
 * naming the kinds. With `legacySecrets`, opening also accepts the one context of the secrets
 * sealed before kinds existed (kms-secrets.ts), for every function that opens any kind.
 */
export function secretStatements(key: IKey, grant: SecretGrant, legacySecrets: boolean): PolicyStatement[] {
  const purposes = (kinds: readonly SecretKind[]) => kinds.map((k) => contextOf(k).purpose);
  const out: PolicyStatement[] = [];
  if (grant.seal.length > 0) {
    out.push(new PolicyStatement({ actions: SEAL_ACTIONS, resources: [key.keyArn], conditions: { StringEquals: { 'kms:EncryptionContext:purpose': purposes(grant.seal) } } }));
  }
  if (grant.open.length > 0) {
    const open = [...purposes(grant.open), ...(legacySecrets ? [LEGACY_CONTEXT.purpose] : [])];
    out.push(new PolicyStatement({ actions: OPEN_ACTIONS, resources: [key.keyArn], conditions: { StringEquals: { 'kms:EncryptionContext:purpose': open } } }));
  }
  return out;
}

/** Where in the bootdata bucket what lives (layers/core: drydock tasks, boot actions, agent images). */
export const BUCKET_PREFIXES = {
  /** Rendered tarballs, `bootdata/<task>/<node>/{units,files}.tar.gz`: disposable, re-rendered by the next deploy. */
  bootdata: 'bootdata/',
  /** Design snapshots of tasks, `tasks/<task>/design.json`: kept (a task's record of what it deployed). */
  taskSnapshots: 'tasks/',
  /** Designs the operator keeps for `s3://<bucket>/designs/…` design references. */
  designs: 'designs/',
  /** OS images for the agents, `images/<name>`. */
  images: 'images/',
  /**
   * Bodies a site's agent fetched that were too large for its job's result (designs, assets),
   * `fetched/<uuid>`: read back and deleted at once by the function that asked (agent/fetch.ts);
   * what a crash leaves expires after a day.
   */
  fetched: 'fetched/',
} as const;

/** Days before an abandoned upload under `fetched/` expires. */
export const FETCHED_EXPIRY_DAYS = 1;

/**
 * A function that asks agents for designs or assets (`bucketUploads`): presigns the agent's PUT
 * (a presigned URL carries the signer's permissions), reads the object back and deletes it.
 */
export const FETCHED_ACTIONS = ['s3:PutObject', 's3:GetObject', 's3:DeleteObject'] as const;

/** `arn/prefix*`, for object grants under one prefix. */
export const objectsUnder = (bucketArn: string, prefix: string) => `${bucketArn}/${prefix}*`;
