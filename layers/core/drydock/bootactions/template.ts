import nunjucks from 'nunjucks';

/**
 * The `template` pipeline segment: upstream renders with `jinja2.Template(data).render(ctx)`
 * (default environment, no loader, no autoescape). We render with nunjucks, made to behave like
 * that Jinja2 default where a boot-action template can tell the difference:
 *
 * - autoescape off; no loader, so `{% include %}` / `{% extends %}` fail as they do in Jinja2;
 * - newlines: `\r\n` and `\r` become `\n`, and one trailing newline is dropped
 *   (Jinja2's `keep_trailing_newline=False`);
 * - undefined: a missing variable or key renders as `''`, but looking up an attribute *of* an
 *   undefined value is an error (Jinja2's `UndefinedError`), so a typo in a network name fails
 *   the render instead of writing an empty address into a node's config;
 * - `{% for k in mapping %}` iterates the keys;
 * - values are printed as Python's `str()` would: `True`/`False`, `None`, `['a', 'b']`,
 *   `{'k': 'v'}` (also by the `string` and `join` filters);
 * - Python methods on dicts and lists (`.items()`, `.keys()`, `.values()`, `.get()`, ...), slices
 *   and `True`/`False`/`None` (nunjucks' own Jinja compatibility layer);
 * - `urlencode` (the filter the Drydock docs promise) quotes as Jinja2 does: `/` kept for
 *   strings, `%20` → `+` for mappings, `!*'()` escaped.
 *
 * Not covered: Python string methods (`.upper()`; use the `upper` filter) and Jinja2-only
 * filters and globals (`dictsort` exists, `namespace`/`lipsum` do not). Nunjucks extras (such
 * as `{% for k, v in mapping %}` over a mapping) follow Python semantics where they collide.
 *
 * Templates are not a sandbox in Jinja2 either, but nunjucks makes `x.constructor` a path to
 * `Function` (arbitrary code in the control plane), so member names `constructor`, `prototype`
 * and anything starting with `__` are refused.
 */

interface NunjucksRuntime {
  memberLookup: (obj: unknown, val: unknown, ...rest: unknown[]) => unknown;
  fromIterator: (value: unknown) => unknown;
  suppressValue: (val: unknown, autoescape: boolean) => unknown;
  SafeString: new (val: string) => object;
}

const BLOCKED_MEMBER = /^(?:constructor|prototype|__.*)$/;

let patched = false;

/**
 * NOTE: nunjucks has no per-environment hook for member lookup or output, so these patches go
 * onto the nunjucks runtime module, once per process. Nothing else in Slipway uses nunjucks.
 */
