import { getDeps } from '#aws/roots/ironic.ts';
import { NotAcceptableError, ValidationError } from '#core/errors.ts';
import {
  BootDeviceRequest,
  deleteIronicNode,
  getBootDevice,
  getIronicNode,
  MaintenanceRequest,
  NodeCreate,
  NodePatchOps,
  patchNode,
  PowerRequest,
  registerNode,
  requestPowerState,
  setBootDevice,
  setMaintenance,
  supportedBootDevices,
  validateNode,
} from '#core/ironic/nodes.ts';
import { listIronicNodes, NodeListQuery, NodeShowQuery, nodeFields } from '#core/ironic/node-list.ts';
import { ProvisionRequest, setProvisionState } from '#core/ironic/provision.ts';
import {
  createPort,
  deletePort,
  getPort,
  listPorts,
  PortCreate,
  PortListQuery,
  PortPatchOps,
  patchPort,
  portFields,
  PortShowQuery,
} from '#core/ironic/bm-ports.ts';
import type { BaremetalPort } from '#core/ironic/model.ts';
import type { Node } from '#core/inventory/node.ts';
import { nodeFor } from '#core/ironic/redact.ts';
import { callDriverPassthru, callNodePassthru, driverMethods, driverProperties, getDriver, listDrivers, nodeMethods, type PassthruResult } from '#core/ironic/passthru.ts';
import { accepted, created, noContent, ok, type Reply, type Request, type RouteHandler, surface } from '#http/surface.ts';
import { parseWith } from '#http/validate.ts';
import { ironicNode, ironicNodeFields, ironicNodeSummary, ironicPort, ironicPortFields, ironicPortSummary, ironicStates } from './views/ironic.ts';

/**
 * Ironic `/` and `/v1` (upstream-apis.md §3, client-contracts.md §2): version discovery without
 * auth, microversion negotiation (406 outside MIN..MAX), WSME double-encoded errors and
 * `Content-Type: application/json` on every answer.
 */
export const MIN_VERSION = '1.1';
export const MAX_VERSION = '1.78';
const num = (v: string) => v.split('.').map(Number) as [number, number];
const cmp = (a: string, b: string) => {
  const [x1, y1] = num(a);
  const [x2, y2] = num(b);
  return x1 - x2 || y1 - y2;
};

function negotiate(req: Request): Record<string, string> {
  const standard = req.headers['openstack-api-version'];
  let wanted = req.headers['x-openstack-ironic-api-version'];
  if (standard !== undefined) {
    const m = /^\s*baremetal\s+(\S+)\s*$/i.exec(standard);
    if (m) wanted = m[1];
  }
  let version = MIN_VERSION;
  if (wanted !== undefined) {
    if (wanted.toLowerCase() === 'latest') version = MAX_VERSION;
    else if (!/^\d+\.\d+$/.test(wanted.trim())) throw new ValidationError(`Invalid value for X-OpenStack-Ironic-API-Version header: ${wanted}`, 'BAD_REQUEST');
    else if (cmp(wanted.trim(), MIN_VERSION) < 0 || cmp(wanted.trim(), MAX_VERSION) > 0) {
      const e = new NotAcceptableError(`Version ${wanted} was requested but the minor version is not supported by this service. The supported version range is: [${MIN_VERSION}, ${MAX_VERSION}].`);
      Object.assign(e.headers, versionHeaders(MIN_VERSION));
      throw e;
    } else version = wanted.trim();
  }
  return versionHeaders(version);
}

function versionHeaders(version: string): Record<string, string> {
  return {
    'X-OpenStack-Ironic-API-Minimum-Version': MIN_VERSION,
    'X-OpenStack-Ironic-API-Maximum-Version': MAX_VERSION,
    'X-OpenStack-Ironic-API-Version': version,
    'OpenStack-API-Version': `baremetal ${version}`,
    Vary: 'X-OpenStack-Ironic-API-Version, OpenStack-API-Version',
  };
}

