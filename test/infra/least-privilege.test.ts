import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type CfnElement, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import type { IConstruct } from 'constructs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TABLE_INDEXES } from '#aws/dynamo/schema.ts';
import { contextOf } from '#aws/kms-secrets.ts';
import { SECRET_KINDS } from '#core/secrets.ts';
import { buildApp, type SlipwayApp } from '../../infra/app.ts';
import { LAMBDA_ENTRIES, type LambdaEntry } from '../../infra/bundling.ts';
import { leadingKeyPattern, OPEN_ACTIONS, SEAL_ACTIONS, SECRET_GRANTS, TABLE_GRANTS, TABLE_PARTITIONS } from '../../infra/constructs/access.ts';
import type { SlipwayFunction } from '../../infra/constructs/slipway-function.ts';
import { routes } from '../../infra/routes.ts';
import { adapterLiterals, bundledCode, DATA_KEYS, dataKeyMethods, portCalls, REPO, secretNeeds, tableNeeds } from './code-needs.ts';

/**
 * Least privilege per function (issue 12): every statement of every function's role is walked
 * and must be explained by the function's code (code-needs.ts derives what the code needs from its
 * bundle and the adapters' sources): table partitions read and written, indexes queried, kinds of
 * secret sealed and opened, objects, executions started, task tokens answered, events put,
 * schedules managed. One app synthesized, one unminified bundle per function.
 */

type Statement = { Action: string | string[]; Resource: unknown; Condition?: Record<string, Record<string, unknown>>; Effect: string };

const outdir = mkdtempSync(join(tmpdir(), 'slipway-lp-'));
afterAll(() => rmSync(outdir, { recursive: true, force: true }));

let built: SlipwayApp;
const byEntry = new Map<LambdaEntry, SlipwayFunction>();
const statements = new Map<LambdaEntry, Statement[]>();
const code = new Map<LambdaEntry, string>();

const idOf = (c: IConstruct) => Stack.of(c).getLogicalId(c.node.defaultChild as CfnElement);

beforeAll(async () => {
  built = buildApp({ outdir, context: { 'aws:cdk:bundling-stacks': [] } });
  const fns = [...built.api.surfaces.values(), built.lifecycle.leaseEventsFunction, built.lifecycle.sweeperFunction, built.commissaire.clusterOperationsFunction, built.drydock.drydockPrepareFunction, built.drydock.drydockTasksFunction];
  const templates = new Map<Stack, Record<string, { Properties: Record<string, any> }>>();
  for (const f of fns) {
    const stack = Stack.of(f);
    if (!templates.has(stack)) templates.set(stack, Template.fromStack(stack).toJSON().Resources);
    byEntry.set(f.entry, f);
    const policy = templates.get(stack)![idOf(f.role.node.findChild('DefaultPolicy'))]!;
    statements.set(f.entry, policy.Properties.PolicyDocument.Statement as Statement[]);
  }
  await Promise.all(LAMBDA_ENTRIES.map(async (e) => code.set(e, await bundledCode(e))));
}, 120_000);

const actionsOf = (st: Statement) => [st.Action].flat();

/**
 * What only the surface middleware (layers/http/surface.ts, which every surface bundles) reaches,
 * and so only matters where the surface's routes use it: token resolution for authenticated
 * routes, Idempotency-Key records for authenticated POSTs, sealed replays for replies that carry a
 * secret (`secret: true`).
 */
function surfaceRules(entry: LambdaEntry) {
  const name = /^functions\/api\/(\w+)\.ts$/.exec(entry)?.[1];
  if (!name) return { tokens: true, idempotency: true, secretReplies: true };
  const mine = routes.filter((r) => r.fn === name);
  return {
    tokens: mine.some((r) => r.auth === 'token'),
    idempotency: mine.some((r) => r.auth === 'token' && r.method === 'POST'),
    secretReplies: /\bsecret: true\b/.test(readFileSync(join(REPO, entry), 'utf8')),
  };
}

/** The port methods a function's code calls, with the surface middleware's uses its routes never make left out. */
function callsOf(entry: LambdaEntry): Set<string> {
  const rules = surfaceRules(entry);
  return new Set(
    [...portCalls(code.get(entry)!)].filter((c) => {
      const port = c.split('.')[0];
      if (port === 'idempotency') return rules.idempotency;
      // Only the surfaces resolve credentials through the middleware; a surface without
      // authenticated routes uses no token (native's token routes stay: they are authenticated).
      if (port === 'tokens' && entry.startsWith('functions/api/')) return rules.tokens;
      return true;
    }),
  );
}

