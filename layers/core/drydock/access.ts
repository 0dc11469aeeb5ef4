import { ForbiddenError } from '../errors.ts';
import { isAdmin, type Principal, requireAuth } from '../identity/identity.ts';

/**
 * Who may do what in Drydock (docs/security.md). Upstream's RBAC defaults every rule to
 * `role:admin`; Slipway opens one flow to projects: a project's members run `deploy_nodes` and
 * `destroy_nodes` on the nodes their active leases hold, with designs their project stored.
 *
 * - Administrators are the **site**: every route, every action, every task and design.
 * - A project's members and readers see the project's own tasks and stored designs (anything
 *   else is 404, as a missing one: no existence leak). Members may also create the project's
 *   designs and its deploy/destroy tasks; readers only read (403 for every write).
 * - Agent tokens are refused (403): they speak the agent API only.
 *
 * What a task or design belongs to is its `project_id`: the creator's project, or null for the
 * site (created by an administrator; records older than projects in Drydock have none).
 */
export type DrydockScope = { kind: 'site'; who: Principal } | { kind: 'project'; who: Principal; project: string; writer: boolean };

/** The actions a project's member may create tasks for; every other stays admin-only. */
export const PROJECT_ACTIONS: readonly string[] = ['deploy_nodes', 'destroy_nodes'];

/** The caller's scope: 401 without a token, 403 for a token that is neither admin, member nor reader. */
export function drydockScope(auth: Principal | undefined): DrydockScope {
  const who = requireAuth(auth);
  if (isAdmin(who)) return { kind: 'site', who };
  const member = who.roles.includes('member');
  if (!member && !who.roles.includes('reader')) throw new ForbiddenError(`This token may not use Drydock (role ${who.roles.join(', ') || 'none'})`);
  return { kind: 'project', who, project: who.project_id, writer: member };
}

/** As `drydockScope`, for a change: a reader gets 403. */
export function drydockWriter(auth: Principal | undefined): DrydockScope {
  const scope = drydockScope(auth);
  if (scope.kind === 'project' && !scope.writer) throw new ForbiddenError('This token may not make changes (role reader)');
  return scope;
}

/** The owner of what `scope` creates: null for the site. */
export const ownerOf = (scope: DrydockScope): string | null => (scope.kind === 'site' ? null : scope.project);

/** Whether `scope` sees an object owned by `owner` (null or absent: the site's). */
export const sees = (scope: DrydockScope, owner: string | null | undefined): boolean => scope.kind === 'site' || (owner ?? null) === scope.project;
