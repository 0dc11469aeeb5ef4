import type { Ports } from '../../ports.ts';
import { applyNodeFilter, loadDesign, type ValidationMessage, validateDesign } from '../design/index.ts';
import { DesignRefError, fetchDesignTexts } from '../design-ref.ts';
import { now, saveDesignSnapshot, siteOfDesign, updateTask } from './common.ts';
import { addFailure, addSuccess, isNodeAction, message, newTaskRecord, type NodeAction, subtaskId, type TaskMessage } from './model.ts';

/**
 * Prepare, the first step of the Drydock task workflow (workflow.ts, DESIGN.md §7): read the
 * design behind the task's design_ref, snapshot it (its texts and the design parsed from them),
 * validate it, pick the nodes and make one subtask per node.
 *
 * It runs in a function of its own (`functions/workflows/drydock-prepare.ts`): the YAML parser
 * and the design's validation are needed here only, the boot-action template engine only in the
 * task function's node steps, and together they would put one bundle over the 300 KiB the
 * Drydock functions may weigh (issue 12). The later steps read the design from the snapshot.
 */

/** The internal action of a node's subtask (upstream's names; prepare_nodes splits into itself). */
export const SUBTASK_ACTIONS: Record<NodeAction, string> = {
  verify_nodes: 'interrogate_oob',
  prepare_nodes: 'prepare_nodes',
  deploy_nodes: 'deploy_node',
  destroy_nodes: 'destroy_node',
  relabel_nodes: 'relabel_node',
};

/** The task queue of a project's tasks (the `site` of their records; their nodes' jobs still go to each node's own site). */
export const projectQueue = (project: string) => `project/${project}`;

function validationMessages(messages: readonly ValidationMessage[], at: Date): TaskMessage[] {
  return messages
    .filter((m) => m.level !== 'Info' || m.error)
    .map((m) => message(m.message, { error: m.error, context_type: 'NA', at, extra: { name: m.name, level: m.level, diagnostic: m.diagnostic, documents: m.documents } }));
}

export interface PrepareOutput {
  /** run: go on; finish: the result is known (validation, no nodes, an unreadable design); skip: nothing to do. */
  outcome: 'run' | 'finish' | 'skip';
  site: string;
  /**
   * The distributed Map's items, one child execution each: the nodes' positions in the task's
   * `subtask_id_list`. Positions rather than names or subtask ids keep the workflow's state
   * small (2,000 nodes are about 9 KB, however long their names): the steps read the rest.
   */
  nodes: number[];
  node_concurrency: number;
}

/**
 * How long Prepare's design fetch may take, the site's agent's claim and answer included: well
 * inside the prepare function's 120 s (infra/stacks/drydock-stack.ts), leaving time to snapshot,
 * validate and write the subtasks.
 */
export const PREPARE_DESIGN_BUDGET_MS = 75_000;

const finishWith = (site = ''): PrepareOutput => ({ outcome: 'finish', site, nodes: [], node_concurrency: 1 });

export async function prepareTask(deps: Ports, input: { task_id: string }): Promise<PrepareOutput> {
  const task = await deps.drydock.getTask(input.task_id);
  if (!task || task.status === 'complete' || task.status === 'terminated') return { ...finishWith(), outcome: 'skip' };
  if (task.terminate && task.status === 'queued') {
    await updateTask(deps, task.task_id, () => ({ status: 'terminated', terminated: now(deps).toISOString(), terminated_by: 'slipway' }));
    return { ...finishWith(), outcome: 'skip' };
  }
  const at = now(deps);
  const project = task.project_id ?? null;
  let texts: string[];
  try {
    texts = await fetchDesignTexts(deps, task.design_ref, { project }, PREPARE_DESIGN_BUDGET_MS);
  } catch (err) {
    if (!(err instanceof DesignRefError)) throw err;
    await deps.drydock.addMessages(task.task_id, [message(err.message, { error: true, context_type: 'task', context: task.task_id, at })]);
    await updateTask(deps, task.task_id, (t) => ({ result: { ...addFailure(t.result), message: 'Design could not be read.', reason: err.message.slice(0, 255) } }));
    return finishWith();
  }
  const loaded = loadDesign(texts);
  // Parsed once, here: the later steps read the design from the snapshot, as JSON (their
  // function has no YAML parser). Validated as they will read it.
  const design = await saveDesignSnapshot(deps, task.task_id, texts, loaded.design);
  const parseMessages = loaded.messages;
  const messages = [...parseMessages, ...validateDesign(design, { project: project !== null })];
  const valid = !messages.some((m) => m.error);
  const site = project !== null ? projectQueue(project) : siteOfDesign(design);

  if (task.action === 'validate_design' || !valid) {
    // validate_design reports every finding; other actions only the errors that stop them.
    const reported = task.action === 'validate_design' ? messages : messages.filter((m) => m.error);
    await deps.drydock.addMessages(task.task_id, validationMessages(reported, at));
    await updateTask(deps, task.task_id, (t) =>
      valid
        ? { site, result: { ...addSuccess(t.result), message: 'Site design passed validation' } }
        : { site, result: { ...addFailure(t.result), message: 'Site design failed validation.', reason: 'See detail messages.' } },
    );
    return finishWith(site);
  }

  if (!isNodeAction(task.action)) {
    await updateTask(deps, task.task_id, (t) => (t.site === site ? undefined : { site }));
    return { outcome: 'run', site, nodes: [], node_concurrency: 1 };
  }

  const names = applyNodeFilter(design, task.node_filter);
  if (names.length === 0) {
    await deps.drydock.addMessages(task.task_id, [message('No nodes in scope', { context_type: 'task', context: task.task_id, at })]);
    await updateTask(deps, task.task_id, (t) => ({ site, result: { ...addSuccess(t.result), message: 'No nodes in scope' } }));
    return finishWith(site);
  }
  const nodes = names.map((node) => ({ node, subtask_id: subtaskId(task.task_id, node) }));
  const created = at.toISOString();
  await deps.drydock.putSubtasks(
    nodes.map(({ node, subtask_id }) =>
      newTaskRecord({
        task_id: subtask_id,
        action: SUBTASK_ACTIONS[task.action as NodeAction],
        parent_task_id: task.task_id,
        design_ref: task.design_ref,
        node_filter: { filter_set_type: 'union', filter_set: [{ filter_type: 'union', node_names: [node] }] },
        created,
        created_by: task.created_by,
        retry: task.retry,
        site,
        node_name: node,
        project_id: project,
      }),
    ),
  );
  await updateTask(deps, task.task_id, () => ({ site, subtask_id_list: nodes.map((n) => n.subtask_id) }));
  return { outcome: 'run', site, nodes: nodes.map((_, i) => i), node_concurrency: deps.config.drydock.nodeConcurrency };
}