/** The public base URL as the client reached us (links must point back there). */
function baseUrl(req: Request): string {
  const proto = req.headers['x-forwarded-proto'] ?? 'http';
  return `${proto}://${req.headers.host ?? 'localhost'}`;
}

function v1(base: string) {
  return {
    id: 'v1',
    links: [
      { href: `${base}/v1/`, rel: 'self' },
      { href: 'https://docs.openstack.org/ironic/latest/contributor/webapi.html', rel: 'describedby', type: 'text/html' },
    ],
    media_types: [{ base: 'application/json', type: 'application/vnd.openstack.ironic.v1+json' }],
    nodes: [{ href: `${base}/v1/nodes/`, rel: 'self' }],
    drivers: [{ href: `${base}/v1/drivers/`, rel: 'self' }],
  };
}


/** Sync passthru answers its value as JSON (200); async answers 202 with an empty body. */
const passthruReply = (r: PassthruResult): Reply => (r.async ? accepted(undefined) : ok(r.output ?? null));

function driverView(name: string, base: string) {
  return {
    name,
    hosts: ['slipway'],
    type: 'dynamic',
    default_vendor_interface: name === 'ipmi' ? 'ipmitool' : 'redfish',
    enabled_vendor_interfaces: [name === 'ipmi' ? 'ipmitool' : 'redfish'],
    links: [
      { href: `${base}/v1/drivers/${name}`, rel: 'self' },
      { href: `${base}/drivers/${name}`, rel: 'bookmark' },
    ],
    properties: [{ href: `${base}/v1/drivers/${name}/properties`, rel: 'self' }],
  };
}

/**
 * The arguments: the JSON body, or for a call without one (GET and DELETE usually) the query
 * parameters other than `method`.
 */
function passthruArgs(req: Request): unknown {
  if (req.body !== undefined) return req.body;
  const { method: _m, ...rest } = req.query;
  return Object.keys(rest).length ? rest : undefined;
}

/** `GET /v1/nodes` (summaries, or details with `detail=true`, or the `fields` asked for) and `/v1/nodes/detail`. */
function nodeList(detailRoute: boolean): RouteHandler {
  return async (req) => {
    const query = parseWith(NodeListQuery, req.query, 'INVALID_PARAMETER_VALUE');
    const page = await listIronicNodes(req.deps, req.auth, query, req.query, detailRoute);
    const base = baseUrl(req);
    const view = (node: Node) => {
      const n = nodeFor(req.auth, node);
      return page.fields ? ironicNodeFields(n, base, page.fields) : detailRoute || query.detail ? ironicNode(n, base) : ironicNodeSummary(n, base);
    };
    return ok({ nodes: page.items.map(view), ...(page.next ? { next: `${base}/v1/nodes${detailRoute ? '/detail' : ''}?${page.next}` } : {}) });
  };
}

/** Port lists: `/v1/ports[/detail]` and a node's `/v1/nodes/{node}/ports[/detail]`. */
function portList(detailRoute: boolean, ofNode: boolean): RouteHandler {
  return async (req) => {
    const query = parseWith(PortListQuery, req.query, 'INVALID_PARAMETER_VALUE');
    const page = await listPorts(req.deps, req.auth, query, req.query, detailRoute, ofNode ? req.path.node_ident : undefined);
    const base = baseUrl(req);
    const view = (p: BaremetalPort) => (page.fields ? ironicPortFields(p, base, page.fields) : detailRoute || query.detail ? ironicPort(p, base) : ironicPortSummary(p, base));
    const path = ofNode ? `/v1/nodes/${encodeURIComponent(req.path.node_ident!)}/ports` : '/v1/ports';
    return ok({ ports: page.items.map(view), ...(page.next ? { next: `${base}${path}${detailRoute ? '/detail' : ''}?${page.next}` } : {}) });
  };
}

