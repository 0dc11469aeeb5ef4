import * as z from './zod.ts';
import { ValidationError } from '../errors.ts';

/**
 * Bounds every identifier, name and free-form object is held to before it reaches storage
 * (issue "tenants cannot harm the site"). DynamoDB refuses key values over 2,048 bytes and items
 * over 400 KB, and an object nested a few thousand levels deep overflows the stack of whatever
 * walks it; each of those used to surface as a 500 after part of a change was written. The
 * surfaces check the generic bounds on every request (`layers/http/surface.ts`); use-cases use
 * the schemas below for the fields they store.
 */

/** Longest identifier or name accepted in a path, query or body (bytes of UTF-8). */
export const MAX_ID_BYTES = 255;
/** Longest query-string value (filters, markers, field lists). */
export const MAX_QUERY_BYTES = 1024;
/** Deepest nesting of a JSON value: arrays and objects inside each other. */
export const MAX_JSON_DEPTH = 32;
/** Largest free-form object stored in one field (DynamoDB items hold at most 400 KB in all). */
export const MAX_FREE_FORM_BYTES = 64 * 1024;
/**
 * Keys that name the prototype machinery of JavaScript objects: refused wherever a client's
 * object keys could meet a lookup (`obj[key]`), so that no stored object or filter ever reads
 * `Object.prototype` by accident.
 */
export const RESERVED_KEYS: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype']);

// Control characters: NUL and friends never belong in an identifier, a name or a header value.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

export const byteLength = (s: string): number => Buffer.byteLength(s, 'utf8');

/**
 * The problem with an identifier-like string, or undefined when it is acceptable: at most
 * `max` bytes, no control characters.
 */
export function idProblem(value: string, max = MAX_ID_BYTES): string | undefined {
  if (byteLength(value) > max) return `is longer than ${max} bytes`;
  if (CONTROL.test(value)) return 'contains control characters';
  return undefined;
}

/** A name also used in paths and file names: no `/` segments `.` or `..`, no leading or trailing blanks. */
export function nameProblem(value: string, max = MAX_ID_BYTES): string | undefined {
  if (value.length === 0) return 'must not be empty';
  const p = idProblem(value, max);
  if (p) return p;
  if (value.trim() !== value) return 'must not start or end with white space';
  if (value.split('/').some((seg) => seg === '..' || seg === '.')) return "must not contain '.' or '..' path segments";
  return undefined;
}

/** zod string for an identifier: 1..max bytes, no control characters. */
export const boundedId = (max = MAX_ID_BYTES) =>
  z.string().check(z.superRefine((v, ctx) => {
    const p = v.length === 0 ? 'must not be empty' : idProblem(v, max);
    if (p) ctx.addIssue({ code: 'custom', message: p });
  }));

/** zod string for a name: `boundedId` plus no `.`/`..` segments and no surrounding blanks. */
export const safeName = (max = MAX_ID_BYTES) =>
  z.string().check(z.superRefine((v, ctx) => {
    const p = nameProblem(v, max);
    if (p) ctx.addIssue({ code: 'custom', message: p });
  }));

/**
 * The first problem of a JSON value (depth, reserved keys), with the path where it is, or
 * undefined. Iterative, so that a hostile depth cannot overflow the stack while being checked.
 */
export function jsonProblem(value: unknown, maxDepth = MAX_JSON_DEPTH): string | undefined {
  const stack: { v: unknown; depth: number; path: string }[] = [{ v: value, depth: 0, path: '' }];
  while (stack.length > 0) {
    const { v, depth, path } = stack.pop()!;
    if (v === null || typeof v !== 'object') continue;
    if (depth >= maxDepth) return `${path || 'value'} is nested deeper than ${maxDepth} levels`;
    if (Array.isArray(v)) {
      v.forEach((item, i) => stack.push({ v: item, depth: depth + 1, path: `${path}[${i}]` }));
      continue;
    }
    for (const k of Object.keys(v)) {
      const at = path ? `${path}.${k}` : k;
      if (RESERVED_KEYS.has(k)) return `${at}: the key "${k}" is reserved`;
      stack.push({ v: (v as Record<string, unknown>)[k], depth: depth + 1, path: at });
    }
  }
  return undefined;
}

/** Throws a 400 naming the problem when `value` is too deep or holds a reserved key. */
export function checkJson(value: unknown, what = 'body', errorName: string | number = 'VALIDATION_ERROR'): void {
  const p = jsonProblem(value);
  if (p) throw new ValidationError(`${what}: ${p}`, errorName);
}

/**
 * zod schema of a free-form object stored as it is (Ironic `extra`/`properties`, Blazar host
 * capabilities, Commissaire network options, agent job output, boot-action details): a plain
 * JSON object, at most `maxBytes` when serialized, nested at most MAX_JSON_DEPTH levels, with no
 * reserved keys.
 */
export const freeFormObject = (maxBytes = MAX_FREE_FORM_BYTES) =>
  z.record(z.string(), z.unknown()).check(z.superRefine((v, ctx) => {
    const p = jsonProblem(v);
    if (p) return ctx.addIssue({ code: 'custom', message: p });
    if (byteLength(JSON.stringify(v)) > maxBytes) ctx.addIssue({ code: 'custom', message: `is larger than ${maxBytes} bytes` });
  }));
