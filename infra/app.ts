import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { App, type AppProps, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks, ServerlessChecks } from 'cdk-nag';
import { deploymentOptions } from './constructs/deployment.ts';
import { ApiStack } from './stacks/api-stack.ts';
import { CommissaireStack } from './stacks/commissaire-stack.ts';
import { DrydockStack } from './stacks/drydock-stack.ts';
import { LifecycleStack } from './stacks/lifecycle-stack.ts';
import { StatefulStack } from './stacks/stateful-stack.ts';

export interface SlipwayApp {
  app: App;
  stateful: StatefulStack;
  lifecycle: LifecycleStack;
  commissaire: CommissaireStack;
  drydock: DrydockStack;
  api: ApiStack;
}

/**
 * The CDK app: stateful resources in one stack, lease timing (workflow, triggers, sweeper) in a
 * second, Commissaire's cluster-operation workflow in a third, the API in a fourth, Drydock's
 * task workflow in a fifth, wired by props (stateful → lifecycle / Commissaire → API → Drydock:
 * Drydock's nodes report to the API's URL, so one `cdk deploy --all` deploys everything with
 * nothing set by hand). Stacks are environment-agnostic (no account/region), so synth needs no
 * credentials. cdk-nag runs as a validation plugin with two packs, AwsSolutions and Serverless:
 * any unacknowledged finding fails synth. With `slipway:deployment` set, every stack name (and
 * every fixed resource name, infra/constructs/deployment.ts) carries it, so several deployments
 * share an account and region.
 *
 * Tests pass `{ outdir, context: { 'aws:cdk:bundling-stacks': [] } }` to skip esbuild.
 */
export function buildApp(props: AppProps = {}): SlipwayApp {
  const app = new App({
    ...props,
    context: {
      // Explicit: the stateful stack cannot drop an export the API stack still imports.
      '@aws-cdk/core:defaultCrossStackReferences': 'strong',
      ...props.context,
    },
  });
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { verbose: true }), new ServerlessChecks(app, { verbose: true }));

  // `lab` → stacks lab-SlipwayStateful, ... (the construct ids, hence the logical ids, stay).
  const { prefix } = deploymentOptions(app);
  const named = (id: string) => (prefix ? { stackName: `${prefix}${id}` } : {});
  const stateful = new StatefulStack(app, 'SlipwayStateful', {
    ...named('SlipwayStateful'),
    description: 'Slipway: DynamoDB table, S3 buckets, KMS key (retained), event bus and alarm topic',
  });
  const lifecycle = new LifecycleStack(app, 'SlipwayLeaseLifecycle', {
    ...named('SlipwayLeaseLifecycle'),
    description: 'Slipway: lease-event workflow, schedule group and sweeper',
    table: stateful.table,
    eventBus: stateful.eventBus,
    secretsKey: stateful.secretsKey,
    alarmTopic: stateful.alarmTopic,
  });
  const commissaire = new CommissaireStack(app, 'SlipwayCommissaire', {
    ...named('SlipwayCommissaire'),
    description: 'Slipway: Commissaire cluster-operation workflow (deploy, upgrade, restart host by host)',
    table: stateful.table,
    alarmTopic: stateful.alarmTopic,
  });
  const api = new ApiStack(app, 'SlipwayApi', {
    ...named('SlipwayApi'),
    description: 'Slipway: HTTP API and surface functions',
    table: stateful.table,
    bootdataBucket: stateful.bootdataBucket,
    secretsKey: stateful.secretsKey,
    lifecycle: { schedulerRole: lifecycle.schedulerRole, eventBus: stateful.eventBus, deadLetters: lifecycle.deadLetters },
    alarmTopic: stateful.alarmTopic,
  });
  // After the API (its URL is where nodes report): the drydock surface names the task workflow
  // by its fixed name, so only during the very first deploy can a task be posted before the
  // workflow exists (its start then fails with a 500; posting it again works).
  const drydock = new DrydockStack(app, 'SlipwayDrydock', {
    ...named('SlipwayDrydock'),
    description: 'Slipway: Drydock task workflow (designs, node registration, boot-action rendering, deploy waits)',
    table: stateful.table,
    bootdataBucket: stateful.bootdataBucket,
    secretsKey: stateful.secretsKey,
    alarmTopic: stateful.alarmTopic,
    reportUrl: api.reportUrl,
  });

  // The API names the cluster-operation workflow by its fixed name (no reference, so no implied
  // order): deploy the workflow first, so the commissaire surface never starts a missing one.
  api.addStackDependency(commissaire, 'the commissaire surface starts cluster-operation executions');

  return { app, stateful, lifecycle, commissaire, drydock, api };
}

// Entry point for `cdk synth` (cdk.json: `npx tsx infra/app.ts`); importing this module synthesizes nothing.
const isMain = process.argv[1] !== undefined && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url);
if (isMain) buildApp().app.synth();
