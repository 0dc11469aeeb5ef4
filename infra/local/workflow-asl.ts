import { execFile } from 'node:child_process';
import { dirname, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';

/**
 * The workflow definitions the local stack runs, synthesized by CDK as for a deploy
 * (`infra/workflows/asl.ts`), in a short-lived child process: aws-cdk-lib is large (about 70 MiB
 * of the server's memory once loaded) and the stack needs it only for these three JSON documents,
 * so the server never loads it and the memory goes back with the child (issue 16: the local stack
 * at rest). What runs is still exactly what CDK synthesizes from the sources at this start.
 *
 * Run as a program (`node --import tsx workflow-asl.ts`), it reads the Drydock settings as JSON
 * on stdin and prints the definitions as JSON.
 */
export interface WorkflowAsls {
  leaseEvents: Record<string, unknown>;
  clusterOperations: Record<string, unknown>;
  drydockTasks: Record<string, unknown>;
  /** The ARN the Drydock definition's Prepare Task invokes (its other Tasks invoke the task function). */
  drydockPrepareFunctionArn: string;
}

const self = fileURLToPath(import.meta.url);
const root = resolve(dirname(self), '../..');
const run = promisify(execFile);

/** The definitions, `settings` being the environment the Drydock deadlines are read from. */
export async function synthWorkflowAsls(settings: Record<string, string | undefined>): Promise<WorkflowAsls> {
  const drydockSettings = Object.fromEntries(Object.entries(settings).filter(([k]) => k.startsWith('SLIPWAY_')));
  const child = run(process.execPath, ['--import', pathToFileURL(resolve(root, 'node_modules/tsx/dist/esm/index.mjs')).href, self], {
    cwd: root,
    env: { ...process.env, SLIPWAY_SYNTH_SETTINGS: JSON.stringify(drydockSettings) },
    maxBuffer: 16 * 1024 * 1024,
    timeout: 120_000,
  });
  const { stdout } = await child;
  return JSON.parse(stdout) as WorkflowAsls;
}

async function main(): Promise<void> {
  const asl = await import('../workflows/asl.ts');
  const settings = JSON.parse(process.env.SLIPWAY_SYNTH_SETTINGS ?? '{}') as Record<string, string>;
  const out: WorkflowAsls = {
    leaseEvents: asl.synthLeaseEventsAsl(),
    clusterOperations: asl.synthClusterOperationsAsl(),
    drydockTasks: asl.synthDrydockTasksAsl(settings),
    drydockPrepareFunctionArn: asl.LOCAL_DRYDOCK_PREPARE_FUNCTION_ARN,
  };
  process.stdout.write(JSON.stringify(out));
}

if (process.argv[1] && resolve(process.argv[1]) === self) {
  main().catch((err: unknown) => {
    process.stderr.write(`workflow-asl: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  });
}
