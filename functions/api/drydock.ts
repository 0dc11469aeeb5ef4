import { getDeps } from '#aws/roots/drydock.ts';
import {
  addDesignPart,
  createDesign,
  createTask,
  extendedHealth,
  listDesignParts,
  listDesignPartsOfKind,
  listDesigns,
  listDrydockNodes,
  listTasks,
  nodeBuildData,
  nodeFilter,
  purgeTasks,
  showDesign,
  showDesignPart,
  showTask,
  taskBuildData,
  validateDesignRef,
} from '#core/drydock/tasks/service.ts';
import { pageLinks } from '#core/util/list-window.ts';
import { created, noContent, ok, raw, surface } from '#http/surface.ts';
import { drydockNode } from './views/drydock.ts';

/**
 * Drydock `/api/v1.0` (upstream-apis.md §1.1, client-contracts.md §4): tasks, build data, node
 * filters, design validation and stored designs. Errors are `{"type": "error", "message", "retry"}`;
 * task and design creation answer 201 (tasks with `Location`). Boot actions are their own
 * surface (`bootactions.ts`): nodes authenticate there with their key, not a token.
 */
export const handler = surface(
  {
    style: 'drydock',
    jsonSuffix: false,
    trailingSlash: true,
    anonymous: ['GET /versions', 'GET /api/v1.0/health'],
    rawBody: ['POST /api/v1.0/designs/{design_id}/parts'],
  },
  {
    'GET /versions': async () => ok({ 'v1.0': { path: '/api/v1.0', status: 'stable' } }),
    'GET /api/v1.0/health': async () => noContent(),
    'GET /api/v1.0/health/extended': async ({ deps, auth }) => ok(await extendedHealth(deps, auth)),

    // Issue 16: a window of the list, the way on in a `Link` header (the body stays upstream's array).
    'GET /api/v1.0/tasks': async ({ deps, auth, query }) => {
      const page = await listTasks(deps, auth, query);
      return ok(page.items, pageLinks('/api/v1.0/tasks', page));
    },
    'POST /api/v1.0/tasks': async ({ deps, auth, body }) => {
      const task = await createTask(deps, auth, body);
      return created(task, { Location: `/api/v1.0/tasks/${task.task_id}` });
    },
    'DELETE /api/v1.0/tasks': async ({ deps, auth, query }) => {
      await purgeTasks(deps, auth, query);
      return raw('Tables purged successfully.', 'text/plain; charset=utf-8');
    },
    'GET /api/v1.0/tasks/{task_id}': async ({ deps, auth, path, query }) => ok(await showTask(deps, auth, path.task_id!, query)),
    'GET /api/v1.0/tasks/{task_id}/builddata': async ({ deps, auth, path }) => ok(await taskBuildData(deps, auth, path.task_id!)),

    'GET /api/v1.0/nodes': async ({ deps, auth }) => ok((await listDrydockNodes(deps, auth)).map(drydockNode)),
    'GET /api/v1.0/nodes/{hostname}/builddata': async ({ deps, auth, path, query }) => ok(await nodeBuildData(deps, auth, path.hostname!, query)),
    'POST /api/v1.0/nodefilter': async ({ deps, auth, body }) => ok(await nodeFilter(deps, auth, body)),
    'POST /api/v1.0/validatedesign': async ({ deps, auth, body }) => {
      const { code, body: status } = await validateDesignRef(deps, auth, body);
      return { statusCode: code, body: status };
    },

    'GET /api/v1.0/designs': async ({ deps, auth, query }) => {
      const page = await listDesigns(deps, auth, query);
      return ok(page.items, pageLinks('/api/v1.0/designs', page));
    },
    'POST /api/v1.0/designs': async ({ deps, auth, body }) => {
      const d = await createDesign(deps, auth, body);
      return created(d, { Location: `/api/v1.0/designs/${d.design_id}` });
    },
    'GET /api/v1.0/designs/{design_id}': async ({ deps, auth, path, query }) => ok(await showDesign(deps, auth, path.design_id!, query)),
    'POST /api/v1.0/designs/{design_id}/parts': async ({ deps, auth, path, body, query }) => created(await addDesignPart(deps, auth, path.design_id!, body, query)),
    'GET /api/v1.0/designs/{design_id}/parts': async ({ deps, auth, path }) => ok(await listDesignParts(deps, auth, path.design_id!)),
    'GET /api/v1.0/designs/{design_id}/parts/{kind}': async ({ deps, auth, path, query }) => ok(await listDesignPartsOfKind(deps, auth, path.design_id!, path.kind!, query)),
    'GET /api/v1.0/designs/{design_id}/parts/{kind}/{name}': async ({ deps, auth, path, query }) =>
      ok(await showDesignPart(deps, auth, path.design_id!, path.kind!, path.name!, query)),
  },
  getDeps,
);
