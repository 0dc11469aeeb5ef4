import { createHash } from 'node:crypto';
import { principalByPassword } from '#core/identity/basic.ts';
import type { Principal } from '#core/identity/identity.ts';
import type { Ports } from '#core/ports.ts';
import { tokenCache } from './token-cache.ts';

/**
 * `Authorization: Basic user:password` with a user's own password (Commissaire, as upstream's
 * htpasswd backend; a surface's `basicUsers`), tried when the password is not a token
 * (credentials.ts). A verification is scrypt, tens of milliseconds by design, so a success is
 * cached like a token (TOKEN_CACHE_TTL_MS) under a hash of name and password, never the password
 * itself. In a module of its own: only the surfaces that take passwords carry it.
 */
export async function basicUsers(deps: () => Ports, headers: Record<string, string | undefined>): Promise<Principal | undefined> {
  const m = /^\s*basic\s+(\S{1,8192})\s*$/i.exec(headers.authorization ?? '');
  if (!m) return undefined;
  const decoded = Buffer.from(m[1]!, 'base64').toString('utf8');
  const i = decoded.indexOf(':');
  if (i <= 0) return undefined; // no user name: the password was a token, already tried
  const [user, password] = [decoded.slice(0, i), decoded.slice(i + 1)];
  const key = createHash('sha256').update(`basic\0${user}\0${password}`, 'utf8').digest('hex');
  const hit = tokenCache.get(key);
  if (hit) return hit;
  const principal = await principalByPassword(deps(), user, password);
  if (principal) tokenCache.set(key, principal, null);
  return principal;
}
