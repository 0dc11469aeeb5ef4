import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Context } from 'aws-lambda';
import { build, type Metafile } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../infra/app.ts';
import { BUNDLE_BUDGET, BUNDLE_BUDGET_OVERRIDES, bundleCacheDir, ESM_REQUIRE_BANNER, esbuildOptions, LAMBDA_ENTRIES, type LambdaEntry } from '../../infra/bundling.ts';
import { REPO_ROOT } from '../../infra/constructs/slipway-function.ts';
import { rapidResponse } from '../../infra/local/lambda.ts';
import type { CompositionRoot } from '#aws/roots/compose.ts';
import type { HttpEvent, HttpResult } from '#http/surface.ts';

/**
 * Every Lambda bundles with the settings SlipwayFunction gives NodejsFunction (`infra/bundling.ts`)
 * within its budget (issue 12: 150 kB, the two Drydock functions 300 kB, minified, what the
 * package holds), loads as ESM, needs nothing at run time but Node and the runtime's AWS SDK, and
 * its composition root wires every port its code touches. Error names survive minification. And
 * CDK packages the very bytes the local builder (`npm start -- --bundled`) produces.
 */

// Under node_modules, so that the external `@aws-sdk/*` imports resolve when a bundle is loaded.
const out = join(bundleCacheDir(REPO_ROOT), `test-${process.pid}`);
mkdirSync(out, { recursive: true });
afterAll(() => rmSync(out, { recursive: true, force: true }));

const outfileOf = (entry: string) => join(out, `${entry.replaceAll('/', '_').replace(/\.ts$/, '')}.mjs`);
const metafiles = new Map<LambdaEntry, Metafile>();

beforeAll(async () => {
  await Promise.all(
    LAMBDA_ENTRIES.map(async (entry) => {
      const result = await build({ ...esbuildOptions(REPO_ROOT, entry, outfileOf(entry)), metafile: true });
      expect(result.errors).toEqual([]);
      metafiles.set(entry, result.metafile!);
    }),
  );
}, 60_000);

async function load<H = (e: HttpEvent, c: Context) => Promise<HttpResult>>(entry: string): Promise<H> {
  const mod = (await import(pathToFileURL(outfileOf(entry)).href)) as { handler?: unknown };
  expect(typeof mod.handler).toBe('function');
  return mod.handler as H;
}

function event(method: string, routeKey: string, rawPath: string): HttpEvent {
  return {
    version: '2.0',
    routeKey,
    rawPath,
    rawQueryString: '',
    headers: {},
    isBase64Encoded: false,
    requestContext: {
      accountId: '123456789012',
      apiId: 'api',
      domainName: 'api.example',
      domainPrefix: 'api',
      http: { method, path: rawPath, protocol: 'HTTP/1.1', sourceIp: '127.0.0.1', userAgent: 'vitest' },
      requestId: 'req-1',
      routeKey,
      stage: '$default',
      time: '01/Jan/2030:00:00:00 +0000',
      timeEpoch: 1_893_456_000_000,
    },
  } as HttpEvent;
}
const context = { getRemainingTimeInMillis: () => 29_000, awsRequestId: 'aws-1' } as Context;

/** The `.ts` files under `dir` (recursively), relative to the repository root. */
function sources(dir: string): string[] {
  return readdirSync(join(REPO_ROOT, dir), { withFileTypes: true }).flatMap((d) =>
    d.isDirectory() ? sources(`${dir}/${d.name}`) : d.name.endsWith('.ts') ? [`${dir}/${d.name}`] : [],
  );
}

