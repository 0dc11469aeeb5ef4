import { getDeps } from '#aws/deps.ts';
import { UnauthorizedError } from '#core/errors.ts';
import { createToken, listTokens, revokeToken, TokenCreate, tokenView } from '#core/identity/tokens.ts';
import { parseWith } from '#http/validate.ts';
import { accepted, noContent, ok, type Request, surface } from '#http/surface.ts';

/**
 * The native surface: every collection under `/v1.1/{project_id}/...` with the Sahara
 * conventions (DESIGN.md §4): GET 200, POST 202, DELETE 204, limit/marker/sort_by.
 */
function checkProject(req: Request): void {
  // Sahara's guard, applied to every /v1.1/{project_id} route (DESIGN.md §10).
  const project = req.path.project_id;
  if (req.auth && project !== undefined && project !== req.auth.project_id) {
    throw new UnauthorizedError('Token tenant != requested tenant');
  }
}

export const handler = surface(
  { style: 'sahara', jsonSuffix: true, before: checkProject },
  {
    'GET /v1.1/{project_id}/tokens': async ({ deps, auth }) => ok({ tokens: (await listTokens(deps, auth)).map(tokenView) }),
    'POST /v1.1/{project_id}/tokens': async ({ deps, auth, body }) => {
      const { token, record } = await createToken(deps, auth, parseWith(TokenCreate, body));
      return accepted({ token: { ...tokenView(record), token } });
    },
    'DELETE /v1.1/{project_id}/tokens/{token_id}': async ({ deps, auth, path }) => {
      await revokeToken(deps, auth, path.token_id!);
      return noContent();
    },
  },
  getDeps,
);
