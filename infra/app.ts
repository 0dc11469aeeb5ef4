import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { App, type AppProps, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
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
 * second, Commissaire's cluster-operation workflow in a third, Drydock's task workflow in a
 * fourth, the API in a fifth, wired by props (stateful → lifecycle / Commissaire / Drydock → API). Stacks are environment-agnostic (no account/region),
 * so synth needs no credentials. cdk-nag runs as a validation plugin: any unacknowledged finding
 * fails synth.
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
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { verbose: true }));

  const stateful = new StatefulStack(app, 'SlipwayStateful', {
    description: 'Slipway: DynamoDB table, S3 buckets, KMS key (retained) and event bus',
  });
  const lifecycle = new LifecycleStack(app, 'SlipwayLeaseLifecycle', {
    description: 'Slipway: lease-event workflow, schedule group and sweeper',
    table: stateful.table,
    eventBus: stateful.eventBus,
  });
  const commissaire = new CommissaireStack(app, 'SlipwayCommissaire', {
    description: 'Slipway: Commissaire cluster-operation workflow (deploy, upgrade, restart host by host)',
    table: stateful.table,
  });
  const drydock = new DrydockStack(app, 'SlipwayDrydock', {
    description: 'Slipway: Drydock task workflow (designs, node registration, boot-action rendering, deploy waits)',
    table: stateful.table,
    bootdataBucket: stateful.bootdataBucket,
    secretsKey: stateful.secretsKey,
  });
  const api = new ApiStack(app, 'SlipwayApi', {
    description: 'Slipway: HTTP API, authorizer and surface functions',
    table: stateful.table,
    bootdataBucket: stateful.bootdataBucket,
    secretsKey: stateful.secretsKey,
    lifecycle: { schedulerRole: lifecycle.schedulerRole, eventBus: stateful.eventBus },
  });

  // The API names the cluster-operation workflow by its fixed name (no reference, so no implied
  // order): deploy the workflow first, so the commissaire surface never starts a missing one.
  api.addStackDependency(commissaire, 'the commissaire surface starts cluster-operation executions');
  // The same for Drydock's task workflow and the drydock surface.
  api.addStackDependency(drydock, 'the drydock surface starts task executions');

  return { app, stateful, lifecycle, commissaire, drydock, api };
}

// Entry point for `cdk synth` (cdk.json: `npx tsx infra/app.ts`); importing this module synthesizes nothing.
const isMain = process.argv[1] !== undefined && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url);
if (isMain) buildApp().app.synth();
