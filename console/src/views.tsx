import { useState } from 'preact/hooks';
import { api, parseDate, showDate } from './api.ts';
import { ErrorBanner, usePoll } from './ui.tsx';

/** Nodes (Ironic), Drydock tasks and sites with their agents: read-only views, polled. */

interface Node {
  uuid: string;
  name: string | null;
  power_state: string | null;
  provision_state: string;
  maintenance: boolean;
  maintenance_reason?: string | null;
  lessee?: string | null;
  last_error?: string | null;
  updated_at?: string | null;
  [k: string]: unknown;
}

const nodeLabel = (n: Pick<Node, 'name' | 'uuid'>) => n.name ?? n.uuid;
const ago = (ms: number) => {
  if (!Number.isFinite(ms)) return 'never';
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  return s < 90 ? `${s} s ago` : s < 5400 ? `${Math.round(s / 60)} min ago` : s < 172_800 ? `${Math.round(s / 3600)} h ago` : `${Math.round(s / 86400)} days ago`;
};

function Updated(props: { at: number | undefined }) {
  return props.at ? <span class="muted">Updated {new Date(props.at).toISOString().slice(11, 19)} UTC</span> : <span class="muted">Loading…</span>;
}

export function Nodes() {
  const { data, error, at } = usePoll(() => api<{ nodes: Node[] }>('GET', '/v1/nodes/detail').then((r) => r.nodes), 'nodes');
  const [filter, setFilter] = useState('');
  const rows = (data ?? []).filter((n) => nodeLabel(n).toLowerCase().includes(filter.toLowerCase()));
  return (
    <section aria-labelledby="nodes-title">
      <div class="toolbar">
        <h1 id="nodes-title">Nodes</h1>
        <input type="search" placeholder="Filter nodes" aria-label="Filter nodes by name" value={filter} onInput={(e) => setFilter(e.currentTarget.value)} />
        <Updated at={at} />
      </div>
      <ErrorBanner error={error} />
      <table>
        <thead>
          <tr>
            <th scope="col">Name</th>
            <th scope="col">Power</th>
            <th scope="col">Provision state</th>
            <th scope="col">Maintenance</th>
            <th scope="col">Lessee</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((n) => (
            <tr key={n.uuid}>
              <td>
                <a href={`#/nodes/${encodeURIComponent(n.uuid)}`}>{nodeLabel(n)}</a>
              </td>
              <td>
                <span class={`badge pw-${(n.power_state ?? 'unknown').replace(/\s+/g, '-')}`}>{n.power_state ?? 'unknown'}</span>
              </td>
              <td>{n.provision_state}</td>
              <td>{n.maintenance ? <span class="badge st-error">yes{n.maintenance_reason ? `: ${n.maintenance_reason}` : ''}</span> : 'no'}</td>
              <td>{n.lessee ?? '—'}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {data && rows.length === 0 && <p class="muted">No nodes{filter ? ' match the filter' : ''}.</p>}
    </section>
  );
}

const SHOWN = ['uuid', 'name', 'power_state', 'target_power_state', 'provision_state', 'target_provision_state', 'maintenance', 'maintenance_reason', 'lessee', 'driver', 'conductor_group', 'resource_class', 'last_error', 'provision_updated_at', 'inspection_finished_at', 'created_at', 'updated_at'];

function Value(props: { v: unknown }) {
  const v = props.v;
  if (v === null || v === undefined || v === '') return <span class="muted">—</span>;
  if (typeof v === 'object') return <pre>{JSON.stringify(v, null, 2)}</pre>;
  return <>{String(v)}</>;
}

export function NodeDetail(props: { id: string }) {
  const path = `/v1/nodes/${encodeURIComponent(props.id)}`;
  const { data, error, at } = usePoll(
    () => Promise.all([api<Node>('GET', path), api<{ ports: { address: string; pxe_enabled?: boolean }[] }>('GET', `${path}/ports/detail`).catch(() => ({ ports: [] }))]),
    path,
  );
  const [n, ports] = data ?? [];
  return (
    <section aria-labelledby="node-title">
      <div class="toolbar">
        <a href="#/nodes">← Nodes</a>
        <h1 id="node-title">Node {n ? nodeLabel(n) : props.id}</h1>
        <Updated at={at} />
      </div>
      <ErrorBanner error={error} />
      {n && (
        <dl class="kv">
          {SHOWN.map((k) => (
            <>
              <dt>{k}</dt>
              <dd data-field={k}>
                <Value v={n[k]} />
              </dd>
            </>
          ))}
          <dt>ports</dt>
          <dd>{ports?.ports.length ? ports.ports.map((p) => `${p.address}${p.pxe_enabled ? ' (PXE)' : ''}`).join(', ') : <span class="muted">—</span>}</dd>
          <dt>properties</dt>
          <dd>
            <Value v={n.properties} />
          </dd>
          <dt>extra</dt>
          <dd>
            <Value v={n.extra} />
          </dd>
        </dl>
      )}
    </section>
  );
}

interface Task {
  task_id: string;
  action: string;
  parent_task_id: string | null;
  design_ref: string;
  status: string;
  subtask_id_list: string[];
  node_filter?: { filter_set?: { node_names?: string[] }[] } | null;
  created: string | null;
  updated: string | null;
  result: {
    status: string;
    message: string | null;
    successes: string[];
    failures: string[];
    details?: { errorCount: number; messageList: { message: string; error: boolean; context_type: string; context: string | null; ts: string }[] };
  };
}

/**
 * The node a per-node subtask works on: as upstream, its node_filter names that one node
 * (`{filter_set: [{node_names: [n]}]}`); else its result's entity or the node its messages are about.
 */
function subtaskNode(t: Task): string {
  const named = t.node_filter?.filter_set?.flatMap((f) => f.node_names ?? []) ?? [];
  return named.join(', ') || (t.result.failures[0] ?? t.result.successes[0] ?? t.result.details?.messageList.find((m) => m.context_type === 'node' && m.context)?.context ?? '—');
}

const resultClass = (t: Task) => (t.status !== 'complete' ? 'st-pending' : t.result.status === 'success' ? 'st-ok' : t.result.status === 'failure' ? 'st-error' : 'st-partial');

function Progress(props: { subtasks: Task[] }) {
  const total = props.subtasks.length;
  const done = props.subtasks.filter((s) => s.status === 'complete' || s.status === 'terminated').length;
  const failed = props.subtasks.filter((s) => s.result.status === 'failure' || s.result.failures.length > 0).length;
  if (total === 0) return <span class="muted">no per-node steps</span>;
  return (
    <span class="progress-wrap">
      <progress max={total} value={done} aria-label={`${done} of ${total} nodes finished, ${failed} failed`} />
      <span>
        {done}/{total} nodes{failed ? `, ${failed} failed` : ''}
      </span>
    </span>
  );
}

export function Tasks() {
  const { data, error, at } = usePoll(() => api<Task[]>('GET', '/api/v1.0/tasks'), 'tasks');
  const all = data ?? [];
  const top = all.filter((t) => !t.parent_task_id).sort((a, b) => parseDate(b.created) - parseDate(a.created));
  const children = (t: Task) => all.filter((s) => s.parent_task_id === t.task_id);
  return (
    <section aria-labelledby="tasks-title">
      <div class="toolbar">
        <h1 id="tasks-title">Drydock tasks</h1>
        <Updated at={at} />
      </div>
      <ErrorBanner error={error} />
      <table>
        <thead>
          <tr>
            <th scope="col">Action</th>
            <th scope="col">Status</th>
            <th scope="col">Result</th>
            <th scope="col">Nodes</th>
            <th scope="col">Created</th>
          </tr>
        </thead>
        <tbody>
          {top.map((t) => (
            <tr key={t.task_id}>
              <td>
                <a href={`#/tasks/${t.task_id}`}>{t.action}</a>
              </td>
              <td>{t.status}</td>
              <td>
                <span class={`badge ${resultClass(t)}`}>{t.result.status}</span>
              </td>
              <td>
                <Progress subtasks={children(t)} />
              </td>
              <td>{showDate(parseDate(t.created))}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {data && top.length === 0 && <p class="muted">No tasks.</p>}
    </section>
  );
}

export function TaskDetail(props: { id: string }) {
  const { data, error, at } = usePoll(
    () => Promise.all([api<Task>('GET', `/api/v1.0/tasks/${encodeURIComponent(props.id)}?subtaskerrors=true`), api<Task[]>('GET', '/api/v1.0/tasks')]),
    props.id,
  );
  const [t, all] = data ?? [];
  const subs = (all ?? []).filter((s) => s.parent_task_id === props.id);
  return (
    <section aria-labelledby="task-title">
      <div class="toolbar">
        <a href="#/tasks">← Tasks</a>
        <h1 id="task-title">Task {t ? t.action : props.id}</h1>
        <Updated at={at} />
      </div>
      <ErrorBanner error={error} />
      {t && (
        <>
          <dl class="kv">
            <dt>Id</dt>
            <dd>
              <code>{t.task_id}</code>
            </dd>
            <dt>Status</dt>
            <dd>
              {t.status} — <span class={`badge ${resultClass(t)}`}>{t.result.status}</span> {t.result.message}
            </dd>
            <dt>Design</dt>
            <dd>{t.design_ref}</dd>
            <dt>Progress</dt>
            <dd>
              <Progress subtasks={subs} />
            </dd>
          </dl>
          <h2>Per node</h2>
          <table>
            <thead>
              <tr>
                <th scope="col">Node</th>
                <th scope="col">Step</th>
                <th scope="col">Status</th>
                <th scope="col">Result</th>
                <th scope="col">Last message</th>
              </tr>
            </thead>
            <tbody>
              {subs.map((s) => {
                const last = s.result.details?.messageList.at(-1);
                return (
                  <tr key={s.task_id}>
                    <td>{subtaskNode(s)}</td>
                    <td>{s.action}</td>
                    <td>{s.status}</td>
                    <td>
                      <span class={`badge ${resultClass(s)}`}>{s.result.status}</span>
                    </td>
                    <td class={last?.error ? 'err-text' : undefined}>{last?.message ?? '—'}</td>
                  </tr>
                );
              })}
            </tbody>
          </table>
          {subs.length === 0 && <p class="muted">This task has no per-node steps.</p>}
          <h2>Messages</h2>
          <ul class="messages">
            {(t.result.details?.messageList ?? []).map((m) => (
              <li class={m.error ? 'err-text' : undefined}>
                <time>{m.ts}</time> {m.context ? `[${m.context}] ` : ''}
                {m.message}
              </li>
            ))}
          </ul>
        </>
      )}
    </section>
  );
}

interface Site {
  name: string;
  connected: boolean;
  last_contact_at: string | null;
  agents: { id: string; description: string | null; token_active: boolean; last_contact_at: string | null; connected: boolean; version: string | null; expires_at: string | null }[];
  jobs?: { queued: number; running: number; truncated: boolean };
}

export function Sites(props: { projectId: string }) {
  const { data, error, at } = usePoll(() => api<{ sites: Site[] }>('GET', `/v1.1/${encodeURIComponent(props.projectId)}/sites`).then((r) => r.sites), 'sites');
  return (
    <section aria-labelledby="sites-title">
      <div class="toolbar">
        <h1 id="sites-title">Sites and agents</h1>
        <Updated at={at} />
      </div>
      <ErrorBanner error={error} />
      {(data ?? []).map((s) => (
        <article class="site" key={s.name} aria-labelledby={`site-${s.name}`}>
          <h2 id={`site-${s.name}`}>
            <span class={`dot ${s.connected ? 'on' : 'off'}`} aria-hidden="true" />
            {s.name} <small>{s.connected ? 'connected' : 'not connected'}</small>
          </h2>
          <p>
            Last contact: {s.last_contact_at ? `${ago(parseDate(s.last_contact_at))} (${showDate(parseDate(s.last_contact_at))})` : 'never'}
            {s.jobs && ` · jobs queued ${s.jobs.queued}${s.jobs.truncated ? '+' : ''}, running ${s.jobs.running}`}
          </p>
          <table>
            <thead>
              <tr>
                <th scope="col">Agent</th>
                <th scope="col">Version</th>
                <th scope="col">Last contact</th>
                <th scope="col">Token</th>
              </tr>
            </thead>
            <tbody>
              {s.agents.map((a) => (
                <tr key={a.id}>
                  <td>
                    <code>{a.id}</code> {a.description ?? ''}
                  </td>
                  <td>{a.version ?? '—'}</td>
                  <td>
                    <span class={`dot ${a.connected ? 'on' : 'off'}`} aria-hidden="true" /> {a.last_contact_at ? ago(parseDate(a.last_contact_at)) : 'never'}
                  </td>
                  <td>{a.token_active ? (a.expires_at ? `expires ${showDate(parseDate(a.expires_at))}` : 'active') : 'revoked or expired'}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </article>
      ))}
      {data && data.length === 0 && <p class="muted">No sites: a site appears once it has an agent token.</p>}
    </section>
  );
}
