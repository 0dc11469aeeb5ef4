import { useMemo, useRef, useState } from 'preact/hooks';
import { api, ApiError, blazarDate, fromInput, inputDate, parseDate, showDate } from './api.ts';
import { Dialog, ErrorBanner, Field, projectHue, usePoll } from './ui.tsx';

/**
 * The lease calendar (Chameleon's host calendar): Blazar hosts down the side, time across, every
 * host's allocation a bar coloured by its lease's project (hue) and status (fill). Hosts, leases
 * and allocations are three reads of the Blazar surface, polled together.
 */
interface Host {
  id: string;
  hypervisor_hostname: string;
}
interface Reservation {
  id: string;
  resource_type: string;
  status?: string;
  min?: number;
  max?: number;
  resource_properties?: string;
}
export interface Lease {
  id: string;
  name: string;
  project_id: string;
  user_id?: string | null;
  status: string;
  degraded?: boolean;
  start_date: string;
  end_date: string;
  reservations: Reservation[];
  events?: { event_type: string; time: string; status: string }[];
}
interface Allocation {
  resource_id: string;
  reservations: { id: string; lease_id: string; start_date: string; end_date: string }[];
}
interface Data {
  hosts: Host[] | undefined;
  /** Why the hosts could not be listed (a member or reader token: os-hosts is for admins). */
  hostsError?: string;
  leases: Lease[];
  allocations: Allocation[];
}

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
export const ZOOMS = { day: { span: DAY, tick: 3 * HOUR, snap: 15 * 60_000 }, week: { span: 7 * DAY, tick: DAY, snap: HOUR }, month: { span: 30 * DAY, tick: 3 * DAY, snap: 6 * HOUR } };
type Zoom = keyof typeof ZOOMS;

async function loadCalendar(): Promise<Data> {
  const [hosts, leases, allocations] = await Promise.all([
    api<{ hosts: Host[] }>('GET', '/v1/os-hosts').then(
      (r) => ({ hosts: r.hosts }),
      (e: unknown) => {
        if (e instanceof ApiError && e.status === 403) return { hosts: undefined, hostsError: e.message };
        throw e;
      },
    ),
    api<{ leases: Lease[] }>('GET', '/v1/leases'),
    api<{ allocations: Allocation[] }>('GET', '/v1/os-hosts/allocations').catch((e: unknown) => {
      if (e instanceof ApiError && e.status === 403) return { allocations: [] };
      throw e;
    }),
  ]);
  return { ...hosts, leases: leases.leases, allocations: allocations.allocations };
}

/** The filter that picks exactly these hosts by name (layers/core/leases/filters.ts). */
export function hostsFilter(names: readonly string[]): unknown {
  const terms = names.map((n) => ['==', '$hypervisor_hostname', n]);
  return terms.length === 1 ? terms[0] : ['or', ...terms];
}

const snapTo = (t: number, step: number) => Math.round(t / step) * step;
const statusClass = (s: string) => `st-${s.toLowerCase().replace(/[^a-z]/g, '')}`;

interface Draft {
  hosts: string[];
  start: number;
  end: number;
}

