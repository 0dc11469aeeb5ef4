import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { gzipSync } from 'node:zlib';
import { build } from 'esbuild';
import { bundleCacheDir, esbuildOptions, KIB, LAMBDA_ENTRIES } from '../../infra/bundling.ts';
import { buildLambdaBundles, REPO_ROOT } from '../../infra/local/bundles.ts';

/**
 * `npm run bench -- bundles`: each Lambda bundle as CDK packages it (infra/bundling.ts) — its
 * size, and its import time in a fresh Node process (median and best of BENCH_IMPORTS, default 7),
 * the part of a cold start the code decides. The external AWS SDK resolves to node_modules, as
 * it resolves to the runtime's on Lambda, so its loading is counted.
 *
 * The SDK packages a function uses on few paths (KMS, S3, Step Functions, Scheduler, EventBridge)
 * are imported at their first use (`firstUse` in layers/aws/lazy-client.ts), so the import time is
 * what every cold start pays; `first use of …: +N ms` is the same process then importing those
 * packages too (median of the differences), what the first invocation that needs all of them pays
 * on top (at most: an invocation needs one or two of them, if any). For comparison, the same
 * bundle with the SDK bundled in (what the functions shipped before issue 12; its `import()`s are
 * bundled too and still run at first use). The runs of the two alternate, so that the machine's
 * load falls on both alike.
 */
const RUNS = Number(process.env.BENCH_IMPORTS ?? 7);

interface ImportTimes {
  /** The bundle's import. */
  load: number[];
  /** The bundle's import, then the packages it imports at first use. */
  withFirstUse: number[];
}

/** One fresh Node process importing `file`, then `later` (bare specifiers, resolved from the repository). */
function importOnce(file: string, later: string[]): { load: number; withFirstUse: number } {
  const script = [
    'const t = performance.now();',
    `await import(${JSON.stringify(pathToFileURL(file).href)});`,
    'const load = performance.now() - t;',
    `for (const p of ${JSON.stringify(later)}) await import(p);`,
    'process.stdout.write(JSON.stringify({ load, withFirstUse: performance.now() - t }));',
  ].join('\n');
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: REPO_ROOT, env: { PATH: process.env.PATH, AWS_REGION: 'us-east-1' } });
  return JSON.parse(out.toString()) as { load: number; withFirstUse: number };
}

/** RUNS imports of each of `files`, taken in turn. */
function importTimes(files: { file: string; later: string[] }[]): ImportTimes[] {
  const times = files.map((): ImportTimes => ({ load: [], withFirstUse: [] }));
  for (let i = 0; i < RUNS; i++) {
    files.forEach(({ file, later }, k) => {
      const t = importOnce(file, later);
      times[k]!.load.push(t.load);
      times[k]!.withFirstUse.push(t.withFirstUse);
    });
  }
  return times;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const best = (xs: number[]) => Math.min(...xs);
const fmt = (xs: number[]) => `${median(xs).toFixed(0)} ms (best ${best(xs).toFixed(0)})`;

/** The SDK packages a bundle imports at first use: its `import("@aws-sdk/…")` (esbuild keeps the call of an external package). */
const firstUsePackages = (code: string): string[] => [...new Set([...code.matchAll(/\bimport\("(@aws-sdk\/[\w-]+)"\)/g)].map((m) => m[1]!))].sort();

export async function bundlesBench(record: (k: string, v: string) => void): Promise<void> {
  const bundles = await buildLambdaBundles();
  const withSdk = join(bundleCacheDir(REPO_ROOT), `bench-sdk-bundled-${process.pid}`);
  try {
    for (const entry of LAMBDA_ENTRIES) {
      const file = bundles.file(entry);
      const code = readFileSync(file);
      const bytes = code.length;
      const gz = gzipSync(code).length;
      const later = firstUsePackages(code.toString('utf8'));
      const sdkFile = join(withSdk, `${entry.replaceAll('/', '_')}.mjs`);
      await build({ ...esbuildOptions(REPO_ROOT, entry, sdkFile), external: [] });
      const [t, s] = importTimes([
        { file, later },
        { file: sdkFile, later: [] },
      ]) as [ImportTimes, ImportTimes];
      const lazy = later.length ? `; first use of ${later.map((p) => p.replace('@aws-sdk/', '')).join(', ')}: +${median(t.withFirstUse.map((w, i) => w - t.load[i]!)).toFixed(0)} ms` : '';
      record(
        `bundle ${entry}`,
        `${(bytes / KIB).toFixed(1)} KiB (${bytes} B, gzip ${(gz / KIB).toFixed(0)} KiB), import ${fmt(t.load)}${lazy}; SDK bundled: ${(statSync(sdkFile).size / KIB).toFixed(0)} KiB, import ${fmt(s.load)}`,
      );
    }
  } finally {
    bundles.remove();
    rmSync(withSdk, { recursive: true, force: true });
  }
}
