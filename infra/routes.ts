/**
 * THE route table (DESIGN.md §2): method + path → surface function, auth mode. The CDK API stack
 * and the local server both read it, so they cannot drift; `test/unit/routes.test.ts` checks that
 * every route has a handler in its surface and every handler a route.
 *
 * Paths are API Gateway HTTP API templates. `ANY` routes are per-surface catch-alls so that an
 * unknown path or a wrong method is answered by the surface in its own error format (API
 * Gateway's own 404 body would break the upstream clients' error handling).
 */
export type FunctionName = 'system' | 'blazar' | 'native' | 'agent' | 'ironic' | 'commissaire' | 'bootactions' | 'drydock' | 'identity' | 'console';
export type Method = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE' | 'ANY';

export interface RouteSpec {
  method: Method;
  path: string;
  fn: FunctionName;
  /** `token`: the surface resolves the request's token (401 in its format without one); `none`: it never looks one up. */
  auth: 'token' | 'none';
}

interface SurfaceDef {
  fn: FunctionName;
  /** Blazar and Sahara answer every route with a `.json` suffix too (upstream-apis.md §0). */
  jsonSuffix: boolean;
  /** [method, path] or [method, path, 'none'] for a route that needs no token. */
  routes: ([Method, string] | [Method, string, 'none'])[];
  catchAll: string[];
}

