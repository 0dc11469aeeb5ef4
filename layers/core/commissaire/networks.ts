import { createHash } from 'node:crypto';
import * as z from '../util/zod.ts';
import { ConflictError, NotFoundError, ValidationError } from '../errors.ts';
import { type Principal, requireAdmin, requireAuth } from '../identity/identity.ts';
import type { Ports } from '../ports.ts';
import { freeFormObject } from '../util/bounds.ts';
import { CONTAINER_MANAGER_TYPES, type ContainerManager, DEFAULT_NETWORK, fingerprint, type Network, parseName } from './model.ts';

/**
 * Commissaire networks and container managers (upstream-apis.md §2.2, §2.3): named definitions
 * that are created once. A re-PUT of the identical definition answers 201 with it, another
 * definition under the same name 409; the conditional write itself decides, so of concurrent
 * different PUTs exactly one wins.
 */
const Options = z.pipe(z.nullish(freeFormObject(16 * 1024)), z.transform((o) => o ?? {}));

/** `host:port` (a bracketed IPv6 host allowed), as flannel's server address. */
const HOST_PORT = /^(\[[0-9A-Fa-f:.]+\]|[^\s:/[\]]+):(\d{1,5})$/;

/** `flanneld_service` is the name enums.rst uses for what the model calls `flannel_server`. */
export const NetworkPut = z
  .strictObject({
    name: z.optional(z.string()),
    type: z.pipe(
      z._default(z.enum(['flannel_etcd', 'flannel_server', 'flanneld_service']), 'flannel_etcd'),
      z.transform((t) => (t === 'flanneld_service' ? 'flannel_server' : t)),
    ),
    options: Options,
  })
  .check(
    z.superRefine((n, ctx) => {
      if (n.type !== 'flannel_server') return;
      const addr = n.options.address;
      const m = typeof addr === 'string' ? HOST_PORT.exec(addr) : null;
      if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535) {
        ctx.addIssue({ code: 'custom', path: ['options', 'address'], message: 'flannel_server needs options.address as host:port' });
      }
    }),
  );
export type NetworkPut = z.infer<typeof NetworkPut>;

const OpenShiftOptions = z.pipe(
  z
    .strictObject({
      server_url: z.optional(z.string()),
      /** The doc's name for `server_url` (upstream-apis.md §2.3 ⚠). */
      apiserver: z.optional(z.string()),
      token: z.optional(z.string()),
      certificate_path: z.optional(z.string().check(z.minLength(1))),
      certificate_key_path: z.optional(z.string().check(z.minLength(1))),
    })
    .check(
      z.superRefine((o, ctx) => {
        if (o.server_url !== undefined && o.apiserver !== undefined && o.server_url !== o.apiserver) {
          ctx.addIssue({ code: 'custom', path: ['apiserver'], message: 'apiserver is an alias of server_url; give one, or both equal' });
        }
        const url = o.server_url ?? o.apiserver;
        let ok = false;
        try {
          ok = url !== undefined && /^https?:$/.test(new URL(url).protocol);
        } catch {
          ok = false;
        }
        if (!ok) ctx.addIssue({ code: 'custom', path: ['server_url'], message: 'server_url must be an http or https URL' });
        if ((o.certificate_path === undefined) !== (o.certificate_key_path === undefined)) {
          ctx.addIssue({ code: 'custom', path: ['certificate_path'], message: 'certificate_path and certificate_key_path go together' });
        }
      }),
    ),
  z.transform(({ apiserver, server_url, ...rest }) => ({ server_url: (server_url ?? apiserver)!, ...rest })),
);

export const ContainerManagerPut = z.pipe(
  z.strictObject({
    name: z.optional(z.string()),
    type: z._default(z.enum(CONTAINER_MANAGER_TYPES), 'openshift'),
    options: Options,
  }),
  z.transform((cm, ctx) => {
    // The OpenShift/Kubernetes manager reads these options; `trivial` (tests) reads none.
    if (cm.type !== 'openshift') return cm;
    const r = OpenShiftOptions.safeParse(cm.options);
    if (r.success) return { ...cm, options: r.data as Record<string, unknown> };
    for (const issue of r.error.issues) z.transformIssue(ctx, issue.message, ['options', ...issue.path.map(String)]);
    return z.NEVER;
  }),
);
export type ContainerManagerPut = z.infer<typeof ContainerManagerPut>;