/** Both call forms (`?method=m` and `/vendor_passthru/m`) with all four verbs. */
function passthruRoutes(): Record<string, RouteHandler> {
  const table: Record<string, RouteHandler> = {};
  for (const verb of ['GET', 'POST', 'PUT', 'DELETE'] as const) {
    table[`${verb} /v1/drivers/{driver_name}/vendor_passthru`] = async (req) =>
      passthruReply(await callDriverPassthru(req.deps, req.auth, req.path.driver_name!, req.query.method, verb, passthruArgs(req)));
    table[`${verb} /v1/drivers/{driver_name}/vendor_passthru/{method}`] = async (req) =>
      passthruReply(await callDriverPassthru(req.deps, req.auth, req.path.driver_name!, req.path.method, verb, passthruArgs(req)));
    table[`${verb} /v1/nodes/{node_ident}/vendor_passthru`] = async (req) =>
      passthruReply(await callNodePassthru(req.deps, req.auth, req.path.node_ident!, req.query.method, verb, passthruArgs(req)));
    table[`${verb} /v1/nodes/{node_ident}/vendor_passthru/{method}`] = async (req) =>
      passthruReply(await callNodePassthru(req.deps, req.auth, req.path.node_ident!, req.path.method, verb, passthruArgs(req)));
  }
  return table;
}

