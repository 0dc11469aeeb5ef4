import { PipelineFailureError, UnknownPipelineSegmentError } from './errors.ts';
import { renderTemplate } from './template.ts';

/**
 * Asset pipelines (upstream-apis.md §1.6.5): segments run left to right on a value that is
 * either bytes or a string, each with the input type upstream's Python code accepts:
 *
 * | segment         | in            | out    |
 * |-----------------|---------------|--------|
 * | `base64_decode` | bytes or str  | bytes  |
 * | `base64_encode` | bytes         | bytes  |
 * | `utf8_decode`   | bytes         | str    |
 * | `utf8_encode`   | str           | bytes  |
 * | `template`      | str           | str    |
 *
 * NOTE: the reference says upstream's `template` also takes bytes; it does not
 * (`jinja2.Template(b'...')` raises "Can't compile non template nodes"), which is why every
 * upstream example runs `utf8_decode` first. We refuse bytes the same way, with a hint.
 */

export const PIPELINE_SEGMENTS = ['base64_decode', 'base64_encode', 'utf8_decode', 'utf8_encode', 'template'] as const;
export type PipelineSegment = (typeof PIPELINE_SEGMENTS)[number];

/** Bytes or text, the two kinds of value a pipeline passes along. */
export type PipelineValue = Uint8Array | string;

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const BASE64_VALUE: Record<number, number> = Object.fromEntries(
  [...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'].map((ch, i) => [ch.charCodeAt(0), i]),
);

const kind = (v: PipelineValue) => (typeof v === 'string' ? 'a string' : 'bytes');

function needBytes(segment: string, v: PipelineValue, hint: string): Uint8Array {
  if (typeof v !== 'string') return v;
  throw new Error(`${segment} needs bytes but got ${kind(v)} (${hint})`);
}

function needString(segment: string, v: PipelineValue, hint: string): string {
  if (typeof v === 'string') return v;
  throw new Error(`${segment} needs a string but got ${kind(v)} (${hint})`);
}

/**
 * Python's `base64.b64decode(data)` (validate=False), step for step as CPython's
 * `binascii.a2b_base64` does it: characters outside the alphabet (the line breaks of a YAML
 * block) are skipped, a complete padding ends the input, a missing one is an error.
 */
export function base64DecodeLikePython(input: PipelineValue): Uint8Array {
  let bytes: Uint8Array;
  if (typeof input === 'string') {
    // A str must be ASCII (Python raises ValueError otherwise).
    if (/[^\x00-\x7f]/.test(input)) throw new Error('string argument should contain only ASCII characters');
    bytes = Buffer.from(input, 'latin1');
  } else {
    bytes = input;
  }
  const out: number[] = [];
  let quadPos = 0;
  let pads = 0;
  let left = 0;
  for (const byte of bytes) {
    if (byte === 0x3d /* = */) {
      if (quadPos >= 2 && quadPos + ++pads >= 4) return new Uint8Array(out);
      continue;
    }
    const v = BASE64_VALUE[byte] ?? -1;
    if (v < 0) continue;
    pads = 0;
    switch (quadPos) {
      case 0:
        left = v;
        break;
      case 1:
        out.push(((left << 2) | (v >> 4)) & 0xff);
        left = v & 0x0f;
        break;
      case 2:
        out.push(((left << 4) | (v >> 2)) & 0xff);
        left = v & 0x03;
        break;
      case 3:
        out.push(((left << 6) | v) & 0xff);
        break;
    }
    quadPos = (quadPos + 1) % 4;
  }
  if (quadPos === 1) throw new Error('invalid base64: the number of data characters cannot be 1 more than a multiple of 4');
  if (quadPos !== 0) throw new Error('invalid base64: incorrect padding');
  return new Uint8Array(out);
}

function runSegment(segment: PipelineSegment, value: PipelineValue, context: object): PipelineValue {
  switch (segment) {
    case 'base64_decode':
      return base64DecodeLikePython(value);
    case 'base64_encode':
      return new Uint8Array(Buffer.from(Buffer.from(needBytes(segment, value, 'add utf8_encode before it')).toString('base64'), 'latin1'));
    case 'utf8_decode':
      return utf8.decode(needBytes(segment, value, 'it is already text'));
    case 'utf8_encode':
      return new TextEncoder().encode(needString(segment, value, 'it is already bytes'));
    case 'template':
      return renderTemplate(needString(segment, value, 'add utf8_decode before it'), context);
  }
}

/**
 * Runs `segments` over `value`. Every segment is checked before any runs: an unknown one (or
 * one outside `allowed`) is an UnknownPipelineSegmentError; a segment that fails is a
 * PipelineFailureError naming it and its position.
 *
 * @example
 * executePipeline(new TextEncoder().encode('e3sgbm9kZS5ob3N0bmFtZSB9fQ=='), ['base64_decode', 'utf8_decode', 'template'], ctx);
 * // 'node01'
 */
export function executePipeline(
  value: PipelineValue,
  segments: readonly string[] | undefined,
  context: object,
  allowed: readonly PipelineSegment[] = PIPELINE_SEGMENTS,
): PipelineValue {
  const steps = segments ?? [];
  for (const s of steps) {
    if (!(allowed as readonly string[]).includes(s)) {
      const known = (PIPELINE_SEGMENTS as readonly string[]).includes(s);
      throw new UnknownPipelineSegmentError(
        known ? `Bootaction pipeline segment ${s} not allowed here (allowed: ${allowed.join(', ')}).` : `Bootaction pipeline segment ${s} unknown.`,
      );
    }
  }
  let current = value;
  steps.forEach((s, i) => {
    try {
      current = runSegment(s as PipelineSegment, current, context);
    } catch (err) {
      const detail = (err instanceof Error ? err.message : String(err)).replace(/^\(unknown path\)\s*/, '');
      throw new PipelineFailureError(`Error when running bootaction pipeline segment ${s} (#${i + 1}): ${detail.replace(/\s+/g, ' ').trim()}`, {
        cause: err,
      });
    }
  });
  return current;
}

/** The final value as bytes: a string result is UTF-8 encoded, as upstream does. */
export function toBytes(value: PipelineValue): Uint8Array {
  return typeof value === 'string' ? new TextEncoder().encode(value) : value;
}
