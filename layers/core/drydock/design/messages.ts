import type { DesignDocument } from './model.ts';

/**
 * Design validation messages in Drydock's shape (upstream `objects/validation.py`,
 * `ValidationMessage.to_dict`). Upstream serialises the document references under
 * `documents` (the constructor argument is called `docs`) and adds `ts`, the time the message
 * was made; this core is clock-free, so whoever puts messages into a task's Status stamps `ts`
 * there (in the `str(datetime)` form of §1.3.3).
 */
export type MessageLevel = 'Error' | 'Warning' | 'Info';

/** Upstream `DocumentReference.to_dict()` for Deckhand documents. */
export interface DocumentReference {
  schema: string;
  name: string;
}

export interface ValidationMessage {
  kind: 'ValidationMessage';
  /** The rule's code: upstream's (`DD001`, `DD4001`, …) or ours (`SW…`, see `RULES`). */
  name: string;
  /** `<rule long name>: <text>`, as upstream's validators format it (DD000/DD001: `<text>`). */
  message: string;
  /** True exactly for level `Error`. */
  error: boolean;
  level: MessageLevel;
  /** How to fix it; '' for the per-rule "Validation successful." notes, as upstream. */
  diagnostic: string;
  documents: DocumentReference[];
}

/**
 * Every rule: code and long name. `DD…` codes and names are upstream's, for the rules that
 * exist upstream (upstream reuses DD4001 and DD4002 for two rules each; kept). `SW…` are
 * Slipway's, for checks upstream does not make or makes only by crashing.
 */
export const RULES = {
  // The ingester's messages carry no long-name prefix upstream.
  processing: { code: 'DD000', long: null },
  schema: { code: 'DD001', long: null },
  ipLocality: { code: 'DD2002', long: 'IP Locality Check' },
  storageSizing: { code: 'DD2003', long: 'Storage Sizing' },
  duplicateIps: { code: 'DD2005', long: 'Duplicated IP Check' },
  cidr: { code: 'DD2006', long: 'CIDR Validity' },
  hostname: { code: 'DD3003', long: 'Hostname Validity' },
  oob: { code: 'DD4001', long: 'Valid OOB Configuration' },
  bootactionDefined: { code: 'DD4001', long: 'Bootaction Definition' },
  pkgList: { code: 'DD4002', long: 'Bootaction pkg_list Validation' },
  uniqueNames: { code: 'SW1001', long: 'Unique Document Names' },
  references: { code: 'SW1002', long: 'Reference Resolution' },
  inheritance: { code: 'SW1003', long: 'Host Profile Inheritance' },
  kernelParams: { code: 'SW3002', long: 'Kernel Parameter References' },
  bootactionAssets: { code: 'SW4003', long: 'Bootaction Asset Validity' },
  nodeFilter: { code: 'SW4004', long: 'Bootaction Node Filter' },
} as const satisfies Record<string, Rule>;
export type Rule = { code: string; long: string | null };

export function docRef(doc: Pick<DesignDocument, 'schema' | 'name'>): DocumentReference {
  return { schema: doc.schema, name: doc.name };
}

export function makeMessage(rule: Rule, level: MessageLevel, text: string, documents: DocumentReference[], diagnostic: string): ValidationMessage {
  return { kind: 'ValidationMessage', name: rule.code, message: rule.long === null ? text : `${rule.long}: ${text}`, error: level === 'Error', level, diagnostic, documents };
}

/** Collects one rule's messages, the way upstream's `Validators` base class does. */
export class RuleReport {
  readonly messages: ValidationMessage[] = [];
  constructor(readonly rule: Rule) {}
  error(text: string, docs: DocumentReference[], diagnostic: string): void {
    this.messages.push(makeMessage(this.rule, 'Error', text, docs, diagnostic));
  }
  warn(text: string, docs: DocumentReference[], diagnostic: string): void {
    this.messages.push(makeMessage(this.rule, 'Warning', text, docs, diagnostic));
  }
  info(text: string, docs: DocumentReference[], diagnostic: string): void {
    this.messages.push(makeMessage(this.rule, 'Info', text, docs, diagnostic));
  }
  /** Upstream `Validators.execute`: a rule that found no error says so with an Info message. */
  finish(): ValidationMessage[] {
    if (!this.messages.some((m) => m.error)) this.info('Validation successful.', [], '');
    return this.messages;
  }
}

/**
 * The Status object of a design validation (upstream `objects.Validation.to_dict`), as
 * `POST /validatedesign` answers it and `validate_design` stores as its result: `Failure`
 * when any message is an error. Messages get no `ts` here (see above).
 */
export function validationStatus(messages: ValidationMessage[]) {
  const errorCount = messages.filter((m) => m.error).length;
  const failed = errorCount > 0;
  return {
    kind: 'Status' as const,
    apiVersion: 'v1.0' as const,
    metadata: {},
    message: failed ? 'Site design failed validation.' : 'Site design passed validation',
    reason: failed ? 'See detail messages.' : null,
    status: failed ? ('Failure' as const) : ('Success' as const),
    details: { errorCount, messageList: messages },
  };
}
