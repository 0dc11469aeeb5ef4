import { LineCounter, parseAllDocuments } from 'yaml';
import type * as z from '../../util/zod.ts';
import { jsonProblem } from '../../util/bounds.ts';
import { makeMessage, RULES, type ValidationMessage } from './messages.ts';
import { DATA_SCHEMAS, type DesignDocument, emptyDesign, KINDS, type Kind, type SiteDesign } from './model.ts';

/**
 * Reading Deckhand-envelope YAML into a `SiteDesign` (upstream `ingester/plugins/deckhand.py`).
 * Texts in, objects out: fetching `design_ref`s (http(s), s3, stored designs) is the caller's.
 *
 * Differences from upstream, on purpose:
 * - YAML errors do not abort the whole ingest: each broken document becomes a DD000 message
 *   naming its text, document index and line, and the other documents are still read.
 * - Duplicate mapping keys are errors (PyYAML silently keeps the last one).
 * - A document whose `metadata.name` is missing is an error (upstream names it `Unknown`).
 *
 * Like upstream: documents whose schema is not `drydock/…` are skipped (upstream silently; we
 * add an Info note); a `drydock/<Kind>/<version>` other than the eight kinds at `v1` is a DD000
 * error; a `data` block that breaks the kind's schema is one DD001 error per problem and the
 * document is left out of the design.
 */

/**
 * Parse options. YAML 1.1, because Deckhand documents are written for PyYAML (`yes`/`no`
 * booleans, `<<` merge keys); YAML 1.2 would read `signaling: yes` as a string.
 */
const YAML_OPTIONS = { version: '1.1', merge: true, uniqueKeys: true, prettyErrors: false } as const;

const isMap = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Parse several YAML texts (each a multi-document stream) into one design. The messages say
 * what was skipped or wrong; a text with errors still contributes its good documents. Call
 * `validateDesign` on the result for the cross-document rules.
 *
 * @example
 * const { design, messages } = loadDesign([siteYaml, nodesYaml]);
 * if (messages.some((m) => m.error)) throw new ValidationError('design does not parse');
 */
export function loadDesign(texts: string[]): { design: SiteDesign; messages: ValidationMessage[] } {
  const design = emptyDesign();
  const messages: ValidationMessage[] = [];
  texts.forEach((text, i) => {
    parseText(text, i, design, messages);
  });
  return { design, messages };
}

function parseText(text: string, textIndex: number, design: SiteDesign, messages: ValidationMessage[]): void {
  const lineCounter = new LineCounter();
  const docs = parseAllDocuments(text, { ...YAML_OPTIONS, lineCounter });
  const where = (document: number, offset: number) => {
    const { line, col } = lineCounter.linePos(offset);
    return { text: `text ${textIndex}, document ${document}, line ${line}, column ${col}`, line };
  };

  // A stream without documents may still carry errors (e.g. a stray `]`).
  if ('empty' in docs) {
    for (const err of docs.errors) {
      messages.push(
        makeMessage(RULES.processing, 'Error', `YAML syntax error in ${where(0, err.pos[0]).text}: ${err.message}`, [], 'Fix the YAML syntax.'),
      );
    }
    return;
  }

  docs.forEach((doc, index) => {
    const start = where(index, doc.range[0]);
    if (doc.errors.length > 0) {
      for (const err of doc.errors) {
        messages.push(
          makeMessage(
            RULES.processing,
            'Error',
            `YAML syntax error in ${where(index, err.pos[0]).text}: ${err.message}`,
            [],
            'Fix the YAML syntax; the document was not read.',
          ),
        );
      }
      return;
    }
    let value: unknown;
    try {
      // maxAliasCount bounds alias expansion ("billion laughs").
      value = doc.toJS({ maxAliasCount: 100 });
    } catch (err) {
      messages.push(makeMessage(RULES.processing, 'Error', `Cannot read ${start.text}: ${(err as Error).message}`, [], 'Fix the YAML document.'));
      return;
    }
    // An empty document (a lone `---`, or the end marker after the last one) is no document.
    if (value === null || value === undefined) return;
    // Bounded like every JSON body (depth, prototype keys), before anything reads it.
    const problem = jsonProblem(value);
    if (problem) {
      messages.push(makeMessage(RULES.processing, 'Error', `Cannot read ${start.text}: ${problem}`, [], 'Fix the YAML document.'));
      return;
    }
    readDocument(value, { text: textIndex, document: index, line: start.line }, start.text, design, messages);
  });
}

function readDocument(value: unknown, source: DesignDocument['source'], at: string, design: SiteDesign, messages: ValidationMessage[]): void {
  if (!isMap(value)) {
    messages.push(
      makeMessage(RULES.processing, 'Error', `Document at ${at} is not a mapping.`, [], 'Each document is {schema, metadata, data}.'),
    );
    return;
  }
  const schema = value.schema;
  const parts = typeof schema === 'string' ? schema.split('/') : [];
  if (parts.length !== 3 || parts[0] !== 'drydock') {
    messages.push(
      makeMessage(
        RULES.processing,
        'Info',
        `Document at ${at} with schema ${JSON.stringify(schema ?? null)} ignored: not a Drydock document.`,
        [],
        'Only drydock/<Kind>/v1 documents are part of a site design.',
      ),
    );
    return;
  }
  const [, kindName, version] = parts as [string, string, string];
  const metadata = isMap(value.metadata) ? value.metadata : undefined;
  const name = metadata?.name;
  if (typeof name !== 'string' || name === '') {
    messages.push(
      makeMessage(RULES.processing, 'Error', `Document at ${at} (${schema}) has no metadata.name.`, [], 'Give every document a metadata.name.'),
    );
    return;
  }
  const ref = { schema: schema as string, name };
  if (version !== 'v1' || !(KINDS as readonly string[]).includes(kindName)) {
    messages.push(
      makeMessage(
        RULES.processing,
        'Error',
        `Invalid document - Kind ${kindName} and Version ${version} (${at}).`,
        [ref],
        `Drydock documents are drydock/<Kind>/v1 with Kind one of ${KINDS.join(', ')}.`,
      ),
    );
    return;
  }
  const kind = kindName as Kind;
  const data = value.data ?? {};
  const parsed = (DATA_SCHEMAS[kind] as z.ZodMiniType).safeParse(data);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      messages.push(
        makeMessage(
          RULES.schema,
          'Error',
          `${kind}:${version} schema validation error: ${formatPath(issue.path)}: ${issue.message} (${at}).`,
          [ref],
          'Invalid input file - see Drydock Troubleshooting Guide for DD001',
        ),
      );
    }
    return;
  }
  (design[kind] as DesignDocument[]).push({ kind, schema: schema as string, name, metadata: { ...metadata }, data: parsed.data as never, source });
}

/** `data.assets[0].permissions` */
function formatPath(path: readonly PropertyKey[]): string {
  let out = 'data';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : `.${String(p)}`;
  return out;
}
