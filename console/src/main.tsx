import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { loadSession, saveSession, type Session, setUnauthorizedHandler, signIn, signOut } from './api.ts';
import { Calendar } from './calendar.tsx';
import { ErrorBanner, Field } from './ui.tsx';
import { NodeDetail, Nodes, Sites, TaskDetail, Tasks } from './views.tsx';
import './style.css';

/**
 * The Slipway web console: one page, the views chosen by the URL's hash (`#/nodes/<uuid>`), so
 * that every view has an address and Back works, with nothing for the server to route.
 */
const VIEWS = [
  ['calendar', 'Calendar'],
  ['nodes', 'Nodes'],
  ['tasks', 'Tasks'],
  ['sites', 'Sites'],
] as const;

function useHash(): string[] {
  const read = () => location.hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
  const [parts, setParts] = useState(read);
  useEffect(() => {
    const on = () => setParts(read());
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return parts;
}

function SignIn(props: { onSignedIn: (s: Session) => void; reason: string | undefined }) {
  const [user, setUser] = useState('');
  const [password, setPassword] = useState('');
  const [project, setProject] = useState('');
  const [busy, setBusy] = useState(false);
  const [err, setErr] = useState<string | undefined>(props.reason);
  return (
    <main class="signin">
      <form
        aria-labelledby="signin-title"
        onSubmit={async (e) => {
          e.preventDefault();
          setBusy(true);
          setErr(undefined);
          try {
            props.onSignedIn(await signIn(user.trim(), password, project.trim()));
          } catch (x) {
            setErr(x instanceof Error ? x.message : String(x));
          } finally {
            setBusy(false);
          }
        }}
      >
        <h1 id="signin-title">Sign in to Slipway</h1>
        <Field label="User name">
          <input name="username" autoComplete="username" required value={user} onInput={(e) => setUser(e.currentTarget.value)} autoFocus />
        </Field>
        <Field label="Password">
          <input name="password" type="password" autoComplete="current-password" required value={password} onInput={(e) => setPassword(e.currentTarget.value)} />
        </Field>
        <Field label="Project">
          <input name="project" required value={project} onInput={(e) => setProject(e.currentTarget.value)} />
        </Field>
        <ErrorBanner error={err} />
        <button type="submit" class="primary" disabled={busy}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
    </main>
  );
}

function App() {
  const [session, setSession] = useState<Session | undefined>(loadSession);
  const [reason, setReason] = useState<string | undefined>();
  const [view = 'calendar', id] = useHash();
  useEffect(() => {
    setUnauthorizedHandler((why) => {
      saveSession(undefined);
      setSession(undefined);
      setReason(`Signed out: ${why}`);
    });
  }, []);
  if (!session) {
    return (
      <SignIn
        reason={reason}
        onSignedIn={(s) => {
          saveSession(s);
          setReason(undefined);
          setSession(s);
        }}
      />
    );
  }
  const body =
    view === 'nodes' && id ? (
      <NodeDetail id={id} />
    ) : view === 'nodes' ? (
      <Nodes />
    ) : view === 'tasks' && id ? (
      <TaskDetail id={id} />
    ) : view === 'tasks' ? (
      <Tasks />
    ) : view === 'sites' ? (
      <Sites projectId={session.projectId} />
    ) : (
      <Calendar />
    );
  return (
    <>
      <header class="top">
        <strong class="brand">Slipway</strong>
        <nav aria-label="Views">
          {VIEWS.map(([v, label]) => (
            <a href={`#/${v}`} aria-current={view === v || (v === 'calendar' && !VIEWS.some(([x]) => x === view)) ? 'page' : undefined}>
              {label}
            </a>
          ))}
        </nav>
        <span class="who" data-testid="who">
          {session.user} · {session.project} ({session.roles.join(', ')})
        </span>
        <button
          type="button"
          onClick={() => {
            void signOut(session);
            saveSession(undefined);
            setSession(undefined);
          }}
        >
          Sign out
        </button>
      </header>
      <main id="main" tabIndex={-1}>
        {body}
      </main>
    </>
  );
}

render(<App />, document.getElementById('app')!);
