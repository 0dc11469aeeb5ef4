import type { TokenRecord } from '#core/identity/identity.ts';
import { type AppCredentialRecord, DEFAULT_DOMAIN, type UserRecord } from '#core/identity/model.ts';
import type { Request } from '#http/surface.ts';

/**
 * Keystone v3 response bodies (api-ref identity v3), and the public base URL the catalog and links
 * point at: where the client reached us, as API Gateway forwards it (or the local server's URL).
 */

/** Host as a client may send it: a name or an address, an optional port. Anything else is not echoed. */
const HOST = /^(?:[A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\])(?::\d{1,5})?$/;

/**
 * `https://<host><stage prefix>`: the prefix is what the request path has before `/v3` (a named
 * stage or a custom domain's base path; none for `$default` and locally).
 */
export function baseUrl(req: Request): string {
  const forwarded = (req.headers['x-forwarded-proto'] ?? '').split(',')[0]!.trim().toLowerCase();
  const proto = forwarded === 'https' || forwarded === 'http' ? forwarded : 'http';
  const host = req.headers.host && HOST.test(req.headers.host) ? req.headers.host : 'localhost';
  const prefix = /^(.*?)\/v3(?:\/|$)/.exec(req.rawPath)?.[1] ?? '';
  return `${proto}://${host}${/^[A-Za-z0-9_./-]{0,128}$/.test(prefix) ? prefix : ''}`;
}

export function versionView(base: string) {
  return {
    id: 'v3.14',
    status: 'stable',
    updated: '2020-04-07T00:00:00Z',
    links: [{ rel: 'self', href: `${base}/v3/` }],
    'media-types': [{ base: 'application/json', type: 'application/vnd.openstack.identity-v3+json' }],
  };
}

/**
 * Every surface, for every interface clients may ask for (python-openstackclient asks for
 * `public`; some tools for `internal`). The native surface's paths carry the project.
 */
function catalog(base: string, region: string, projectId: string) {
  const services: [type: string, name: string, url: string][] = [
    ['identity', 'keystone', `${base}/v3`],
    ['reservation', 'blazar', `${base}/v1`],
    ['baremetal', 'ironic', `${base}/`],
    ['physicalprovisioner', 'drydock', `${base}/api/v1.0`],
    ['slipway', 'slipway', `${base}/v1.1/${encodeURIComponent(projectId)}`],
    ['commissaire', 'commissaire', `${base}/`],
  ];
  return services.map(([type, name, url]) => ({
    id: name,
    type,
    name,
    endpoints: (['public', 'internal', 'admin'] as const).map((iface) => ({
      id: `${name}-${iface}`,
      interface: iface,
      region,
      region_id: region,
      url,
    })),
  }));
}

export function tokenView(rec: TokenRecord, opts: { base: string; region: string; catalog: boolean }) {
  return {
    token: {
      methods: rec.methods ?? ['token'],
      user: { id: rec.user_id, name: rec.user_name ?? rec.user_id, domain: DEFAULT_DOMAIN, password_expires_at: null },
      project: { id: rec.project_id, name: rec.project_id, domain: DEFAULT_DOMAIN },
      is_domain: false,
      roles: rec.roles.map((r) => ({ id: r, name: r })),
      // A token of `token create` may never expire (null); every Keystone sign-in's does.
      expires_at: rec.expires_at,
      issued_at: rec.created_at,
      audit_ids: [rec.token_id],
      ...(rec.app_cred ? { application_credential: { id: rec.app_cred.id, name: rec.app_cred.name, restricted: !rec.app_cred.unrestricted } } : {}),
      ...(opts.catalog ? { catalog: catalog(opts.base, opts.region, rec.project_id) } : {}),
    },
  };
}

export function userView(u: UserRecord, base: string) {
  return {
    id: u.id,
    name: u.name,
    domain_id: DEFAULT_DOMAIN.id,
    default_project_id: u.project_id,
    enabled: true,
    password_expires_at: null,
    options: {},
    // Slipway's: the roles the user has in its project.
    roles: u.roles,
    ...(u.description ? { description: u.description } : {}),
    links: { self: `${base}/v3/users/${u.id}` },
  };
}

export function appCredentialView(c: AppCredentialRecord, base: string, secret?: string) {
  return {
    id: c.id,
    name: c.name,
    description: c.description ?? null,
    user_id: c.user_id,
    project_id: c.project_id,
    roles: c.roles.map((r) => ({ id: r, name: r, domain_id: null })),
    expires_at: c.expires_at,
    unrestricted: c.unrestricted,
    access_rules: [],
    ...(secret !== undefined ? { secret } : {}),
    links: { self: `${base}/v3/users/${c.user_id}/application_credentials/${c.id}` },
  };
}
