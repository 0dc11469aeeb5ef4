import { ConcurrentModificationError } from '../../errors.ts';
import type { Ports } from '../../ports.ts';
import type { SiteDesign } from '../design/model.ts';
import type { TaskRecord } from './model.ts';

/**
 * What the two functions of the Drydock task workflow share: Prepare (prepare.ts, which parses
 * and validates the design) and every later step (workflow.ts, which renders boot actions). So
 * this module imports neither side's own modules: not the YAML parser, not the template engine.
 */

// ---------------------------------------------------------------------------------------------
// Task records

export const now = (deps: Ports) => deps.clock.now();

export async function getTask(deps: Ports, id: string): Promise<TaskRecord> {
  const t = await deps.drydock.getTask(id);
  if (!t) throw new TaskGoneError(`Task ${id} does not exist`);
  return t;
}

/** The task was purged while its workflow ran (or never existed): the workflow ends quietly. */
export class TaskGoneError extends Error {
  override name = 'TaskGoneError';
}

/** Applies `change` to the current record, compare-and-set, re-reading on a lost race. */
export async function updateTask(deps: Ports, id: string, change: (t: TaskRecord) => Partial<TaskRecord> | undefined): Promise<TaskRecord> {
  for (let attempt = 0; ; attempt++) {
    const t = await getTask(deps, id);
    const patch = change(t);
    if (!patch) return t;
    try {
      return await deps.drydock.updateTask(t, { ...t, ...patch, updated: now(deps).toISOString() });
    } catch (err) {
      if (err instanceof ConcurrentModificationError && attempt < 8) continue;
      throw err;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The design snapshot: read once by Prepare, so every node of a task works from the same design.

const snapshotKey = (taskId: string) => `tasks/${taskId}/design.json`;

/**
 * `tasks/<task>/design.json`: the texts the design_ref gave (the record of what the task worked
 * from) and the design Prepare parsed from them, as JSON.
 */
interface DesignSnapshot {
  texts: string[];
  design: SiteDesign;
}

const designCache = new Map<string, SiteDesign>();

/**
 * Prepare's snapshot. Returns the design as the later steps will read it back: JSON, so that
 * what Prepare validates is what they use (a YAML 1.1 timestamp in a free-form field, say, is
 * its ISO string for both).
 */
export async function saveDesignSnapshot(deps: Ports, taskId: string, texts: string[], design: SiteDesign): Promise<SiteDesign> {
  const body = JSON.stringify({ texts, design } satisfies DesignSnapshot);
  await deps.blobs.put(snapshotKey(taskId), Buffer.from(body), 'application/json');
  designCache.delete(taskId);
  return (JSON.parse(body) as DesignSnapshot).design;
}

/** The task's design, as Prepare parsed it (kept per process: a task's snapshot never changes). */
export async function taskDesign(deps: Ports, taskId: string): Promise<SiteDesign> {
  const hit = designCache.get(taskId);
  if (hit) return hit;
  const raw = await deps.blobs.get(snapshotKey(taskId));
  if (!raw) throw new Error(`The design snapshot of task ${taskId} is missing`);
  const snapshot = JSON.parse(raw.toString('utf8')) as DesignSnapshot | string[];
  // Before the design was stored parsed, the snapshot was its texts alone; the task functions no
  // longer parse YAML, so such a task (prepared before an upgrade) cannot go on.
  if (Array.isArray(snapshot)) throw new Error(`The design snapshot of task ${taskId} predates parsed snapshots: create the task again`);
  if (designCache.size > 32) designCache.delete(designCache.keys().next().value!);
  designCache.set(taskId, snapshot.design);
  return snapshot.design;
}

/** The site a design describes: its Region (one per design; validation says so). */
export const siteOfDesign = (design: SiteDesign) => design.Region[0]?.name ?? 'default';
