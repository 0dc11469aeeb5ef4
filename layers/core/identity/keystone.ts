import * as z from '../util/zod.ts';
import { ForbiddenError, NotFoundError, UnauthorizedError } from '../errors.ts';
import { idProblem } from '../util/bounds.ts';
import type { Ports } from '../ports.ts';
import { hashToken, isExpired, newTokenSecret, type Principal, type TokenRecord, tokenIdOf } from './identity.ts';
import { DEFAULT_DOMAIN, type UserRecord } from './model.ts';
import { MAX_SECRET_BYTES, verifySecret } from './passwords.ts';

/**
 * Keystone v3 sign-in (issue 15): `POST /v3/auth/tokens` with the `password`,
 * `application_credential` and `token` methods. A Keystone token IS a Slipway token: the same
 * random secret, stored by its hash in the same tokens store, so every surface accepts it.
 *
 * Every failure to authenticate is the same 401 with Keystone's own message, whatever failed
 * (unknown user, wrong password, wrong project): nothing tells an attacker which names exist.
 * An unknown user is checked against a dummy hash (passwords.ts), so it also takes as long.
 */
export const SIGN_IN_FAILED = 'The request you have made requires authentication.';

/**
 * Keystone settings, read by the identity function's root (layers/aws/roots/identity.ts); kept
 * out of the shared `Config`, which every bundle carries.
 */
export interface KeystoneSettings {
  /**
   * Lifetime in seconds of a token from `POST /v3/auth/tokens` (`SLIPWAY_KEYSTONE_EXPIRATION`,
   * Keystone's `[token] expiration`; default 3600, Keystone's own: OpenStack clients sign in again
   * by themselves when it ends). 300 (no token ends mid-command) to 604800 (a week). Not `…TOKEN…`:
   * deployment settings with that word are refused as secrets (slipway-function.ts).
   */
  tokenSeconds: number;
  /** The region every catalog endpoint names (`SLIPWAY_KEYSTONE_REGION`, default `RegionOne`). */
  region: string;
}

export function keystoneSettingsFromEnv(env: Record<string, string | undefined>): KeystoneSettings {
  const raw = env.SLIPWAY_KEYSTONE_EXPIRATION?.trim() || '3600';
  const tokenSeconds = Number(raw);
  if (!Number.isInteger(tokenSeconds) || tokenSeconds < 300 || tokenSeconds > 604_800) {
    throw new Error(`SLIPWAY_KEYSTONE_EXPIRATION must be an integer from 300 to 604800, got ${JSON.stringify(raw)}`);
  }
  const region = env.SLIPWAY_KEYSTONE_REGION?.trim() || 'RegionOne';
  if (idProblem(region, 64)) throw new Error('SLIPWAY_KEYSTONE_REGION must be at most 64 bytes without control characters');
  return { tokenSeconds, region };
}
const denied = () => new UnauthorizedError(SIGN_IN_FAILED);

/** Names and ids: 1..255 bytes, no control characters (Keystone's columns are 255 wide). */
const ident = z.string().check(
  z.superRefine((v, ctx) => {
    const p = v.length === 0 ? 'must not be empty' : idProblem(v, 255);
    if (p) ctx.addIssue({ code: 'custom', message: p });
  }),
);
/** Passwords and secrets: 1..4096 bytes (Keystone's `max_password_length`). */
export const secretString = z.string().check(
  z.superRefine((v, ctx) => {
    if (v.length === 0) ctx.addIssue({ code: 'custom', message: 'must not be empty' });
    else if (Buffer.byteLength(v, 'utf8') > MAX_SECRET_BYTES) ctx.addIssue({ code: 'custom', message: `is longer than ${MAX_SECRET_BYTES} bytes` });
  }),
);
const Domain = z.object({ id: z.optional(ident), name: z.optional(ident) });
const UserRef = z.object({ id: z.optional(ident), name: z.optional(ident), domain: z.optional(Domain) });

export const AuthRequest = z.object({
  auth: z.object({
    identity: z.object({
      methods: z.array(z.enum(['password', 'token', 'application_credential', 'totp', 'external', 'mapped', 'oauth1'])).check(z.minLength(1), z.maxLength(4)),
      password: z.optional(z.object({ user: z.object({ ...UserRef.shape, password: secretString }) })),
      token: z.optional(z.object({ id: z.string().check(z.minLength(1), z.maxLength(512)) })),
      application_credential: z.optional(
        z.object({ id: z.optional(ident), name: z.optional(ident), user: z.optional(UserRef), secret: secretString }),
      ),
    }),
    // A project (by id, or by name in a domain); a domain or system scope is refused (401).
    scope: z.optional(
      z.union([
        z.literal('unscoped'),
        z.object({
          project: z.optional(z.object({ id: z.optional(ident), name: z.optional(ident), domain: z.optional(Domain) })),
          domain: z.optional(z.unknown()),
          system: z.optional(z.unknown()),
          'OS-TRUST:trust': z.optional(z.unknown()),
        }),
      ]),
    ),
  }),
});
export type AuthRequest = z.infer<typeof AuthRequest>;

