import { hashToken, type Principal } from '../../layers/core/identity/identity.ts';
import { tokenCache } from '../../layers/http/token-cache.ts';

/**
 * A token that the surfaces of this process resolve to `principal` without a store: the
 * in-process token cache (`layers/http/token-cache.ts`) is primed with its hash, as a lookup
 * would have left it. For unit tests of surfaces that run without the local stack; the lookup
 * itself is exercised over HTTP (test/integration/identity.test.ts).
 */
export function cachedToken(principal: Principal | string): string {
  const p = (typeof principal === 'string' ? JSON.parse(principal) : principal) as Principal;
  const token = `unit-${p.token_id}-${p.project_id}-${p.roles.join('+')}`;
  tokenCache.set(hashToken(token), p, null);
  return token;
}
