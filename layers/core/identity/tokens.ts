import * as z from '../util/zod.ts';
import { NotFoundError, ValidationError } from '../errors.ts';
import type { Ports } from '../ports.ts';
import {
  hashToken,
  isExpired,
  newTokenSecret,
  type Principal,
  requireAdmin,
  ROLES,
  type TokenRecord,
  tokenIdOf,
} from './identity.ts';

/** Token management use-cases (admin only): create, list, revoke, and resolution for the surfaces. */
export const TokenCreate = z
  .strictObject({
    project_id: z.string().check(z.minLength(1), z.maxLength(255), z.regex(/^[A-Za-z0-9_.:@-]+$/, 'letters, digits and _ . : @ - only')),
    user_id: z.optional(z.string().check(z.minLength(1), z.maxLength(255))),
    roles: z.optional(z.array(z.enum(ROLES)).check(z.minLength(1))),
    role: z.optional(z.enum(ROLES)),
    expires_at: z.optional(z.nullable(z.iso.datetime({ offset: true }))),
    description: z.optional(z.string().check(z.maxLength(255))),
  }).check(z.refine((v) => v.roles !== undefined || v.role !== undefined, { message: 'role or roles is required' }));
export type TokenCreate = z.infer<typeof TokenCreate>;

export interface TokenView {
  id: string;
  project_id: string;
  user_id: string;
  roles: string[];
  created_at: string;
  expires_at: string | null;
  description?: string;
}

export const tokenView = (t: TokenRecord): TokenView => ({
  id: t.token_id,
  project_id: t.project_id,
  user_id: t.user_id,
  roles: t.roles,
  created_at: t.created_at,
  expires_at: t.expires_at,
  ...(t.description ? { description: t.description } : {}),
});

/** Creates a token; the secret is returned once and never stored. */
export async function issueToken(deps: Ports, input: TokenCreate): Promise<{ token: string; record: TokenRecord }> {
  const now = deps.clock.now();
  if (input.expires_at && Date.parse(input.expires_at) <= now.getTime()) {
    throw new ValidationError('expires_at must be in the future');
  }
  const roles = [...new Set(input.roles ?? [input.role!])];
  const secret = newTokenSecret();
  const hash = hashToken(secret);
  const record: TokenRecord = {
    token_hash: hash,
    token_id: tokenIdOf(hash),
    project_id: input.project_id,
    user_id: input.user_id ?? `${input.project_id}-${roles[0]}`,
    roles,
    created_at: now.toISOString(),
    expires_at: input.expires_at ? new Date(input.expires_at).toISOString() : null,
    ...(input.description ? { description: input.description } : {}),
  };
  await deps.tokens.put(record);
  return { token: secret, record };
}

const BOOTSTRAP = 'bootstrap admin token';

/**
 * Installs a known secret (the bootstrap admin token of the local stack) if absent, and revokes
 * every earlier bootstrap token: replacing SLIPWAY_ADMIN_TOKEN retires the one it replaces.
 */
export async function ensureToken(deps: Ports, secret: string, p: Omit<Principal, 'token_id'>): Promise<void> {
  const hash = hashToken(secret);
  if (!(await deps.tokens.get(hash))) {
    await deps.tokens
      .put({ ...p, token_hash: hash, token_id: tokenIdOf(hash), created_at: deps.clock.now().toISOString(), expires_at: null, description: BOOTSTRAP })
      .catch(async (err) => {
        if (!(await deps.tokens.get(hash))) throw err; // lost a race with another starter: fine
      });
  }
  for (const old of await deps.tokens.list()) {
    if (old.description === BOOTSTRAP && old.token_hash !== hash) await deps.tokens.revoke(old.token_id);
  }
}

export async function createToken(deps: Ports, auth: Principal | undefined, input: TokenCreate) {
  requireAdmin(auth);
  return issueToken(deps, input);
}

export async function listTokens(deps: Ports, auth: Principal | undefined): Promise<TokenRecord[]> {
  requireAdmin(auth);
  return deps.tokens.list();
}

export async function revokeToken(deps: Ports, auth: Principal | undefined, tokenId: string): Promise<void> {
  requireAdmin(auth);
  if (!(await deps.tokens.revoke(tokenId))) throw new NotFoundError(`Token ${tokenId} not found`);
}

// Resolution lives beside the token model, free of this module's schemas: every surface resolves
// tokens (layers/http/credentials.ts), and /healthz need not carry zod for it.
export { resolveToken } from './identity.ts';