const PARTITIONS = new Set<string>(TABLE_PARTITIONS);

describe('the table: partitions per function', () => {
  it('knows every partition of the table: each key literal of the adapters is a partition, or an index or sort-key value', () => {
    // Index partitions (GSI1-3) and sort-key prefixes: never a table partition, so never a LeadingKeys value.
    const notPartitions = ['AGENT#', 'BMPORTS#NODE#', 'BUILD#', 'COMM#', 'DD#', 'DD#BUILD#', 'DD#QUEUE#', 'EVENT#', 'EVENTS#', 'JOBS#', 'LEASENAME#', 'LEASES#', 'MSG#', 'NODES#', 'NODES#DRIVER#', 'NODES#LESSEE#', 'NODES#PS#', 'NODES#RC#', 'OP#', 'PART#', 'RES#'];
    expect([...adapterLiterals()].sort()).toEqual([...TABLE_PARTITIONS, ...notPartitions].sort());
    // No prefix is a prefix of another (a LeadingKeys pattern `NODE#*` must not match `NODENAME#…`).
    for (const a of TABLE_PARTITIONS) for (const b of TABLE_PARTITIONS) if (a !== b) expect(b.startsWith(a), `${a} / ${b}`).toBe(false);
  });

  it('knows every adapter method that keys a write with data read from the table (DATA_KEYS)', () => {
    expect(dataKeyMethods()).toEqual(Object.keys(DATA_KEYS).sort());
  });

  it('reaches the repositories only through `deps.<port>.<method>(` (the shape the analysis reads)', () => {
    const dirs = ['layers/core', 'layers/http', 'functions'];
    const offenders: string[] = [];
    for (const dir of dirs) {
      for (const f of readdirSync(join(REPO, dir), { recursive: true, encoding: 'utf8' }).filter((x) => x.endsWith('.ts'))) {
        const src = readFileSync(join(REPO, dir, f), 'utf8');
        // A repository handed around by itself (a parameter typed as one) would hide its calls.
        if (/[(,]\s*\w+\??:\s*\w*Repository\b/.test(src)) offenders.push(`${dir}/${f}`);
        // Destructured ports likewise.
        if (/\{\s*(?:\w+,\s*)*(?:tokens|nodes|bmPorts|leases|jobs|commissaire|drydock|idempotency|properties)\b[^}]*\}\s*(?::\s*(?:Ports|Pick<Ports)|=\s*(?:\w+\.)?deps\b)/.test(src)) offenders.push(`${dir}/${f}`);
      }
    }
    expect(offenders).toEqual([]);
  });

  it.each([...LAMBDA_ENTRIES])('%s: its table grant is exactly what its code reads and writes', (entry) => {
    const needs = tableNeeds(callsOf(entry));
    expect(needs.unknown, 'port methods the analysis could not find').toEqual([]);
    const only = (ps: Set<string>) => [...ps].filter((p) => PARTITIONS.has(p)).sort();
    const grant = TABLE_GRANTS[entry];
    const derived = {
      read: { actions: [...needs.readActions].sort(), partitions: only(needs.readPartitions) },
      write: needs.writeActions.size > 0 ? { actions: [...needs.writeActions].sort(), partitions: only(needs.writePartitions) } : undefined,
      indexes: [...needs.indexes].sort(),
    };
    const declared = grant && {
      read: { actions: [...grant.read.actions].sort(), partitions: [...grant.read.partitions].sort() },
      write: grant.write && { actions: [...grant.write.actions].sort(), partitions: [...grant.write.partitions].sort() },
      indexes: [...grant.indexes].sort(),
    };
    if (derived.read.actions.length === 0 && !derived.write) expect(grant, 'no table use, no grant').toBeUndefined();
    else expect(declared).toEqual(derived);
  });

  it.each([...LAMBDA_ENTRIES])('%s: the synthesized table statements are its grant, each limited by dynamodb:LeadingKeys', (entry) => {
    const grant = TABLE_GRANTS[entry];
    const dynamo = statements.get(entry)!.filter((st) => actionsOf(st).some((a) => a.startsWith('dynamodb:')));
    if (!grant) {
      expect(dynamo).toEqual([]);
      return;
    }
    // The stateful stack's export of the table ARN, as the first statement names it.
    const tableArn = dynamo[0]?.Resource as { 'Fn::ImportValue': string };
    expect(tableArn).toEqual({ 'Fn::ImportValue': expect.stringMatching(/^SlipwayStateful:.*Table.*Arn/) });
    const keys = (ps: readonly string[]) => ({ 'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': ps.map((p) => leadingKeyPattern(p as never)) } });
    // CDK renders a one-element Action or Resource list as the element.
    const one = <T>(xs: T[]) => (xs.length === 1 ? xs[0] : xs);
    const want: unknown[] = [{ Action: one(grant.read.actions.map((a) => `dynamodb:${a}`)), Effect: 'Allow', Resource: tableArn, Condition: keys(grant.read.partitions) }];
    if (grant.write) want.push({ Action: one(grant.write.actions.map((a) => `dynamodb:${a}`)), Effect: 'Allow', Resource: tableArn, Condition: keys(grant.write.partitions) });
    if (grant.indexes.length > 0) {
      want.push({ Action: 'dynamodb:Query', Effect: 'Allow', Resource: one(grant.indexes.map((ix) => ({ 'Fn::Join': ['', [tableArn, `/index/${ix}`]] }))) });
    }
    expect(dynamo).toEqual(want);
    for (const ix of grant.indexes) expect(TABLE_INDEXES.map((i) => i.indexName)).toContain(ix);
  });

  it('lets the node-facing boot-action function touch only Drydock boot-action items (and its callers\' tokens and replays)', () => {
    const grant = TABLE_GRANTS['functions/api/bootactions.ts']!;
    for (const p of [...grant.read.partitions, ...(grant.write?.partitions ?? [])]) expect(['TOKEN#', 'IDEMP#', 'DDBANODE#', 'DDBA#', 'DDTASK#']).toContain(p);
    expect(grant.write?.partitions).not.toContain('TOKEN#');
  });
});

