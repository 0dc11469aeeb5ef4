import { ConflictError, ForbiddenError, NotFoundError, PayloadTooLargeError, UnauthorizedError } from '../../errors.ts';
import { isAdmin, type Principal, requireAuth } from '../../identity/identity.ts';
import type { Ports } from '../../ports.ts';
import { log } from '../../util/log.ts';
import { metric } from '../../util/metrics.ts';
import type { BootActionContext, BootActionRecord, BootActionStatus } from '../store.ts';
import { message, type TaskMessage } from '../tasks/model.ts';
import { verifyNodeKey } from './keys.ts';
import { parseReport, type ReportBody } from './report.ts';
import { parseUlid } from './ulid.ts';

/**
 * The boot-action use-cases behind `/api/v1.0/bootactions` (upstream-apis.md §1.6): a deploying
 * node fetches its bootdata tarballs and reports on its boot actions with its node key; admins
 * read a node's context. No HTTP here: the surface maps the results and errors.
 *
 * Every node-facing request checks in upstream's order: resolve (404) → key (401 absent,
 * 403 wrong) → body (400, reports only) → state (409, reports only). A 404 therefore says
 * nothing about keys, and a wrong key learns nothing about the body rules.
 *
 * @example
 * const data = await fetchBootdata(deps, 'node01', 'units', req.headers['x-bootaction-key'], false);
 * // → { location: 'https://bucket.s3…/bootdata/…?X-Amz-Expires=300…' }
 */

type Deps = Pick<Ports, 'drydock' | 'blobs' | 'clock' | 'config' | 'secrets' | 'callbacks'>;

/** `GET …/units|files`: the tarball itself (`?inline=true`), or where to fetch it. */
export type Bootdata = { inline: Buffer; filename: string } | { location: string };

/** What a report answers (upstream's boot-action row without its key). */
export interface BootActionReport {
  node_name: string;
  action_id: string;
  action_name: string;
  task_id: string;
  action_status: BootActionStatus;
}

/** The admin view of a node's context, and the boot-action part of the deploy job's payload. */
export interface BootActionInfo {
  node_name: string;
  task_id: string;
  /** The node key, hex: what the node sends as `X-Bootaction-Key`. */
  action_key: string;
  report_url: string;
  actions: { action_id: string; action_name: string; action_status: BootActionStatus }[];
}

/** A report's body, unparsed: its checks come after the resolve and key checks (see above). */
export type { ReportBody } from './report.ts';

/** 401 without a key, 403 with any other key than the node's (constant-time, never logged). */
function checkKey(ctx: BootActionContext, key: string | undefined): void {
  if (key === undefined || key === '') {
    const err = new UnauthorizedError('No X-Bootaction-Key');
    err.headers = { 'WWW-Authenticate': 'Bootaction-Key' };
    throw err;
  }
  // A key that is not 64 hex digits is a mismatch like any other (upstream: 500 from fromhex).
  if (!verifyNodeKey(key, ctx.key_hash)) throw new ForbiddenError('Invalid X-Bootaction-Key');
}

/**
 * The largest tarball `?inline=true` answers: a Lambda response holds at most 6 MB (6 MiB), the
 * tarball travels base64-encoded in it (4/3 of its size), and the headers and JSON envelope need
 * room too (64 KiB kept for them). About 4.45 MiB; a larger one is a 413 that names the redirect.
 */
export const INLINE_BOOTDATA_MAX_BYTES = Math.floor(((6 * 1024 * 1024 - 64 * 1024) * 3) / 4);

const mib = (bytes: number) => `${(bytes / (1024 * 1024)).toFixed(2)} MiB`;

/**
 * The node's units or files tarball. By default a 302 to a presigned S3 URL (valid
 * `bootdataUrlSeconds`, at most 5 minutes), so the tarball never passes through Lambda; wget and
 * `curl -L` follow it. `inline` returns the bytes instead (for clients that cannot follow
 * redirects), up to INLINE_BOOTDATA_MAX_BYTES: its size is read first (no download), and a larger
 * tarball is a 413 telling the client to ask without `inline` (Lambda would otherwise fail the
 * response with a bare 502).
 *
 * A context whose tarball object is gone (deleted by hand, or expired by the bucket's lifecycle
 * rule on a context older than that) is a server-side inconsistency, not a client mistake and
 * not transient: inline, it is an internal error (a bare 500, logged with the node and object).
 * A presigned URL is made without reading the object, so there S3 itself answers 404.
 */
export async function fetchBootdata(deps: Deps, hostname: string, kind: 'units' | 'files', key: string | undefined, inline: boolean): Promise<Bootdata> {
  const ctx = await deps.drydock.getBootActionContext(hostname);
  if (!ctx) throw new NotFoundError(`Error locating boot action for ${hostname}`);
  checkKey(ctx, key);
  const objectKey = kind === 'units' ? ctx.units_object : ctx.files_object;
  if (!inline) return { location: await deps.blobs.presignGet(objectKey, deps.config.drydock.bootdataUrlSeconds) };
  const size = await deps.blobs.size(objectKey);
  if (size === undefined) throw new Error(`bootdata object ${objectKey} of node ${hostname} is missing`);
  if (size > INLINE_BOOTDATA_MAX_BYTES) {
    throw new PayloadTooLargeError(
      `The ${kind} tarball of ${hostname} is ${mib(size)}, more than the ${mib(INLINE_BOOTDATA_MAX_BYTES)} an inline answer can carry. ` +
        'Request it without ?inline=true: the answer is a 302 redirect to a short-lived download URL (curl -L and wget follow it).',
    );
  }
  const body = await deps.blobs.get(objectKey);
  if (!body) throw new Error(`bootdata object ${objectKey} of node ${hostname} is missing`);
  // Upstream names the file after the asset type, singular: `node01-unit.tar.gz`.
  return { inline: body, filename: `${hostname}-${kind === 'units' ? 'unit' : 'file'}.tar.gz` };
}

