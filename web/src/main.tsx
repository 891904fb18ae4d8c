// The console's shell: sign-in, the navigation bar and the page for the current address.
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { api, ApiError, Session, setSession, whenSignedOut } from './api';
import { Link, navigate, useLocation } from './router';
import { Notice, useApi } from './ui';
import { ApprovalPage, ApprovalsPage } from './pages/approvals';
import { CasePage, CasesPage } from './pages/cases';
import { AlertPage, AlertsPage } from './pages/alerts';
import { AgentPage, AgentsPage } from './pages/agents';
import { ActionPage, ActionsPage } from './pages/actions';
import { RunPage, RunsPage } from './pages/runs';
import { PlaybooksPage } from './pages/playbooks';
import { AuditPage } from './pages/audit';

function SignIn(props: { onSignedIn: (s: Session) => void }) {
  const [token, setToken] = useState('');
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError('');
    try {
      // The token goes to the controller once, in a request body; the browser keeps only the
      // session cookie the answer sets. Nothing is written to storage or to the address.
      const session = await api<Session>('/api/v1/session', 'POST', { token });
      setToken('');
      props.onSignedIn(session);
    } catch (err) {
      setError(err instanceof ApiError ? err.message : String(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <form class="signin" onSubmit={submit} autocomplete="off">
      <h1>Riposte</h1>
      <p class="muted">Sign in with your operator token (from <code>riposte operators create</code>).</p>
      <label>
        Operator token
        <input id="token" type="password" value={token} autocomplete="off"
               onInput={(e) => setToken((e.target as HTMLInputElement).value)} />
      </label>
      <p><button class="primary" id="sign-in" type="submit" disabled={busy || !token}>Sign in</button></p>
      <Notice error={error} />
    </form>
  );
}

const sections: [string, string][] = [
  ['approvals', 'Approvals'],
  ['cases', 'Cases'],
  ['alerts', 'Alerts'],
  ['agents', 'Agents'],
  ['actions', 'Actions'],
  ['runs', 'Runs'],
  ['playbooks', 'Playbooks'],
  ['audit', 'Audit'],
];

function Shell(props: { session: Session; onSignOut: () => void }) {
  const url = useLocation();
  const parts = url.pathname.replace(/^\/ui\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
  const [section, id] = [parts[0] ?? 'approvals', parts[1]];
  // The number of decisions waiting, on every page, fresh every 5 s.
  const pending = useApi('/api/v1/approvals?state=pending&limit=100', 5000);
  const waiting = pending.data?.approvals?.length ?? 0;
  useEffect(() => {
    const count = pending.error ? '(?) ' : waiting ? `(${waiting}) ` : '';
    document.title = `${count}Riposte — ${section}`;
  }, [waiting, section, pending.error]);
  const s = props.session;
  let page;
  switch (section) {
    case 'approvals': page = id ? <ApprovalPage id={id} session={s} /> : <ApprovalsPage url={url} />; break;
    case 'cases': page = id ? <CasePage id={id} session={s} /> : <CasesPage url={url} />; break;
    case 'alerts': page = id ? <AlertPage id={id} session={s} /> : <AlertsPage url={url} />; break;
    case 'agents': page = id ? <AgentPage id={id} session={s} /> : <AgentsPage url={url} />; break;
    case 'actions': page = id ? <ActionPage id={id} /> : <ActionsPage url={url} session={s} />; break;
    case 'runs': page = id ? <RunPage id={id} session={s} /> : <RunsPage url={url} />; break;
    case 'playbooks': page = <PlaybooksPage />; break;
    case 'audit': page = <AuditPage session={s} />; break;
    default: page = <Notice error={`no page ${section}`} />;
  }
  return (
    <>
      <header class="top">
        <span class="brand">Riposte</span>
        <nav>
          {sections.map(([key, title]) => (
            <Link key={key} href={`/ui/${key}`} class={key === section ? 'active' : ''}>
              {title}
              {key === 'approvals' && pending.error
                ? <span class="count" id="pending-count" title={`cannot tell what waits: ${pending.error}`}>?</span>
                : key === 'approvals' && waiting > 0 ? <span class="count" id="pending-count">{waiting}</span> : null}
            </Link>
          ))}
        </nav>
        <span class="who" id="who">{s.name} ({s.role})</span>
        <button id="sign-out" onClick={props.onSignOut}>Sign out</button>
      </header>
      <main>{page}</main>
    </>
  );
}

function App() {
  const [session, setCurrent] = useState<Session | null | undefined>(undefined);
  const signedIn = (s: Session | null) => {
    setSession(s);
    setCurrent(s);
  };
  useEffect(() => {
    whenSignedOut(() => signedIn(null));
    api<Session>('/api/v1/session').then(signedIn).catch(() => signedIn(null));
  }, []);
  if (session === undefined) return <p class="muted">Loading…</p>;
  if (session === null) return <SignIn onSignedIn={signedIn} />;
  const signOut = async () => {
    try {
      await api('/api/v1/session', 'DELETE');
    } finally {
      signedIn(null);
      navigate('/ui/');
    }
  };
  return <Shell session={session} onSignOut={signOut} />;
}

render(<App />, document.getElementById('app')!);