/** `Default` / `default` (or none): the one domain. Anything else names no user we have. */
function inDefaultDomain(d: z.infer<typeof Domain> | undefined): boolean {
  if (!d) return true;
  if (d.id !== undefined && d.id.toLowerCase() !== DEFAULT_DOMAIN.id) return false;
  if (d.name !== undefined && d.name.toLowerCase() !== DEFAULT_DOMAIN.name.toLowerCase()) return false;
  return true;
}

async function findUser(deps: Ports, ref: z.infer<typeof UserRef>): Promise<UserRecord | undefined> {
  if (!inDefaultDomain(ref.domain)) return undefined;
  if (ref.id !== undefined) {
    const u = await deps.users.get(ref.id);
    return u && (ref.name === undefined || ref.name === u.name) ? u : undefined;
  }
  if (ref.name !== undefined) return deps.users.getByName(ref.name);
  return undefined;
}

/** The project a request scopes to, checked against the one project the identity has; undefined: refused. */
function scopedProject(scope: AuthRequest['auth']['scope'], project: string): string | undefined {
  if (scope === undefined || scope === 'unscoped') return project; // Keystone: the user's default project
  if (scope.domain !== undefined || scope.system !== undefined || scope['OS-TRUST:trust'] !== undefined) return undefined;
  const p = scope.project;
  if (!p) return project;
  if (!inDefaultDomain(p.domain)) return undefined;
  if (p.id === undefined && p.name === undefined) return undefined;
  // A project's id and name are one string here.
  if ((p.id !== undefined && p.id !== project) || (p.name !== undefined && p.name !== project)) return undefined;
  return project;
}

/** A token just issued: the secret (the `X-Subject-Token`, shown once) and its record. */
export interface IssuedToken {
  secret: string;
  record: TokenRecord;
}

async function issue(deps: Ports, fields: Omit<TokenRecord, 'token_hash' | 'token_id' | 'created_at'>): Promise<IssuedToken> {
  const secret = newTokenSecret();
  const hash = hashToken(secret);
  const record: TokenRecord = { token_hash: hash, token_id: tokenIdOf(hash), created_at: deps.clock.now().toISOString(), ...fields };
  await deps.tokens.put(record);
  return { secret, record };
}

function expiry(deps: Ports, settings: KeystoneSettings, cap?: string | null): string {
  const ends = deps.clock.now().getTime() + settings.tokenSeconds * 1000;
  return new Date(cap ? Math.min(ends, Date.parse(cap)) : ends).toISOString();
}

/**
 * A user deleted while its sign-in was in flight must not keep the token it got: deletion
 * revokes the tokens it finds, then this re-read finds the user gone and revokes the new one.
 */
async function stillThere(deps: Ports, userId: string, issued: IssuedToken): Promise<IssuedToken> {
  if (await deps.users.get(userId)) return issued;
  await deps.tokens.revoke(issued.record.token_id);
  throw denied();
}

export async function signIn(deps: Ports, settings: KeystoneSettings, input: AuthRequest): Promise<IssuedToken> {
  const { identity, scope } = input.auth;
  // One method at a time (Keystone's multi-method requests are for MFA, which Slipway has not).
  if (identity.methods.length !== 1) throw denied();
  const method = identity.methods[0]!;
  if (method === 'password' && identity.password) return byPassword(deps, settings, identity.password.user, scope);
  if (method === 'application_credential' && identity.application_credential) return byAppCredential(deps, settings, identity.application_credential, scope);
  if (method === 'token' && identity.token) return byToken(deps, settings, identity.token.id, scope);
  throw denied();
}

async function byPassword(deps: Ports, settings: KeystoneSettings, ref: z.infer<typeof UserRef> & { password: string }, scope: AuthRequest['auth']['scope']): Promise<IssuedToken> {
  // An unknown user costs the same hash as a known one (verifySecret with no hash).
  const user = await findUser(deps, ref);
  const ok = await verifySecret(ref.password, user?.password_hash);
  if (!user || !ok) throw denied();
  const project = scopedProject(scope, user.project_id);
  if (!project) throw denied();
  const issued = await issue(deps, {
    project_id: project,
    user_id: user.id,
    user_name: user.name,
    roles: user.roles,
    expires_at: expiry(deps, settings),
    methods: ['password'],
    description: 'keystone password sign-in',
  });
  return stillThere(deps, user.id, issued);
}

