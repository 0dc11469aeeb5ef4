import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type CfnElement, Stack, Validations } from 'aws-cdk-lib';
import type { CfnPolicy, Policy } from 'aws-cdk-lib/aws-iam';
import type { StateMachine } from 'aws-cdk-lib/aws-stepfunctions';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalTaskCallbacks } from '#core/agent/callbacks.ts';
import { MAX_JOB_OUTPUT_BYTES } from '#core/agent/jobs.ts';
import { acquireWaitSeconds, JOB_STEPS, NODE_PLANS, type PrepareOutput, STEP_ATTEMPTS, TASK_MAX_SECONDS, type StepName } from '#core/drydock/tasks/workflow.ts';
import type { NodeAction } from '#core/drydock/tasks/model.ts';
import { actResult, jobOutcome, laneSummary, LANE_MAX_JOBS, retryWaitSeconds } from '#core/leases/engine.ts';
import type { AgentJobSpec } from '#core/leases/plugin.ts';
import { buildApp } from '../../infra/app.ts';
import { LocalStateMachineRunner, type WorkflowStats } from '../../infra/local/lifecycle.ts';
import { LEASE_EVENTS_TIMEOUT } from '../../infra/stacks/lifecycle-stack.ts';
import { STALE_EVENT_MS } from '../../functions/workflows/sweeper.ts';
import { synthDrydockTasksAsl, synthLeaseEventsAsl } from '../../infra/workflows/asl.ts';
import { DRYDOCK_TASKS_STATE_MACHINE_NAME } from '../../infra/workflows/drydock-tasks.ts';
import { LEASE_EVENTS_STATE_MACHINE_NAME } from '../../infra/workflows/lease-events.ts';
import { HISTORY_EVENT_LIMIT, PAYLOAD_BYTE_LIMIT, payloadBytes } from '../../infra/workflows/limits.ts';
import { CHILD_FAILED_ERROR, childStateOf, localDefinition } from '../../infra/workflows/local-distributed.ts';

/**
 * Step Functions' limits for the largest work Slipway runs (issue 12 item 8): one Drydock task of
 * 2,000 nodes and one lease event of 2,000 hosts, in the definitions CDK synthesizes, must keep
 * every execution (the task's or the event's own, and each child execution of their distributed
 * Maps) within 25,000 history events, and every state's input and output, task parameters and
 * results within 256 KiB.
 *
 * Nothing runs 2,000 real executions: the synthesized ASL runs in the local runner (which
 * renders each distributed Map item as a child execution of its own and meters every execution,
 * `infra/workflows/limits.ts`), with the Lambda steps stubbed to answer as the real ones do and
 * with payloads of realistic, and for the worst cases maximal, size: node ids are UUIDs, agent
 * job errors the 4,000 characters the agent API admits, a job's output the 64 KiB it admits.
 * Loops that wait (a task queued behind another, a lease event waiting for its lease) are
 * measured per round and summed over the longest wait the workflow allows.
 */

const N = 2000;
const uuid = (i: number, kind = 0) => `${String(kind).padStart(8, '0')}-1234-4abc-8def-${String(i).padStart(12, '0')}`;
const nodeName = (i: number) => `compute-r${String(i % 48).padStart(2, '0')}-n${String(i).padStart(4, '0')}.site-a.example.com`;
/** The longest error the agent API accepts for a failed job (functions/api/agent.ts, jobs.ts). */
const AGENT_ERROR = `erasing /dev/nvme0n1 failed: ${'blkdiscard: Input/output error; '.repeat(125)}`.slice(0, 4000);
/** A job output as large as the agent API accepts (MAX_JOB_OUTPUT_BYTES): an inspection of very many disks. */
const BIG_OUTPUT = (() => {
  const out = { cpus: 128, cpu_arch: 'x86_64', memory_mb: 1_048_576, disks: [] as { name: string; size: number }[], interfaces: [], boot_mac: '52:54:00:12:34:56' };
  while (payloadBytes(out) < MAX_JOB_OUTPUT_BYTES - 64) out.disks.push({ name: `/dev/disk${out.disks.length}`, size: 3_840_755_982_336 });
  return out;
})();

