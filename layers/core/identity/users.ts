import { randomUUID } from 'node:crypto';
import * as z from '../util/zod.ts';
import { ForbiddenError, NotFoundError } from '../errors.ts';
import { nameProblem } from '../util/bounds.ts';
import type { Ports } from '../ports.ts';
import { isAdmin, type Principal, requireAdmin, requireAuth, type Role, ROLES } from './identity.ts';
import { revokeTokensOf, secretString } from './keystone.ts';
import { DEFAULT_DOMAIN, type UserRecord } from './model.ts';
import { hashSecret } from './passwords.ts';

/**
 * User management (issue 15), Keystone's `/v3/users` shapes, administrators only (a user may read
 * itself). Users are also made by `npm run slipway -- user create`, which calls this API.
 */
const userName = z.string().check(
  z.superRefine((v, ctx) => {
    const p = nameProblem(v, 255) ?? (v.includes(':') ? "must not contain ':' (Basic credentials split on it)" : undefined);
    if (p) ctx.addIssue({ code: 'custom', message: p });
  }),
);
const projectId = z.string().check(z.minLength(1), z.maxLength(255), z.regex(/^[A-Za-z0-9_.:@-]+$/, 'letters, digits and _ . : @ - only'));

/**
 * `POST /v3/users`: Keystone's body. `default_project_id` is required (every Slipway identity acts
 * in one project); `roles` is Slipway's (Keystone assigns roles with separate calls), default
 * `["member"]`. `enabled: false` is refused rather than stored: there is no disabled state.
 */
export const UserCreate = z.object({
  user: z.object({
    name: userName,
    password: secretString,
    default_project_id: projectId,
    domain_id: z.optional(z.string().check(z.refine((v) => v.toLowerCase() === DEFAULT_DOMAIN.id, { message: "the only domain is 'default'" }))),
    enabled: z.optional(z.literal(true)),
    description: z.optional(z.string().check(z.maxLength(255))),
    roles: z.optional(z.array(z.enum(ROLES)).check(z.minLength(1), z.maxLength(ROLES.length))),
  }),
});
export type UserCreate = z.infer<typeof UserCreate>;

export async function createUser(deps: Ports, auth: Principal | undefined, input: UserCreate): Promise<UserRecord> {
  requireAdmin(auth);
  const u = input.user;
  const user: UserRecord = {
    id: randomUUID().replace(/-/g, ''),
    name: u.name,
    project_id: u.default_project_id,
    roles: [...new Set<Role>(u.roles ?? ['member'])],
    password_hash: await hashSecret(u.password),
    ...(u.description ? { description: u.description } : {}),
    created_at: deps.clock.now().toISOString(),
  };
  await deps.users.create(user);
  return user;
}

export async function listUsers(deps: Ports, auth: Principal | undefined, query: { name?: string }): Promise<UserRecord[]> {
  requireAdmin(auth);
  if (query.name !== undefined) {
    const u = await deps.users.getByName(query.name);
    return u ? [u] : [];
  }
  return (await deps.users.list()).sort((a, b) => a.name.localeCompare(b.name));
}

/** Admins see every user; anyone else only itself (404 otherwise, as Keystone hides them). */
export async function getUser(deps: Ports, auth: Principal | undefined, id: string): Promise<UserRecord> {
  const who = requireAuth(auth);
  const user = isAdmin(who) || who.user_id === id ? await deps.users.get(id) : undefined;
  if (!user) throw new NotFoundError(`Could not find user: ${id}.`);
  return user;
}

/** Deletes a user, its application credentials and every token it holds. */
export async function deleteUser(deps: Ports, auth: Principal | undefined, id: string): Promise<void> {
  const who = requireAdmin(auth);
  const user = await deps.users.get(id);
  if (!user) throw new NotFoundError(`Could not find user: ${id}.`);
  if (who.user_id === id) throw new ForbiddenError('You cannot delete the user you are signed in as.');
  // The user first: from then on no sign-in succeeds, so the sweeps below catch every token.
  if (!(await deps.users.delete(user))) throw new NotFoundError(`Could not find user: ${id}.`);
  for (const cred of await deps.users.listAppCredentials(id)) await deps.users.deleteAppCredential(cred);
  await revokeTokensOf(deps, { user_id: id });
}
