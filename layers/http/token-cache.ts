import type { Principal } from '#core/identity/identity.ts';

/**
 * Positive token resolutions cached in-process for a few seconds to spare DynamoDB reads (the
 * surfaces resolve tokens themselves: `credentials.ts`). A revocation clears the cache of the
 * process that served it (immediate on the local stack, where every surface shares the process);
 * other warm Lambda containers stop accepting a revoked token within TTL_MS.
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
  /** Kept TTL_MS at most, and never past the token's own expiry (ISO time, or null for none). */
  set(hash: string, principal: Principal, expiresAt: string | null = null): void {
    if (cache.size > 10_000) cache.clear();
    const until = Math.min(Date.now() + TOKEN_CACHE_TTL_MS, expiresAt === null ? Infinity : Date.parse(expiresAt));
    cache.set(hash, { principal, until });
  },
  clear(): void {
    cache.clear();
  },
};
