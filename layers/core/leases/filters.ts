import { ValidationError } from '../errors.ts';
import type { Node } from '../inventory/node.ts';
import { FACT_KEYS } from '../inventory/node.ts';
import { byteLength, jsonProblem } from '../util/bounds.ts';

/**
 * Blazar's property filter language (upstream-apis.md §4.9), as a superset (DESIGN.md §10):
 *
 *   ""  |  "[]"                                 no constraint
 *   ["==", "$memory_mb", "4096"]                key op value
 *   ["and", expr, expr, ...]                    all must hold
 *   ["or", expr, expr, ...]                     any must hold          (our extension)
 *
 * Operators `==` `=` `!=` `<` `<=` `>` `>=`. Comparisons are numeric when both sides are
 * numbers (upstream compares extra capabilities as strings, so "10" < "9"), else on strings.
 * A host lacking an extra capability never matches a term on it (upstream bug #1702745).
 * The literal `null` on a host column tests for a missing value, as upstream.
 *
 * Filters are client text stored with the reservation and evaluated on every later allocation
 * of it, so they are bounded before anything else looks at them: at most MAX_FILTER_BYTES of
 * JSON, lists nested at most MAX_FILTER_DEPTH deep (checked without recursion, before the
 * recursive parse), at most MAX_FILTER_TERMS terms. Capability names are looked up as own
 * properties only: `$constructor` or `$toString` name no host column and no capability a host
 * lacks, so they match no host; `$__proto__` is refused, and so is any `__proto__` object key.
 */
export type Comparison = '==' | '!=' | '<' | '<=' | '>' | '>=';
export type Requirement =
  | { kind: 'all'; of: Requirement[] }
  | { kind: 'any'; of: Requirement[] }
  | { kind: 'term'; op: Comparison; key: string; value: string };

const OPS: Record<string, Comparison> = { '==': '==', '=': '==', '!=': '!=', '<': '<', '<=': '<=', '>': '>', '>=': '>=' };

/** Longest filter accepted (bytes of its JSON text); upstream stores them in a text column. */
export const MAX_FILTER_BYTES = 16 * 1024;
/** Deepest nesting of lists in a filter: `["and", ["or", [term]]]` is 3 (upstream allows 2). */
export const MAX_FILTER_DEPTH = 8;
/** Most terms (`[op, "$key", "value"]`) in one filter. */
export const MAX_FILTER_TERMS = 128;

/** Columns a host has without extra capabilities. */
export const HOST_COLUMNS: readonly string[] = [...FACT_KEYS, 'hypervisor_hostname', 'reservable'];

/** The filter as quoted in an error: a hostile one can be 16 KiB, the message stays short. */
function quote(raw: unknown): string {
  let text: string;
  try {
    text = typeof raw === 'string' ? JSON.stringify(raw) : (JSON.stringify(raw) ?? String(raw));
  } catch {
    text = String(raw);
  }
  return text.length > 200 ? `${text.slice(0, 200)}…` : text;
}

function malformed(field: string, raw: unknown, why: string): never {
  const reason = why.length > 200 ? `${why.slice(0, 200)}…` : why;
  throw new ValidationError(`Malformed requirements ${quote(raw)} in ${field}: ${reason}`, 'MALFORMED_REQUIREMENTS');
}

/** Own properties only: `constructor`, `toString` and friends are not capabilities of every host. */
const own = (o: object, key: string): boolean => Object.hasOwn(o, key);

function parseExpr(x: unknown, field: string, raw: unknown, count: { terms: number }): Requirement {
  if (!Array.isArray(x) || x.length === 0) malformed(field, raw, 'expected a list');
  const [head, ...rest] = x as unknown[];
  if (head === 'and' || head === 'or') {
    if (rest.length === 0) malformed(field, raw, `"${head}" needs at least one term`);
    return { kind: head === 'and' ? 'all' : 'any', of: rest.map((t) => parseExpr(t, field, raw, count)) };
  }
  if (typeof head !== 'string' || !own(OPS, head)) malformed(field, raw, `unknown operator ${quote(head)}`);
  if (rest.length !== 2) malformed(field, raw, 'a term is [operator, "$key", "value"]');
  const [key, value] = rest;
  if (typeof key !== 'string' || !key.startsWith('$') || key.length < 2) malformed(field, raw, 'the key must be "$" followed by a name');
  // `__proto__` is refused outright, as in capabilities; `$constructor` and the like are plain
  // names that no host has (capabilities of those names are refused at enrolment).
  if (key === '$__proto__') malformed(field, raw, `"${key}" is a reserved name`);
  const v = typeof value === 'number' && Number.isFinite(value) ? String(value) : value;
  if (typeof v !== 'string' || v === '') malformed(field, raw, 'the value must be a non-empty string');
  if (++count.terms > MAX_FILTER_TERMS) malformed(field, raw, `more than ${MAX_FILTER_TERMS} terms`);
  return { kind: 'term', op: OPS[head]!, key: key.slice(1), value: v };
}

/**
 * Parses a filter given as a JSON string (as clients send it) or as an already-decoded list.
 * Size and depth are checked first (iteratively), so the recursive parse below and every later
 * evaluation are bounded by MAX_FILTER_DEPTH.
 */