describe('the secrets key: kinds per function', () => {
  it.each([...LAMBDA_ENTRIES])('%s: seals and opens exactly the kinds its code seals and opens', (entry) => {
    const needs = secretNeeds(code.get(entry)!);
    if (!surfaceRules(entry).secretReplies) {
      needs.seal.delete('idempotent-reply');
      needs.open.delete('idempotent-reply');
    }
    for (const k of [...needs.seal, ...needs.open]) expect(SECRET_KINDS, k).toContain(k);
    const grant = SECRET_GRANTS[entry];
    if (needs.seal.size === 0 && needs.open.size === 0) expect(grant).toBeUndefined();
    else expect({ seal: [...(grant?.seal ?? [])].sort(), open: [...(grant?.open ?? [])].sort() }).toEqual({ seal: [...needs.seal].sort(), open: [...needs.open].sort() });
  });

  it.each([...LAMBDA_ENTRIES])('%s: its key statements carry one kms:EncryptionContext:purpose per kind granted', (entry) => {
    const grant = SECRET_GRANTS[entry];
    const kms = statements.get(entry)!.filter((st) => actionsOf(st).some((a) => a.startsWith('kms:')));
    const keyArn = kms[0]?.Resource;
    if (grant) expect(keyArn).toEqual({ 'Fn::ImportValue': expect.stringMatching(/^SlipwayStateful:.*SecretsKey.*Arn/) });
    const purposes = (kinds: readonly string[]) => kinds.map((k) => contextOf(k as never).purpose);
    const one = (xs: string[]) => (xs.length === 1 ? xs[0] : xs);
    const want: unknown[] = [];
    if (grant?.seal.length) want.push({ Action: SEAL_ACTIONS, Effect: 'Allow', Resource: keyArn, Condition: { StringEquals: { 'kms:EncryptionContext:purpose': purposes(grant.seal) } } });
    if (grant?.open.length) want.push({ Action: one([...OPEN_ACTIONS]), Effect: 'Allow', Resource: keyArn, Condition: { StringEquals: { 'kms:EncryptionContext:purpose': purposes(grant.open) } } });
    expect(kms).toEqual(want);
  });

  it('keeps BMC passwords from every function but those that hand them to agents or register them', () => {
    const opensBmc = LAMBDA_ENTRIES.filter((e) => SECRET_GRANTS[e]?.open.includes('bmc-password'));
    expect(opensBmc.sort()).toEqual(['functions/api/agent.ts', 'functions/workflows/drydock-tasks.ts']);
    // The node-facing boot-action function: node keys only.
    expect(SECRET_GRANTS['functions/api/bootactions.ts']).toEqual({ seal: [], open: ['node-key'] });
  });
});

