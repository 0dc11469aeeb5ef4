import { randomUUID } from 'node:crypto';
import type { Ports } from '../../layers/core/ports.ts';
import { hashNodeKey, newNodeKey, nodeKeyHex } from '../../layers/core/drydock/bootactions/keys.ts';
import { ulid } from '../../layers/core/drydock/bootactions/ulid.ts';
import type { BootActionContext, BootActionRecord } from '../../layers/core/drydock/store.ts';
import type { TaskRecord } from '../../layers/core/drydock/tasks/model.ts';

/**
 * A node as a deploy task leaves it: a boot-action context with a fresh node key (hashed and
 * sealed as the deploy step stores it) and one row per action, for `task` (already stored).
 * Its tarballs are expected at `bootdata/<task>/<hostname>/{units,files}.tar.gz`.
 */
export async function seedBootActions(
  d: Pick<Ports, 'drydock' | 'secrets'>,
  task: TaskRecord,
  hostname: string,
  actions: { name: string; signaling?: boolean }[],
): Promise<{ key: string; rows: BootActionRecord[]; ctx: BootActionContext }> {
  const key = newNodeKey();
  const now = new Date().toISOString();
  const rows: BootActionRecord[] = actions.map((a) => ({
    action_id: ulid(),
    action_name: a.name,
    node_name: hostname,
    task_id: task.task_id,
    action_status: a.signaling === false ? 'unreported' : 'incomplete',
    signaling: a.signaling !== false,
    created: now,
    updated: null,
  }));
  const prefix = `bootdata/${task.task_id}/${hostname}`;
  const ctx: BootActionContext = {
    node_name: hostname,
    task_id: task.task_id,
    subtask_id: randomUUID(),
    design_ref: task.design_ref,
    key_hash: hashNodeKey(key),
    key_sealed: await d.secrets.seal('node-key', nodeKeyHex(key)),
    action_ids: rows.map((r) => r.action_id),
    units_object: `${prefix}/units.tar.gz`,
    files_object: `${prefix}/files.tar.gz`,
    packages: [],
    created: now,
  };
  await d.drydock.putBootActionContext(ctx, rows);
  return { key: nodeKeyHex(key), rows, ctx };
}
