import { randomBytes, randomUUID } from 'node:crypto';
import * as z from '../util/zod.ts';
import { ForbiddenError, NotFoundError, ValidationError } from '../errors.ts';
import { idProblem } from '../util/bounds.ts';
import type { Ports } from '../ports.ts';
import { isAdmin, type Principal, requireAuth, ROLES, type Role } from './identity.ts';
import { revokeTokensOf, secretString } from './keystone.ts';
import type { AppCredentialRecord } from './model.ts';
import { hashSecret } from './passwords.ts';

/**
 * Application credentials (Keystone v3, issue 15): a named secret a user makes for scripts and
 * `clouds.yaml`, bound to the project and (a subset of) the roles of the token that made it.
 * The secret is shown once; only its scrypt hash is kept. Keystone's rules: only the user itself
 * makes them; a token obtained from an application credential may not manage them unless that
 * credential is `unrestricted`; deleting one revokes the tokens obtained from it.
 */
const credName = z.string().check(
  z.superRefine((v, ctx) => {
    const p = v.length === 0 ? 'must not be empty' : idProblem(v, 255);
    if (p) ctx.addIssue({ code: 'custom', message: p });
  }),
);
const RoleRef = z.object({ id: z.optional(z.enum(ROLES)), name: z.optional(z.enum(ROLES)) });

export const AppCredentialCreate = z.object({
  application_credential: z.object({
    name: credName,
    description: z.optional(z.nullable(z.string().check(z.maxLength(255)))),
    secret: z.optional(z.nullable(secretString)),
    expires_at: z.optional(z.nullable(z.string().check(z.maxLength(64)))),
    roles: z.optional(z.array(RoleRef).check(z.maxLength(ROLES.length))),
    unrestricted: z.optional(z.boolean()),
    access_rules: z.optional(z.array(z.unknown()).check(z.maxLength(0, 'access rules are not supported'))),
  }),
});
export type AppCredentialCreate = z.infer<typeof AppCredentialCreate>;

/**
 * The application credential the calling token came from, if any (its record's `app_cred`): such
 * a token manages credentials only when that one is `unrestricted`.
 */
export type CallerCredential = { unrestricted: boolean } | undefined;

/** The caller acting on its own credentials, with a token allowed to manage them. */
function requireSelf(auth: Principal | undefined, userId: string, manage: boolean, via?: CallerCredential): Principal {
  const who = requireAuth(auth);
  if (who.user_id !== userId && !(isAdmin(who) && !manage)) {
    throw new ForbiddenError('You are not authorized to perform the requested action: only the user itself manages its application credentials.');
  }
  if (manage && via && !via.unrestricted) {
    throw new ForbiddenError('Using method application_credential is not allowed for managing additional application credentials.');
  }
  return who;
}

/** Keystone keeps a naive ISO time; accept one with or without an offset, in the future. */
function parseExpiry(raw: string | null | undefined, now: Date): string | null {
  if (raw === undefined || raw === null) return null;
  const ms = Date.parse(/[zZ]|[+-]\d\d:?\d\d$/.test(raw) ? raw : `${raw}Z`);
  if (!Number.isFinite(ms) || !/^\d{4}-\d{2}-\d{2}T/.test(raw)) throw new ValidationError(`expires_at ${JSON.stringify(raw.slice(0, 64))} is not an ISO 8601 time`);
  if (ms <= now.getTime()) throw new ValidationError('expires_at must be in the future');
  return new Date(ms).toISOString();
}

export async function createAppCredential(
  deps: Ports,
  auth: Principal | undefined,
  userId: string,
  input: AppCredentialCreate,
  via: CallerCredential,
): Promise<{ record: AppCredentialRecord; secret: string }> {
  const who = requireSelf(auth, userId, true, via);
  const c = input.application_credential;
  const asked = (c.roles ?? []).map((r) => r.name ?? r.id);
  if (asked.some((r) => r === undefined)) throw new ValidationError('each role needs an id or a name');
  const roles = [...new Set(asked.length ? (asked as Role[]) : who.roles)];
  const missing = roles.filter((r) => !who.roles.includes(r));
  if (missing.length) throw new ForbiddenError(`The token has no role ${missing.join(', ')} to delegate.`);
  const secret = c.secret ?? randomBytes(48).toString('base64url');
  const record: AppCredentialRecord = {
    id: randomUUID().replace(/-/g, ''),
    name: c.name,
    user_id: userId,
    project_id: who.project_id,
    roles,
    secret_hash: await hashSecret(secret),
    unrestricted: c.unrestricted === true,
    ...(c.description ? { description: c.description } : {}),
    expires_at: parseExpiry(c.expires_at, deps.clock.now()),
    created_at: deps.clock.now().toISOString(),
  };
  await deps.users.createAppCredential(record);
  return { record, secret };
}

export async function listAppCredentials(deps: Ports, auth: Principal | undefined, userId: string, name?: string): Promise<AppCredentialRecord[]> {
  requireSelf(auth, userId, false);
  const all = await deps.users.listAppCredentials(userId);
  return (name === undefined ? all : all.filter((c) => c.name === name)).sort((a, b) => a.name.localeCompare(b.name));
}

export async function getAppCredential(deps: Ports, auth: Principal | undefined, userId: string, id: string): Promise<AppCredentialRecord> {
  requireSelf(auth, userId, false);
  const cred = await deps.users.getAppCredential(id);
  if (!cred || cred.user_id !== userId) throw new NotFoundError(`Could not find Application Credential: ${id}.`);
  return cred;
}

export async function deleteAppCredential(
  deps: Ports,
  auth: Principal | undefined,
  userId: string,
  id: string,
  via: CallerCredential,
): Promise<void> {
  requireSelf(auth, userId, true, via);
  const cred = await deps.users.getAppCredential(id);
  if (!cred || cred.user_id !== userId || !(await deps.users.deleteAppCredential(cred))) {
    throw new NotFoundError(`Could not find Application Credential: ${id}.`);
  }
  await revokeTokensOf(deps, { app_cred_id: id });
}