export function Calendar() {
  const { data, error, reload, at } = usePoll(loadCalendar, 'calendar');
  const [zoom, setZoom] = useState<Zoom>('week');
  const [from, setFrom] = useState(() => snapTo(Date.now() - ZOOMS.week.span / 7, HOUR));
  const [filter, setFilter] = useState('');
  const [picked, setPicked] = useState<ReadonlySet<string>>(new Set());
  const [open, setOpen] = useState<string | undefined>();
  const [draft, setDraft] = useState<Draft | undefined>();
  const [drag, setDrag] = useState<{ host: string; a: number; b: number } | undefined>();
  const [actionError, setActionError] = useState<string | undefined>();
  const { span, tick, snap } = ZOOMS[zoom];
  const to = from + span;
  const now = Date.now();

  const leases = useMemo(() => new Map((data?.leases ?? []).map((l) => [l.id, l])), [data]);
  const byHost = useMemo(() => {
    const m = new Map<string, Allocation['reservations']>();
    for (const a of data?.allocations ?? []) m.set(a.resource_id, a.reservations);
    return m;
  }, [data]);
  const hosts = useMemo(
    () => (data?.hosts ?? []).filter((h) => h.hypervisor_hostname.toLowerCase().includes(filter.toLowerCase())).sort((a, b) => a.hypervisor_hostname.localeCompare(b.hypervisor_hostname, 'en', { numeric: true })),
    [data, filter],
  );
  const names = new Map((data?.hosts ?? []).map((h) => [h.id, h.hypervisor_hostname]));

  const pct = (t: number) => ((Math.min(Math.max(t, from), to) - from) / span) * 100;
  const ticks: number[] = [];
  for (let t = Math.ceil(from / tick) * tick; t < to; t += tick) ticks.push(t);
  const tickLabel = (t: number) => (tick < DAY ? blazarDate(t).slice(11) : blazarDate(t).slice(5, 10));

  const axis = (first: string) => (
    <div class="cal-row axis" aria-hidden="true">
      <div class="host">{first}</div>
      <div class="track">
        {ticks.map((t) => (
          <span class="tick" style={{ left: `${pct(t)}%` }}>
            {tickLabel(t)}
          </span>
        ))}
      </div>
    </div>
  );
  const zoomTo = (z: Zoom) => {
    // Keep the middle of the view where it is.
    const mid = from + span / 2;
    setZoom(z);
    setFrom(snapTo(mid - ZOOMS[z].span / 2, HOUR));
  };
  const timeAt = (el: HTMLElement, clientX: number) => {
    const r = el.getBoundingClientRect();
    return from + ((clientX - r.left) / r.width) * span;
  };
  const togglePick = (name: string) => {
    const next = new Set(picked);
    if (next.has(name)) next.delete(name);
    else next.add(name);
    setPicked(next);
  };
  const newLease = (extraHost?: string, start?: number, end?: number) => {
    const s = start ?? snapTo(Math.max(now, from), snap) + snap;
    setDraft({ hosts: [...new Set([...picked, ...(extraHost ? [extraHost] : [])])], start: s, end: end ?? s + (zoom === 'day' ? 2 * HOUR : DAY) });
  };

  return (
    <section aria-labelledby="cal-title">
      <div class="toolbar">
        <h1 id="cal-title">Lease calendar</h1>
        <div class="group" role="group" aria-label="Move in time">
          <button type="button" onClick={() => setFrom(from - span / 2)}>
            ◀ Earlier
          </button>
          <button type="button" onClick={() => setFrom(snapTo(Date.now() - span / 7, HOUR))}>
            Now
          </button>
          <button type="button" onClick={() => setFrom(from + span / 2)}>
            Later ▶
          </button>
        </div>
        <div class="group" role="group" aria-label="Zoom">
          {(Object.keys(ZOOMS) as Zoom[]).map((z) => (
            <button type="button" aria-pressed={zoom === z} onClick={() => zoomTo(z)}>
              {z[0]!.toUpperCase() + z.slice(1)}
            </button>
          ))}
        </div>
        <input type="search" placeholder="Filter hosts" aria-label="Filter hosts by name" value={filter} onInput={(e) => setFilter(e.currentTarget.value)} />
        <button type="button" class="primary" onClick={() => newLease()} disabled={!data?.hosts}>
          New lease{picked.size ? ` on ${picked.size} host${picked.size > 1 ? 's' : ''}` : ''}…
        </button>
      </div>
      <p class="hint">
        {showDate(from)} – {showDate(to)}.{data?.hosts ? ' Tick hosts and drag across a row to book them;' : ''} Click a bar (or Tab to it and press Enter) to see a lease.
        {at && <span class="muted"> Updated {new Date(at).toISOString().slice(11, 19)} UTC.</span>}
      </p>
      <ErrorBanner error={error} />
      <ErrorBanner error={actionError} onDismiss={() => setActionError(undefined)} />
      {data && !data.hosts && (
        <p class="note" role="status">
          This token cannot list hosts ({data.hostsError}); the calendar shows your project's leases, one per row.
        </p>
      )}
      {data && !data.hosts && data.leases.length > 0 && (
        // Without os-hosts (members, readers), each lease is a row of its own over the same time axis.
        <div class="cal" aria-label="Leases over time">
          {axis('Lease')}
          {data.leases
            .filter((l) => parseDate(l.end_date) > from && parseDate(l.start_date) < to)
            .map((l) => {
              const s = parseDate(l.start_date);
              const e = parseDate(l.end_date);
              const label = `${l.name}: project ${l.project_id}, ${l.status}, ${showDate(s)} to ${showDate(e)}`;
              return (
                <div class="cal-row" key={l.id}>
                  <div class="host">
                    <span title={l.name}>{l.name}</span>
                  </div>
                  <div class="track">
                    <button
                      type="button"
                      class={`bar ${statusClass(l.status)}`}
                      style={{ left: `${pct(s)}%`, width: `${Math.max(pct(e) - pct(s), 0.4)}%`, '--h': String(projectHue(l.project_id)) }}
                      aria-label={label}
                      title={label}
                      data-lease={l.id}
                      onClick={() => setOpen(l.id)}
                    >
                      {l.name}
                    </button>
                  </div>
                </div>
              );
            })}
          {now >= from && now <= to && <div class="now" style={{ left: `calc(var(--hostw) + (100% - var(--hostw)) * ${(now - from) / span})` }} aria-hidden="true" title="Now" />}
        </div>
      )}
      {data?.hosts && (
        <div class="cal" aria-label="Hosts and their leases over time">
          {axis('Host')}
          {hosts.length === 0 && <p class="muted">No hosts{filter ? ' match the filter' : ' are enrolled'}.</p>}
          {hosts.map((h) => {
            const name = h.hypervisor_hostname;
            const allocs = (byHost.get(h.id) ?? []).filter((a) => parseDate(a.end_date) > from && parseDate(a.start_date) < to);
            return (
              <div class="cal-row" key={h.id} data-host={name}>
                <label class="host">
                  <input type="checkbox" checked={picked.has(name)} onChange={() => togglePick(name)} />
                  <span title={name}>{name}</span>
                </label>
                <div
                  class="track"
                  data-testid={`track-${name}`}
                  onPointerDown={(e) => {
                    if (e.button !== 0 || (e.target as HTMLElement).closest('.bar')) return;
                    const t = timeAt(e.currentTarget, e.clientX);
                    e.currentTarget.setPointerCapture(e.pointerId);
                    setDrag({ host: name, a: t, b: t });
                  }}
                  onPointerMove={(e) => drag && drag.host === name && setDrag({ ...drag, b: timeAt(e.currentTarget, e.clientX) })}
                  onPointerUp={(e) => {
                    if (!drag || drag.host !== name) return;
                    const b = timeAt(e.currentTarget, e.clientX);
                    setDrag(undefined);
                    let s = snapTo(Math.min(drag.a, b), snap);
                    let en = snapTo(Math.max(drag.a, b), snap);
                    if (en - s < snap) en = s + (zoom === 'day' ? HOUR : DAY);
                    if (s < now) s = Math.max(s, snapTo(now, 60_000));
                    newLease(name, s, en);
                  }}
                >
                  {allocs.map((a) => {
                    const l = leases.get(a.lease_id);
                    const s = parseDate(a.start_date);
                    const e = parseDate(a.end_date);
                    const label = l ? `${l.name}: project ${l.project_id}, ${l.status}, ${showDate(s)} to ${showDate(e)}` : `Reserved ${showDate(s)} to ${showDate(e)}`;
                    return (
                      <button
                        type="button"
                        key={a.id}
                        class={`bar ${l ? statusClass(l.status) : 'st-other'}`}
                        style={{ left: `${pct(s)}%`, width: `${Math.max(pct(e) - pct(s), 0.4)}%`, '--h': String(l ? projectHue(l.project_id) : 0) }}
                        aria-label={label}
                        title={label}
                        data-lease={a.lease_id}
                        disabled={!l}
                        onClick={() => setOpen(a.lease_id)}
                      >
                        {l?.name ?? 'reserved'}
                      </button>
                    );
                  })}
                  {drag?.host === name && <div class="selection" style={{ left: `${pct(Math.min(drag.a, drag.b))}%`, width: `${Math.abs(pct(drag.b) - pct(drag.a))}%` }} />}
                </div>
              </div>
            );
          })}
          {now >= from && now <= to && <div class="now" style={{ left: `calc(var(--hostw) + (100% - var(--hostw)) * ${(now - from) / span})` }} aria-hidden="true" title="Now" />}
        </div>
      )}
      <Legend leases={data?.leases ?? []} />
      {data && <LeaseTable leases={data.leases} onOpen={setOpen} />}
      {open && leases.get(open) && (
        <LeaseDialog
          lease={leases.get(open)!}
          hosts={[...byHost].filter(([, rs]) => rs.some((r) => r.lease_id === open)).map(([id]) => names.get(id) ?? id).sort()}
          onClose={() => setOpen(undefined)}
          onChanged={() => {
            void reload();
          }}
        />
      )}
      {draft && data?.hosts && (
        <NewLeaseDialog
          draft={draft}
          hosts={data.hosts.map((h) => h.hypervisor_hostname).sort((a, b) => a.localeCompare(b, 'en', { numeric: true }))}
          onClose={() => setDraft(undefined)}
          onCreated={(l) => {
            setDraft(undefined);
            setPicked(new Set());
            setActionError(undefined);
            void reload();
            setOpen(l.id);
          }}
        />
      )}
    </section>
  );
}

