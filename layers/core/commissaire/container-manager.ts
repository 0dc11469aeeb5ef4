import { isSealed, type SecretBox } from '../secrets.ts';
import type { ContainerManager } from './model.ts';

/**
 * What Slipway asks a cluster's container manager (upstream-apis.md §2.3): OpenShift/Kubernetes
 * through its API at `<server_url>/api/v1` with the bearer `token`; `trivial` (tests) accepts
 * everything and reports nothing. The node of a host is named by its address, as upstream does.
 */
const TIMEOUT_MS = 5000;

/** A container manager as its calls need it: its token (stored sealed) opened. */
export async function loadContainerManager(
  deps: { commissaire: { getContainerManager(name: string): Promise<ContainerManager | undefined> }; secrets: SecretBox },
  name: string | undefined,
): Promise<ContainerManager | undefined> {
  const cm = name ? await deps.commissaire.getContainerManager(name) : undefined;
  const token = cm?.options.token;
  if (!cm || !isSealed(token)) return cm;
  return { ...cm, options: { ...cm.options, token: await deps.secrets.open('container-manager-token', token.$sealed) } };
}

function api(cm: ContainerManager, path: string): { url: string; headers: Record<string, string> } {
  const base = String(cm.options.server_url ?? '').replace(/\/+$/, '');
  const token = typeof cm.options.token === 'string' && cm.options.token ? cm.options.token : undefined;
  return { url: `${base}/api/v1${path}`, headers: { Accept: 'application/json', ...(token ? { Authorization: `Bearer ${token}` } : {}) } };
}

/** Registers the host as a node; resolves when the manager has it (created now or before). */
export async function registerNode(cm: ContainerManager, address: string): Promise<void> {
  if (cm.type === 'trivial') return;
  const { url, headers } = api(cm, '/nodes');
  const res = await fetch(url, {
    method: 'POST',
    headers: { ...headers, 'Content-Type': 'application/json' },
    body: JSON.stringify({ kind: 'Node', apiVersion: 'v1', metadata: { name: address }, spec: { externalID: address } }),
    signal: AbortSignal.timeout(TIMEOUT_MS),
  });
  // 409: the node is already registered, which is what we want.
  if (!res.ok && res.status !== 409) throw new Error(`the container manager ${cm.name} answered ${res.status} to the node registration`);
}

/** Removes the host's node; a node already gone is fine. */
export async function unregisterNode(cm: ContainerManager, address: string): Promise<void> {
  if (cm.type === 'trivial') return;
  const { url, headers } = api(cm, `/nodes/${encodeURIComponent(address)}`);
  const res = await fetch(url, { method: 'DELETE', headers, signal: AbortSignal.timeout(TIMEOUT_MS) });
  if (!res.ok && res.status !== 404) throw new Error(`the container manager ${cm.name} answered ${res.status} to the node removal`);
}

/** What the manager says about the host's node, or `{}` when unmanaged or unreachable (upstream). */
export async function nodeStatus(cm: ContainerManager | undefined, address: string): Promise<Record<string, unknown>> {
  if (!cm || cm.type === 'trivial') return {};
  try {
    const { url, headers } = api(cm, `/nodes/${encodeURIComponent(address)}`);
    const res = await fetch(url, { headers, signal: AbortSignal.timeout(TIMEOUT_MS) });
    if (!res.ok) return {};
    const body = (await res.json()) as unknown;
    return body && typeof body === 'object' && !Array.isArray(body) ? (body as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}
