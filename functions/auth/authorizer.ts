import type { APIGatewayRequestAuthorizerEventV2, APIGatewaySimpleAuthorizerWithContextResult } from 'aws-lambda';
import { getDeps } from '#aws/deps.ts';
import { hashToken, type Principal } from '#core/identity/identity.ts';
import { resolveToken } from '#core/identity/tokens.ts';
import type { AuthorizerContext } from '#http/surface.ts';
import { tokenCache } from '#http/token-cache.ts';

/**
 * API Gateway HTTP API Lambda authorizer (simple responses), also called by the local server.
 *
 * It resolves credentials to a principal but never denies: API Gateway would answer a denial
 * with its own `{"message": ...}` body, which the upstream clients cannot parse. The surface
 * function answers 401/403 in its own error format instead (DESIGN.md §4). Positive results are
 * cached briefly (see `tokenCache`).
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

export async function principalFor(token: string): Promise<Principal | undefined> {
  const key = hashToken(token);
  const hit = tokenCache.get(key);
  if (hit) return hit;
  const resolved = await resolveToken(getDeps(), token);
  if (resolved) tokenCache.set(key, resolved.principal, resolved.expires_at);
  return resolved?.principal;
}

export const handler = async (
  event: APIGatewayRequestAuthorizerEventV2,
): Promise<APIGatewaySimpleAuthorizerWithContextResult<AuthorizerContext>> => {
  const token = credentialOf((event.headers ?? {}) as Record<string, string | undefined>);
  const principal = token ? await principalFor(token) : undefined;
  return { isAuthorized: true, context: { principal: principal ? JSON.stringify(principal) : '' } };
};