describe('Lambda bundles (esbuild, the settings of infra/bundling.ts)', () => {
  it('lists every function there is', () => {
    expect([...LAMBDA_ENTRIES].sort()).toEqual([...sources('functions/api'), ...sources('functions/workflows')].filter((f) => !f.includes('/views/')).sort());
  });

  it.each(LAMBDA_ENTRIES)('%s is within its budget, exports handler, and imports only Node and the AWS SDK', async (entry) => {
    const bytes = statSync(outfileOf(entry)).size;
    console.info(`bundle ${entry}: ${bytes} bytes`);
    expect(bytes).toBeLessThanOrEqual(BUNDLE_BUDGET_OVERRIDES[entry] ?? BUNDLE_BUDGET);
    const external = Object.values(metafiles.get(entry)!.outputs)[0]!.imports.filter((i) => i.external).map((i) => i.path);
    // A package left external would be missing on Lambda (only the runtime's SDK is there);
    // nunjucks `require`s some optional packages inside try/catch, which stay unresolved.
    const node = new Set([...builtinModules, ...builtinModules.map((m) => `node:${m}`)]);
    expect(external.filter((p) => !node.has(p) && !p.startsWith('@aws-sdk/') && !['chokidar', 'fsevents'].includes(p))).toEqual([]);
    // Classic zod (`from 'zod'`) would add 85–100 KiB: the Lambda code uses zod/mini (layers/core/util/zod.ts).
    expect(Object.keys(metafiles.get(entry)!.inputs).filter((p) => p.includes('node_modules/zod/v4/classic/'))).toEqual([]);
    await load(entry);
  });

  it('answers GET /healthz from the bundled system function', async () => {
    const handler = await load('functions/api/system.ts');
    const res = await handler(event('GET', 'GET /healthz', '/healthz'), context);
    expect(res.statusCode).toBe(200);
    expect(JSON.parse(res.body!)).toEqual({ status: 'ok' });
  });

  it('answers GET /openapi.json from the bundled system function with the committed document (infra/openapi.ts)', async () => {
    const handler = await load('functions/api/system.ts');
    const res = await handler(event('GET', 'GET /openapi.json', '/openapi.json'), context);
    expect(res.statusCode).toBe(200);
    expect(res.headers?.['Content-Type']).toBe('application/json');
    expect(JSON.parse(res.body!)).toEqual(JSON.parse(readFileSync(join(REPO_ROOT, 'layers/http/openapi.json'), 'utf8')));
  });

  it('answers 401 in the Sahara format from the bundled native function without credentials', async () => {
    const handler = await load('functions/api/native.ts');
    const res = await handler(event('GET', 'GET /v1.1/{project_id}/tokens', '/v1.1/p1/tokens'), context);
    expect(res.statusCode).toBe(401);
    expect(JSON.parse(res.body!)).toMatchObject({ error_code: 401, error_name: expect.any(String), error_message: expect.any(String) });
  });
});

const PORTS = ['tokens', 'users', 'nodes', 'bmPorts', 'leases', 'properties', 'idempotency', 'jobs', 'secrets', 'callbacks', 'scheduler', 'runner', 'notifier', 'operations', 'commissaire', 'drydock', 'blobs', 'tasks'];

