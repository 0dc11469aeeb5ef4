import { answerOf, type FetchAnswer, type SiteFetch, startSiteFetch, fetchFromSite } from '../agent/fetch.ts';
import type { Ports } from '../ports.ts';
import { isSealed } from '../secrets.ts';
import type { ContainerManager, HostStatus } from './model.ts';

/**
 * What Slipway asks a cluster's container manager (upstream-apis.md §2.3): OpenShift/Kubernetes
 * through its API at `<server_url>/api/v1` with the bearer `token`; `trivial` (tests) accepts
 * everything and reports nothing. The node of a host is named by its address, as upstream does.
 *
 * A manager is usually inside the site, where the functions cannot reach (issue 12): its calls
 * go wherever agent/fetch.ts says the `server_url` is reached from — a public address by the
 * function, an address of a site (`SLIPWAY_SITE_ADDRESSES`) by that site's agent. The token stays
 * sealed on the way to an agent (opened for its claimed job only). A registration or removal
 * through an agent is a job whose result moves the host on when it is final (`onManagerJob`,
 * investigate.ts), since it is often started while another job's result is being posted; a status
 * read waits for its answer, a few seconds at most.
 */
/** A registration or removal made by the function itself; through an agent, its job gets half of it. */
const TIMEOUT_MS = 10_000;
/** How long `GET /host/{IP}/status` waits for the manager (through an agent: claim and answer too). */
const STATUS_BUDGET_MS = 8000;
/** A manager's answers are small JSON documents. */
const MAX_ANSWER_BYTES = 64 * 1024;

type Deps = Pick<Ports, 'config' | 'jobs' | 'clock' | 'secrets'>;

/** What a registration or removal job carries for its result's handler (investigate.ts). */
export interface ManagerJobTag {
  address: string;
  step: 'register' | 'unregister';
  /** The host's status when it was started: bootstrapping (fails on error) or disassociated (stays). */
  from?: HostStatus;
  manager: string;
}

function request(deps: Deps, cm: ContainerManager, method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown): SiteFetch {
  const base = String(cm.options.server_url ?? '').replace(/\/+$/, '');
  const token = cm.options.token;
  return {
    url: `${base}/api/v1${path}`,
    method,
    headers: {
      Accept: 'application/json',
      ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}),
      // A token stored before tokens were sealed (none should be left): as it is.
      ...(typeof token === 'string' && token ? { Authorization: `Bearer ${token}` } : {}),
    },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    ...(isSealed(token)
      ? {
          secretHeaders: {
            sealed: { Authorization: { $sealed: token.$sealed, $prefix: 'Bearer ' } },
            open: async () => ({ Authorization: `Bearer ${await deps.secrets.open('container-manager-token', token.$sealed)}` }),
          },
        }
      : {}),
    maxBytes: MAX_ANSWER_BYTES,
    budgetMs: method === 'GET' ? STATUS_BUDGET_MS : TIMEOUT_MS,
    what: `Container manager ${cm.name}`,
  };
}

/** Whether the manager's answer to `step` means it is done: registered (or was), removed (or never there). */
export function managerAccepted(step: ManagerJobTag['step'], status: number): boolean {
  return (status >= 200 && status < 300) || status === (step === 'register' ? 409 : 404);
}

/** The reason a registration or removal did not take, from the answer or the failed job. */
export function managerRefusal(cm: string, step: ManagerJobTag['step'], got: { answer?: FetchAnswer; error?: string }): string {
  const what = step === 'register' ? 'the node registration' : 'the node removal';
  return got.answer ? `the container manager ${cm} answered ${got.answer.status} to ${what}` : `${what} did not reach the container manager ${cm}: ${got.error}`;
}

/**
 * Registers the host as a node (`register`) or removes it (`unregister`): `done` when the manager
 * has answered yes, `queued` when a site's agent will ask it (the job's result moves the host on);
 * throws with the reason when the manager refused or could not be asked.
 */
export async function callManager(deps: Deps, cm: ContainerManager, tag: ManagerJobTag): Promise<'done' | 'queued'> {
  if (cm.type === 'trivial') return 'done';
  const req =
    tag.step === 'register'
      ? request(deps, cm, 'POST', '/nodes', { kind: 'Node', apiVersion: 'v1', metadata: { name: tag.address }, spec: { externalID: tag.address } })
      : request(deps, cm, 'DELETE', `/nodes/${encodeURIComponent(tag.address)}`);
  let started: Awaited<ReturnType<typeof startSiteFetch>>;
  try {
    started = await startSiteFetch(deps, req, { commissaire: tag });
  } catch (err) {
    throw new Error(managerRefusal(cm.name, tag.step, { error: (err as Error).message }));
  }
  if (started.job) return 'queued';
  if (!managerAccepted(tag.step, started.answer.status)) throw new Error(managerRefusal(cm.name, tag.step, started));
  return 'done';
}

/** The answer of a finished registration or removal job. */
export function managerJobOutcome(tag: ManagerJobTag, job: Parameters<typeof answerOf>[0]): { ok: true } | { ok: false; reason: string } {
  const got = answerOf(job);
  if (got.answer && managerAccepted(tag.step, got.answer.status)) return { ok: true };
  return { ok: false, reason: managerRefusal(tag.manager, tag.step, got) };
}

/** What the manager says about the host's node, or `{}` when unmanaged or unreachable (upstream). */
export async function nodeStatus(deps: Deps, cm: ContainerManager | undefined, address: string): Promise<Record<string, unknown>> {
  if (!cm || cm.type === 'trivial') return {};
  try {
    const res = await fetchFromSite(deps, request(deps, cm, 'GET', `/nodes/${encodeURIComponent(address)}`));
    if (res.status < 200 || res.status >= 300) return {};
    const body = JSON.parse(res.body.toString('utf8')) as unknown;
    return body && typeof body === 'object' && !Array.isArray(body) ? (body as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}
