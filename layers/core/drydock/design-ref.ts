import { fetchFromSite, SiteFetchError } from '../agent/fetch.ts';
import { bucketUploads } from '../agent/fetch-uploads.ts';
import { AgentTimeoutError, ValidationError } from '../errors.ts';
import type { Ports } from '../ports.ts';
import { loadDesign, type SiteDesign, type ValidationMessage, validateDesign } from './design/index.ts';

/**
 * `design_ref` (upstream-apis.md §1.3.1): where a task's design documents come from.
 *
 * | scheme | source |
 * |---|---|
 * | `http://`, `https://` (and `deckhand+http`, `promenade+http`…: the `xxx+` prefix is stripped, as upstream) | a GET of the URL: one YAML stream (Deckhand's rendered-documents answer) |
 * | `s3://bucket/key` | the object, read with the deployment's own role |
 * | `slipway://designs/<design_id>` | a design stored with `POST /api/v1.0/designs` and its parts, after those of its base design |
 *
 * `file://` is refused: a Lambda function has no operator files, and a local path in a task
 * would work on one machine only.
 *
 * An http(s) URL inside a site (Deckhand usually is) is fetched by that site's agent as a `fetch`
 * job, a public one by the function itself, an internal one no site is named for by nobody
 * (`SLIPWAY_SITE_ADDRESSES`, agent/fetch.ts). The fetch gets the time its caller can spare: an
 * API call `DESIGN_FETCH_TIMEOUT_MS` (its function has 29 s), the workflow's Prepare more.
 *
 * A project (a member's task, node filter or validation) reads only `slipway://designs/<id>` of
 * designs its project stored, base designs included: a URL would make the control plane fetch
 * whatever the project names, the site's internal addresses included, with the deployment's
 * network position and role (SSRF); the site's own designs hold BMC credentials.
 */
/** A design fetch from an API call: well inside the function's 29 s, leaving time to validate and answer. */
export const DESIGN_FETCH_TIMEOUT_MS = 20_000;
export const MAX_DESIGN_BYTES = 16 * 1024 * 1024;
const STORED = /^slipway:\/\/designs\/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\/?$/i;

/** The design could not be read (as opposed to read and found invalid). */
export class DesignRefError extends ValidationError {
  override readonly name: string = 'DesignRefError';
  constructor(message: string) {
    super(message, 'DESIGN_REF_ERROR');
  }
}

export const PROJECT_DESIGN_REF_TEXT =
  "A project's design_ref is a design the project stored in Slipway, slipway://designs/<id> (POST /api/v1.0/designs and its parts); http(s), s3 and other references are read for administrators only";

/** Reading a design on behalf of a project (its id), or of the site (null). */
export interface DesignReader {
  project?: string | null;
}

/** The stored design id of a `slipway://designs/<id>` reference, lower case; undefined for any other. */
export function storedDesignId(ref: string): string | undefined {
  return STORED.exec(ref)?.[1]?.toLowerCase();
}

/** Checks the form of a reference without fetching it (task creation answers 400 for a bad one). */
export function checkDesignRef(ref: string): void {
  if (ref.length > 1024) throw new DesignRefError('design_ref must be at most 1024 characters');
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(ref)?.[1]?.toLowerCase();
  if (!scheme) throw new DesignRefError(`design_ref ${JSON.stringify(ref)} is not a URI (expected http(s)://, s3:// or slipway://designs/<id>)`);
  const base = scheme.includes('+') ? scheme.slice(scheme.lastIndexOf('+') + 1) : scheme;
  if (base === 'http' || base === 'https' || base === 's3') return;
  if (base === 'slipway' && STORED.test(ref)) return;
  if (base === 'file') throw new DesignRefError('file:// design references are not served: publish the design over HTTP(S), put it in S3, or store it with POST /api/v1.0/designs');
  throw new DesignRefError(`design_ref scheme ${scheme} is not supported (http, https, s3, slipway://designs/<id>)`);
}

