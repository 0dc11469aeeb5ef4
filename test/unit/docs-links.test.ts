import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

/**
 * Every relative link and `#anchor` in README.md and docs/**.md resolves, as GitHub resolves
 * them: a link's file (or folder) exists inside the repository, and its anchor is the slug of a
 * heading of the target page (GitHub's rules: lower case, punctuation dropped, spaces to
 * hyphens, `-1`, `-2` … for repeated headings) or an explicit `<a id>`/`<a name>`. The docs
 * were split out of one README; a page renamed or a heading reworded must not leave a newcomer
 * on a dead link. External links (`https:` …) are not fetched: the suite runs offline.
 */

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** GitHub's heading slug (github-slugger's rule) of a heading's rendered text. */
export function githubSlug(text: string): string {
  return text
    .toLowerCase()
    .replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '')
    .replace(/ /g, '-');
}

/**
 * The text GitHub renders for a heading's markdown: links and images keep their text, code
 * spans their content, emphasis markers and HTML tags go. (`_emphasis_` is not unwrapped: no
 * heading here uses it, and `_` inside words, e.g. `project_id`, must stay.)
 */
function renderedText(markdown: string): string {
  return markdown
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1')
    .replace(/<[^>]+>/g, '')
    .replace(/`+([^`]*)`+/g, '$1')
    .replace(/\*+/g, '')
    .replace(/\s+#+\s*$/, '')
    .trim();
}

/** Lines outside fenced code blocks (``` or ~~~), with their 1-based numbers. */
function proseLines(markdown: string): Array<{ line: number; text: string }> {
  const out: Array<{ line: number; text: string }> = [];
  let fence: string | undefined;
  markdown.split('\n').forEach((text, i) => {
    const marker = /^\s{0,3}(`{3,}|~{3,})/.exec(text)?.[1];
    if (marker && (fence === undefined || marker.startsWith(fence))) {
      fence = fence === undefined ? marker : undefined;
      return;
    }
    if (fence === undefined) out.push({ line: i + 1, text });
  });
  return out;
}

/** Every anchor a page offers: heading slugs (repeats numbered as GitHub does) and explicit ids. */
export function anchorsOf(markdown: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  for (const { text } of proseLines(markdown)) {
    const heading = /^\s{0,3}#{1,6}\s+(.*)$/.exec(text)?.[1];
    if (heading !== undefined) {
      const base = githubSlug(renderedText(heading));
      const n = seen.get(base) ?? 0;
      seen.set(base, n + 1);
      anchors.add(n === 0 ? base : `${base}-${n}`);
    }
    for (const m of text.matchAll(/<a\s+(?:id|name)="([^"]+)"/g)) anchors.add(m[1]!);
  }
  return anchors;
}

export interface Link {
  line: number;
  target: string;
}

/** Inline links and images `[text](target "title")`, autolinks `<target>`, and reference definitions. */
export function linksOf(markdown: string): Link[] {
  const links: Link[] = [];
  for (const { line, text } of proseLines(markdown)) {
    const prose = text.replace(/(`+)(?:(?!\1).)+\1/g, ''); // code spans: `[a](b)` there is not a link
    for (const m of prose.matchAll(/\]\(\s*(?:<([^>]*)>|([^)\s]*))(?:\s+"[^"]*")?\s*\)/g)) links.push({ line, target: m[1] ?? m[2]! });
    for (const m of prose.matchAll(/<((?:https?|mailto):[^>\s]+)>/g)) links.push({ line, target: m[1]! });
    const def = /^\s{0,3}\[[^\]]+\]:\s*<?([^>\s]+)>?/.exec(prose);
    if (def) links.push({ line, target: def[1]! });
  }
  return links;
}

/** What a link checker needs of the files: a page's text, and whether a path exists. */
export interface Pages {
  read(path: string): string | undefined;
  exists(path: string): boolean;
}

/**
 * The broken links of the given pages (paths relative to the repository root, `/` separators),
 * as `file:line: target (why)`.
 */
export function brokenLinks(files: string[], pages: Pages): string[] {
  const problems: string[] = [];
  const anchorCache = new Map<string, Set<string>>();
  const anchors = (file: string) => {
    let a = anchorCache.get(file);
    if (!a) anchorCache.set(file, (a = anchorsOf(pages.read(file) ?? '')));
    return a;
  };
  for (const file of files) {
    const text = pages.read(file);
    if (text === undefined) {
      problems.push(`${file}: not found`);
      continue;
    }
    for (const { line, target } of linksOf(text)) {
      if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // https:, mailto: …: not fetched offline
      const at = `${file}:${line}: ${target}`;
      const hash = target.indexOf('#');
      const pathPart = decodeURIComponent(hash < 0 ? target : target.slice(0, hash));
      const anchor = hash < 0 ? undefined : decodeURIComponent(target.slice(hash + 1));
      if (pathPart.startsWith('/')) {
        problems.push(`${at} (an absolute path: GitHub resolves it against the site, not the repository)`);
        continue;
      }
      const resolved = pathPart === '' ? file : join(dirname(file), pathPart).split(sep).join('/').replace(/\/$/, '');
      if (resolved.startsWith('..')) {
        problems.push(`${at} (outside the repository)`);
        continue;
      }
      if (pathPart !== '' && !pages.exists(resolved)) {
        problems.push(`${at} (no such file: ${resolved})`);
        continue;
      }
      if (anchor === undefined || anchor === '') continue;
      if (resolved.endsWith('.md')) {
        if (!anchors(resolved).has(anchor)) problems.push(`${at} (no heading or anchor "${anchor}" in ${resolved})`);
      } else {
        const lines = /^L(\d+)(?:-L(\d+))?$/.exec(anchor);
        const count = (pages.read(resolved) ?? '').split('\n').length;
        if (!lines || Number(lines[2] ?? lines[1]) > count) problems.push(`${at} (not a line anchor of ${resolved}, ${count} lines)`);
      }
    }
  }
  return problems;
}