export const handler = surface(
  { style: 'ironic', jsonSuffix: false, trailingSlash: true, before: negotiate, anonymous: ['GET /', 'GET /v1'], alwaysJson: true },
  {
    'GET /': async (req) => {
      const base = baseUrl(req);
      const version = { id: 'v1', links: [{ href: `${base}/v1/`, rel: 'self' }], status: 'CURRENT', min_version: MIN_VERSION, version: MAX_VERSION };
      return ok({ name: 'OpenStack Ironic API', description: 'Slipway: Ironic-compatible bare-metal API', default_version: version, versions: [version] });
    },
    'GET /v1': async (req) => ok(v1(baseUrl(req))),
    'GET /v1/nodes': nodeList(false),
    'GET /v1/nodes/detail': nodeList(true),
    'POST /v1/nodes': async (req) =>
      created(ironicNode(nodeFor(req.auth, await registerNode(req.deps, req.auth, parseWith(NodeCreate, req.body, 'INVALID_PARAMETER_VALUE'))), baseUrl(req))),
    'GET /v1/nodes/{node_ident}': async (req) => {
      const fields = nodeFields(parseWith(NodeShowQuery, req.query, 'INVALID_PARAMETER_VALUE').fields);
      const node = nodeFor(req.auth, await getIronicNode(req.deps, req.auth, req.path.node_ident!));
      return ok(fields ? ironicNodeFields(node, baseUrl(req), fields) : ironicNode(node, baseUrl(req)));
    },
    'PATCH /v1/nodes/{node_ident}': async (req) =>
      ok(ironicNode(nodeFor(req.auth, await patchNode(req.deps, req.auth, req.path.node_ident!, parseWith(NodePatchOps, req.body, 'INVALID_PARAMETER_VALUE'))), baseUrl(req))),
    'DELETE /v1/nodes/{node_ident}': async (req) => {
      await deleteIronicNode(req.deps, req.auth, req.path.node_ident!);
      return noContent();
    },
    'GET /v1/nodes/{node_ident}/states': async (req) => ok(ironicStates(nodeFor(req.auth, await getIronicNode(req.deps, req.auth, req.path.node_ident!)))),
    'PUT /v1/nodes/{node_ident}/states/power': async (req) => {
      const job = await requestPowerState(req.deps, req.auth, req.path.node_ident!, parseWith(PowerRequest, req.body, 'INVALID_PARAMETER_VALUE'));
      return accepted(undefined, { Location: `${baseUrl(req)}/v1/nodes/${job.node_id}/states` });
    },
    'GET /v1/ports': portList(false, false),
    'GET /v1/ports/detail': portList(true, false),
    'GET /v1/nodes/{node_ident}/ports': portList(false, true),
    'GET /v1/nodes/{node_ident}/ports/detail': portList(true, true),
    'POST /v1/ports': async (req) => {
      const port = await createPort(req.deps, req.auth, parseWith(PortCreate, req.body, 'INVALID_PARAMETER_VALUE'));
      return created(ironicPort(port, baseUrl(req)), { Location: `${baseUrl(req)}/v1/ports/${port.uuid}` });
    },
    'GET /v1/ports/{port_id}': async (req) => {
      const fields = portFields(parseWith(PortShowQuery, req.query, 'INVALID_PARAMETER_VALUE').fields);
      const port = await getPort(req.deps, req.auth, req.path.port_id!);
      return ok(fields ? ironicPortFields(port, baseUrl(req), fields) : ironicPort(port, baseUrl(req)));
    },
    'PATCH /v1/ports/{port_id}': async (req) =>
      ok(ironicPort(await patchPort(req.deps, req.auth, req.path.port_id!, parseWith(PortPatchOps, req.body, 'INVALID_PARAMETER_VALUE')), baseUrl(req))),
    'DELETE /v1/ports/{port_id}': async (req) => {
      await deletePort(req.deps, req.auth, req.path.port_id!);
      return noContent();
    },
    'GET /v1/drivers': async (req) => ok({ drivers: listDrivers(req.auth).map((d) => driverView(d, baseUrl(req))) }),
    'GET /v1/drivers/{driver_name}': async (req) => ok(driverView(getDriver(req.auth, req.path.driver_name!), baseUrl(req))),
    'GET /v1/drivers/{driver_name}/properties': async (req) => ok(driverProperties(req.auth, req.path.driver_name!)),
    'GET /v1/drivers/{driver_name}/vendor_passthru/methods': async (req) => ok(driverMethods(req.auth, req.path.driver_name!)),
    'GET /v1/nodes/{node_ident}/vendor_passthru/methods': async (req) => ok(await nodeMethods(req.deps, req.auth, req.path.node_ident!)),
    ...passthruRoutes(),
    'PUT /v1/nodes/{node_ident}/states/provision': async (req) => {
      const uuid = await setProvisionState(req.deps, req.auth, req.path.node_ident!, parseWith(ProvisionRequest, req.body, 'INVALID_PARAMETER_VALUE'));
      return accepted(undefined, { Location: `${baseUrl(req)}/v1/nodes/${uuid}/states` });
    },
    'PUT /v1/nodes/{node_ident}/maintenance': async (req) => {
      const { reason } = parseWith(MaintenanceRequest, req.body ?? {}, 'INVALID_PARAMETER_VALUE');
      await setMaintenance(req.deps, req.auth, req.path.node_ident!, true, reason);
      return accepted(undefined);
    },
    'DELETE /v1/nodes/{node_ident}/maintenance': async (req) => {
      await setMaintenance(req.deps, req.auth, req.path.node_ident!, false);
      return accepted(undefined);
    },
    'GET /v1/nodes/{node_ident}/validate': async (req) => ok(await validateNode(req.deps, req.auth, req.path.node_ident!)),
    'GET /v1/nodes/{node_ident}/management/boot_device': async (req) => ok(await getBootDevice(req.deps, req.auth, req.path.node_ident!)),
    'GET /v1/nodes/{node_ident}/management/boot_device/supported': async (req) =>
      ok({ supported_boot_devices: await supportedBootDevices(req.deps, req.auth, req.path.node_ident!) }),
    'PUT /v1/nodes/{node_ident}/management/boot_device': async (req) => {
      const state = await setBootDevice(req.deps, req.auth, req.path.node_ident!, parseWith(BootDeviceRequest, req.body, 'INVALID_PARAMETER_VALUE'));
      return state === 'done' ? noContent() : accepted(undefined);
    },
  },
  getDeps,
);