describe('every other statement of every function role', () => {
  /**
   * An action → the port calls (any one suffices) or the fact that makes the code need it. A
   * statement with an action not listed here, or whose reason the function's code lacks, fails.
   */
  const REASONS: Record<string, (entry: LambdaEntry, calls: Set<string>) => boolean> = {
    // Its own log group and X-Ray tracing: every function.
    'logs:CreateLogStream': () => true,
    'logs:PutLogEvents': () => true,
    'xray:PutTraceSegments': () => true,
    'xray:PutTelemetryRecords': () => true,
    's3:GetObject': (_e, c) => ['blobs.get', 'blobs.getS3Url', 'blobs.presignGet', 'blobs.size'].some((x) => c.has(x)),
    's3:PutObject': (_e, c) => c.has('blobs.put') || c.has('blobs.presignPut'),
    // An agent's upload of a large fetched body, deleted once read (agent/fetch.ts bucketUploads).
    's3:DeleteObject': (_e, c) => c.has('blobs.delete'),
    // A missing object is S3's 404 only with ListBucket (an image the agent asks for).
    's3:ListBucket': (_e, c) => c.has('blobs.size') && c.has('blobs.presignGet'),
    'states:StartExecution': (_e, c) => ['runner.start', 'operations.start', 'tasks.start'].some((x) => c.has(x)),
    'states:SendTaskSuccess': (_e, c) => c.has('callbacks.succeed'),
    'states:SendTaskFailure': (_e, c) => c.has('callbacks.fail'),
    'states:SendTaskHeartbeat': (_e, c) => c.has('callbacks.heartbeat'),
    'events:PutEvents': (_e, c) => c.has('notifier.publish'),
    'scheduler:CreateSchedule': (_e, c) => c.has('scheduler.put'),
    'scheduler:UpdateSchedule': (_e, c) => c.has('scheduler.put'),
    'scheduler:DeleteSchedule': (_e, c) => c.has('scheduler.remove'),
    // CreateSchedule hands the scheduler role to EventBridge Scheduler.
    'iam:PassRole': (_e, c) => c.has('scheduler.put'),
    // A failed asynchronous invocation's destination (the sweeper, run by EventBridge).
    'sqs:SendMessage': (e) => e === 'functions/workflows/sweeper.ts',
  };

  it.each([...LAMBDA_ENTRIES])('%s: each action is one its code uses', (entry) => {
    const calls = callsOf(entry);
    const unexplained: string[] = [];
    for (const st of statements.get(entry)!) {
      expect(st.Effect).toBe('Allow');
      for (const a of actionsOf(st)) {
        if (a.startsWith('dynamodb:') || a.startsWith('kms:')) continue; // checked above, with their conditions
        if (!REASONS[a]?.(entry, calls)) unexplained.push(a);
      }
    }
    expect(unexplained).toEqual([]);
    // And the other way: each port call that needs an action has it.
    const granted = new Set(statements.get(entry)!.flatMap(actionsOf));
    for (const [action, reason] of Object.entries(REASONS)) {
      if (action.startsWith('logs:') || action.startsWith('xray:') || action === 's3:ListBucket') continue;
      if (reason(entry, calls)) expect(granted.has(action), `${entry} needs ${action}`).toBe(true);
    }
  });

  it('starts only the workflow each starter\'s port is for', () => {
    const starts = (entry: LambdaEntry) =>
      statements
        .get(entry)!
        .filter((st) => actionsOf(st).includes('states:StartExecution'))
        .map((st) => JSON.stringify(st.Resource));
    const machine = { runner: 'slipway-lease-events', operations: 'slipway-cluster-operations', tasks: 'slipway-drydock-tasks' } as const;
    for (const entry of LAMBDA_ENTRIES) {
      const calls = callsOf(entry);
      const want = (Object.keys(machine) as (keyof typeof machine)[]).filter((p) => calls.has(`${p}.start`));
      const got = starts(entry);
      expect(got.length, entry).toBe(want.length);
      for (const p of want) expect(got.some((r) => r.includes(`:stateMachine:${machine[p]}`) || r.includes(`"Ref":"${p === 'runner' ? idOf(built.lifecycle.stateMachine) : '-'}"`)), `${entry} ${p}`).toBe(true);
    }
  });
});