/** What the agent's jobs answer (agent/netboot.ts outputs), by job kind. */
const jobOutput = (kind: string) =>
  kind === 'deploy_node'
    ? { method: 'image', image: 'ubuntu-22.04', root_device: '/dev/nvme0n1', root_filesystem: 'ext4', image_sha256: 'a'.repeat(64), written_bytes: 2_361_393_152, write_seconds: 41.7, boot_mac: '52:54:00:12:34:56' }
    : kind === 'clean'
      ? { disks: [0, 1].map((d) => ({ name: `/dev/nvme${d}n1`, size: 3_840_755_982_336, method: 'discard', verified_bytes: 1_048_576 })), boot_mac: '52:54:00:12:34:56' }
      : kind === 'inspect'
        ? { cpus: 64, cpu_arch: 'x86_64', memory_mb: 524_288, disks: [0, 1].map((d) => ({ name: `/dev/nvme${d}n1`, size: 3_840_755_982_336 })), interfaces: [0, 1, 2, 3].map((i) => ({ name: `ens${i}`, mac_address: `52:54:00:12:34:5${i}` })), boot_mac: '52:54:00:12:34:50' }
        : { power_state: 'power off' };

type Step = Record<string, any>;
type Stub = (input: Step, callbacks: LocalTaskCallbacks) => unknown;

/** Runs `asl` once with the stubbed function; the runner's figures. */
async function run(asl: Record<string, unknown>, stub: Stub, input: Record<string, unknown>): Promise<WorkflowStats> {
  const callbacks = new LocalTaskCallbacks();
  const runner = new LocalStateMachineRunner({ asl, step: async (i) => stub(i as Step, callbacks) }, callbacks);
  runner.start(input, 'limits');
  await runner.idle();
  return runner.stats;
}

/**
 * The Drydock task function's answers for a node action over `n` nodes: Prepare's positions,
 * NodeStep walking NODE_PLANS (agent steps as callback jobs), agent jobs answered with their
 * kind's output, the first `failures` attempts of a retried step failing with the longest error.
 */
function drydockStub(action: NodeAction, n: number, opts: { failures?: number; output?: unknown; siteWaits?: number } = {}): Stub {
  const plan = NODE_PLANS[action];
  const attempts = new Map<number, number>();
  let waits = opts.siteWaits ?? 0;
  const from = (cursor: number) => {
    for (let i = cursor; i < plan.length; i++) {
      const step = plan[i] as StepName;
      if (JOB_STEPS[step]) return { next: 'job', cursor: i, after: i + 1, attempt: 1 };
      if (step === 'reports') return { next: 'reports', cursor: i, after: i + 1, attempt: 1 };
    }
    return { next: 'done', cursor: -1, after: -1, attempt: 1 };
  };
  return (i, callbacks) => {
    switch (i.step) {
      case 'prepare':
        return { outcome: 'run', site: 'site-a', nodes: Array.from({ length: n }, (_, k) => k), node_concurrency: 100 } satisfies PrepareOutput;
      case 'acquire':
        return waits-- > 0 ? { acquired: false, wait_seconds: 0 } : { acquired: true, wait_seconds: 0 };
      case 'node_step':
        return from(i.cursor);
      case 'node_job': {
        const kind = JOB_STEPS[plan[i.cursor] as StepName]!.kind;
        const tried = (attempts.get(i.index) ?? 0) + 1;
        attempts.set(i.index, tried);
        if (STEP_ATTEMPTS[plan[i.cursor] as StepName] && tried <= (opts.failures ?? 0)) void callbacks.fail(i.task_token, 'AgentJobFailed', AGENT_ERROR);
        else void callbacks.succeed(i.task_token, opts.output ?? jobOutput(kind));
        return { job_id: uuid(i.index, 9) };
      }
      case 'node_reports':
        void callbacks.succeed(i.task_token, { node_name: nodeName(i.index), reports: 'final' });
        return {};
      case 'node_failed': {
        const step = plan[i.cursor] as StepName;
        return i.attempt < (STEP_ATTEMPTS[step] ?? 1) ? { next: 'job', cursor: i.cursor, after: i.cursor + 1, attempt: i.attempt + 1 } : { next: 'done', cursor: -1, after: -1, attempt: 1 };
      }
      case 'finalize':
        return { status: 'success' };
      default:
        throw new Error(`unexpected step ${i.step}`);
    }
  };
}

