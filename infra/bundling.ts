import { join } from 'node:path';
import type { BuildOptions } from 'esbuild';

/**
 * How every Lambda of Slipway is bundled: ONE set of esbuild settings. SlipwayFunction hands it
 * to NodejsFunction (`infra/constructs/slipway-function.ts`); the local builder of
 * `npm start -- --bundled` (`infra/local/bundles.ts`), the bundle test and `npm run bench` hand
 * it to esbuild directly. Same esbuild, same settings, same sources: the same bytes, which
 * test/infra/bundle.test.ts checks against the asset CDK packages. Kept free of aws-cdk-lib so
 * that the local stack can import it without loading CDK.
 */

/** Some CJS dependencies (nunjucks) `require()` builtins; ESM output has no `require` without this. */
export const ESM_REQUIRE_BANNER = "import { createRequire } from 'module';const require = createRequire(import.meta.url);";

/**
 * The AWS SDK v3 is taken from the nodejs24.x runtime, not bundled (docs/bundles.md "Bundles and the AWS
 * SDK"): the DynamoDB client alone bundles to more than the 150 kB a function may weigh.
 * Locally the same imports resolve to the pinned packages in node_modules.
 */
export const SDK_EXTERNAL = ['@aws-sdk/*'];

export const LAMBDA_BUNDLING = {
  format: 'esm',
  platform: 'node',
  /** What NodejsFunction derives from Runtime.NODEJS_24_X; stated so that the two cannot differ. */
  target: 'node24',
  minify: true,
  /**
   * No `keepNames`: it would keep every class and function name (+6 %, 9 kB in the agent function,
   * measured), and the budget has no room for it. The names that matter survive anyway: Lambda
   * reports a thrown error's `name` as its `errorType`, which the workflows' Retry matches
   * (`ConcurrentModificationError`), so every error class writes its name out as a string
   * (`layers/core/errors.ts`) instead of reading `new.target.name`, which minification mangles
   * (issue 12 item 1); test/infra/bundle.test.ts holds the error classes to that, and
   * test/integration/bundled-stack.test.ts sees the Retry work on the bundles.
   */
  keepNames: false,
  /** Prefer the ESM builds of dependencies, which tree-shake. */
  mainFields: ['module', 'main'],
  banner: ESM_REQUIRE_BANNER,
  external: SDK_EXTERNAL,
  /**
   * No source maps in the package (docs/bundles.md): they weigh twice the code,
   * and `--enable-source-maps` makes Node read them at every cold start. `npm run bundles` builds
   * the same bytes with a map beside them, to read a minified stack trace offline.
   */
  sourcemap: false,
} as const;

/** The Lambda entries, relative to the repository root (each exports `handler`). */
export const LAMBDA_ENTRIES = [
  'functions/api/agent.ts',
  'functions/api/blazar.ts',
  'functions/api/bootactions.ts',
  'functions/api/commissaire.ts',
  'functions/api/console.ts',
  'functions/api/drydock.ts',
  'functions/api/identity.ts',
  'functions/api/ironic.ts',
  'functions/api/native.ts',
  'functions/api/system.ts',
  'functions/workflows/cluster-operations.ts',
  'functions/workflows/drydock-prepare.ts',
  'functions/workflows/drydock-tasks.ts',
  'functions/workflows/lease-events.ts',
  'functions/workflows/sweeper.ts',
] as const;
export type LambdaEntry = (typeof LAMBDA_ENTRIES)[number];

/**
 * Budget of a bundle: the minified `index.mjs`, all the package holds (no source map ships), in
 * KiB, the unit esbuild and `cdk synth` print (`146.9kb`) and the issue's figures were taken in.
 */
export const KIB = 1024;
export const BUNDLE_BUDGET = 150 * KIB;
/**
 * The Drydock functions (the issue's budget for them: 300 KiB). The API function and the task
 * workflow's Prepare parse YAML designs (`yaml`, 112 KiB); the task function's node steps render
 * Jinja templates (`nunjucks`, 86 KiB) and read fetched package lists (`js-yaml`, 45 KiB). Both
 * libraries of designs and templates with zod in one function were 349 KiB: Prepare parses the
 * design once and snapshots it parsed, in a function of its own, so the task function carries no
 * `yaml` (infra/workflows/drydock-tasks.ts).
 */
export const BUNDLE_BUDGET_OVERRIDES: Partial<Record<LambdaEntry, number>> = {
  'functions/api/drydock.ts': 300 * KIB,
  'functions/workflows/drydock-prepare.ts': 300 * KIB,
  'functions/workflows/drydock-tasks.ts': 300 * KIB,
};

/** esbuild options of one entry, written to `outfile` (a path inside the repository, see below). */
export function esbuildOptions(repoRoot: string, entry: string, outfile: string, extra: { sourcemap?: 'external' } = {}): BuildOptions {
  return {
    entryPoints: [join(repoRoot, entry)],
    absWorkingDir: repoRoot,
    outfile,
    bundle: true,
    format: LAMBDA_BUNDLING.format,
    platform: LAMBDA_BUNDLING.platform,
    target: LAMBDA_BUNDLING.target,
    minify: LAMBDA_BUNDLING.minify,
    keepNames: LAMBDA_BUNDLING.keepNames,
    mainFields: [...LAMBDA_BUNDLING.mainFields],
    banner: { js: LAMBDA_BUNDLING.banner },
    external: [...LAMBDA_BUNDLING.external],
    sourcemap: extra.sourcemap ?? LAMBDA_BUNDLING.sourcemap,
    // With a map next to the code, its sources stay out: the trace needs the mappings only.
    ...(extra.sourcemap ? { sourcesContent: false } : {}),
    logLevel: 'silent',
  };
}

/**
 * Where local bundles go: under node_modules, so that the external `@aws-sdk/*` imports resolve
 * to the project's pinned packages, as they resolve to the runtime's on Lambda.
 */
export const bundleCacheDir = (repoRoot: string) => join(repoRoot, 'node_modules/.cache/slipway/bundles');