const SURFACES: SurfaceDef[] = [
  {
    // Keystone v3 sign-in (issue 15): discovery and sign-in need no token (the credentials are in
    // the body).
    fn: 'identity',
    jsonSuffix: false,
    routes: [
      ['GET', '/v3', 'none'],
      ['POST', '/v3/auth/tokens', 'none'],
      ['GET', '/v3/auth/tokens'],
      // keystoneauth's check_token; a route of its own (HEAD does not match a GET route).
      ['HEAD', '/v3/auth/tokens'],
      ['DELETE', '/v3/auth/tokens'],
      ['GET', '/v3/users'],
      ['POST', '/v3/users'],
      ['GET', '/v3/users/{user_id}'],
      ['DELETE', '/v3/users/{user_id}'],
      ['GET', '/v3/users/{user_id}/application_credentials'],
      ['POST', '/v3/users/{user_id}/application_credentials'],
      ['GET', '/v3/users/{user_id}/application_credentials/{application_credential_id}'],
      ['DELETE', '/v3/users/{user_id}/application_credentials/{application_credential_id}'],
    ],
    catchAll: ['/v3/{proxy+}'],
  },
  {
    fn: 'blazar',
    jsonSuffix: true,
    routes: [
      ['GET', '/v1/leases'],
      ['POST', '/v1/leases'],
      ['GET', '/v1/leases/{lease_id}'],
      ['PUT', '/v1/leases/{lease_id}'],
      ['DELETE', '/v1/leases/{lease_id}'],
      ['GET', '/v1/os-hosts'],
      ['POST', '/v1/os-hosts'],
      ['GET', '/v1/os-hosts/allocations'],
      ['GET', '/v1/os-hosts/properties'],
      ['PATCH', '/v1/os-hosts/properties/{property_name}'],
      ['GET', '/v1/os-hosts/{host_id}'],
      ['PUT', '/v1/os-hosts/{host_id}'],
      ['DELETE', '/v1/os-hosts/{host_id}'],
      ['GET', '/v1/os-hosts/{host_id}/allocation'],
    ],
    catchAll: ['/v1/leases', '/v1/leases.json', '/v1/leases/{proxy+}', '/v1/os-hosts', '/v1/os-hosts.json', '/v1/os-hosts/{proxy+}'],
  },
  {
    fn: 'native',
    jsonSuffix: true,
    routes: [
      ['GET', '/v1.1/{project_id}/nodes'],
      ['GET', '/v1.1/{project_id}/nodes/{node_id}'],
      ['GET', '/v1.1/{project_id}/leases'],
      ['GET', '/v1.1/{project_id}/leases/{lease_id}'],
      ['GET', '/v1.1/{project_id}/tokens'],
      ['POST', '/v1.1/{project_id}/tokens'],
      ['DELETE', '/v1.1/{project_id}/tokens/{token_id}'],
      ['GET', '/v1.1/{project_id}/sites'],
    ],
    catchAll: ['/v1.1/{proxy+}'],
  },
  {
    // Ironic: version discovery (no token, as openstacksdk asks) and BMC-backed nodes. HTTP APIs
    // allow no trailing slash in a route; openstacksdk tolerates a failing `GET /v1/`. But
    // python-ironicclient lists with a filter as `GET /v1/nodes/?…`: `/v1/{proxy+}` (the least
    // specific `/v1` route, after Blazar's) brings such a path to the surface (`trailingSlash`).
    fn: 'ironic',
    jsonSuffix: false,
    routes: [
      ['GET', '/', 'none'],
      ['GET', '/v1', 'none'],
      ['GET', '/v1/nodes'],
      ['POST', '/v1/nodes'],
      ['GET', '/v1/nodes/detail'],
      ['GET', '/v1/nodes/{node_ident}'],
      ['PATCH', '/v1/nodes/{node_ident}'],
      ['DELETE', '/v1/nodes/{node_ident}'],
      ['GET', '/v1/nodes/{node_ident}/states'],
      ['PUT', '/v1/nodes/{node_ident}/states/power'],
      ['PUT', '/v1/nodes/{node_ident}/states/provision'],
      ['PUT', '/v1/nodes/{node_ident}/management/boot_device'],
      ['GET', '/v1/nodes/{node_ident}/management/boot_device'],
      ['GET', '/v1/nodes/{node_ident}/management/boot_device/supported'],
      ['PUT', '/v1/nodes/{node_ident}/maintenance'],
      ['DELETE', '/v1/nodes/{node_ident}/maintenance'],
      ['GET', '/v1/nodes/{node_ident}/validate'],
      ['GET', '/v1/nodes/{node_ident}/ports'],
      ['GET', '/v1/nodes/{node_ident}/ports/detail'],
      ['GET', '/v1/ports'],
      ['POST', '/v1/ports'],
      ['GET', '/v1/ports/detail'],
      ['GET', '/v1/ports/{port_id}'],
      ['PATCH', '/v1/ports/{port_id}'],
      ['DELETE', '/v1/ports/{port_id}'],
      ['GET', '/v1/drivers'],
      ['GET', '/v1/drivers/{driver_name}'],
      ['GET', '/v1/drivers/{driver_name}/properties'],
      ['GET', '/v1/drivers/{driver_name}/vendor_passthru/methods'],
      ['GET', '/v1/nodes/{node_ident}/vendor_passthru/methods'],
      // Vendor passthru: both call forms, every verb (the registry decides which it allows).
      ...(['GET', 'POST', 'PUT', 'DELETE'] as const).flatMap((verb): [Method, string][] => [
        [verb, '/v1/drivers/{driver_name}/vendor_passthru'],
        [verb, '/v1/drivers/{driver_name}/vendor_passthru/{method}'],
        [verb, '/v1/nodes/{node_ident}/vendor_passthru'],
        [verb, '/v1/nodes/{node_ident}/vendor_passthru/{method}'],
      ]),
    ],
    catchAll: ['/v1/nodes', '/v1/nodes/{proxy+}', '/v1/ports', '/v1/ports/{proxy+}', '/v1/drivers', '/v1/drivers/{proxy+}', '/v1/{proxy+}'],
  },
  {
    // The on-prem agent's job queue (DESIGN.md §7): agent tokens only, scoped to their site.
    fn: 'agent',
    jsonSuffix: false,
    routes: [
      ['POST', '/api/v1.0/agent/jobs/claim'],
      ['GET', '/api/v1.0/agent/jobs/{job_id}'],
      ['POST', '/api/v1.0/agent/jobs/{job_id}/heartbeat'],
      ['POST', '/api/v1.0/agent/jobs/{job_id}/result'],
      ['POST', '/api/v1.0/agent/jobs/{job_id}/release'],
      ['GET', '/api/v1.0/agent/images/{name}'],
    ],
    catchAll: ['/api/v1.0/agent/{proxy+}'],
  },
  {
    // Commissaire (upstream-apis.md §2). `{IP}` is any one segment, so IPv6 literals (raw or
    // URL-encoded) route; the surface validates them. A trailing slash, which API Gateway routes
    // cannot express, reaches the catch-all and is dispatched by the surface (`trailingSlash`).
    fn: 'commissaire',
    jsonSuffix: false,
    routes: [
      ['GET', '/api/v0/clusters'],
      ['GET', '/api/v0/cluster/{name}'],
      ['PUT', '/api/v0/cluster/{name}'],
      ['DELETE', '/api/v0/cluster/{name}'],
      ['GET', '/api/v0/cluster/{name}/hosts'],
      ['PUT', '/api/v0/cluster/{name}/hosts'],
      ['GET', '/api/v0/cluster/{name}/hosts/{IP}'],
      ['PUT', '/api/v0/cluster/{name}/hosts/{IP}'],
      ['DELETE', '/api/v0/cluster/{name}/hosts/{IP}'],
      ...(['deploy', 'upgrade', 'restart'] as const).flatMap((op): [Method, string][] => [
        ['GET', `/api/v0/cluster/{name}/${op}`],
        ['PUT', `/api/v0/cluster/{name}/${op}`],
      ]),
      ['GET', '/api/v0/hosts'],
      ['PUT', '/api/v0/host'],
      ['GET', '/api/v0/host/{IP}'],
      ['PUT', '/api/v0/host/{IP}'],
      ['DELETE', '/api/v0/host/{IP}'],
      ['GET', '/api/v0/host/{IP}/creds'],
      ['GET', '/api/v0/host/{IP}/status'],
      ['GET', '/api/v0/networks'],
      ['GET', '/api/v0/network/{name}'],
      ['PUT', '/api/v0/network/{name}'],
      ['DELETE', '/api/v0/network/{name}'],
      ['GET', '/api/v0/containermanagers'],
      ['GET', '/api/v0/containermanager/{name}'],
      ['PUT', '/api/v0/containermanager/{name}'],
      ['DELETE', '/api/v0/containermanager/{name}'],
    ],
    catchAll: ['/api/v0', '/api/v0/{proxy+}'],
  },
  {
    // Drydock boot actions (upstream-apis.md §1.6): deploying nodes authenticate with their
    // X-Bootaction-Key, not a token. Upstream's code shapes are canonical, the seed's
    // `/bootdata/…` and `/bootaction/…` aliases. A trailing slash (the Go baclient posts to
    // `…/{id}/`) reaches the catch-all and is dispatched by the surface (`trailingSlash`).
    fn: 'bootactions',
    jsonSuffix: false,
    routes: [
      ['GET', '/api/v1.0/bootactions/nodes/{hostname}'],
      ['GET', '/api/v1.0/bootactions/nodes/{hostname}/units', 'none'],
      ['GET', '/api/v1.0/bootactions/nodes/{hostname}/files', 'none'],
      ['GET', '/api/v1.0/bootdata/{hostname}/units', 'none'],
      ['GET', '/api/v1.0/bootdata/{hostname}/files', 'none'],
      ['POST', '/api/v1.0/bootactions/{action_id}', 'none'],
      ['POST', '/api/v1.0/bootaction/{action_id}', 'none'],
    ],
    catchAll: ['/api/v1.0/bootactions/{proxy+}', '/api/v1.0/bootdata/{proxy+}', '/api/v1.0/bootaction/{proxy+}'],
  },
  {
    // Drydock (upstream-apis.md §1.1) at the server root, as its client requires (it drops any
    // path in DD_URL). Its catch-all is the least specific route of `/api/v1.0`, so the agent and
    // boot-action surfaces keep theirs.
    fn: 'drydock',
    jsonSuffix: false,
    routes: [
      ['GET', '/versions', 'none'],
      ['GET', '/api/v1.0/health', 'none'],
      ['GET', '/api/v1.0/health/extended'],
      ['GET', '/api/v1.0/tasks'],
      ['POST', '/api/v1.0/tasks'],
      ['DELETE', '/api/v1.0/tasks'],
      ['GET', '/api/v1.0/tasks/{task_id}'],
      ['GET', '/api/v1.0/tasks/{task_id}/builddata'],
      ['GET', '/api/v1.0/nodes'],
      ['GET', '/api/v1.0/nodes/{hostname}/builddata'],
      ['POST', '/api/v1.0/nodefilter'],
      ['POST', '/api/v1.0/validatedesign'],
      ['GET', '/api/v1.0/designs'],
      ['POST', '/api/v1.0/designs'],
      ['GET', '/api/v1.0/designs/{design_id}'],
      ['POST', '/api/v1.0/designs/{design_id}/parts'],
      ['GET', '/api/v1.0/designs/{design_id}/parts'],
      ['GET', '/api/v1.0/designs/{design_id}/parts/{kind}'],
      ['GET', '/api/v1.0/designs/{design_id}/parts/{kind}/{name}'],
    ],
    catchAll: ['/api/v1.0', '/api/v1.0/{proxy+}'],
  },
];

