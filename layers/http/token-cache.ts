import type { Principal } from '#core/identity/identity.ts';

/**
 * Positive token resolutions cached in-process for a few seconds to spare DynamoDB reads. A
 * revocation clears the cache of the process that served it (immediate on the local stack,
 * where the authorizer shares the process); other warm Lambda containers stop accepting a
 * revoked token within TTL_MS.
 */
export const TOKEN_CACHE_TTL_MS = 10_000;
const cache = new Map<string, { principal: Principal; until: number }>();

export const tokenCache = {
  get(hash: string): Principal | undefined {
    const hit = cache.get(hash);
    if (hit && hit.until > Date.now()) return hit.principal;
    cache.delete(hash);
    return undefined;
  },
  set(hash: string, principal: Principal): void {
    if (cache.size > 10_000) cache.clear();
    cache.set(hash, { principal, until: Date.now() + TOKEN_CACHE_TTL_MS });
  },
  clear(): void {
    cache.clear();
  },
};