function Legend(props: { leases: Lease[] }) {
  const projects = [...new Set(props.leases.map((l) => l.project_id))].sort();
  return (
    <div class="legend" aria-label="Legend">
      <span class="bar-sample st-active">active</span>
      <span class="bar-sample st-pending">pending</span>
      <span class="bar-sample st-terminated">ended</span>
      <span class="bar-sample st-error">error</span>
      {projects.map((p) => (
        <span class="proj" style={{ '--h': String(projectHue(p)) }}>
          {p}
        </span>
      ))}
    </div>
  );
}

function LeaseTable(props: { leases: Lease[]; onOpen: (id: string) => void }) {
  const rows = [...props.leases].sort((a, b) => parseDate(b.start_date) - parseDate(a.start_date));
  return (
    <details class="leases" open={rows.length > 0 && rows.length <= 20}>
      <summary>Leases ({rows.length})</summary>
      <table>
        <thead>
          <tr>
            <th scope="col">Name</th>
            <th scope="col">Project</th>
            <th scope="col">Status</th>
            <th scope="col">Start</th>
            <th scope="col">End</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((l) => (
            <tr key={l.id}>
              <td>
                <button type="button" class="link" onClick={() => props.onOpen(l.id)}>
                  {l.name}
                </button>
              </td>
              <td>{l.project_id}</td>
              <td>
                <span class={`badge ${statusClass(l.status)}`}>{l.status}</span>
              </td>
              <td>{showDate(parseDate(l.start_date))}</td>
              <td>{showDate(parseDate(l.end_date))}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </details>
  );
}

function LeaseDialog(props: { lease: Lease; hosts: string[]; onClose: () => void; onChanged: () => void }) {
  const l = props.lease;
  const end = parseDate(l.end_date);
  const [newEnd, setNewEnd] = useState(inputDate(end + HOUR));
  const [busy, setBusy] = useState(false);
  const [err, setErr] = useState<string | undefined>();
  const [confirming, setConfirming] = useState(false);
  const ended = ['TERMINATED', 'TERMINATING', 'DELETED'].includes(l.status);
  const run = async (f: () => Promise<unknown>, close: boolean) => {
    setBusy(true);
    setErr(undefined);
    try {
      await f();
      props.onChanged();
      if (close) props.onClose();
    } catch (e) {
      setErr(e instanceof Error ? e.message : String(e));
    } finally {
      setBusy(false);
    }
  };
  return (
    <Dialog title={`Lease ${l.name}`} onClose={props.onClose}>
      <dl class="kv">
        <dt>Status</dt>
        <dd>
          <span class={`badge ${statusClass(l.status)}`}>{l.status}</span>
          {l.degraded ? ' (degraded: a host is missing or changed)' : ''}
        </dd>
        <dt>Project</dt>
        <dd>{l.project_id}</dd>
        <dt>Start</dt>
        <dd>{showDate(parseDate(l.start_date))}</dd>
        <dt>End</dt>
        <dd data-testid="lease-end">{showDate(end)}</dd>
        <dt>Hosts</dt>
        <dd>{props.hosts.length ? props.hosts.join(', ') : '—'}</dd>
        <dt>Id</dt>
        <dd>
          <code>{l.id}</code>
        </dd>
        {(l.events ?? []).length > 0 && (
          <>
            <dt>Events</dt>
            <dd>
              <ul class="plain">
                {(l.events ?? []).map((e) => (
                  <li>
                    {e.event_type} {showDate(parseDate(e.time))} — {e.status}
                  </li>
                ))}
              </ul>
            </dd>
          </>
        )}
      </dl>
      <ErrorBanner error={err} />
      {!ended && (
        <form
          class="row-form"
          onSubmit={(e) => {
            e.preventDefault();
            void run(() => api('PUT', `/v1/leases/${encodeURIComponent(l.id)}`, { end_date: blazarDate(fromInput(newEnd)) }), false);
          }}
        >
          <Field label="New end (UTC)">
            <input type="datetime-local" required value={newEnd} onInput={(e) => setNewEnd(e.currentTarget.value)} />
          </Field>
          <button type="button" onClick={() => setNewEnd(inputDate(end + HOUR))}>
            end +1 h
          </button>
          <button type="button" onClick={() => setNewEnd(inputDate(end + DAY))}>
            end +1 day
          </button>
          <button type="submit" class="primary" disabled={busy}>
            Extend
          </button>
        </form>
      )}
      <div class="actions">
        {confirming ? (
          <>
            <span role="status">Delete this lease? Its hosts are released and erased.</span>
            <button type="button" class="danger" disabled={busy} onClick={() => void run(() => api('DELETE', `/v1/leases/${encodeURIComponent(l.id)}`), true)}>
              Yes, delete
            </button>
            <button type="button" onClick={() => setConfirming(false)}>
              Keep it
            </button>
          </>
        ) : (
          <button type="button" class="danger" onClick={() => setConfirming(true)}>
            Delete lease…
          </button>
        )}
      </div>
    </Dialog>
  );
}

function NewLeaseDialog(props: { draft: Draft; hosts: string[]; onClose: () => void; onCreated: (l: Lease) => void }) {
  const [name, setName] = useState('');
  const [chosen, setChosen] = useState<ReadonlySet<string>>(new Set(props.draft.hosts));
  const [start, setStart] = useState(inputDate(props.draft.start));
  const [end, setEnd] = useState(inputDate(props.draft.end));
  const [busy, setBusy] = useState(false);
  const [err, setErr] = useState<string | undefined>();
  const nameRef = useRef<HTMLInputElement>(null);
  const submit = async (e: Event) => {
    e.preventDefault();
    const hosts = props.hosts.filter((h) => chosen.has(h));
    if (hosts.length === 0) return setErr('Pick at least one host.');
    const s = fromInput(start);
    const en = fromInput(end);
    if (!(en > s)) return setErr('The end must be after the start.');
    setBusy(true);
    setErr(undefined);
    try {
      const r = await api<{ lease: Lease }>('POST', '/v1/leases', {
        name: name.trim(),
        // A start in the past (the current minute while the form was open) is "now" to Blazar.
        start_date: s <= Date.now() ? 'now' : blazarDate(s),
        end_date: blazarDate(en),
        reservations: [
          // Exactly the chosen hosts: each named by the filter, and no fewer or more of them.
          { resource_type: 'physical:host', min: hosts.length, max: hosts.length, hypervisor_properties: '', resource_properties: JSON.stringify(hostsFilter(hosts)) },
        ],
        events: [],
      });
      props.onCreated(r.lease);
    } catch (x) {
      setErr(x instanceof Error ? x.message : String(x));
    } finally {
      setBusy(false);
    }
  };
  return (
    <Dialog title="New lease" onClose={props.onClose} wide>
      <form onSubmit={(e) => void submit(e)}>
        <Field label="Name">
          <input ref={nameRef} required maxLength={80} value={name} onInput={(e) => setName(e.currentTarget.value)} autoFocus />
        </Field>
        <div class="two">
          <Field label="Start (UTC)" hint="In the past or now: starts at once">
            <input type="datetime-local" required value={start} onInput={(e) => setStart(e.currentTarget.value)} />
          </Field>
          <Field label="End (UTC)">
            <input type="datetime-local" required value={end} onInput={(e) => setEnd(e.currentTarget.value)} />
          </Field>
        </div>
        <fieldset class="hosts">
          <legend>Hosts ({chosen.size} chosen)</legend>
          {props.hosts.map((h) => (
            <label>
              <input
                type="checkbox"
                checked={chosen.has(h)}
                onChange={() => {
                  const n = new Set(chosen);
                  if (n.has(h)) n.delete(h);
                  else n.add(h);
                  setChosen(n);
                }}
              />
              {h}
            </label>
          ))}
        </fieldset>
        <ErrorBanner error={err} />
        <div class="actions">
          <button type="submit" class="primary" disabled={busy}>
            {busy ? 'Creating…' : 'Create lease'}
          </button>
          <button type="button" onClick={props.onClose}>
            Cancel
          </button>
        </div>
      </form>
    </Dialog>
  );
}
