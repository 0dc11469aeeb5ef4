import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

/**
 * Builds the web console (console/src, Preact + one stylesheet) into the few strings the console
 * function serves: `index.html` and two content-hashed files, `app.<hash>.js` and `app.<hash>.css`
 * (cached for a year by browsers, since a new build has new names). The result is written to
 * console/dist/assets.json, which functions/api/console.ts imports, so the Lambda bundle and the
 * local server carry the very same bytes, with no build step at deploy time and no S3 bucket.
 * test/ui/console-assets.test.ts rebuilds it and fails when the committed file is stale.
 *
 *   npm run console        # rebuild console/dist/assets.json after editing console/src
 */
export const CONSOLE_DIR = dirname(fileURLToPath(import.meta.url));
export const ASSETS_FILE = join(CONSOLE_DIR, 'dist/assets.json');

/**
 * The budget: JS + CSS, minified (what the browser downloads before the first paint, before
 * gzip). 60 KiB is about 20 KiB gzipped: one round trip on a slow link and a few milliseconds
 * of parsing, and with the surface code (~20 KiB) it keeps the console function far inside the
 * 150 KiB every Lambda may weigh. Preact (~11 KiB) leaves the rest for the console's own code.
 */
export const CONSOLE_BUDGET_BYTES = 60 * 1024;

export interface ConsoleFile {
  contentType: string;
  body: string;
}
export interface ConsoleAssets {
  /** The page at /console. */
  index: string;
  /** By name under /console/ (`app.<hash>.js`). */
  files: Record<string, ConsoleFile>;
}

const hash = (s: string) => createHash('sha256').update(s).digest('hex').slice(0, 12);

export async function buildConsole(): Promise<ConsoleAssets> {
  const result = await build({
    entryPoints: [join(CONSOLE_DIR, 'src/main.tsx')],
    absWorkingDir: join(CONSOLE_DIR, '..'),
    bundle: true,
    minify: true,
    write: false,
    outdir: join(CONSOLE_DIR, 'dist/out'),
    format: 'iife',
    // Browsers of the last few years: <dialog>, CSS custom properties, `??`, Array#at.
    target: ['chrome109', 'firefox115', 'safari16'],
    jsx: 'automatic',
    jsxImportSource: 'preact',
    tsconfig: join(CONSOLE_DIR, 'tsconfig.json'),
    legalComments: 'none',
    charset: 'utf8',
    logLevel: 'silent',
  });
  const js = result.outputFiles.find((f) => f.path.endsWith('.js'))!.text;
  const css = result.outputFiles.find((f) => f.path.endsWith('.css'))?.text ?? '';
  const jsName = `app.${hash(js)}.js`;
  const cssName = `app.${hash(css)}.css`;
  const index = [
    '<!doctype html>',
    '<html lang="en">',
    '<head>',
    '<meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    '<title>Slipway console</title>',
    // No favicon request (the API has no such route): an empty data: icon.
    '<link rel="icon" href="data:,">',
    `<link rel="stylesheet" href="/console/${cssName}">`,
    `<script defer src="/console/${jsName}"></script>`,
    '</head>',
    '<body>',
    '<div id="app"></div>',
    '<noscript>The Slipway console needs JavaScript.</noscript>',
    '</body>',
    '</html>',
    '',
  ].join('\n');
  return {
    index,
    files: {
      [jsName]: { contentType: 'text/javascript; charset=utf-8', body: js },
      [cssName]: { contentType: 'text/css; charset=utf-8', body: css },
    },
  };
}

/** The JSON text of console/dist/assets.json (stable: one key per line for readable diffs). */
export const assetsJson = (a: ConsoleAssets) => `${JSON.stringify(a, null, 1)}\n`;

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const assets = await buildConsole();
  writeFileSync(ASSETS_FILE, assetsJson(assets));
  const size = Object.values(assets.files).reduce((n, f) => n + Buffer.byteLength(f.body), 0);
  process.stdout.write(`console: ${Object.keys(assets.files).join(', ')}: ${size} bytes of ${CONSOLE_BUDGET_BYTES} (JS + CSS, minified)\n`);
}