/**
 * The lease-event function's answers for an event over `n` hosts: Act's real lanes and bounded
 * notes (a note for every node, the worst case), agent jobs answered (or all failed with the
 * longest error), JobFailed and LaneDone as the engine computes them (every other failure
 * settled, with a long note).
 */
function leaseStub(action: string, n: number, opts: { fail?: boolean; waits?: number } = {}): Stub {
  const reservation = uuid(1, 7);
  const jobs: AgentJobSpec[] = Array.from({ length: n }, (_, i) => ({ reservation_id: reservation, node_id: uuid(i), action }));
  const notes = Array.from({ length: n }, (_, i) => `node ${nodeName(i)} was powered off, not erased: it has no known MAC address (no Ironic ports; inspect it)`);
  const settledNote = (node: string) => `node ${node} could not be erased and is in maintenance: ${AGENT_ERROR}`;
  let waits = opts.waits ?? 0;
  return (i, callbacks) => {
    switch (i.step) {
      case 'begin':
        return waits-- > 0 ? { outcome: 'wait', wait_seconds: 0, reason: 'the lease is STARTING' } : { outcome: 'run', wait_seconds: 0 };
      case 'act':
        return actResult(jobs, notes);
      case 'agent_job':
        if (opts.fail) void callbacks.fail(i.task_token, 'AgentJobFailed', AGENT_ERROR);
        else void callbacks.succeed(i.task_token, jobOutput(action === 'deploy' ? 'deploy_node' : action));
        return { job_id: uuid(0, 9) };
      case 'job_failed': {
        const settled = Number(i.job.node_id.slice(-1)) % 2 === 0;
        return jobOutcome(i.job, i.error, settled ? settledNote(i.job.node_id) : undefined);
      }
      case 'lane_done':
        return laneSummary(i.results);
      case 'complete':
        return {};
      case 'finish':
        return { event_status: opts.fail ? 'ERROR' : 'DONE', lease_status: 'ACTIVE' };
      default:
        throw new Error(`unexpected step ${i.step}`);
    }
  };
}

/** Rounds of a wait loop over `seconds`, each round waiting `wait(elapsed)`. */
function rounds(seconds: number, wait: (elapsed: number) => number): number {
  let n = 0;
  for (let t = 0; t < seconds; n++) t += wait(t);
  return n;
}

const within = (s: WorkflowStats) => {
  expect(s.failed).toBe(0);
  expect(s.maxHistoryEvents.execution).toBeLessThanOrEqual(HISTORY_EVENT_LIMIT);
  expect(s.maxHistoryEvents.child).toBeLessThanOrEqual(HISTORY_EVENT_LIMIT);
  expect(s.largestPayload.bytes).toBeLessThanOrEqual(PAYLOAD_BYTE_LIMIT);
};

/** The figures docs/workflows.md quotes, printed at the end. */
const figures: Record<string, string> = {};
const note = (what: string, s: WorkflowStats) => {
  figures[what] =
    `events: own ${s.maxHistoryEvents.execution}, largest child ${s.maxHistoryEvents.child} (${s.childExecutions} children); ` +
    `largest payload ${s.largestPayload.bytes} B (${s.largestPayload.where})`;
};