export function parseRequirements(raw: unknown, field: string): Requirement | undefined {
  if (raw === undefined || raw === null || raw === '') return undefined;
  let decoded: unknown = raw;
  if (typeof raw === 'string') {
    if (byteLength(raw) > MAX_FILTER_BYTES) malformed(field, raw, `longer than ${MAX_FILTER_BYTES} bytes`);
    try {
      decoded = JSON.parse(raw);
    } catch {
      malformed(field, raw, 'not valid JSON');
    }
  }
  const problem = jsonProblem(decoded, MAX_FILTER_DEPTH);
  if (problem) malformed(field, raw, problem);
  if (typeof raw !== 'string') {
    // An already-decoded list is bounded like its JSON text.
    const text = JSON.stringify(decoded);
    if (text !== undefined && byteLength(text) > MAX_FILTER_BYTES) malformed(field, raw, `longer than ${MAX_FILTER_BYTES} bytes`);
  }
  if (Array.isArray(decoded) && decoded.length === 0) return undefined;
  return parseExpr(decoded, field, raw, { terms: 0 });
}

export function referencedKeys(r: Requirement | undefined): string[] {
  if (!r) return [];
  return r.kind === 'term' ? [r.key] : [...new Set(r.of.flatMap(referencedKeys))];
}

function hostValue(node: Node, key: string): { present: boolean; value: string | number | boolean | undefined; column: boolean } {
  if (key === 'hypervisor_hostname') return { present: true, value: node.name, column: true };
  if (key === 'service_name') return { present: true, value: node.facts.service_name ?? node.name, column: true };
  if (key === 'reservable') return { present: true, value: node.reservable, column: true };
  if (FACT_KEYS.includes(key)) {
    const v = own(node.facts, key) ? (node.facts as Record<string, string | number | undefined>)[key] : undefined;
    return { present: v !== undefined && v !== null, value: v, column: true };
  }
  const v = own(node.extra, key) ? node.extra[key] : undefined;
  return { present: v !== undefined, value: v, column: false };
}

const NUMERIC = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/;

function compare(op: Comparison, a: string | number | boolean, b: string): boolean {
  const sa = String(a);
  const both = NUMERIC.test(sa.trim()) && NUMERIC.test(b.trim());
  const c = both ? Number(sa) - Number(b) : sa < b ? -1 : sa > b ? 1 : 0;
  switch (op) {
    case '==':
      return c === 0;
    case '!=':
      return c !== 0;
    case '<':
      return c < 0;
    case '<=':
      return c <= 0;
    case '>':
      return c > 0;
    case '>=':
      return c >= 0;
  }
}

export function matches(r: Requirement | undefined, node: Node): boolean {
  if (!r) return true;
  if (r.kind === 'all') return r.of.every((x) => matches(x, node));
  if (r.kind === 'any') return r.of.some((x) => matches(x, node));
  const { present, value, column } = hostValue(node, r.key);
  if (column && r.value === 'null') return r.op === '==' ? !present : r.op === '!=' ? present : false;
  if (!present || value === undefined) return false;
  return compare(r.op, value, r.value);
}

/**
 * The capability index (issue 16): a lease whose filter requires `$key == value` reads the hosts
 * holding that capability instead of the whole pool. The index value is canonical so that the
 * index finds exactly the hosts `matches` accepts: numbers compare as numbers ("4096" == "4096.0"),
 * everything else as the exact string; a long value is indexed by its digest (key size bound).
 */
const MAX_INDEXED_VALUE_BYTES = 256;

export function capabilityIndexValue(value: string | number | boolean, digest: (s: string) => string): string {
  const s = String(value);
  const canon = NUMERIC.test(s.trim()) ? `n:${Number(s)}` : `s:${s}`;
  return byteLength(canon) > MAX_INDEXED_VALUE_BYTES ? `h:${digest(canon)}` : canon;
}

/** Columns that are not capabilities of the index (derived from the name, or not a filter value). */
const UNINDEXED_KEYS: ReadonlySet<string> = new Set(['hypervisor_hostname', 'service_name', 'reservable']);

/** The capabilities a host is indexed under: its facts and extra capabilities, as `hostValue` reads them. */
export function indexedCapabilities(node: Pick<Node, 'facts' | 'extra'>): [string, string | number][] {
  const out: [string, string | number][] = [];
  for (const k of FACT_KEYS) {
    if (UNINDEXED_KEYS.has(k) || !own(node.facts, k)) continue;
    const v = (node.facts as Record<string, string | number | undefined | null>)[k];
    if (v !== undefined && v !== null) out.push([k, v]);
  }
  for (const [k, v] of Object.entries(node.extra)) {
    if (!FACT_KEYS.includes(k) && !UNINDEXED_KEYS.has(k) && v !== undefined && v !== null) out.push([k, v]);
  }
  return out;
}

/**
 * An equality term every matching host must satisfy (a top-level term, or one of a top-level
 * `and`), which the capability index can answer; undefined when the filter has none (an `or`,
 * only ranges, a `null` test, a derived column): the allocator then scans the host pool.
 */
export function indexableTerm(r: Requirement | undefined): { key: string; value: string } | undefined {
  if (!r) return undefined;
  const terms = r.kind === 'term' ? [r] : r.kind === 'all' ? r.of : [];
  for (const t of terms) {
    if (t.kind === 'term' && t.op === '==' && !UNINDEXED_KEYS.has(t.key) && t.value !== 'null') return { key: t.key, value: t.value };
  }
  return undefined;
}
