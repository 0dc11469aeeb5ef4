import { GetCommand, PutCommand, QueryCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import type { Job, JobRepository } from '#core/agent/model.ts';
import { type Dynamo, isConditionFailure } from './client.ts';

/**
 * Key builders for agent jobs. The offer index is sparse: a job is in it while it can be
 * claimed — queued (available since creation) or claimed (available again when its claim
 * expires, which is how a dead agent's job is re-offered). Finishing removes it.
 */
export const jobKey = (id: string) => ({ PK: `JOB#${id}`, SK: 'META' });
/** When each agent of a site last contacted the API (one item per agent token; expires after 30 days). */
export const agentSeenKey = (site: string, agent: string) => ({ PK: `AGENTS#${site}`, SK: `AGENT#${agent}` });
/** An agent's contact is written at most once per this many seconds (a conditional write). */
export const AGENT_TOUCH_SECONDS = 30;
const AGENT_SEEN_TTL_SECONDS = 30 * 86_400;
const offerPk = (site: string) => `JOBS#${site}`;
const offerSk = (availableAt: string, id: string) => `${availableAt}#${id}`;

const STRIP = new Set(['PK', 'SK', 'GSI2PK', 'GSI2SK', 'entity']);
const toJob = (item: Record<string, unknown>): Job => Object.fromEntries(Object.entries(item).filter(([k]) => !STRIP.has(k))) as unknown as Job;

type UpdateInput = ConstructorParameters<typeof UpdateCommand>[0];

export class DynamoJobRepository implements JobRepository {
  /**
   * A conditional update of one job that returns the new job, or undefined when its condition
   * failed (the claim moved on): every state change of a job is such a compare-and-set.
   */
  private async cas(input: Omit<UpdateInput, 'TableName' | 'ReturnValues'>): Promise<Job | undefined> {
    try {
      const res = await this.d.doc.send(new UpdateCommand({ ...input, TableName: this.d.table, ReturnValues: 'ALL_NEW' }));
      return toJob(res.Attributes!);
    } catch (err) {
      if (isConditionFailure(err)) return undefined;
      throw err;
    }
  }

  constructor(private readonly d: Dynamo) {}

  async create(job: Job): Promise<void> {
    await this.d.doc.send(
      new PutCommand({
        TableName: this.d.table,
        Item: { ...jobKey(job.id), GSI2PK: offerPk(job.site), GSI2SK: offerSk(job.created_at, job.id), entity: 'job', ...job },
        ConditionExpression: 'attribute_not_exists(PK)',
      }),
    );
  }

  async get(id: string): Promise<Job | undefined> {
    const res = await this.d.doc.send(new GetCommand({ TableName: this.d.table, Key: jobKey(id), ConsistentRead: true }));
    return res.Item ? toJob(res.Item) : undefined;
  }

  async offered(site: string, now: Date, limit: number): Promise<Job[]> {
    const res = await this.d.doc.send(
      new QueryCommand({
        TableName: this.d.table,
        IndexName: 'GSI2',
        KeyConditionExpression: 'GSI2PK = :pk AND GSI2SK <= :now',
        ExpressionAttributeValues: { ':pk': offerPk(site), ':now': `${now.toISOString()}#~` },
        Limit: limit,
      }),
    );
    return (res.Items ?? []).map(toJob);
  }

  async claim(job: Job, now: Date, claim: { token: string; by: string; until: Date }): Promise<Job | undefined> {
    const until = claim.until.toISOString();
    return this.cas({
      Key: jobKey(job.id),
      // The write is the check: still queued, or claimed with a claim that has expired.
      ConditionExpression: '#s = :queued OR (#s = :claimed AND #exp < :now)',
      UpdateExpression:
        'SET #s = :claimed, claim_token = :token, claimed_by = :by, #exp = :until, attempts = attempts + :one, updated_at = :nowIso, GSI2SK = :sk',
      ExpressionAttributeNames: { '#s': 'status', '#exp': 'claim_expires_at' },
      ExpressionAttributeValues: {
        ':queued': 'queued',
        ':claimed': 'claimed',
        ':now': now.toISOString(),
        ':nowIso': now.toISOString(),
        ':token': claim.token,
        ':by': claim.by,
        ':until': until,
        ':one': 1,
        ':sk': offerSk(until, job.id),
      },
    });
  }

  async extend(id: string, token: string, until: Date, now: Date): Promise<boolean> {
    const job = await this.cas({
      Key: jobKey(id),
      // Held as long as nobody re-claimed it, even if the lease ran out meanwhile.
      ConditionExpression: '#s = :claimed AND claim_token = :token',
      UpdateExpression: 'SET #exp = :until, updated_at = :now, GSI2SK = :sk',
      ExpressionAttributeNames: { '#s': 'status', '#exp': 'claim_expires_at' },
      ExpressionAttributeValues: { ':claimed': 'claimed', ':token': token, ':until': until.toISOString(), ':now': now.toISOString(), ':sk': offerSk(until.toISOString(), id) },
    });
    return job !== undefined;
  }

  async finish(id: string, token: string, result: { status: 'succeeded' | 'failed'; output?: unknown; error?: string }, now: Date): Promise<Job | undefined> {
    return this.cas({
      Key: jobKey(id),
      ConditionExpression: '#s = :claimed AND claim_token = :token',
      UpdateExpression: 'SET #s = :status, #out = :output, #err = :error, finished_at = :now, updated_at = :now REMOVE GSI2PK, GSI2SK',
      ExpressionAttributeNames: { '#s': 'status', '#out': 'output', '#err': 'error' },
      ExpressionAttributeValues: {
        ':claimed': 'claimed',
        ':token': token,
        ':status': result.status,
        ':output': result.output ?? null,
        ':error': result.error ?? null,
        ':now': now.toISOString(),
      },
    });
  }

  async release(id: string, token: string, now: Date): Promise<Job | undefined> {
    return this.cas({
      Key: jobKey(id),
      ConditionExpression: '#s = :claimed AND claim_token = :token',
      // Back in the queue, offered from now; the attempt it used is given back.
      UpdateExpression: 'SET #s = :queued, updated_at = :now, GSI2SK = :sk, attempts = attempts - :one REMOVE claim_token, claimed_by, #exp',
      ExpressionAttributeNames: { '#s': 'status', '#exp': 'claim_expires_at' },
      ExpressionAttributeValues: { ':claimed': 'claimed', ':queued': 'queued', ':token': token, ':now': now.toISOString(), ':sk': offerSk(now.toISOString(), id), ':one': 1 },
    });
  }

  async expire(job: Job, now: Date): Promise<void> {
    await this.d.doc
      .send(
        new UpdateCommand({
          TableName: this.d.table,
          Key: jobKey(job.id),
          ConditionExpression: '#s = :claimed AND claim_token = :token AND #exp < :now',
          UpdateExpression: 'SET #s = :failed, #err = :error, finished_at = :now, updated_at = :now REMOVE GSI2PK, GSI2SK',
          ExpressionAttributeNames: { '#s': 'status', '#exp': 'claim_expires_at', '#err': 'error' },
          ExpressionAttributeValues: {
            ':claimed': 'claimed',
            ':token': job.claim_token,
            ':now': now.toISOString(),
            ':failed': 'failed',
            ':error': `The agent's claim expired ${job.attempts} times without a result; the job was given up`,
          },
        }),
      )
      .catch((err) => {
        if (!isConditionFailure(err)) throw err; // someone finished or re-claimed it meanwhile
      });
  }

  async touchAgent(site: string, agent: string, at: Date, version?: string): Promise<boolean> {
    // Conditional on the stored time: of a burst (several warm instances, a claim and a
    // heartbeat together) one write lands per interval, and an older time never replaces a newer.
    try {
      await this.d.doc.send(
        new PutCommand({
          TableName: this.d.table,
          Item: { ...agentSeenKey(site, agent), entity: 'agent_seen', agent, at: at.toISOString(), ttl: Math.floor(at.getTime() / 1000) + AGENT_SEEN_TTL_SECONDS, version },
          ConditionExpression: 'attribute_not_exists(#at) OR #at < :cutoff',
          ExpressionAttributeNames: { '#at': 'at' },
          ExpressionAttributeValues: { ':cutoff': new Date(at.getTime() - AGENT_TOUCH_SECONDS * 1000).toISOString() },
        }),
      );
      return true;
    } catch (err) {
      if (isConditionFailure(err)) return false;
      throw err;
    }
  }

  async agentsSeen(site: string): Promise<{ agent: string; at: string; version?: string }[]> {
    const res = await this.d.doc.send(
      new QueryCommand({
        TableName: this.d.table,
        KeyConditionExpression: 'PK = :pk AND begins_with(SK, :sk)',
        ExpressionAttributeValues: { ':pk': agentSeenKey(site, '').PK, ':sk': 'AGENT#' },
        ConsistentRead: true,
      }),
    );
    return (res.Items ?? []).map((i) => ({ agent: String(i.agent), at: String(i.at), ...(typeof i.version === 'string' ? { version: i.version } : {}) }));
  }
}