describe('Step Functions limits at 2,000 nodes and 2,000 hosts', () => {
  let drydock: Record<string, unknown>;
  let lease: Record<string, unknown>;

  beforeAll(() => {
    drydock = synthDrydockTasksAsl({});
    lease = synthLeaseEventsAsl();
  });
  afterAll(() => {
    console.info(['Step Functions limits (test/infra/limits.test.ts):', ...Object.entries(figures).map(([k, v]) => `  ${k}: ${v}`)].join('\n'));
  });

  describe('the local rendering of distributed Maps (infra/workflows/local-distributed.ts)', () => {
    it('gives each distributed Map a stand-in Task for its child executions, and leaves the definition it was given alone', () => {
      const before = JSON.stringify(drydock);
      const local = localDefinition(drydock);
      expect(JSON.stringify(drydock)).toBe(before);
      const nodes = (local.definition.States as Record<string, any>).Nodes;
      expect(nodes.ItemProcessor.StartAt).toBe(childStateOf('Nodes'));
      expect(Object.keys(nodes.ItemProcessor.States)).toEqual([childStateOf('Nodes')]);
      // The local runner would time a Task without TimeoutSeconds out after 60 s: a child may run as long as its parent.
      expect(nodes.ItemProcessor.States[childStateOf('Nodes')].TimeoutSeconds).toBe(TASK_MAX_SECONDS);
      const child = local.children.get(childStateOf('Nodes'))!;
      expect(child.map).toBe('Nodes');
      expect(Object.keys(child.child.definition.States as object).sort()).toEqual(['NodeDone', 'NodeFailed', 'NodeJob', 'NodeNext', 'NodeReports', 'NodeRetry', 'NodeStep']);
      expect(child.child.definition).not.toHaveProperty('ProcessorConfig');
      // The lanes of a lease event: a child whose own inline Map stays inline.
      const lanes = localDefinition(lease).children.get(childStateOf('AgentJobs'))!.child;
      expect(lanes.children.size).toBe(0);
      expect((lanes.definition.States as Record<string, any>).LaneJobs.ItemProcessor.States).toHaveProperty('AgentJob');
    });

    it('refuses what it cannot emulate rather than run it differently', () => {
      const distributed = (extra: Record<string, unknown>) => ({
        StartAt: 'M',
        States: { M: { Type: 'Map', ItemProcessor: { ProcessorConfig: { Mode: 'DISTRIBUTED', ExecutionType: 'STANDARD' }, StartAt: 'P', States: { P: { Type: 'Pass', End: true } } }, End: true, ...extra } },
      });
      for (const field of [{ ItemBatcher: { MaxItemsPerBatch: 10 } }, { ResultWriter: { Resource: 'arn:aws:states:::s3:putObject' } }, { ItemReader: { Resource: 'arn:aws:states:::s3:getObject' } }, { ToleratedFailurePercentage: 5 }]) {
        expect(() => localDefinition(distributed(field)), Object.keys(field)[0]).toThrow(/cannot emulate/);
      }
      expect(() => localDefinition(distributed({ ToleratedFailureCount: 0 }))).not.toThrow();
    });

    it('fails the Map when a child execution fails, as no failure is tolerated, and the Map can catch it', async () => {
      const fn = 'arn:aws:lambda:us-east-1:123456789012:function:f';
      const asl = {
        StartAt: 'M',
        States: {
          M: {
            Type: 'Map',
            ItemsPath: '$.items',
            ItemProcessor: { ProcessorConfig: { Mode: 'DISTRIBUTED', ExecutionType: 'STANDARD' }, StartAt: 'T', States: { T: { Type: 'Task', Resource: fn, End: true } } },
            Catch: [{ ErrorEquals: ['States.ALL'], ResultPath: '$.error', Next: 'Caught' }],
            End: true,
          },
          Caught: { Type: 'Task', Resource: fn, Parameters: { 'caught.$': '$.error' }, End: true },
        },
      };
      const caught: { Error: string; Cause: string }[] = [];
      const runner = new LocalStateMachineRunner(
        {
          asl,
          step: async (i) => {
            const input = i as { n?: number; caught?: { Error: string; Cause: string } };
            if (input.caught) caught.push(input.caught);
            if (input.n === 2) throw Object.assign(new Error('item 2 broke'), { name: 'Boom' });
            return {};
          },
        },
        new LocalTaskCallbacks(),
      );
      runner.start({ items: [{ n: 1 }, { n: 2 }, { n: 3 }] }, 'one-fails');
      await runner.idle();
      expect(runner.stats).toMatchObject({ executions: 1, failed: 0, childExecutions: 3 });
      expect(caught).toHaveLength(1);
      expect(caught[0]!.Error).toBe(CHILD_FAILED_ERROR);
      expect(caught[0]!.Cause).toMatch(/Boom: item 2 broke/);
    });
  });

  it('refuses an inline Map past the history limit: the per-node steps inline, as before, fail at 700 nodes', async () => {
    const inline = structuredClone(drydock) as { States: Record<string, any> };
    inline.States.Nodes!.ItemProcessor.ProcessorConfig = { Mode: 'INLINE' };
    delete inline.States.Nodes!.Label;
    const s = await run(inline, drydockStub('deploy_nodes', 700), { task_id: uuid(1, 5) });
    expect(s.failed).toBe(1);
    expect(s.childExecutions).toBe(0);
    expect(s.maxHistoryEvents.execution).toBeGreaterThan(HISTORY_EVENT_LIMIT);
  });

  describe('a Drydock task of 2,000 nodes', () => {
    it.each(['deploy_nodes', 'destroy_nodes', 'prepare_nodes'] as const)('%s: each node a child execution, every execution and payload within the limits', async (action) => {
      const s = await run(drydock, drydockStub(action, N), { task_id: uuid(1, 5) });
      within(s);
      expect(s.childExecutions).toBe(N);
      note(`${action}, ${N} nodes`, s);
    });

    it('deploy_nodes with every deploy failing twice (4,000-character errors) before it succeeds, and 64 KiB job outputs', async () => {
      // A node's child execution is the same whatever the number of nodes, and the task's own
      // figures are those measured above: 100 nodes show the worst child at a twentieth of the cost.
      const s = await run(drydock, drydockStub('deploy_nodes', 100, { failures: 2, output: BIG_OUTPUT }), { task_id: uuid(1, 5) });
      within(s);
      note('deploy_nodes, worst case per node', s);
    });

    it('waits for a busy site for the task\'s whole life within the history limit', async () => {
      const [none, three] = [await run(drydock, drydockStub('verify_nodes', 1), { task_id: uuid(1, 5) }), await run(drydock, drydockStub('verify_nodes', 1, { siteWaits: 3 }), { task_id: uuid(1, 5) })];
      const perRound = (three.maxHistoryEvents.execution - none.maxHistoryEvents.execution) / 3;
      expect(perRound).toBe(9);
      const longest = none.maxHistoryEvents.execution + perRound * rounds(TASK_MAX_SECONDS, acquireWaitSeconds);
      expect(longest).toBeLessThanOrEqual(HISTORY_EVENT_LIMIT);
      figures[`a task waiting ${TASK_MAX_SECONDS / 3600} h for its site`] = `${longest} events`;
    });
  });

  describe('what the distributed Maps need of the workflows\' roles (CDK grants it; slipwayWorkflow acknowledges it)', () => {
    const outdir = mkdtempSync(join(tmpdir(), 'slipway-cdk-'));
    afterAll(() => rmSync(outdir, { recursive: true, force: true }));

    it.each([
      ['drydock', DRYDOCK_TASKS_STATE_MACHINE_NAME, 'Nodes'],
      ['lifecycle', LEASE_EVENTS_STATE_MACHINE_NAME, 'AgentJobs'],
    ] as const)('%s: its own executions started, described, stopped and redriven; the wildcards acknowledged one by one', (stackName, name, label) => {
      const built = buildApp({ outdir, context: { 'aws:cdk:bundling-stacks': [] } });
      const sm: StateMachine = built[stackName].stateMachine;
      const stack = Stack.of(sm);
      const smId = stack.getLogicalId(sm.node.defaultChild as CfnElement);
      const policy = sm.node.findChild('DistributedMapPolicy') as Policy;
      const doc = stack.resolve(policy.document.toJSON()) as { Statement: { Action: string | string[]; Resource: unknown }[] };
      const smName = { 'Fn::Select': [6, { 'Fn::Split': [':', { Ref: smId }] }] };
      const executions = (suffix: string) => ({
        'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':states:', { Ref: 'AWS::Region' }, ':', { Ref: 'AWS::AccountId' }, ':execution:', smName, suffix]],
      });
      expect(doc.Statement.map((st) => ({ actions: [st.Action].flat(), resource: st.Resource }))).toEqual([
        { actions: ['states:StartExecution'], resource: { Ref: smId } },
        { actions: ['states:DescribeExecution', 'states:StopExecution'], resource: executions(':*') },
        { actions: ['states:RedriveExecution'], resource: executions(`/${label}:*`) },
      ]);
      expect(stack.resolve((policy.node.defaultChild as CfnPolicy).roles)).toEqual([stack.resolve(sm.role.roleName)]);
      const acked = policy.node.metadata.filter((m) => m.type === Validations.ACKNOWLEDGED_RULES_METADATA_KEY).flatMap((m) => Object.keys(m.data as object));
      const nag = (suffix: string) => `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:execution:${JSON.stringify(smName)}${suffix}]`;
      expect(acked.map((id) => id.replace(/^Annotation::/, '')).sort()).toEqual([nag(':*'), nag(`/${label}:*`)].sort());
    });
  });

  describe('a lease event of 2,000 hosts', () => {
    it('start with a deploy image: lanes of child executions, every execution and payload within the limits', async () => {
      const s = await run(lease, leaseStub('deploy', N), { lease_id: uuid(1, 3), event_id: uuid(1, 4) });
      within(s);
      expect(s.childExecutions).toBe(actResult(Array.from({ length: N }, (_, i) => ({ reservation_id: 'r', node_id: uuid(i), action: 'deploy' })), []).lanes.length);
      expect(s.childExecutions).toBe(N / LANE_MAX_JOBS);
      note(`lease start (deploy), ${N} hosts`, s);
    });

    it('runs the agent-job Map only when Act made lanes, and Complete only when Act asks for it', async () => {
      const seen = (steps: string[], jobs: number, complete: boolean): Stub => {
        const inner = leaseStub('clean', jobs);
        return (i, callbacks) => {
          steps.push(i.step);
          if (i.step === 'act') return { ...(inner(i, callbacks) as object), complete };
          return inner(i, callbacks);
        };
      };
      // A start with no agent work: Begin, Act, Finish; no Map run, no Complete.
      const start: string[] = [];
      await run(lease, seen(start, 0, false), { lease_id: uuid(1, 3), event_id: uuid(1, 4) });
      expect(start).toEqual(['begin', 'act', 'finish']);
      // An end with two erases: the jobs, then Complete, then Finish.
      const end: string[] = [];
      await run(lease, seen(end, 2, true), { lease_id: uuid(1, 3), event_id: uuid(1, 4) });
      expect(end.filter((x) => x === 'agent_job')).toHaveLength(2);
      expect(end.slice(-2)).toEqual(['complete', 'finish']);
      // An end with nothing for the agent still completes (releases the nodes).
      const quiet: string[] = [];
      await run(lease, seen(quiet, 0, true), { lease_id: uuid(1, 3), event_id: uuid(1, 4) });
      expect(quiet).toEqual(['begin', 'act', 'complete', 'finish']);
    });

    it('end with erase: within the limits', async () => {
      const s = await run(lease, leaseStub('clean', N), { lease_id: uuid(1, 3), event_id: uuid(1, 4) });
      within(s);
      note(`lease end (erase), ${N} hosts`, s);
    });

    it('end with every erase failing with the longest error, and a note for every node: within the limits', async () => {
      const s = await run(lease, leaseStub('clean', N, { fail: true }), { lease_id: uuid(1, 3), event_id: uuid(1, 4) });
      within(s);
      note(`lease end (erase), ${N} hosts, every job failing`, s);
    });

    it('waits for its lease through the workflow\'s whole timeout (seven days) within the history limit', async () => {
      const [none, three] = [await run(lease, leaseStub('clean', 0), { lease_id: uuid(1, 3), event_id: uuid(1, 4) }), await run(lease, leaseStub('clean', 0, { waits: 3 }), { lease_id: uuid(1, 3), event_id: uuid(1, 4) })];
      const perRound = (three.maxHistoryEvents.execution - none.maxHistoryEvents.execution) / 3;
      expect(perRound).toBe(9);
      const longest = none.maxHistoryEvents.execution + perRound * rounds(LEASE_EVENTS_TIMEOUT.toSeconds(), (t) => retryWaitSeconds(2, t));
      expect(longest).toBeLessThanOrEqual(HISTORY_EVENT_LIMIT);
      figures[`a lease event waiting ${LEASE_EVENTS_TIMEOUT.toHours()} h`] = `${longest} events`;
      // The sweeper resets an event in progress only once its execution is certainly over.
      expect(STALE_EVENT_MS).toBeGreaterThan(LEASE_EVENTS_TIMEOUT.toMilliseconds());
    });
  });
});
