import { getDeps } from '#aws/roots/blazar.ts';
import { NotAcceptableError, ValidationError } from '#core/errors.ts';
import {
  deleteHost,
  enrolHost,
  getHost,
  listAllocations,
  listHosts,
  pageHosts,
  listProperties,
  updateHost,
  updateProperty,
} from '#core/inventory/hosts.ts';
import { createLease, deleteLease, findLeasesByName, getLease, LeaseCreate, LeaseUpdate, listLeases, pageLeases, updateLease } from '#core/leases/service.ts';
import { created, noContent, ok, type Request, surface } from '#http/surface.ts';
import { parseWith } from '#http/validate.ts';
import { blazarAllocation, blazarHost, blazarLease, blazarProperty, blazarPropertyRecord } from './views/blazar.ts';

/**
 * Blazar `/v1` (upstream-apis.md §4, client-contracts.md §1): POST 201, PUT 200, DELETE 204;
 * `{error_code, error_message, error_name}` errors with a symbolic name; every route also with
 * `.json`. Only `reservation 1.0` exists; `latest` maps to it.
 */
function apiVersion(req: Request): Record<string, string> {
  const raw = req.headers['openstack-api-version'];
  if (raw !== undefined) {
    const m = /^\s*reservation\s+(\S+)\s*$/i.exec(raw);
    if (!m) throw new ValidationError(`Invalid OpenStack-API-Version header: ${raw}`, 'BAD_REQUEST');
    if (m[1] !== '1.0' && m[1]!.toLowerCase() !== 'latest') {
      if (!/^\d+\.\d+$/.test(m[1]!)) throw new ValidationError(`Invalid OpenStack-API-Version header: ${raw}`, 'BAD_REQUEST');
      throw new NotAcceptableError(`Version ${m[1]} of API reservation is not supported; only 1.0 is available`);
    }
  }
  return { 'OpenStack-API-Version': 'reservation 1.0', Vary: 'OpenStack-API-Version' };
}

const isTrue = (v: string | undefined) => v !== undefined && /^(1|true|yes|on)$/i.test(v);

/**
 * `?limit=` (ours, issue 16): upstream Blazar lists have no paging and its clients read them
 * whole, which stays the default; a caller that wants a page read asks for one, with `marker`
 * the last id it has (lease id, or host id).
 */
function pageLimit(raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  if (!/^\d+$/.test(raw) || Number(raw) < 1 || Number(raw) > 1000) throw new ValidationError('limit must be an integer from 1 to 1000', 'BAD_REQUEST');
  return Number(raw);
}

export const handler = surface(
  { style: 'blazar', jsonSuffix: true, before: apiVersion },
  {
    // `?name=` (ours; upstream ignores unknown parameters, so a client filtering itself still works): the name index.
    'GET /v1/leases': async ({ deps, auth, query }) => {
      const limit = pageLimit(query.limit);
      const leases =
        query.name !== undefined
          ? await findLeasesByName(deps, auth, query.name)
          : limit !== undefined
            ? await pageLeases(deps, auth, { limit, ...(query.marker !== undefined ? { after: query.marker } : {}) })
            : await listLeases(deps, auth);
      return ok({ leases: leases.map(blazarLease) });
    },
    'POST /v1/leases': async ({ deps, auth, body }) =>
      created({ lease: blazarLease(await createLease(deps, auth, parseWith(LeaseCreate, body))) }),
    'GET /v1/leases/{lease_id}': async ({ deps, auth, path }) => ok({ lease: blazarLease(await getLease(deps, auth, path.lease_id!)) }),
    'PUT /v1/leases/{lease_id}': async ({ deps, auth, path, body }) =>
      ok({ lease: blazarLease(await updateLease(deps, auth, path.lease_id!, parseWith(LeaseUpdate, body))) }),
    'DELETE /v1/leases/{lease_id}': async ({ deps, auth, path }) => {
      await deleteLease(deps, auth, path.lease_id!);
      return noContent();
    },

    'GET /v1/os-hosts': async ({ deps, auth, query }) => {
      const limit = pageLimit(query.limit);
      const hosts = limit !== undefined ? await pageHosts(deps, auth, limit, query.marker) : await listHosts(deps, auth);
      return ok({ hosts: hosts.map(blazarHost) });
    },
    'POST /v1/os-hosts': async ({ deps, auth, body }) => created({ host: blazarHost(await enrolHost(deps, auth, body)) }),
    'GET /v1/os-hosts/{host_id}': async ({ deps, auth, path }) => ok({ host: blazarHost(await getHost(deps, auth, path.host_id!)) }),
    'PUT /v1/os-hosts/{host_id}': async ({ deps, auth, path, body }) =>
      ok({ host: blazarHost(await updateHost(deps, auth, path.host_id!, body)) }),
    'DELETE /v1/os-hosts/{host_id}': async ({ deps, auth, path }) => {
      await deleteHost(deps, auth, path.host_id!);
      return noContent();
    },
    'GET /v1/os-hosts/allocations': async ({ deps, auth, query }) =>
      ok({ allocations: (await listAllocations(deps, auth, { lease_id: query.lease_id, reservation_id: query.reservation_id })).map(blazarAllocation) }),
    'GET /v1/os-hosts/{host_id}/allocation': async ({ deps, auth, path, query }) => {
      const [one] = await listAllocations(deps, auth, { host_id: path.host_id!, lease_id: query.lease_id, reservation_id: query.reservation_id });
      return ok({ allocation: blazarAllocation(one!) });
    },
    'GET /v1/os-hosts/properties': async ({ deps, auth, query }) =>
      ok({
        resource_properties: (await listProperties(deps, auth, { all: isTrue(query.all) })).map((p) => blazarProperty(p, isTrue(query.detail))),
      }),
    'PATCH /v1/os-hosts/properties/{property_name}': async ({ deps, auth, path, body }) =>
      ok({ resource_property: blazarPropertyRecord(await updateProperty(deps, auth, path.property_name!, body)) }),
  },
  getDeps,
);