/** The repository's own files, read from disk. */
const disk: Pages = {
  read: (path) => {
    const full = join(ROOT, path);
    return existsSync(full) && statSync(full).isFile() ? readFileSync(full, 'utf8') : undefined;
  },
  exists: (path) => existsSync(join(ROOT, path)),
};

function markdownUnder(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? markdownUnder(`${dir}/${e.name}`) : e.name.endsWith('.md') ? [`${dir}/${e.name}`] : [],
  );
}

/** In-memory pages for the checker's own tests. */
function memory(files: Record<string, string>): Pages {
  return {
    read: (path) => files[path],
    exists: (path) => path in files || Object.keys(files).some((f) => f.startsWith(`${path}/`)),
  };
}

describe('docs links (README.md and docs/)', () => {
  it('README.md and every page under docs/ link only to files and anchors that exist', () => {
    const files = ['README.md', ...markdownUnder('docs')];
    expect(files.length).toBeGreaterThan(1);
    expect(brokenLinks(files, disk)).toEqual([]);
  });

  it('README.md links to every page under docs/ (a newcomer reaches each one from the front door)', () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const linked = new Set(linksOf(readme).map((l) => l.target.split('#')[0]));
    const unlinked = markdownUnder('docs').filter((page) => !linked.has(page));
    expect(unlinked).toEqual([]);
  });

  it('slugs headings as GitHub does', () => {
    expect(githubSlug(renderedText('The local stack (`npm start`)'))).toBe('the-local-stack-npm-start');
    expect(githubSlug(renderedText('4. What runs, and what protects it'))).toBe('4-what-runs-and-what-protects-it');
    expect(githubSlug(renderedText('Native API `/v1.1/{project_id}/...` (Sahara conventions)'))).toBe('native-api-v11project_id-sahara-conventions');
    expect(githubSlug(renderedText("A node's lifecycle"))).toBe('a-nodes-lifecycle');
    expect(githubSlug(renderedText('Fleet scale: what each request reads'))).toBe('fleet-scale-what-each-request-reads');
    expect(githubSlug(renderedText('**Bold** and [a link](x.md) — dashes'))).toBe('bold-and-a-link--dashes');
    expect([...anchorsOf('# Title\n## Limits\n## Limits\n```\n## not a heading\n```\n<a id="custom"></a>\n')]).toEqual([
      'title',
      'limits',
      'limits-1',
      'custom',
    ]);
  });

  it('reports a missing file, a missing anchor here or in another page, and a bad line anchor; ignores code and external links', () => {
    const pages = memory({
      'README.md': [
        '# Slipway',
        '## Try it',
        'See [the tour](#try-it), [security](docs/security.md#credentials) and [the code](infra/routes.ts#L2).',
        'Broken: [gone](docs/gone.md), [no anchor](#nothing-here), [other page](docs/security.md#roles),',
        '[far line](infra/routes.ts#L99), [up](../outside.md), [abs](/docs/security.md).',
        'Fine: [web](https://example.com/x#y), `[in code](docs/none.md)`, [folder](docs/).',
        '```',
        '[in a fence](docs/none.md)',
        '```',
        '[ref]: docs/missing.md',
      ].join('\n'),
      'docs/security.md': '# Security model\n## Credentials\nBack to [the front](../README.md#slipway).\n',
      'infra/routes.ts': 'line 1\nline 2\n',
    });
    expect(brokenLinks(['README.md', 'docs/security.md'], pages)).toEqual([
      'README.md:4: docs/gone.md (no such file: docs/gone.md)',
      'README.md:4: #nothing-here (no heading or anchor "nothing-here" in README.md)',
      'README.md:4: docs/security.md#roles (no heading or anchor "roles" in docs/security.md)',
      'README.md:5: infra/routes.ts#L99 (not a line anchor of infra/routes.ts, 3 lines)',
      'README.md:5: ../outside.md (outside the repository)',
      'README.md:5: /docs/security.md (an absolute path: GitHub resolves it against the site, not the repository)',
      'README.md:10: docs/missing.md (no such file: docs/missing.md)',
    ]);
  });

  it('resolves links relative to the page that holds them', () => {
    const pages = memory({
      'docs/a.md': '# A\n[b](b.md#b-heading) [readme](../README.md)\n',
      'docs/b.md': '# B heading\n',
      'README.md': '# R\n[a](docs/a.md) [wrong](a.md)\n',
    });
    expect(brokenLinks(['docs/a.md', 'README.md'], pages)).toEqual(['README.md:2: a.md (no such file: a.md)']);
  });
});