function patchRuntime(): void {
  if (patched) return;
  patched = true;
  nunjucks.installJinjaCompat();
  const runtime = (nunjucks as unknown as { runtime: NunjucksRuntime }).runtime;
  const lookup = runtime.memberLookup;
  runtime.memberLookup = function memberLookup(this: unknown, obj: unknown, val: unknown, ...rest: unknown[]) {
    if (typeof val === 'string' && BLOCKED_MEMBER.test(val)) {
      throw new Error(`access to "${val}" is not allowed in boot-action templates`);
    }
    // Slices (4 arguments) go through unchanged. An attribute of an undefined value is an
    // error, as in Jinja2; of None it is merely undefined.
    if (rest.length < 2 && obj === undefined) {
      throw new Error(`cannot look up ${JSON.stringify(val)} on an undefined value`);
    }
    if (rest.length < 2 && obj === null) return undefined;
    return lookup.call(this, obj, val, ...rest);
  };
  // `{% for k in mapping %}` iterates the keys, as in Python (nunjucks: nothing at all).
  const fromIterator = runtime.fromIterator;
  runtime.fromIterator = (value: unknown) => (isPlainObject(value) ? Object.keys(value) : fromIterator(value));
  const suppress = runtime.suppressValue;
  runtime.suppressValue = (val: unknown, autoescape: boolean) =>
    suppress(val === undefined ? val : typeof val === 'string' || val instanceof runtime.SafeString ? val : pythonStr(val), autoescape);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** Python's `str()` of a template value (top level: strings bare, containers with reprs). */
export function pythonStr(value: unknown): string {
  if (value === undefined) return '';
  if (typeof value === 'string') return value;
  if (value instanceof String) return value.toString();
  return pythonRepr(value);
}

function pythonRepr(value: unknown): string {
  if (value === undefined || value === null) return 'None';
  if (value === true) return 'True';
  if (value === false) return 'False';
  if (typeof value === 'string') return reprString(value);
  if (typeof value === 'number' || typeof value === 'bigint') return String(value);
  if (value instanceof String) return reprString(value.toString());
  if (Array.isArray(value)) return `[${value.map(pythonRepr).join(', ')}]`;
  if (isPlainObject(value)) {
    const entries = Object.entries(value);
    return `{${entries.map(([k, v]) => `${reprString(k)}: ${pythonRepr(v)}`).join(', ')}}`;
  }
  return String(value);
}

/** `repr()` of a Python str: single quotes unless the text has only single quotes in it. */
function reprString(s: string): string {
  const quote = s.includes("'") && !s.includes('"') ? '"' : "'";
  let out = quote;
  for (const ch of s) {
    const code = ch.codePointAt(0) as number;
    if (ch === '\\') out += '\\\\';
    else if (ch === quote) out += `\\${quote}`;
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (code < 0x20 || code === 0x7f) out += `\\x${code.toString(16).padStart(2, '0')}`;
    else out += ch;
  }
  return out + quote;
}

/** Python's `urllib.parse.quote_from_bytes`: unreserved characters plus `safe` stay. */
function urlQuote(value: unknown, forQuery: boolean): string {
  const text = pythonStr(value);
  const safe = forQuery ? '' : '/';
  let out = '';
  for (const byte of Buffer.from(text, 'utf8')) {
    const ch = String.fromCharCode(byte);
    if (/[A-Za-z0-9_.~-]/.test(ch) || safe.includes(ch)) out += ch;
    else out += `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return forQuery ? out.replaceAll('%20', '+') : out;
}

/** Jinja2's `urlencode` filter. */
export function jinjaUrlencode(value: unknown): string {
  if (value === undefined || value === null) return '';
  if (typeof value === 'string' || value instanceof String || typeof value !== 'object') return urlQuote(value, false);
  const pairs: unknown[] = Array.isArray(value) ? value : Object.entries(value as Record<string, unknown>);
  return pairs
    .map((pair) => {
      const [k, v] = Array.isArray(pair) ? pair : [pair, undefined];
      return `${urlQuote(k, true)}=${urlQuote(v, true)}`;
    })
    .join('&');
}

let environment: nunjucks.Environment | undefined;

function env(): nunjucks.Environment {
  if (environment) return environment;
  patchRuntime();
  const e = new nunjucks.Environment([], { autoescape: false, throwOnUndefined: false });
  e.addFilter('urlencode', jinjaUrlencode);
  e.addFilter('string', pythonStr);
  e.addFilter('join', (value: unknown, separator: unknown = '', attribute?: string) => {
    const items = Array.isArray(value) ? value : typeof value === 'string' ? [...value] : [];
    const picked = attribute === undefined ? items : items.map((item) => (item as Record<string, unknown> | null)?.[attribute]);
    return picked.map(pythonStr).join(pythonStr(separator));
  });
  environment = e;
  return e;
}

/** Jinja2's newline handling: one trailing newline dropped, line ends normalised to `\n`. */
function jinjaSource(source: string): string {
  const lines = source.split(/\r\n|\r|\n/);
  if (lines.length > 1 && lines[lines.length - 1] === '') lines.pop();
  return lines.join('\n');
}

/**
 * Renders `source` with `context`. The context is deep-copied first, because the Jinja
 * compatibility methods (`.pop()`, `.update()`) can mutate what a template is given.
 * Throws nunjucks' error (a syntax error, a failed lookup) unchanged; the pipeline wraps it.
 *
 * @example
 * renderTemplate('{{ node.hostname }}.{{ node.domain }}\n', ctx); // 'node01.example.com'
 */
export function renderTemplate(source: string, context: object): string {
  return env().renderString(jinjaSource(source), structuredClone(context));
}