/**
 * `POST /bootactions/{action_id}`: status messages and, with `status`, the final result of one
 * boot action.
 *
 * - Only the node's current deployment answers: the action must belong to the context the node
 *   has now (a redeploy replaces it, and the old ids are 404 like unknown ones).
 * - Each detail becomes a message on the deploy task with `context_type: bootaction`,
 *   `context: <action_id>` and server time; every other key of the detail goes to `extra`
 *   (all of them: upstream keeps only the last), so a client can never set the reserved fields.
 * - The body is checked completely first (`parseReport`: schema, detail count, sizes, depth,
 *   reserved keys). Then the report is one transaction or nothing: its messages and, with
 *   `status`, the action's final status, on condition that the action is still `incomplete`.
 *   Of concurrent final reports exactly one is 200, the others 409 and leave no trace; a
 *   report after the final one writes nothing either.
 * - Only after that write, when that was the node's last signalling action, the deploy step
 *   waiting for the node's reports (its task token in the context) is told,
 *   `{ node_name, reports: 'final' }`.
 */
export async function reportBootAction(deps: Deps, actionId: string, key: string | undefined, body: ReportBody): Promise<BootActionReport> {
  const notFound = () => new NotFoundError(`Boot action ${actionId} not found`);
  const id = parseUlid(actionId);
  if (!id) throw notFound();
  const action = await deps.drydock.getBootAction(id);
  if (!action) throw notFound();
  const ctx = await deps.drydock.getBootActionContext(action.node_name);
  if (!ctx || ctx.task_id !== action.task_id || !ctx.action_ids.includes(id)) throw notFound();
  checkKey(ctx, key);
  const report = parseReport(body);
  const finalized = () => new ConflictError(`Action ${id} status finalized, not available for update.`);
  if (action.action_status !== 'incomplete') throw finalized();

  const now = deps.clock.now();
  const messages: TaskMessage[] = report.details.map(({ message: text, error, extra }) =>
    message(text, { error, context_type: 'bootaction', context: id, extra, at: now }),
  );
  // An empty report (`{}`) writes nothing: it only learns the action's status.
  if (!report.status && messages.length === 0) return view(action);
  const written = await deps.drydock.recordBootActionReport(action, {
    ...(report.status ? { status: report.status } : {}),
    messages,
    at: now.toISOString(),
  });
  if (!written) throw finalized();
  if (report.status) await signalIfAllFinal(deps, written);
  return view(written);
}

/**
 * Answers the waiting deploy step once no signalling action of the node's context is
 * `incomplete`. Re-reads the context, so a token set while this report ran is seen. Two last
 * reports racing may both answer: the second answer of a token is refused by Step Functions and
 * ignored here, as is a token whose step already timed out.
 */
async function signalIfAllFinal(deps: Deps, action: BootActionRecord): Promise<void> {
  const ctx = await deps.drydock.getBootActionContext(action.node_name);
  if (!ctx?.report_token || ctx.task_id !== action.task_id) return;
  const actions = await deps.drydock.getBootActions(ctx.action_ids);
  if (actions.some((a) => a.action_status === 'incomplete')) return;
  try {
    await deps.callbacks.succeed(ctx.report_token, { node_name: ctx.node_name, reports: 'final' });
  } catch (err) {
    log.warn('boot-action report callback refused', {
      node_name: ctx.node_name,
      task_id: ctx.task_id,
      error: err instanceof Error ? err.name : String(err),
    });
    // The adapter already ignores a token the workflow gave up on: this one was not answered.
    metric('CallbackFailures', 1, 'Count');
  }
}

const view = (a: BootActionRecord): BootActionReport => ({
  node_name: a.node_name,
  action_id: a.action_id,
  action_name: a.action_name,
  task_id: a.task_id,
  action_status: a.action_status,
});

/**
 * The node's key (opened from its sealed form), the report URL and its actions with their
 * statuses, in the context's order: what the node's installer needs, and what an admin sees.
 */
export async function bootActionInfo(deps: Pick<Ports, 'drydock' | 'secrets' | 'config'>, ctx: BootActionContext): Promise<BootActionInfo> {
  const rows = new Map((await deps.drydock.getBootActions(ctx.action_ids)).map((a) => [a.action_id, a]));
  return {
    node_name: ctx.node_name,
    task_id: ctx.task_id,
    action_key: await deps.secrets.open('node-key', ctx.key_sealed),
    report_url: deps.config.drydock.reportUrl,
    actions: ctx.action_ids
      .map((id) => rows.get(id))
      .filter((a): a is BootActionRecord => a !== undefined)
      .map((a) => ({ action_id: a.action_id, action_name: a.action_name, action_status: a.action_status })),
  };
}

/** `GET /bootactions/nodes/{hostname}` (ours): the node's boot-action context, for admins. */
export async function bootActionAdminView(deps: Pick<Ports, 'drydock' | 'secrets' | 'config'>, auth: Principal | undefined, hostname: string): Promise<BootActionInfo> {
  if (!isAdmin(requireAuth(auth))) throw new ForbiddenError('This operation is restricted to administrators');
  const ctx = await deps.drydock.getBootActionContext(hostname);
  if (!ctx) throw new NotFoundError(`Error locating boot action for ${hostname}`);
  return bootActionInfo(deps, ctx);
}