function expand(def: SurfaceDef): RouteSpec[] {
  const out: RouteSpec[] = [];
  for (const [method, path, auth = 'token'] of def.routes) {
    out.push({ method, path, fn: def.fn, auth });
    // A trailing `{param}` already captures `x.json` (the surface strips it); a literal last
    // segment needs its own `.json` twin.
    if (def.jsonSuffix && !path.endsWith('}')) out.push({ method, path: `${path}.json`, fn: def.fn, auth });
  }
  for (const path of def.catchAll) out.push({ method: 'ANY', path, fn: def.fn, auth: 'token' });
  return out;
}

export const routes: RouteSpec[] = [
  { method: 'GET', path: '/healthz', fn: 'system', auth: 'none' },
  // The OpenAPI document of all of the above (infra/openapi.ts), for anyone: it holds no data.
  { method: 'GET', path: '/openapi.json', fn: 'system', auth: 'none' },
  // The web console (functions/api/console.ts): its page and its two hashed files, public; what
  // they show comes from the API with the token the user signs in for.
  { method: 'GET', path: '/console', fn: 'console', auth: 'none' },
  { method: 'GET', path: '/console/{proxy+}', fn: 'console', auth: 'none' },
  ...SURFACES.flatMap(expand),
];

export const functionNames: FunctionName[] = [...new Set(routes.map((r) => r.fn))];

/** The handler key a route dispatches to inside its surface (the `.json` twin shares it). */
export function handlerKey(r: RouteSpec): string {
  return `${r.method} ${r.path.replace(/\.json$/, '')}`;
}
