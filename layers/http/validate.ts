import * as z from '#core/util/zod.ts';
import { ValidationError } from '#core/errors.ts';

/**
 * Parses input with a route's zod schema; failures become one 400 whose message lists every
 * problem as `path: reason` lines (Sahara's VALIDATION_ERROR style).
 */
export function parseWith<S extends z.ZodMiniType>(schema: S, input: unknown, errorName = 'VALIDATION_ERROR'): z.infer<S> {
  const r = schema.safeParse(input ?? {});
  if (r.success) return r.data;
  const lines = r.error.issues.map((i) => {
    const where = i.path.length ? i.path.join('.') : 'body';
    return `${where}: ${i.message}`;
  });
  throw new ValidationError(lines.join('\n'), errorName);
}
