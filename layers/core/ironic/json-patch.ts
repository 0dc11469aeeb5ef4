import * as z from '../util/zod.ts';
import { ValidationError } from '../errors.ts';
import { idProblem, MAX_ID_BYTES } from '../util/bounds.ts';

/** RFC 6902 patch as Ironic takes it on nodes and ports: add/replace/remove on a few paths. */
export const JsonPatch = z.array(
  z.strictObject({
    op: z.enum(['add', 'replace', 'remove']),
    // A field and one key: each at most 255 bytes, so the path at most 512 with its slashes.
    path: z.string().check(
      z.regex(/^\//),
      z.superRefine((v, ctx) => {
        const p = idProblem(v, 2 * MAX_ID_BYTES + 2);
        if (p) ctx.addIssue({ code: 'custom', message: p });
      }),
    ),
    value: z.optional(z.unknown()),
  }),
  { error: 'the body must be a JSON patch (a list of {op, path, value})' },
);
export type JsonPatchOp = z.infer<typeof JsonPatch>[number];

/**
 * The operations as (field, sub-key) pairs — `/extra/rack` is `extra`, `rack` — after the checks
 * common to every resource: one level of nesting at most, and a value wherever one is needed.
 */
export function patchSteps(ops: readonly JsonPatchOp[]): { op: JsonPatchOp['op']; path: string; head: string; key: string | undefined; value: unknown }[] {
  return ops.map(({ op, path, value }) => {
    const [head = '', key, ...rest] = path.slice(1).split('/');
    if (rest.length > 0) throw new ValidationError(`Cannot patch ${path}: nested paths are not supported`, 'INVALID_PARAMETER_VALUE');
    // Keys that would reach an object's prototype instead of the object are no field names.
    if (key === '__proto__' || key === 'constructor' || key === 'prototype') throw new ValidationError(`Cannot patch ${path}`, 'INVALID_PARAMETER_VALUE');
    const long = key ? idProblem(key) : undefined;
    if (long) throw new ValidationError(`Cannot patch ${path.slice(0, 64)}…: the key ${long}`, 'INVALID_PARAMETER_VALUE');
    if (op !== 'remove' && value === undefined) throw new ValidationError(`${op} ${path} needs a value`, 'INVALID_PARAMETER_VALUE');
    return { op, path, head, key: key || undefined, value };
  });
}
