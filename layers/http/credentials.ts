import { hashToken, type Principal, resolveToken } from '#core/identity/identity.ts';
import type { Ports } from '#core/ports.ts';
import { tokenCache } from './token-cache.ts';

/**
 * Request credentials → principal, inside the surface function that serves the request (one
 * invocation per request; docs/api.md "The API edge"). Tokens are resolved by hash, through the
 * in-process cache of `token-cache.ts`.
 */

/** Credentials: `X-Auth-Token`, or `Authorization: Bearer <token>` / `Basic` with the token as password. */
export function credentialOf(headers: Record<string, string | undefined>): string | undefined {
  const direct = headers['x-auth-token'];
  if (direct) return direct.trim();
  const authz = headers.authorization;
  if (!authz) return undefined;
  const [scheme, value] = authz.trim().split(/\s+/, 2);
  if (!value) return undefined;
  if (/^bearer$/i.test(scheme!)) return value;
  if (/^basic$/i.test(scheme!)) {
    const decoded = Buffer.from(value, 'base64').toString('utf8');
    const i = decoded.indexOf(':');
    return i >= 0 ? decoded.slice(i + 1) : undefined;
  }
  return undefined;
}

/**
 * The principal a token stands for, or undefined for an unknown, revoked or expired one. A hit
 * in the cache costs no read; `deps` is only asked for on a miss, so a surface's ports (and the
 * AWS SDK behind them) load only when a token must be looked up.
 */
export async function principalFor(deps: () => Pick<Ports, 'tokens' | 'clock'>, token: string): Promise<Principal | undefined> {
  const key = hashToken(token);
  const hit = tokenCache.get(key);
  if (hit) return hit;
  const resolved = await resolveToken(deps(), token);
  if (resolved) tokenCache.set(key, resolved.principal, resolved.expires_at);
  return resolved?.principal;
}
