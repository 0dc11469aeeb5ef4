import { getDeps } from '#aws/roots/bootactions.ts';
import { bootActionAdminView, fetchBootdata, reportBootAction } from '#core/drydock/bootactions/service.ts';
import { ok, raw, redirect, type Request, type RouteHandler, surface } from '#http/surface.ts';

/**
 * Drydock's boot-action routes (upstream-apis.md §1.6, client-contracts.md §4): what deploying
 * nodes call with their `X-Bootaction-Key` (no token), in upstream's code shapes and the seed's
 * (`/bootdata/…`, `/bootaction/…`), with or without a trailing slash (the Go `baclient` adds
 * one). Errors are falcon's `{title, description}`, as upstream's boot-action resources raise.
 * Bootdata is a 302 to a presigned S3 URL, or the tarball itself with `?inline=true`.
 */
const NO_STORE = { 'Cache-Control': 'no-store' };

const nodeKey = (req: Request) => req.headers['x-bootaction-key'];

function bootdata(kind: 'units' | 'files'): RouteHandler {
  return async (req) => {
    const inline = /^(true|1|yes)$/i.test(req.query.inline ?? '');
    const data = await fetchBootdata(req.deps, req.path.hostname!, kind, nodeKey(req), inline);
    if ('location' in data) return redirect(data.location, NO_STORE);
    return raw(data.inline, 'application/gzip', { ...NO_STORE, 'Content-Disposition': `attachment; filename="${data.filename}"` });
  };
}

const report: RouteHandler = async (req) =>
  ok(await reportBootAction(req.deps, req.path.action_id!, nodeKey(req), { text: req.body as string | undefined, contentType: req.headers['content-type'] }));

const NODE_ROUTES = {
  'GET /api/v1.0/bootactions/nodes/{hostname}/units': bootdata('units'),
  'GET /api/v1.0/bootactions/nodes/{hostname}/files': bootdata('files'),
  'GET /api/v1.0/bootdata/{hostname}/units': bootdata('units'),
  'GET /api/v1.0/bootdata/{hostname}/files': bootdata('files'),
  'POST /api/v1.0/bootactions/{action_id}': report,
  'POST /api/v1.0/bootaction/{action_id}': report,
};

export const handler = surface(
  {
    style: 'falcon',
    jsonSuffix: false,
    trailingSlash: true,
    anonymous: Object.keys(NODE_ROUTES),
    // The report's body is checked by the use-case, after the action and the key (400 `Error processing body.`).
    rawBody: ['POST /api/v1.0/bootactions/{action_id}', 'POST /api/v1.0/bootaction/{action_id}'],
  },
  {
    ...NODE_ROUTES,
    'GET /api/v1.0/bootactions/nodes/{hostname}': async ({ deps, auth, path }) => ok(await bootActionAdminView(deps, auth, path.hostname!)),
  },
  getDeps,
);