async function fetchHttp(deps: Ports, url: string, budgetMs: number): Promise<string> {
  let res;
  try {
    res = await fetchFromSite(deps, { url, headers: { Accept: 'application/x-yaml, text/plain, */*' }, maxBytes: MAX_DESIGN_BYTES, budgetMs, what: 'Design', uploads: bucketUploads(deps) });
  } catch (err) {
    if (err instanceof SiteFetchError || err instanceof AgentTimeoutError) throw new DesignRefError(err.message);
    throw err;
  }
  if (res.status < 200 || res.status > 299) throw new DesignRefError(`Design ${url} could not be fetched: HTTP ${res.status}${res.via === 'cloud' ? '' : ` (fetched by the agent of site ${res.via})`}`);
  return res.body.toString('utf8');
}

/**
 * The ids of a stored design's base chain, the base first (at most 16). For a project, a design
 * of another owner anywhere in the chain is one that does not exist (no existence leak).
 */
async function designChain(deps: Ports, designId: string, reader: DesignReader): Promise<string[]> {
  const chain: string[] = [];
  const project = reader.project ?? null;
  for (let id: string | null = designId; id !== null; ) {
    if (chain.includes(id) || chain.length >= 16) throw new DesignRefError(`Design ${designId} has a base design loop or is nested too deep`);
    const d = await deps.drydock.getDesign(id);
    if (!d || (project !== null && d.project_id !== project)) throw new DesignRefError(`Design ${id} does not exist`);
    chain.unshift(id);
    id = d.base_design_id;
  }
  return chain;
}

/**
 * Checks, without reading its parts, that a project may use `ref`: a design its project stored
 * (400 otherwise, with the rule or "does not exist"). The site may use any reference of a valid form.
 */
export async function checkDesignRefFor(deps: Ports, ref: string, reader: DesignReader): Promise<void> {
  checkDesignRef(ref);
  if ((reader.project ?? null) === null) return;
  const id = storedDesignId(ref);
  if (!id) throw new DesignRefError(PROJECT_DESIGN_REF_TEXT);
  await designChain(deps, id, reader);
}

/** The texts of a stored design: its base design's parts first (a base chain of at most 16). */
export async function storedDesignTexts(deps: Ports, designId: string, reader: DesignReader = {}): Promise<string[]> {
  const chain = await designChain(deps, designId, reader);
  const texts: string[] = [];
  for (const id of chain) for (const p of await deps.drydock.designParts(id)) texts.push(p.text);
  return texts;
}

/**
 * The YAML texts behind a reference (for a project: only its own stored designs, see above);
 * an http(s) fetch takes at most `budgetMs`.
 */
export async function fetchDesignTexts(deps: Ports, ref: string, reader: DesignReader = {}, budgetMs = DESIGN_FETCH_TIMEOUT_MS): Promise<string[]> {
  checkDesignRef(ref);
  const stored = storedDesignId(ref);
  if (stored) return storedDesignTexts(deps, stored, reader);
  if ((reader.project ?? null) !== null) throw new DesignRefError(PROJECT_DESIGN_REF_TEXT);
  const url = ref.replace(/^[a-z][a-z0-9.-]*\+/i, '');
  if (/^s3:/i.test(url)) {
    const m = /^s3:\/\/([^/]+)\/(.+)$/i.exec(url);
    if (!m) throw new DesignRefError(`design_ref ${url} must be s3://bucket/key`);
    let body: Buffer | undefined;
    try {
      body = await deps.blobs.getS3Url(m[1]!, decodeURIComponent(m[2]!));
    } catch (err) {
      throw new DesignRefError(`Design ${url} could not be read: ${(err as Error).name}`);
    }
    if (!body) throw new DesignRefError(`Design ${url} does not exist`);
    if (body.length > MAX_DESIGN_BYTES) throw new DesignRefError(`Design ${url} is larger than ${MAX_DESIGN_BYTES} bytes`);
    return [body.toString('utf8')];
  }
  return [await fetchHttp(deps, url, budgetMs)];
}

export interface LoadedDesign {
  design: SiteDesign;
  /** Parse and validation messages; any `error` means the design is not usable. */
  messages: ValidationMessage[];
  valid: boolean;
}

/** Reads and validates the design behind `ref` (DesignRefError when it cannot be read); a project's with its rules. */
export async function loadDesignRef(deps: Ports, ref: string, reader: DesignReader = {}): Promise<LoadedDesign> {
  const texts = await fetchDesignTexts(deps, ref, reader);
  const { design, messages } = loadDesign(texts);
  const all = [...messages, ...validateDesign(design, { project: (reader.project ?? null) !== null })];
  return { design, messages: all, valid: !all.some((m) => m.error) };
}
