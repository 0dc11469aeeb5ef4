import { getDeps } from '#aws/roots/native.ts';
import { UnauthorizedError } from '#core/errors.ts';
import { listSites } from '#core/agent/sites.ts';
import { createToken, listTokens, revokeToken, TokenCreate, tokenView } from '#core/identity/tokens.ts';
import { getNode, listNodes, nodePager } from '#core/inventory/nodes.ts';
import { getLease, leaseVisible, listLeases, pageLeases } from '#core/leases/service.ts';
import { isKeysetQuery, keysetPage, mapPage, paginate } from '#http/pagination.ts';
import { tokenCache } from '#http/token-cache.ts';
import { parseWith } from '#http/validate.ts';
import { LEASE_FILTERS, LEASE_SORT, nativeLease, nativeNode, NODE_FILTERS, NODE_SORT } from './views/native.ts';
import { accepted, noContent, ok, type Request, surface } from '#http/surface.ts';

/**
 * The native surface: every collection under `/v1.1/{project_id}/...` with the Sahara
 * conventions (DESIGN.md §4): GET 200, POST 202, DELETE 204, limit/marker/sort_by.
 */
function checkProject(req: Request): void {
  // Sahara's guard, applied to every /v1.1/{project_id} route (DESIGN.md §10).
  const project = req.path.project_id;
  if (req.auth && project !== undefined && project !== req.auth.project_id) {
    throw new UnauthorizedError('Token tenant != requested tenant');
  }
}

export const handler = surface(
  { style: 'sahara', jsonSuffix: true, before: checkProject },
  {
    'GET /v1.1/{project_id}/nodes': async ({ deps, auth, query }) => {
      const window = nodePager(deps, auth);
      const page =
        window && isKeysetQuery(query)
          ? mapPage(await keysetPage(query, { window, exists: async (id) => (await deps.nodes.get(id)) !== undefined }), nativeNode)
          : paginate((await listNodes(deps, auth)).map(nativeNode), query, { sortable: NODE_SORT, filterable: NODE_FILTERS });
      return ok({ nodes: page.items, ...(page.markers ? { markers: page.markers } : {}) });
    },
    'GET /v1.1/{project_id}/nodes/{node_id}': async ({ deps, auth, path }) => ok({ node: nativeNode(await getNode(deps, auth, path.node_id!)) }),
    'GET /v1.1/{project_id}/leases': async ({ deps, auth, query }) => {
      const page = isKeysetQuery(query)
        ? mapPage(await keysetPage(query, { window: (r) => pageLeases(deps, auth, r), exists: (id) => leaseVisible(deps, auth, id) }), nativeLease)
        : paginate((await listLeases(deps, auth)).map(nativeLease), query, { sortable: LEASE_SORT, filterable: LEASE_FILTERS });
      return ok({ leases: page.items, ...(page.markers ? { markers: page.markers } : {}) });
    },
    'GET /v1.1/{project_id}/leases/{lease_id}': async ({ deps, auth, path }) => ok({ lease: nativeLease(await getLease(deps, auth, path.lease_id!)) }),
    'GET /v1.1/{project_id}/tokens': async ({ deps, auth }) => ok({ tokens: (await listTokens(deps, auth)).map(tokenView) }),
    'POST /v1.1/{project_id}/tokens': async ({ deps, auth, body }) => {
      const { token, record } = await createToken(deps, auth, parseWith(TokenCreate, body));
      // The secret is shown once; an Idempotency-Key replay keeps it sealed (`secret`).
      return { ...accepted({ token: { ...tokenView(record), token } }), secret: true };
    },
    'DELETE /v1.1/{project_id}/tokens/{token_id}': async ({ deps, auth, path }) => {
      await revokeToken(deps, auth, path.token_id!);
      tokenCache.clear();
      return noContent();
    },
    // Every site with its agents' last contact and its job counts (admins; core/agent/sites.ts).
    'GET /v1.1/{project_id}/sites': async ({ deps, auth }) => ok({ sites: await listSites(deps, auth) }),
  },
  getDeps,
);
