import { ValidationError } from '../errors.ts';
import type { Node } from '../inventory/node.ts';
import { FACT_KEYS } from '../inventory/node.ts';

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
 */
export type Comparison = '==' | '!=' | '<' | '<=' | '>' | '>=';
export type Requirement =
  | { kind: 'all'; of: Requirement[] }
  | { kind: 'any'; of: Requirement[] }
  | { kind: 'term'; op: Comparison; key: string; value: string };

const OPS: Record<string, Comparison> = { '==': '==', '=': '==', '!=': '!=', '<': '<', '<=': '<=', '>': '>', '>=': '>=' };

/** Columns a host has without extra capabilities. */
export const HOST_COLUMNS: readonly string[] = [...FACT_KEYS, 'hypervisor_hostname', 'reservable'];

function malformed(field: string, raw: unknown, why: string): never {
  throw new ValidationError(`Malformed requirements ${JSON.stringify(raw)} in ${field}: ${why}`, 'MALFORMED_REQUIREMENTS');
}

function parseExpr(x: unknown, field: string, raw: unknown): Requirement {
  if (!Array.isArray(x) || x.length === 0) malformed(field, raw, 'expected a list');
  const [head, ...rest] = x as unknown[];
  if (head === 'and' || head === 'or') {
    if (rest.length === 0) malformed(field, raw, `"${head}" needs at least one term`);
    return { kind: head === 'and' ? 'all' : 'any', of: rest.map((t) => parseExpr(t, field, raw)) };
  }
  if (typeof head !== 'string' || !(head in OPS)) malformed(field, raw, `unknown operator ${JSON.stringify(head)}`);
  if (rest.length !== 2) malformed(field, raw, 'a term is [operator, "$key", "value"]');
  const [key, value] = rest;
  if (typeof key !== 'string' || !key.startsWith('$') || key.length < 2) malformed(field, raw, 'the key must be "$" followed by a name');
  const v = typeof value === 'number' && Number.isFinite(value) ? String(value) : value;
  if (typeof v !== 'string' || v === '') malformed(field, raw, 'the value must be a non-empty string');
  return { kind: 'term', op: OPS[head]!, key: key.slice(1), value: v };
}

/** Parses a filter given as a JSON string (as clients send it) or as an already-decoded list. */
export function parseRequirements(raw: unknown, field: string): Requirement | undefined {
  if (raw === undefined || raw === null || raw === '') return undefined;
  let decoded: unknown = raw;
  if (typeof raw === 'string') {
    try {
      decoded = JSON.parse(raw);
    } catch {
      malformed(field, raw, 'not valid JSON');
    }
  }
  if (Array.isArray(decoded) && decoded.length === 0) return undefined;
  return parseExpr(decoded, field, raw);
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
    const v = (node.facts as Record<string, string | number | undefined>)[key];
    return { present: v !== undefined && v !== null, value: v, column: true };
  }
  const v = node.extra[key];
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