async function byAppCredential(
  deps: Ports,
  settings: KeystoneSettings,
  ref: { id?: string; name?: string; user?: z.infer<typeof UserRef>; secret: string },
  scope: AuthRequest['auth']['scope'],
): Promise<IssuedToken> {
  let cred = ref.id !== undefined ? await deps.users.getAppCredential(ref.id) : undefined;
  if (ref.id === undefined && ref.name !== undefined && ref.user) {
    const owner = await findUser(deps, ref.user);
    cred = owner ? (await deps.users.listAppCredentials(owner.id)).find((c) => c.name === ref.name) : undefined;
  }
  const ok = await verifySecret(ref.secret, cred?.secret_hash);
  if (!cred || !ok || isExpired(cred, deps.clock.now())) throw denied();
  const user = await deps.users.get(cred.user_id);
  // The roles the user still has of those the credential was given.
  const roles = user ? cred.roles.filter((r) => user.roles.includes(r)) : [];
  if (!user || roles.length === 0 || user.project_id !== cred.project_id) throw denied();
  if (!scopedProject(scope, cred.project_id)) throw denied();
  const issued = await issue(deps, {
    project_id: cred.project_id,
    user_id: user.id,
    user_name: user.name,
    roles,
    expires_at: expiry(deps, settings, cred.expires_at),
    methods: ['application_credential'],
    app_cred: { id: cred.id, name: cred.name, unrestricted: cred.unrestricted },
    description: 'keystone application credential sign-in',
  });
  // A credential deleted meanwhile (with its tokens) must not leave this one behind.
  if (!(await deps.users.getAppCredential(cred.id))) {
    await deps.tokens.revoke(issued.record.token_id);
    throw denied();
  }
  return stillThere(deps, user.id, issued);
}

/**
 * Rescope: a new token for the same identity. Every identity here has one project, so the scope
 * can only name it; the new token ends no later than the old one (Keystone keeps the expiry).
 */
async function byToken(deps: Ports, settings: KeystoneSettings, secret: string, scope: AuthRequest['auth']['scope']): Promise<IssuedToken> {
  const rec = secret.length >= 8 ? await deps.tokens.get(hashToken(secret)) : undefined;
  if (!rec || isExpired(rec, deps.clock.now())) throw denied();
  if (rec.roles.length === 1 && rec.roles[0] === 'agent') throw denied();
  // Keystone: a token from an application credential cannot be turned into another token.
  if (rec.app_cred) throw new ForbiddenError('Application credential tokens cannot be rescoped.');
  const project = scopedProject(scope, rec.project_id);
  if (!project) throw denied();
  const methods = [...new Set(['token', ...(rec.methods ?? ['token'])])];
  const issued = await issue(deps, {
    project_id: project,
    user_id: rec.user_id,
    ...(rec.user_name ? { user_name: rec.user_name } : {}),
    roles: rec.roles,
    expires_at: expiry(deps, settings, rec.expires_at),
    methods,
    description: 'keystone token rescope',
  });
  return rec.user_name ? stillThere(deps, rec.user_id, issued) : issued;
}

/**
 * `GET`/`HEAD /v3/auth/tokens`: the record of the subject token. Anyone may validate their own
 * token; admins any token. An unknown, revoked or expired subject is 404 (Keystone's answer).
 */
export async function validateToken(deps: Ports, auth: Principal, subject: string): Promise<TokenRecord> {
  const rec = subject.length >= 8 && subject.length <= 512 ? await deps.tokens.get(hashToken(subject)) : undefined;
  if (!rec || isExpired(rec, deps.clock.now())) throw new NotFoundError('Could not find token.');
  if (!auth.roles.includes('admin') && rec.user_id !== auth.user_id) throw new NotFoundError('Could not find token.');
  return rec;
}

/** `DELETE /v3/auth/tokens`: revokes the subject token (one's own, or any as admin). */
export async function revokeSubject(deps: Ports, auth: Principal, subject: string): Promise<void> {
  const rec = await validateToken(deps, auth, subject);
  await deps.tokens.revoke(rec.token_id);
}

/** Revokes every token of a user, or of one application credential (their deletion). */
export async function revokeTokensOf(deps: Ports, match: { user_id?: string; app_cred_id?: string }): Promise<number> {
  let n = 0;
  for (const t of await deps.tokens.list()) {
    if ((match.user_id !== undefined && t.user_id === match.user_id) || (match.app_cred_id !== undefined && t.app_cred?.id === match.app_cred_id)) {
      if (await deps.tokens.revoke(t.token_id)) n++;
    }
  }
  return n;
}

