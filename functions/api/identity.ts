import { getDeps, keystoneSettings } from '#aws/roots/identity.ts';
import { ValidationError } from '#core/errors.ts';
import { AppCredentialCreate, type CallerCredential, createAppCredential, deleteAppCredential, getAppCredential, listAppCredentials } from '#core/identity/app-credentials.ts';
import { AuthRequest, revokeSubject, signIn, validateToken } from '#core/identity/keystone.ts';
import { createUser, deleteUser, getUser, listUsers, UserCreate } from '#core/identity/users.ts';
import { hashToken, requireAuth } from '#core/identity/identity.ts';
import { credentialOf } from '#http/credentials.ts';
import { created, noContent, ok, type Request, surface } from '#http/surface.ts';
import { tokenCache } from '#http/token-cache.ts';
import { parseWith } from '#http/validate.ts';
import { appCredentialView, baseUrl, tokenView, userView, versionView } from './views/identity.ts';

/**
 * Keystone v3, the part OpenStack clients use to sign in (issue 15): version discovery, tokens
 * (password, application credential, rescope; validate, revoke), users, application credentials.
 * Errors in Keystone's `{"error": {"code", "title", "message"}}`. Sign-in and discovery need no
 * token; everything else takes `X-Auth-Token` (any Slipway token, a Keystone one included).
 */
function subjectOf(req: Request): string {
  const subject = req.headers['x-subject-token']?.trim();
  if (!subject) throw new ValidationError('X-Subject-Token header is required.');
  return subject;
}

/** The application credential the calling token came from (it limits what the token may do). */
async function callerCredential(req: Request): Promise<CallerCredential> {
  const token = credentialOf(req.headers);
  return token ? (await req.deps.tokens.get(hashToken(token)))?.app_cred : undefined;
}

/** `GET`/`HEAD /v3/auth/tokens`: the subject token's body (HEAD's is dropped on the way out). */
async function showToken(req: Request) {
  const subject = subjectOf(req);
  const rec = await validateToken(req.deps, requireAuth(req.auth), subject);
  return ok(tokenView(rec, { base: baseUrl(req), region: keystoneSettings.region, catalog: withCatalog(req) }), { 'X-Subject-Token': subject });
}

/** Keystone's `?nocatalog` (present, any value) leaves the catalog out. */
const withCatalog = (req: Request) => !('nocatalog' in req.query);

export const handler = surface(
  {
    style: 'keystone',
    jsonSuffix: false,
    anonymous: ['GET /v3', 'POST /v3/auth/tokens'],
    // Readers may make application credentials and revoke their own tokens (Keystone lets any
    // user); the use-cases decide the rest. Agent tokens have no business here.
    roles: ['admin', 'member', 'reader'],
  },
  {
    'GET /v3': async (req) => ok({ version: versionView(baseUrl(req)) }),

    'POST /v3/auth/tokens': async (req) => {
      const { deps } = req;
      const { secret, record } = await signIn(deps, keystoneSettings, parseWith(AuthRequest, req.body));
      const body = tokenView(record, { base: baseUrl(req), region: keystoneSettings.region, catalog: withCatalog(req) });
      return { ...created(body, { 'X-Subject-Token': secret }), secret: true };
    },
    'GET /v3/auth/tokens': showToken,
    'HEAD /v3/auth/tokens': showToken,
    'DELETE /v3/auth/tokens': async (req) => {
      await revokeSubject(req.deps, requireAuth(req.auth), subjectOf(req));
      tokenCache.clear();
      return noContent();
    },

    'GET /v3/users': async (req) => {
      const base = baseUrl(req);
      const users = await listUsers(req.deps, req.auth, { name: req.query.name });
      return ok({ users: users.map((u) => userView(u, base)), links: { self: `${base}/v3/users`, previous: null, next: null } });
    },
    'POST /v3/users': async (req) => created({ user: userView(await createUser(req.deps, req.auth, parseWith(UserCreate, req.body)), baseUrl(req)) }),
    'GET /v3/users/{user_id}': async (req) => ok({ user: userView(await getUser(req.deps, req.auth, req.path.user_id!), baseUrl(req)) }),
    'DELETE /v3/users/{user_id}': async (req) => {
      await deleteUser(req.deps, req.auth, req.path.user_id!);
      tokenCache.clear();
      return noContent();
    },

    'GET /v3/users/{user_id}/application_credentials': async (req) => {
      const base = baseUrl(req);
      const creds = await listAppCredentials(req.deps, req.auth, req.path.user_id!, req.query.name);
      return ok({
        application_credentials: creds.map((c) => appCredentialView(c, base)),
        links: { self: `${base}/v3/users/${req.path.user_id}/application_credentials`, previous: null, next: null },
      });
    },
    'POST /v3/users/{user_id}/application_credentials': async (req) => {
      const input = parseWith(AppCredentialCreate, req.body);
      const { record, secret } = await createAppCredential(req.deps, req.auth, req.path.user_id!, input, await callerCredential(req));
      // The secret is shown once; an Idempotency-Key replay keeps it sealed (`secret`).
      return { ...created({ application_credential: appCredentialView(record, baseUrl(req), secret) }), secret: true };
    },
    'GET /v3/users/{user_id}/application_credentials/{application_credential_id}': async (req) =>
      ok({ application_credential: appCredentialView(await getAppCredential(req.deps, req.auth, req.path.user_id!, req.path.application_credential_id!), baseUrl(req)) }),
    'DELETE /v3/users/{user_id}/application_credentials/{application_credential_id}': async (req) => {
      await deleteAppCredential(req.deps, req.auth, req.path.user_id!, req.path.application_credential_id!, await callerCredential(req));
      tokenCache.clear();
      return noContent();
    },
  },
  getDeps,
);
