import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { App, type AppProps, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { ApiStack } from './stacks/api-stack.ts';
import { LifecycleStack } from './stacks/lifecycle-stack.ts';
import { StatefulStack } from './stacks/stateful-stack.ts';

export interface SlipwayApp {
  app: App;
  stateful: StatefulStack;
  lifecycle: LifecycleStack;
  api: ApiStack;
}

/**
 * The CDK app: stateful resources in one stack, lease timing (workflow, triggers, sweeper) in a
 * second, the API in a third, wired by props. Stacks are environment-agnostic (no account/region),
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
  const api = new ApiStack(app, 'SlipwayApi', {
    description: 'Slipway: HTTP API, authorizer and surface functions',
    table: stateful.table,
    bootdataBucket: stateful.bootdataBucket,
    secretsKey: stateful.secretsKey,
    lifecycle: { schedulerRole: lifecycle.schedulerRole, eventBus: stateful.eventBus },
  });

  return { app, stateful, lifecycle, api };
}

// Entry point for `cdk synth` (cdk.json: `npx tsx infra/app.ts`); importing this module synthesizes nothing.
const isMain = process.argv[1] !== undefined && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url);
if (isMain) buildApp().app.synth();