describe('composition roots (layers/aws/roots)', () => {
  // Every module of a function's bundle that names a port (`deps.nodes`, `req.deps.secrets`,
  // `deps().tokens`) may use it: the function's root must wire it. A port left out would fail
  // only on AWS (and in the bundled local stack): the in-process stack shares one full set.
  // `system` and `console` (health, OpenAPI, the web console's files) use no port and have no root.
  it.each(LAMBDA_ENTRIES.filter((e) => e !== 'functions/api/system.ts' && e !== 'functions/api/console.ts'))('%s: its root wires every port its modules use', async (entry) => {
    const name = entry.replace(/^functions\/\w+\//, '').replace(/\.ts$/, '');
    const { root } = (await import(`../../layers/aws/roots/${name}.ts`)) as { root: CompositionRoot };
    const wired = Object.keys(root.wire({ TABLE_NAME: 't', DYNAMODB_ENDPOINT: 'http://127.0.0.1:1', AWS_REGION: 'us-east-1' }));
    const used = new Set<string>();
    for (const file of Object.keys(metafiles.get(entry)!.inputs).filter((p) => /^(functions|layers\/(core|http))\//.test(p))) {
      for (const m of readFileSync(join(REPO_ROOT, file), 'utf8').matchAll(/\bdeps(?:\(\))?\.(\w+)/g)) if (PORTS.includes(m[1]!)) used.add(m[1]!);
    }
    expect([...used].filter((p) => !wired.includes(p)).sort()).toEqual([]);
    // The function itself imports its own root, not another's or the whole one (deps.ts).
    const inputs = Object.keys(metafiles.get(entry)!.inputs);
    expect(inputs.filter((p) => p.startsWith('layers/aws/roots/') && !['compose.ts', 'secrets.ts', 'blobs.ts'].some((s) => p.endsWith(`/${s}`)))).toEqual([`layers/aws/roots/${name}.ts`]);
    expect(inputs).not.toContain('layers/aws/deps.ts');
  });
});

describe('error names survive the bundle (issue 12 item 1)', () => {
  // Lambda reports a thrown error's `name` as its errorType; the workflows' Retry and Catch match
  // it. A minified class name is a letter, so every error class writes its name out.
  it('every error class of the Lambda code names itself as a string', () => {
    const files = ['functions', 'layers'].flatMap(sources);
    const classes = new Map<string, { base: string; body: string; file: string }>();
    for (const file of files) {
      const text = readFileSync(join(REPO_ROOT, file), 'utf8');
      for (const m of text.matchAll(/class (\w+) extends (\w+)(?:<[^>]*>)? \{([\s\S]*?)\n\}/g)) classes.set(m[1]!, { base: m[2]!, body: m[3]!, file });
    }
    const isDomain = (name: string): boolean => name === 'DomainError' || (classes.has(name) && isDomain(classes.get(name)!.base));
    const problems: string[] = [];
    for (const [name, c] of classes) {
      const declared = /\boverride (?:readonly )?name(?:: string)? = '(\w+)'/.exec(c.body)?.[1];
      if (isDomain(c.base) && declared === undefined) problems.push(`${c.file}: ${name} does not declare its name`);
      if (declared !== undefined && declared !== name) problems.push(`${c.file}: ${name} declares the name '${declared}'`);
    }
    expect(problems).toEqual([]);
  });

  it('a ConcurrentModificationError thrown in a bundle is reported with its own errorType', async () => {
    const entry = join(out, 'errors-entry.ts');
    writeFileSync(
      entry,
      [
        `import * as errors from '${join(REPO_ROOT, 'layers/core/errors.ts')}';`,
        `import { ConcurrentModificationError } from '${join(REPO_ROOT, 'layers/core/errors.ts')}';`,
        'export const classes = errors;',
        'export const handler = async () => { throw new ConcurrentModificationError(); };',
      ].join('\n'),
    );
    const file = join(out, 'errors-entry.mjs');
    await build(esbuildOptions(REPO_ROOT, relative(REPO_ROOT, entry), file));
    const mod = (await import(pathToFileURL(file).href)) as { handler: () => Promise<never>; classes: Record<string, unknown> };
    const thrown = await mod.handler().catch((e: unknown) => e);
    expect(rapidResponse(thrown).errorType).toBe('ConcurrentModificationError');
    // Minification renamed the class itself: `new.target.name` would have been this.
    expect((mod.classes.ConcurrentModificationError as { name: string }).name).not.toBe('ConcurrentModificationError');
    // Every class of the hierarchy: its instances carry the name it is exported as.
    for (const [exported, cls] of Object.entries(mod.classes)) {
      if (typeof cls !== 'function' || exported === 'DomainError') continue;
      const instance = new (cls as new (m: string, x: unknown) => Error)('m', []);
      expect(instance.name, exported).toBe(exported);
    }
  });
});

describe('NodejsFunction bundling through CDK', () => {
  it('packages exactly what the local builder builds: index.mjs alone, byte for byte', async () => {
    const outdir = mkdtempSync(join(REPO_ROOT, 'node_modules/.cache/slipway/cdk-'));
    try {
      const { app, api, lifecycle, commissaire, drydock } = buildApp({ outdir });
      app.synth();
      const fns = [api, lifecycle, commissaire, drydock].flatMap((stack) => {
        const assets = JSON.parse(readFileSync(join(outdir, `${stack.artifactId}.assets.json`), 'utf8')) as { files: Record<string, { source: { path: string } }> };
        const template = JSON.parse(readFileSync(join(outdir, stack.templateFile), 'utf8')) as {
          Resources: Record<string, { Type: string; Properties: { Code?: { S3Key?: string }; Description?: string }; Metadata?: Record<string, string> }>;
        };
        return Object.values(template.Resources)
          .filter((r) => r.Type === 'AWS::Lambda::Function' && r.Properties.Code?.S3Key)
          .map((f) => join(outdir, assets.files[f.Properties.Code!.S3Key!.replace(/\.zip$/, '')]!.source.path));
      });
      const local = new Map(LAMBDA_ENTRIES.map((e) => [readFileSync(outfileOf(e), 'utf8'), e]));
      const packaged = new Set<string>();
      for (const dir of fns) {
        expect(readdirSync(dir)).toEqual(['index.mjs']);
        const code = readFileSync(join(dir, 'index.mjs'), 'utf8');
        expect(code.startsWith(ESM_REQUIRE_BANNER)).toBe(true);
        const entry = local.get(code);
        expect(entry, `${dir}/index.mjs is none of the local bundles`).toBeDefined();
        packaged.add(entry!);
      }
      // Every function is deployed (and each from its own entry).
      expect([...packaged].sort()).toEqual([...LAMBDA_ENTRIES].sort());
      expect(existsSync(outdir)).toBe(true);
    } finally {
      rmSync(outdir, { recursive: true, force: true });
    }
  }, 180_000);
});
