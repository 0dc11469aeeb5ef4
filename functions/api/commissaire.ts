import { getDeps } from '#aws/roots/commissaire.ts';
import {
  addClusterHost,
  checkClusterHost,
  ClusterHostsPut,
  ClusterPut,
  deleteCluster,
  DeployPut,
  getCluster,
  getOperation,
  listClusterHosts,
  listClusterNames,
  OperationPut,
  putCluster,
  removeClusterHost,
  replaceClusterHosts,
  startOperation,
} from '#core/commissaire/clusters.ts';
import { deleteHost, getHost, getHostCreds, getHostStatus, HostPut, listHosts, registerHost } from '#core/commissaire/hosts.ts';
import {
  ContainerManagerPut,
  deleteContainerManager,
  deleteNetwork,
  getContainerManager,
  getNetwork,
  listContainerManagerNames,
  listNetworkNames,
  NetworkPut,
  putContainerManager,
  putNetwork,
} from '#core/commissaire/networks.ts';
import { pageLinks } from '#core/util/list-window.ts';
import { basicUsers } from '#http/basic-users.ts';
import { created, ok, type RouteHandler, surface } from '#http/surface.ts';
import { parseWith } from '#http/validate.ts';
import { commissaireCluster, commissaireDefinition, commissaireHost, commissaireHostStatus, commissaireOperation } from './views/commissaire.ts';

/**
 * Commissaire `/api/v0` (upstream-apis.md §2, client-contracts.md §5): GET 200, PUT 201 (the two
 * membership adds 200), DELETE 200 `[]`; errors are the bare reason phrase as text/html, and
 * missing or bad credentials 403. Every route also answers with a trailing slash. `Basic
 * user:password` signs in a Slipway user, as upstream's htpasswd backend (a token as the
 * password works too).
 */
const deleted = () => ok([]);

/** GET and PUT of one kind of cluster operation. */
function operationRoutes(kind: 'deploy' | 'upgrade' | 'restart'): Record<string, RouteHandler> {
  const schema = kind === 'deploy' ? DeployPut : OperationPut;
  return {
    [`GET /api/v0/cluster/{name}/${kind}`]: async ({ deps, auth, path }) => ok(commissaireOperation(await getOperation(deps, auth, path.name!, kind))),
    [`PUT /api/v0/cluster/{name}/${kind}`]: async ({ deps, auth, path, body }) =>
      created(commissaireOperation(await startOperation(deps, auth, path.name!, kind, parseWith(schema, body)))),
  };
}

export const handler = surface(
  { style: 'commissaire', jsonSuffix: false, trailingSlash: true, basicUsers },
  {
    'GET /api/v0/clusters': async ({ deps, auth }) => ok(await listClusterNames(deps, auth)),
    'GET /api/v0/cluster/{name}': async ({ deps, auth, path }) => ok(commissaireCluster(await getCluster(deps, auth, path.name!))),
    'PUT /api/v0/cluster/{name}': async ({ deps, auth, path, body }) =>
      created(commissaireCluster(await putCluster(deps, auth, path.name!, parseWith(ClusterPut, body)))),
    'DELETE /api/v0/cluster/{name}': async ({ deps, auth, path }) => {
      await deleteCluster(deps, auth, path.name!);
      return deleted();
    },
    'GET /api/v0/cluster/{name}/hosts': async ({ deps, auth, path }) => ok(await listClusterHosts(deps, auth, path.name!)),
    'PUT /api/v0/cluster/{name}/hosts': async ({ deps, auth, path, body }) =>
      ok(commissaireCluster(await replaceClusterHosts(deps, auth, path.name!, parseWith(ClusterHostsPut, body)), true)),
    'GET /api/v0/cluster/{name}/hosts/{IP}': async ({ deps, auth, path }) => ok([await checkClusterHost(deps, auth, path.name!, path.IP!)]),
    'PUT /api/v0/cluster/{name}/hosts/{IP}': async ({ deps, auth, path }) => ok([await addClusterHost(deps, auth, path.name!, path.IP!)]),
    'DELETE /api/v0/cluster/{name}/hosts/{IP}': async ({ deps, auth, path }) => {
      await removeClusterHost(deps, auth, path.name!, path.IP!);
      return deleted();
    },
    ...operationRoutes('deploy'),
    ...operationRoutes('upgrade'),
    ...operationRoutes('restart'),

    // Issue 16: a window of the list, the way on in a `Link` header (the body stays upstream's array).
    'GET /api/v0/hosts': async ({ deps, auth, query }) => {
      const page = await listHosts(deps, auth, query);
      return ok(page.items.map(commissaireHost), pageLinks('/api/v0/hosts', page));
    },
    'GET /api/v0/host/{IP}': async ({ deps, auth, path }) => ok(commissaireHost(await getHost(deps, auth, path.IP!))),
    'PUT /api/v0/host/{IP}': async ({ deps, auth, path, body }) =>
      created(commissaireHost(await registerHost(deps, auth, path.IP!, parseWith(HostPut, body)))),
    'PUT /api/v0/host': async ({ deps, auth, body, sourceIp }) =>
      created(commissaireHost(await registerHost(deps, auth, undefined, parseWith(HostPut, body), sourceIp))),
    'DELETE /api/v0/host/{IP}': async ({ deps, auth, path }) => {
      await deleteHost(deps, auth, path.IP!);
      return deleted();
    },
    'GET /api/v0/host/{IP}/creds': async ({ deps, auth, path }) => ok(await getHostCreds(deps, auth, path.IP!)),
    'GET /api/v0/host/{IP}/status': async ({ deps, auth, path }) => ok(commissaireHostStatus(await getHostStatus(deps, auth, path.IP!))),

    'GET /api/v0/networks': async ({ deps, auth }) => ok(await listNetworkNames(deps, auth)),
    'GET /api/v0/network/{name}': async ({ deps, auth, path }) => ok(commissaireDefinition(await getNetwork(deps, auth, path.name!))),
    'PUT /api/v0/network/{name}': async ({ deps, auth, path, body }) =>
      created(commissaireDefinition(await putNetwork(deps, auth, path.name!, parseWith(NetworkPut, body)))),
    'DELETE /api/v0/network/{name}': async ({ deps, auth, path }) => {
      await deleteNetwork(deps, auth, path.name!);
      return deleted();
    },

    'GET /api/v0/containermanagers': async ({ deps, auth }) => ok(await listContainerManagerNames(deps, auth)),
    'GET /api/v0/containermanager/{name}': async ({ deps, auth, path }) =>
      ok(commissaireDefinition(await getContainerManager(deps, auth, path.name!))),
    'PUT /api/v0/containermanager/{name}': async ({ deps, auth, path, body }) =>
      created(commissaireDefinition(await putContainerManager(deps, auth, path.name!, parseWith(ContainerManagerPut, body)))),
    'DELETE /api/v0/containermanager/{name}': async ({ deps, auth, path }) => {
      await deleteContainerManager(deps, auth, path.name!);
      return deleted();
    },
  },
  getDeps,
);
