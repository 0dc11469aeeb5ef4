import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { ForbiddenError, UnauthorizedError } from '../errors.ts';

/**
 * Identity (DESIGN.md §5). A token is an opaque random string; only its SHA-256 is stored, with
 * the project, user, roles and expiry it stands for.
 */
export const ROLES = ['admin', 'member', 'reader', 'agent'] as const;
export type Role = (typeof ROLES)[number];

export interface Principal {
  token_id: string;
  project_id: string;
  user_id: string;
  roles: Role[];
}

export interface TokenRecord extends Principal {
  token_hash: string;
  created_at: string;
  /** ISO timestamp, or null for a token that does not expire. */
  expires_at: string | null;
  description?: string;
  /**
   * Keystone tokens (keystone.ts): how it was obtained (`password`, `application_credential`,
   * `token`), the user's name, and the application credential behind it (deleting that
   * credential revokes the token). Absent on the tokens `token create` makes.
   */
  methods?: string[];
  user_name?: string;
  app_cred?: { id: string; name: string; unrestricted: boolean };
}

/** `slp_` + 43 base64url chars (32 random bytes): recognisable in leak scanners, URL-safe. */
export function newTokenSecret(): string {
  return `slp_${randomBytes(32).toString('base64url')}`;
}

export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/**
 * The public id of a token: a prefix of its hash. It identifies the token in lists and logs and
 * for revocation, and reveals nothing that helps to forge it.
 */
export function tokenIdOf(hash: string): string {
  return hash.slice(0, 16);
}

/** Constant-time comparison of two hex digests (used for node keys as well). */
export function sameDigest(a: string, b: string): boolean {
  const x = Buffer.from(a, 'hex');
  const y = Buffer.from(b, 'hex');
  return x.length === y.length && x.length > 0 && timingSafeEqual(x, y);
}

export function isExpired(rec: Pick<TokenRecord, 'expires_at'>, now: Date): boolean {
  return rec.expires_at !== null && Date.parse(rec.expires_at) <= now.getTime();
}

export const isAdmin = (p: Principal): boolean => p.roles.includes('admin');

export function requireAuth(p: Principal | undefined): Principal {
  if (!p) throw new UnauthorizedError('Authentication required: send a valid X-Auth-Token header');
  return p;
}

export function requireAdmin(p: Principal | undefined): Principal {
  const who = requireAuth(p);
  if (!isAdmin(who)) throw new ForbiddenError('This operation is restricted to administrators', 'FORBIDDEN');
  return who;
}

/** Readers and members may act only inside their own project; admins everywhere. */
export function canSeeProject(p: Principal, projectId: string): boolean {
  return isAdmin(p) || p.project_id === projectId;
}

/** Members and admins may change things; readers only read; agents only use the agent API. */
export function requireWriter(p: Principal | undefined): Principal {
  const who = requireAuth(p);
  if (!who.roles.some((r) => r === 'admin' || r === 'member')) {
    throw new ForbiddenError('This token may not make changes (role reader)');
  }
  return who;
}

/**
 * Token → principal and its expiry, or undefined for unknown and expired tokens: what every
 * surface does with a request's credentials (layers/http/credentials.ts, behind its cache).
 */
export async function resolveToken(
  deps: { tokens: { get(hash: string): Promise<TokenRecord | undefined> }; clock: { now(): Date } },
  token: string,
): Promise<{ principal: Principal; expires_at: string | null } | undefined> {
  if (token.length < 8 || token.length > 512) return undefined;
  const rec = await deps.tokens.get(hashToken(token));
  if (!rec || isExpired(rec, deps.clock.now())) return undefined;
  return { principal: { token_id: rec.token_id, project_id: rec.project_id, user_id: rec.user_id, roles: rec.roles }, expires_at: rec.expires_at };
}
