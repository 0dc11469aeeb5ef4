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
 * it resolves to the runtime's on Lambda, so its loading is counted. For comparison, the same
 * bundle with the SDK bundled in (what the functions shipped before issue 12).
 */
const RUNS = Number(process.env.BENCH_IMPORTS ?? 7);

function importMs(file: string): { median: number; best: number } {
  const times: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', `const t = performance.now(); await import(${JSON.stringify(pathToFileURL(file).href)}); process.stdout.write(String(performance.now() - t));`], {
      env: { PATH: process.env.PATH, AWS_REGION: 'us-east-1' },
    });
    times.push(Number(out.toString()));
  }
  times.sort((a, b) => a - b);
  return { median: times[Math.floor(times.length / 2)]!, best: times[0]! };
}

export async function bundlesBench(record: (k: string, v: string) => void): Promise<void> {
  const bundles = await buildLambdaBundles();
  const withSdk = join(bundleCacheDir(REPO_ROOT), `bench-sdk-bundled-${process.pid}`);
  try {
    for (const entry of LAMBDA_ENTRIES) {
      const file = bundles.file(entry);
      const bytes = statSync(file).size;
      const gz = gzipSync(readFileSync(file)).length;
      const t = importMs(file);
      const sdkFile = join(withSdk, `${entry.replaceAll('/', '_')}.mjs`);
      await build({ ...esbuildOptions(REPO_ROOT, entry, sdkFile), external: [] });
      const s = importMs(sdkFile);
      record(
        `bundle ${entry}`,
        `${(bytes / KIB).toFixed(1)} KiB (${bytes} B, gzip ${(gz / KIB).toFixed(0)} KiB), import ${t.median.toFixed(0)} ms (best ${t.best.toFixed(0)}); SDK bundled: ${(statSync(sdkFile).size / KIB).toFixed(0)} KiB, import ${s.median.toFixed(0)} ms (best ${s.best.toFixed(0)})`,
      );
    }
  } finally {
    bundles.remove();
    rmSync(withSdk, { recursive: true, force: true });
  }
}
