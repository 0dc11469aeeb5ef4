import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { build } from 'esbuild';
import { bundleCacheDir, esbuildOptions, LAMBDA_ENTRIES, type LambdaEntry } from '../bundling.ts';

/**
 * The Lambda bundles, built here exactly as CDK builds them (the settings of `infra/bundling.ts`):
 * what `npm start -- --bundled` serves, and `npm run bundles` writes out (with `--maps`, a source
 * map beside each, to read a minified stack trace from CloudWatch).
 */
export const REPO_ROOT = resolve(import.meta.dirname, '..', '..');

export interface LambdaBundles {
  dir: string;
  /** The bundle file of an entry (`functions/api/blazar.ts` → `<dir>/functions_api_blazar.mjs`). */
  file(entry: LambdaEntry): string;
  /** The bundle's exported `handler`, what Lambda invokes (imported once, as at a cold start). */
  handler<H>(entry: LambdaEntry): Promise<H>;
  /** Deletes the directory (modules already imported stay loaded). */
  remove(): void;
}

const fileName = (entry: string) => `${entry.replace(/\.ts$/, '').replaceAll('/', '_')}.mjs`;

/**
 * Builds every entry into `dir` (default: a new directory under node_modules/.cache, so that the
 * external `@aws-sdk/*` imports resolve to the pinned packages, as to the runtime's on Lambda).
 * A new directory per build also means new module URLs: each local stack gets bundles of its own.
 */
export async function buildLambdaBundles(opts: { dir?: string; maps?: boolean } = {}): Promise<LambdaBundles> {
  const dir = opts.dir ?? join(bundleCacheDir(REPO_ROOT), `${process.pid}-${randomBytes(4).toString('hex')}`);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = (entry: LambdaEntry) => join(dir, fileName(entry));
  await Promise.all(LAMBDA_ENTRIES.map((entry) => build(esbuildOptions(REPO_ROOT, entry, file(entry), opts.maps ? { sourcemap: 'external' } : {}))));
  const loaded = new Map<LambdaEntry, Promise<unknown>>();
  return {
    dir,
    file,
    handler<H>(entry: LambdaEntry): Promise<H> {
      let h = loaded.get(entry);
      if (!h) {
        h = import(pathToFileURL(file(entry)).href).then((mod: { handler?: unknown }) => {
          if (typeof mod.handler !== 'function') throw new Error(`${entry}: the bundle exports no handler`);
          return mod.handler;
        });
        loaded.set(entry, h);
      }
      return h as Promise<H>;
    },
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** `npm run bundles [-- --maps] [--out DIR]`: writes the bundles and prints their sizes. */
async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const out = args.includes('--out') ? resolve(args[args.indexOf('--out') + 1] ?? '') : join(bundleCacheDir(REPO_ROOT), 'latest');
  rmSync(out, { recursive: true, force: true });
  const bundles = await buildLambdaBundles({ dir: out, maps: args.includes('--maps') });
  for (const entry of LAMBDA_ENTRIES) process.stdout.write(`${(statSync(bundles.file(entry)).size / 1000).toFixed(1).padStart(7)} kB  ${entry}\n`);
  process.stdout.write(`written to ${out}\n`);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main().catch((err) => {
    process.stderr.write(`bundles: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
