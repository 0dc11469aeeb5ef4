import * as z from '../../util/zod.ts';
import { ValidationError } from '../../errors.ts';
import { byteLength, freeFormObject, jsonProblem, MAX_JSON_DEPTH } from '../../util/bounds.ts';

/**
 * A boot-action report's body (`POST /bootactions/{action_id}`, upstream-apis.md §1.6.4),
 * checked completely before anything is written: upstream's `bootaction_schema` (no other
 * top-level key; each detail a `message` string and an `error` boolean, any other keys kept),
 * plus bounds, since every detail becomes a stored task message and the whole report is written
 * in one transaction:
 *
 * - at most MAX_REPORT_DETAILS details (a DynamoDB transaction holds 100 items);
 * - each message at most MAX_DETAIL_MESSAGE_BYTES;
 * - each detail's other keys a free-form object (`freeFormObject`: nested at most 32 levels, no
 *   `__proto__`/`constructor`/`prototype` key anywhere, at most MAX_DETAIL_EXTRA_BYTES);
 * - the whole report at most MAX_REPORT_BYTES.
 *
 * Every refusal is upstream's 400 `Error processing body.`, followed by what was wrong when it is
 * one of these bounds.
 */
export const MAX_REPORT_DETAILS = 50;
export const MAX_DETAIL_MESSAGE_BYTES = 16 * 1024;
export const MAX_DETAIL_EXTRA_BYTES = 64 * 1024;
export const MAX_REPORT_BYTES = 256 * 1024;

export const BAD_BODY = 'Error processing body.';

/** One detail: upstream's two required fields; everything else is its free-form `extra`. */
const Detail = z.looseObject({ message: z.string(), error: z.boolean() });

/** Upstream's `bootaction_schema`. */
const ReportSchema = z.strictObject({
  status: z.optional(z.enum(['Success', 'Failure', 'success', 'failure'])),
  details: z.optional(z.array(Detail)),
});

export interface ParsedReport {
  status?: 'success' | 'failure';
  details: { message: string; error: boolean; extra: Record<string, unknown> }[];
}

export interface ReportBody {
  text: string | undefined;
  contentType: string | undefined;
}

function refuse(why?: string): never {
  throw new ValidationError(why ? `${BAD_BODY} ${why}` : BAD_BODY);
}

const extraSchema = freeFormObject(MAX_DETAIL_EXTRA_BYTES);

/** Parses and bounds a report body; 400 `Error processing body.` for anything else. */
export function parseReport(body: ReportBody): ParsedReport {
  const media = body.contentType?.split(';')[0]?.trim().toLowerCase();
  if (media !== 'application/json' || body.text === undefined || body.text.trim() === '') refuse();
  const text = body.text as string;
  if (byteLength(text) > MAX_REPORT_BYTES) refuse(`The report is larger than ${MAX_REPORT_BYTES} bytes.`);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    refuse();
  }
  // Depth and prototype keys first, without recursion: the schema below walks the value.
  const problem = jsonProblem(json, MAX_JSON_DEPTH);
  if (problem) refuse(`${clip(problem)}.`);
  const r = ReportSchema.safeParse(json);
  if (!r.success) refuse();
  const { status, details = [] } = r.data;
  if (details.length > MAX_REPORT_DETAILS) refuse(`A report holds at most ${MAX_REPORT_DETAILS} details.`);
  const out: ParsedReport['details'] = details.map(({ message, error, ...extra }, i) => {
    if (byteLength(message) > MAX_DETAIL_MESSAGE_BYTES) refuse(`details[${i}].message is longer than ${MAX_DETAIL_MESSAGE_BYTES} bytes.`);
    const e = extraSchema.safeParse(extra);
    if (!e.success) refuse(`details[${i}]: ${clip(e.error.issues[0]?.message ?? 'invalid')}.`);
    return { message, error, extra };
  });
  return { ...(status ? { status: status.toLowerCase() as 'success' | 'failure' } : {}), details: out };
}

const clip = (s: string) => (s.length > 200 ? `${s.slice(0, 200)}…` : s);

