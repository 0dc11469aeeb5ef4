import { TransactionCanceledException } from '@aws-sdk/client-dynamodb';
import {
  BatchGetCommand,
  BatchWriteCommand,
  DeleteCommand,
  GetCommand,
  PutCommand,
  QueryCommand,
  TransactWriteCommand,
  type TransactWriteCommandInput,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import type {} from '#core/drydock/bootactions/report.ts';
import { monotonicUlid } from '#core/drydock/bootactions/ulid.ts';
import type { BootActionContext, BootActionRecord, DesignPart, DrydockRepository, ListWindowQuery, SiteConfig, StoredDesign } from '#core/drydock/store.ts';
import type { BuildData, TaskMessage, TaskRecord } from '#core/drydock/tasks/model.ts';
import { ConcurrentModificationError, ConflictError } from '#core/errors.ts';
import { type Dynamo, failedIndexes, isConditionFailure, queryAll } from './client.ts';
import { queryWindow } from './window.ts';

/**
 * Key builders for Drydock's entities (the only place these keys are spelled). A task's
 * messages and build data live in the task's partition, so purging a task finds them all with
 * one query and no index.
 */
export const ddTaskKey = (id: string) => ({ PK: `DDTASK#${id}`, SK: 'META' });
/** Message sort keys are monotonic ULIDs: insertion order inside one call and across calls. */
export const ddMessageKey = (taskId: string, seq: string) => ({ PK: `DDTASK#${taskId}`, SK: `MSG#${seq}` });
export const ddBuildKey = (taskId: string, collected: string, node: string, seq: string) => ({
  PK: `DDTASK#${taskId}`,
  SK: `BUILD#${collected}#${node}#${seq}`,
});
/** GSI1: a node's build data across tasks, by collection time. */
export const ddBuildNodePk = (node: string) => `DD#BUILD#${node}`;
export const ddBuildByNode = (node: string, collected: string, taskId: string, seq: string) => ({
  GSI1PK: ddBuildNodePk(node),
  GSI1SK: `${collected}#${taskId}#${seq}`,
});
/** GSI3: every task, subtasks included, oldest first. */
export const DD_TASK_LIST = 'DD#TASKS';
export const ddTaskListed = (t: Pick<TaskRecord, 'created' | 'task_id'>) => ({ GSI3PK: DD_TASK_LIST, GSI3SK: `${t.created}#${t.task_id}` });
/**
 * GSI1: a project's tasks (subtasks included), oldest first, so that a project's `GET /tasks`
 * reads its own page and not every task of the site. Site tasks (no project) are only in GSI3.
 * Task items have no other GSI1 use (build data are items of their own).
 */
export const ddProjectTasksPk = (project: string) => `${DD_TASK_LIST}#${project}`;
export const ddTaskOfProject = (t: Pick<TaskRecord, 'created' | 'task_id' | 'project_id'>) =>
  t.project_id ? { GSI1PK: ddProjectTasksPk(t.project_id), GSI1SK: `${t.created}#${t.task_id}` } : {};
/**
 * The site's task queue (sparse): a top-level task whose site is known is in it while queued or
 * running, in creation order, so a task can see how many older ones are ahead of it.
 */
export const ddTaskQueuePk = (site: string) => `DD#QUEUE#${site}`;
const ddTaskQueueSk = (t: Pick<TaskRecord, 'created' | 'task_id'>) => `${t.created}#${t.task_id}`;
export const ddTaskQueued = (t: TaskRecord) =>
  t.parent_task_id === null && t.site && (t.status === 'queued' || t.status === 'running') ? { GSI2PK: ddTaskQueuePk(t.site), GSI2SK: ddTaskQueueSk(t) } : {};
export const DD_DESIGN_LIST = 'DD#DESIGNS';
export const ddDesignListed = (d: Pick<StoredDesign, 'created' | 'design_id'>) => ({ GSI3PK: DD_DESIGN_LIST, GSI3SK: `${d.created}#${d.design_id}` });
/** GSI1: a project's stored designs, oldest first (site designs are only in GSI3). */
export const ddProjectDesignsPk = (project: string) => `${DD_DESIGN_LIST}#${project}`;
export const ddDesignOfProject = (d: Pick<StoredDesign, 'created' | 'design_id' | 'project_id'>) =>
  d.project_id ? { GSI1PK: ddProjectDesignsPk(d.project_id), GSI1SK: `${d.created}#${d.design_id}` } : {};
export const ddSiteKey = (site: string) => ({ PK: `DDSITE#${site}`, SK: 'SLOTS' });
export const ddSiteConfigKey = (site: string) => ({ PK: `DDSITE#${site}`, SK: 'CONFIG' });
export const ddDesignKey = (id: string) => ({ PK: `DDDESIGN#${id}`, SK: 'META' });
export const ddDesignPartKey = (designId: string, partId: string) => ({ PK: `DDDESIGN#${designId}`, SK: `PART#${partId}` });
export const ddBootContextKey = (node: string) => ({ PK: `DDBANODE#${node}`, SK: 'META' });
export const ddBootActionKey = (actionId: string) => ({ PK: `DDBA#${actionId}`, SK: 'META' });

/** A task's item with its list keys (exported for bulk loads: the bench seeds with it). */
export const ddTaskItem = (t: TaskRecord): Record<string, unknown> => ({
  ...ddTaskKey(t.task_id),
  ...ddTaskListed(t),
  ...ddTaskOfProject(t),
  ...ddTaskQueued(t),
  entity: 'drydock_task',
  ...t,
});
/** A stored design's item with its list keys. */
export const ddDesignItem = (d: StoredDesign): Record<string, unknown> => ({ ...ddDesignKey(d.design_id), ...ddDesignListed(d), ...ddDesignOfProject(d), entity: 'drydock_design', ...d });

const STRIP = new Set(['PK', 'SK', 'GSI1PK', 'GSI1SK', 'GSI2PK', 'GSI2SK', 'GSI3PK', 'GSI3SK', 'entity']);
const strip = <T>(item: Record<string, unknown>): T => Object.fromEntries(Object.entries(item).filter(([k]) => !STRIP.has(k))) as T;

type Key = { PK: string; SK: string };
type TransactItem = NonNullable<TransactWriteCommandInput['TransactItems']>[number];
/** Tries of a report transaction that collided with another writer of the same action row. */
const REPORT_ATTEMPTS = 5;
type WriteRequest = { PutRequest: { Item: Record<string, unknown> } } | { DeleteRequest: { Key: Key } };

/** Parallel writes per call (putSubtasks): enough to be quick, few enough not to throttle. */
const PUT_CONCURRENCY = 16;

export class DynamoDrydockRepository implements DrydockRepository {
  /** Per-repository (per-process) generator: sort keys that strictly increase in this process. */
  private readonly seq = monotonicUlid();

  constructor(private readonly d: Dynamo) {}

  private async getItem(key: Key): Promise<Record<string, unknown> | undefined> {
    const res = await this.d.doc.send(new GetCommand({ TableName: this.d.table, Key: key, ConsistentRead: true }));
    return res.Item;
  }

  /** BatchGetItem in pages of 100, retrying unprocessed keys. Missing items are left out. */
  private async batchGet(keys: readonly Key[]): Promise<Record<string, unknown>[]> {
    const out: Record<string, unknown>[] = [];
    const unique = [...new Map(keys.map((k) => [`${k.PK}\n${k.SK}`, k])).values()];
    for (let i = 0; i < unique.length; i += 100) {
      let pending: Record<string, unknown>[] = unique.slice(i, i + 100);
      while (pending.length > 0) {
        const res = await this.d.doc.send(new BatchGetCommand({ RequestItems: { [this.d.table]: { Keys: pending, ConsistentRead: true } } }));
        out.push(...(res.Responses?.[this.d.table] ?? []));
        pending = res.UnprocessedKeys?.[this.d.table]?.Keys ?? [];
      }
    }
    return out;
  }

  /** BatchWriteItem in pages of 25, retrying unprocessed requests (with a short backoff). */
  private async batchWrite(requests: readonly WriteRequest[]): Promise<void> {
    for (let i = 0; i < requests.length; i += 25) {
      let pending = requests.slice(i, i + 25) as WriteRequest[];
      for (let attempt = 0; pending.length > 0; attempt++) {
        if (attempt > 0) await new Promise((r) => setTimeout(r, Math.min(1000, 20 * 2 ** attempt)));
        const res = await this.d.doc.send(new BatchWriteCommand({ RequestItems: { [this.d.table]: pending } }));
        pending = (res.UnprocessedItems?.[this.d.table] ?? []) as WriteRequest[];
      }
    }
  }

  private partition(pk: string, skPrefix?: string): Promise<Record<string, unknown>[]> {
    return queryAll(this.d, {
      KeyConditionExpression: skPrefix ? 'PK = :pk AND begins_with(SK, :sk)' : 'PK = :pk',
      ExpressionAttributeValues: skPrefix ? { ':pk': pk, ':sk': skPrefix } : { ':pk': pk },
      ConsistentRead: true,
    });
  }

  private taskItem(t: TaskRecord): Record<string, unknown> {
    return ddTaskItem(t);
  }

  /**
   * A window of a list partition (every task or design on GSI3, a project's on GSI1): one query
   * of at most `limit` items from the start, after a position, or the newest ones; oldest first.
   */
  private listWindow(list: string, projectList: (p: string) => string, w: ListWindowQuery): Promise<Record<string, unknown>[]> {
    const after = w.after ? `${w.after.created}#${w.after.id}` : undefined;
    const window = { limit: w.limit, newest: !after && w.newest };
    if (w.project !== undefined) {
      return queryWindow(
        this.d,
        {
          IndexName: 'GSI1',
          KeyConditionExpression: after ? 'GSI1PK = :p AND GSI1SK > :a' : 'GSI1PK = :p',
          ExpressionAttributeValues: after ? { ':p': projectList(w.project), ':a': after } : { ':p': projectList(w.project) },
        },
        window,
      );
    }
    return queryWindow(
      this.d,
      {
        IndexName: 'GSI3',
        KeyConditionExpression: after ? 'GSI3PK = :p AND GSI3SK > :a' : 'GSI3PK = :p',
        ExpressionAttributeValues: after ? { ':p': list, ':a': after } : { ':p': list },
      },
      window,
    );
  }

  // --- tasks ----------------------------------------------------------------------------------

  async createTask(task: TaskRecord): Promise<void> {
    try {
      await this.d.doc.send(new PutCommand({ TableName: this.d.table, Item: this.taskItem(task), ConditionExpression: 'attribute_not_exists(PK)' }));
    } catch (err) {
      if (isConditionFailure(err)) throw new ConflictError(`Task ${task.task_id} already exists`);
      throw err;
    }
  }

  async putSubtasks(subtasks: readonly TaskRecord[]): Promise<void> {
    // One conditional put each (BatchWrite has no conditions): an existing subtask was created
    // by an earlier run of the same workflow step and may have moved on, so it is kept as is.
    const put = async (t: TaskRecord) => {
      try {
        await this.d.doc.send(new PutCommand({ TableName: this.d.table, Item: this.taskItem(t), ConditionExpression: 'attribute_not_exists(PK)' }));
      } catch (err) {
        if (!isConditionFailure(err)) throw err;
      }
    };
    for (let i = 0; i < subtasks.length; i += PUT_CONCURRENCY) await Promise.all(subtasks.slice(i, i + PUT_CONCURRENCY).map(put));
  }

  async getTask(id: string): Promise<TaskRecord | undefined> {
    const item = await this.getItem(ddTaskKey(id));
    return item ? strip<TaskRecord>(item) : undefined;
  }

  async getTasks(ids: readonly string[]): Promise<TaskRecord[]> {
    return (await this.batchGet(ids.map(ddTaskKey))).map((it) => strip<TaskRecord>(it));
  }

  async taskWindow(w: ListWindowQuery): Promise<TaskRecord[]> {
    return (await this.listWindow(DD_TASK_LIST, ddProjectTasksPk, w)).map((it) => strip<TaskRecord>(it));
  }

  async listTasks(): Promise<TaskRecord[]> {
    const items = await queryAll(this.d, { IndexName: 'GSI3', KeyConditionExpression: 'GSI3PK = :p', ExpressionAttributeValues: { ':p': DD_TASK_LIST } });
    return items.map((it) => strip<TaskRecord>(it));
  }

  /**
   * One-off backfill (issue 16): project tasks and designs written before the project lists had
   * their GSI1 keys get them, so that a project's `GET /tasks` and `GET /designs` find them.
   * A task gets them anyway at its next write; finished ones are never written again. Reads the
   * two site lists once, page by page (the filter drops the items that need nothing), and writes
   * only items still without the keys, so a rerun or a racing write is harmless. Returns how many
   * items it updated.
   */
  async backfillProjectLists(): Promise<number> {
    let updated = 0;
    const lists: [string, (it: Record<string, unknown>) => { PK: string; SK: string }, (it: Record<string, unknown>) => Record<string, unknown>][] = [
      [DD_TASK_LIST, (it) => ddTaskKey(String(it.task_id)), (it) => ddTaskOfProject(it as unknown as TaskRecord)],
      [DD_DESIGN_LIST, (it) => ddDesignKey(String(it.design_id)), (it) => ddDesignOfProject(it as unknown as StoredDesign)],
    ];
    for (const [list, keyOf, keysOf] of lists) {
      let start: Record<string, unknown> | undefined;
      do {
        const res = await this.d.doc.send(
          new QueryCommand({
            TableName: this.d.table,
            IndexName: 'GSI3',
            KeyConditionExpression: 'GSI3PK = :p',
            FilterExpression: 'attribute_type(project_id, :s) AND attribute_not_exists(GSI1PK)',
            ExpressionAttributeValues: { ':p': list, ':s': 'S' },
            ExclusiveStartKey: start,
          }),
        );
        for (const it of res.Items ?? []) {
          const keys = keysOf(it);
          if (!keys.GSI1PK) continue;
          try {
            await this.d.doc.send(
              new UpdateCommand({
                TableName: this.d.table,
                Key: keyOf(it),
                UpdateExpression: 'SET GSI1PK = :pk, GSI1SK = :sk',
                ConditionExpression: 'attribute_exists(PK) AND attribute_not_exists(GSI1PK)',
                ExpressionAttributeValues: { ':pk': keys.GSI1PK, ':sk': keys.GSI1SK },
              }),
            );
            updated++;
          } catch (err) {
            if (!isConditionFailure(err)) throw err; // gone, or rewritten with the keys meanwhile
          }
        }
        start = res.LastEvaluatedKey;
      } while (start);
    }
    return updated;
  }

  async updateTask(expected: TaskRecord, next: Omit<TaskRecord, 'version'>): Promise<TaskRecord> {
    // The whole record is replaced (the use-cases compute it from the one they read); the
    // version the caller read is the guard, so a lost race is a ConcurrentModificationError.
    const record: TaskRecord = { ...next, task_id: expected.task_id, version: expected.version + 1 };
    try {
      await this.d.doc.send(
        new PutCommand({
          TableName: this.d.table,
          Item: this.taskItem(record),
          ConditionExpression: '#ver = :v',
          ExpressionAttributeNames: { '#ver': 'version' },
          ExpressionAttributeValues: { ':v': expected.version },
        }),
      );
    } catch (err) {
      if (isConditionFailure(err)) throw new ConcurrentModificationError();
      throw err;
    }
    return record;
  }

  async tasksAhead(site: string, task: Pick<TaskRecord, 'created' | 'task_id'>, limit: number): Promise<{ task_id: string; created: string }[]> {
    const res = await this.d.doc.send(
      new QueryCommand({
        TableName: this.d.table,
        IndexName: 'GSI2',
        KeyConditionExpression: 'GSI2PK = :p AND GSI2SK < :me',
        ExpressionAttributeValues: { ':p': ddTaskQueuePk(site), ':me': ddTaskQueueSk(task) },
        ProjectionExpression: 'task_id, created',
        Limit: limit,
      }),
    );
    return (res.Items ?? []).map((i) => ({ task_id: String(i.task_id), created: String(i.created) }));
  }

  async addMessages(taskId: string, messages: readonly TaskMessage[]): Promise<void> {
    // Keys are taken in array order from the monotonic generator before any write, so the
    // order survives the batch writes' arbitrary order.
    await this.batchWrite(messages.map((m) => ({ PutRequest: { Item: { ...ddMessageKey(taskId, this.seq()), ...m } } })));
  }

  async messages(taskId: string): Promise<TaskMessage[]> {
    return (await this.partition(ddTaskKey(taskId).PK, 'MSG#')).map((it) => strip<TaskMessage>(it));
  }

  async addBuildData(rec: BuildData): Promise<void> {
    const seq = this.seq();
    await this.d.doc.send(
      new PutCommand({
        TableName: this.d.table,
        Item: {
          ...ddBuildKey(rec.task_id, rec.collected_date, rec.node_name, seq),
          ...ddBuildByNode(rec.node_name, rec.collected_date, rec.task_id, seq),
          ...rec,
        },
      }),
    );
  }

  async buildDataOfTask(taskId: string): Promise<BuildData[]> {
    return (await this.partition(ddTaskKey(taskId).PK, 'BUILD#')).map((it) => strip<BuildData>(it));
  }

  async buildDataOfNode(nodeName: string): Promise<BuildData[]> {
    const items = await queryAll(this.d, {
      IndexName: 'GSI1',
      KeyConditionExpression: 'GSI1PK = :p',
      ExpressionAttributeValues: { ':p': ddBuildNodePk(nodeName) },
    });
    return items.map((it) => strip<BuildData>(it));
  }

  async purgeTasks(before: Date): Promise<number> {
    // The task list is sorted by creation time, so the old tasks are one key range.
    const old = (
      await queryAll(this.d, {
        IndexName: 'GSI3',
        KeyConditionExpression: 'GSI3PK = :p AND GSI3SK < :b',
        ExpressionAttributeValues: { ':p': DD_TASK_LIST, ':b': before.toISOString() },
      })
    ).map((it) => strip<TaskRecord>(it));
    const roots = old.filter((t) => t.parent_task_id === null && (t.status === 'complete' || t.status === 'terminated'));

    // Subtasks of any depth, found through the lists (the index is eventually consistent and a
    // subtask may be newer than `before`).
    const doomed = new Set(roots.map((t) => t.task_id));
    let frontier = roots.flatMap((t) => t.subtask_id_list ?? []);
    while (frontier.length > 0) {
      const fresh = [...new Set(frontier)].filter((id) => !doomed.has(id));
      fresh.forEach((id) => doomed.add(id));
      frontier = (await this.getTasks(fresh)).flatMap((t) => t.subtask_id_list ?? []);
    }

    let deleted = 0;
    for (const id of doomed) {
      const items = await queryAll<Key>(this.d, {
        KeyConditionExpression: 'PK = :pk',
        ExpressionAttributeValues: { ':pk': ddTaskKey(id).PK },
        ProjectionExpression: 'PK, SK',
        ConsistentRead: true,
      });
      // The task record goes last, so an interrupted purge leaves a task the next one finds.
      const meta = items.filter((k) => k.SK === 'META');
      await this.batchWrite(items.filter((k) => k.SK !== 'META').map((k) => ({ DeleteRequest: { Key: { PK: k.PK, SK: k.SK } } })));
      await this.batchWrite(meta.map((k) => ({ DeleteRequest: { Key: { PK: k.PK, SK: k.SK } } })));
      deleted += meta.length;
    }
    return deleted;
  }

  // --- site slots -----------------------------------------------------------------------------

  async acquireSite(site: string, taskId: string, max: number): Promise<boolean> {
    // The write is the check: DynamoDB evaluates the condition and adds to the set atomically,
    // so of concurrent acquirers no more than `max` get in.
    try {
      await this.d.doc.send(
        new UpdateCommand({
          TableName: this.d.table,
          Key: ddSiteKey(site),
          UpdateExpression: 'ADD #h :t',
          ConditionExpression: 'attribute_not_exists(#h) OR size(#h) < :max OR contains(#h, :id)',
          ExpressionAttributeNames: { '#h': 'holders' },
          ExpressionAttributeValues: { ':t': new Set([taskId]), ':max': max, ':id': taskId },
        }),
      );
      return true;
    } catch (err) {
      if (isConditionFailure(err)) return false;
      throw err;
    }
  }

  async releaseSite(site: string, taskId: string): Promise<void> {
    // DynamoDB drops the set when its last member goes. The condition keeps a release of a slot
    // not held from creating an empty slots item.
    try {
      await this.d.doc.send(
        new UpdateCommand({
          TableName: this.d.table,
          Key: ddSiteKey(site),
          UpdateExpression: 'DELETE #h :t',
          ConditionExpression: 'contains(#h, :id)',
          ExpressionAttributeNames: { '#h': 'holders' },
          ExpressionAttributeValues: { ':t': new Set([taskId]), ':id': taskId },
        }),
      );
    } catch (err) {
      if (!isConditionFailure(err)) throw err;
    }
  }

  async siteHolders(site: string): Promise<string[]> {
    const item = await this.getItem(ddSiteKey(site));
    const holders = item?.holders as Set<string> | undefined;
    return holders ? [...holders].sort() : [];
  }

  // --- designs --------------------------------------------------------------------------------

  async createDesign(design: StoredDesign): Promise<void> {
    try {
      await this.d.doc.send(
        new PutCommand({
          TableName: this.d.table,
          Item: ddDesignItem(design),
          ConditionExpression: 'attribute_not_exists(PK)',
        }),
      );
    } catch (err) {
      if (isConditionFailure(err)) throw new ConflictError(`Design ${design.design_id} already exists`);
      throw err;
    }
  }

  async getDesign(id: string): Promise<StoredDesign | undefined> {
    const item = await this.getItem(ddDesignKey(id));
    return item ? strip<StoredDesign>(item) : undefined;
  }

  async designWindow(w: ListWindowQuery): Promise<StoredDesign[]> {
    return (await this.listWindow(DD_DESIGN_LIST, ddProjectDesignsPk, w)).map((it) => strip<StoredDesign>(it));
  }

  async addDesignPart(part: DesignPart): Promise<void> {
    await this.d.doc.send(new PutCommand({ TableName: this.d.table, Item: { ...ddDesignPartKey(part.design_id, part.part_id), entity: 'drydock_design_part', ...part } }));
  }

  async designParts(designId: string): Promise<DesignPart[]> {
    return (await this.partition(ddDesignKey(designId).PK, 'PART#')).map((it) => strip<DesignPart>(it));
  }

  // --- boot actions ---------------------------------------------------------------------------

  async putBootActionContext(ctx: BootActionContext, actions: readonly BootActionRecord[]): Promise<void> {
    // The new rows first, so a context that can be read never names rows that are not there.
    await this.batchWrite(actions.map((a) => ({ PutRequest: { Item: { ...ddBootActionKey(a.action_id), entity: 'drydock_boot_action', ...a } } })));
    // ALL_OLD hands each writer exactly the context it replaced, so even concurrent
    // deployments of one node each delete their predecessor's rows and no stale id survives.
    const res = await this.d.doc.send(
      new PutCommand({ TableName: this.d.table, Item: { ...ddBootContextKey(ctx.node_name), entity: 'drydock_boot_context', ...ctx }, ReturnValues: 'ALL_OLD' }),
    );
    const keep = new Set(ctx.action_ids);
    const old = ((res.Attributes?.action_ids as string[] | undefined) ?? []).filter((id) => !keep.has(id));
    await this.batchWrite(old.map((id) => ({ DeleteRequest: { Key: ddBootActionKey(id) } })));
  }

  async getBootActionContext(nodeName: string): Promise<BootActionContext | undefined> {
    const item = await this.getItem(ddBootContextKey(nodeName));
    return item ? strip<BootActionContext>(item) : undefined;
  }

  async getBootAction(actionId: string): Promise<BootActionRecord | undefined> {
    const item = await this.getItem(ddBootActionKey(actionId));
    return item ? strip<BootActionRecord>(item) : undefined;
  }

  async getBootActions(ids: readonly string[]): Promise<BootActionRecord[]> {
    return (await this.batchGet(ids.map(ddBootActionKey))).map((it) => strip<BootActionRecord>(it));
  }

  async recordBootActionReport(
    action: BootActionRecord,
    report: { status?: 'success' | 'failure'; messages: readonly TaskMessage[]; at: string },
  ): Promise<BootActionRecord | undefined> {
    // One transaction: the action row's condition (still `incomplete`), its final status if
    // any, and every message. Nothing is written unless all of it is.
    const open = { ConditionExpression: '#st = :incomplete', ExpressionAttributeNames: { '#st': 'action_status' } };
    const head: TransactItem = report.status
      ? {
          Update: {
            TableName: this.d.table,
            Key: ddBootActionKey(action.action_id),
            UpdateExpression: 'SET #st = :s, #upd = :now',
            ...open,
            ExpressionAttributeNames: { ...open.ExpressionAttributeNames, '#upd': 'updated' },
            ExpressionAttributeValues: { ':s': report.status, ':now': report.at, ':incomplete': 'incomplete' },
          },
        }
      : { ConditionCheck: { TableName: this.d.table, Key: ddBootActionKey(action.action_id), ...open, ExpressionAttributeValues: { ':incomplete': 'incomplete' } } };
    // Message keys are taken once, in order, so a retried transaction writes the same items.
    const puts: TransactItem[] = report.messages.map((m) => ({ Put: { TableName: this.d.table, Item: { ...ddMessageKey(action.task_id, this.seq()), ...m } } }));
    for (let attempt = 1; ; attempt++) {
      try {
        await this.d.doc.send(new TransactWriteCommand({ TransactItems: [head, ...puts] }));
        return report.status ? { ...action, action_status: report.status, updated: report.at } : action;
      } catch (err) {
        if (failedIndexes(err).includes(0)) return undefined; // no longer incomplete, or gone
        const conflict =
          (err instanceof TransactionCanceledException && (err.CancellationReasons ?? []).some((r) => r.Code === 'TransactionConflict')) ||
          (err as Error).name === 'TransactionConflictException';
        if (!conflict) throw err;
        if (attempt >= REPORT_ATTEMPTS) throw new ConcurrentModificationError();
        await new Promise((r) => setTimeout(r, Math.random() * 20 * attempt));
      }
    }
  }

  async setReportToken(nodeName: string, taskId: string, token: string | undefined): Promise<boolean> {
    // Conditional on the task: a redeployment that replaced the context must not get (or lose)
    // the token of the deployment it replaced.
    try {
      await this.d.doc.send(
        new UpdateCommand({
          TableName: this.d.table,
          Key: ddBootContextKey(nodeName),
          UpdateExpression: token === undefined ? 'REMOVE #rt' : 'SET #rt = :tok',
          ConditionExpression: '#task = :t',
          ExpressionAttributeNames: { '#rt': 'report_token', '#task': 'task_id' },
          ExpressionAttributeValues: token === undefined ? { ':t': taskId } : { ':t': taskId, ':tok': token },
        }),
      );
      return true;
    } catch (err) {
      if (isConditionFailure(err)) return false;
      throw err;
    }
  }

  async deleteBootActionContext(nodeName: string): Promise<void> {
    // ALL_OLD names the rows of exactly the context this delete removed.
    const res = await this.d.doc.send(new DeleteCommand({ TableName: this.d.table, Key: ddBootContextKey(nodeName), ReturnValues: 'ALL_OLD' }));
    const old = (res.Attributes?.action_ids as string[] | undefined) ?? [];
    await this.batchWrite(old.map((id) => ({ DeleteRequest: { Key: ddBootActionKey(id) } })));
  }

  // --- sites ------------------------------------------------------------------------------------

  async putSiteConfig(config: SiteConfig): Promise<void> {
    await this.d.doc.send(new PutCommand({ TableName: this.d.table, Item: { ...ddSiteConfigKey(config.site), entity: 'drydock_site_config', ...config } }));
  }

  async getSiteConfig(site: string): Promise<SiteConfig | undefined> {
    const item = await this.getItem(ddSiteConfigKey(site));
    return item ? strip<SiteConfig>(item) : undefined;
  }
}