function checkBodyName(name: string, bodyName: string | undefined): void {
  if (bodyName !== undefined && bodyName !== name) throw new ValidationError(`"name" in the body (${bodyName}) is not the name in the url (${name})`);
}

export async function listNetworkNames(deps: Ports, auth: Principal | undefined): Promise<string[]> {
  requireAuth(auth);
  const stored = (await deps.commissaire.listNetworks()).map((n) => n.name).filter((n) => n !== DEFAULT_NETWORK.name);
  return [DEFAULT_NETWORK.name, ...stored.sort()];
}

export async function getNetwork(deps: Ports, auth: Principal | undefined, rawName: string): Promise<Network> {
  requireAuth(auth);
  const name = parseName(rawName);
  if (name === DEFAULT_NETWORK.name) return DEFAULT_NETWORK;
  const net = await deps.commissaire.getNetwork(name);
  if (!net) throw new NotFoundError(`Network ${name} not found`);
  return net;
}

/** The implicit `default` network may be "created" only as itself. */
export async function putNetwork(deps: Ports, auth: Principal | undefined, rawName: string, input: NetworkPut): Promise<Network> {
  requireAdmin(auth);
  const name = parseName(rawName, true);
  checkBodyName(name, input.name);
  const net: Network = { name, type: input.type, options: input.options };
  if (name === DEFAULT_NETWORK.name) {
    if (fingerprint(net) !== fingerprint(DEFAULT_NETWORK)) throw new ConflictError('The default network is built in and cannot be redefined');
    return DEFAULT_NETWORK;
  }
  await deps.commissaire.putNetwork(net);
  return net;
}

export async function deleteNetwork(deps: Ports, auth: Principal | undefined, rawName: string): Promise<void> {
  requireAdmin(auth);
  const name = parseName(rawName);
  if (name === DEFAULT_NETWORK.name) throw new ConflictError('The default network is built in and cannot be deleted');
  if (!(await deps.commissaire.deleteNetwork(name))) throw new NotFoundError(`Network ${name} not found`);
}

/**
 * The API token of a container manager is stored sealed and shown to no one, as Ironic shows
 * BMC passwords: `******`. Only a call to the manager itself opens it (container-manager.ts), or the agent API for a site's agent that makes the call.
 */
function visible(cm: ContainerManager): ContainerManager {
  if (cm.options.token === undefined) return cm;
  return { ...cm, options: { ...cm.options, token: '******' } };
}

export async function listContainerManagerNames(deps: Ports, auth: Principal | undefined): Promise<string[]> {
  requireAuth(auth);
  return (await deps.commissaire.listContainerManagers()).map((c) => c.name).sort();
}

export async function getContainerManager(deps: Ports, auth: Principal | undefined, rawName: string): Promise<ContainerManager> {
  requireAuth(auth);
  const name = parseName(rawName);
  const cm = await deps.commissaire.getContainerManager(name);
  if (!cm) throw new NotFoundError(`Container manager ${name} not found`);
  return visible(cm);
}

export async function putContainerManager(deps: Ports, auth: Principal | undefined, rawName: string, input: ContainerManagerPut): Promise<ContainerManager> {
  requireAdmin(auth);
  const name = parseName(rawName, true);
  checkBodyName(name, input.name);
  const cm: ContainerManager = { name, type: input.type, options: input.options };
  const token = cm.options.token;
  const stored = typeof token === 'string' ? { ...cm, options: { ...cm.options, token: { $sealed: await deps.secrets.seal('container-manager-token', token) } } } : cm;
  // The definition as given decides "identical re-PUT", as its digest: the fingerprint text would hold the token.
  const definition = createHash('sha256').update(fingerprint({ type: cm.type, options: cm.options })).digest('hex');
  await deps.commissaire.putContainerManager(stored, definition);
  return visible(cm);
}

export async function deleteContainerManager(deps: Ports, auth: Principal | undefined, rawName: string): Promise<void> {
  requireAdmin(auth);
  const name = parseName(rawName);
  if (!(await deps.commissaire.deleteContainerManager(name))) throw new NotFoundError(`Container manager ${name} not found`);
}
