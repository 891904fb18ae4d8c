// Playbooks loaded by the controller; for each, its impact map (what each action step can touch
// and in which mode) and a backtest over chosen past alerts (what it would have done; nothing is
// dispatched or stored).
import { useState } from 'preact/hooks';
import { api, ApiError, Json } from '../api';
import { Link } from '../router';
import { Badge, Notice, useApi } from '../ui';

function Impact(props: { name: string }) {
  const impact = useApi(`/api/v1/playbooks/${encodeURIComponent(props.name)}/impact`);
  const rows: Json[] = impact.data?.impact ?? [];
  return (
    <>
      <Notice error={impact.error} />
      {impact.data && !rows.length ? <Notice info="No action steps: it only reads." /> : null}
      {rows.length ? (
        <table class="impact">
          <thead><tr><th>step</th><th>action</th><th>asset</th><th>environment</th><th>criticality</th><th>stakeholders</th><th>declared</th><th>effective</th><th>hosts</th></tr></thead>
          <tbody>
            {rows.map((r, i) => (
              <tr key={i}>
                <td>{r.step}</td><td>{r.action}</td><td>{r.asset}</td><td>{r.environment}</td>
                <td><Badge value={r.criticality} /></td><td>{(r.stakeholders ?? []).join(', ')}</td>
                <td><Badge value={r.declared_mode} /></td>
                <td title={r.why}><Badge value={r.effective_mode} /></td><td>{r.hosts}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
    </>
  );
}

function Backtest(props: { name: string }) {
  const [ids, setIds] = useState('');
  const [results, setResults] = useState<Json[] | null>(null);
  const [error, setError] = useState('');
  const newest = async () => {
    try {
      const list = await api('/api/v1/alerts?limit=20');
      setIds((list.alerts as Json[]).map((a) => a.id).join('\n'));
    } catch (e) {
      setError(e instanceof ApiError ? e.message : String(e));
    }
  };
  const run = async (e: Event) => {
    e.preventDefault();
    setError('');
    try {
      const alerts = ids.split(/\s+/).map((s) => s.trim()).filter(Boolean);
      const answer = await api(`/api/v1/playbooks/${encodeURIComponent(props.name)}/backtest`, 'POST', { alerts });
      setResults(answer.results);
    } catch (err) {
      setError(err instanceof ApiError ? err.message : String(err));
    }
  };
  return (
    <form onSubmit={run}>
      <div class="filters">
        <label>alert ids (one per line)<textarea class="backtest-ids" value={ids} onInput={(e) => setIds((e.target as HTMLTextAreaElement).value)} /></label>
        <button type="button" onClick={newest}>The 20 newest alerts</button>
        <button class="primary" type="submit" disabled={!ids.trim()}>Backtest</button>
      </div>
      <Notice error={error} />
      {results ? (
        <table class="backtest">
          <thead><tr><th>alert</th><th>host</th><th>triggered</th><th>path</th><th>would dispatch (declared → effective mode)</th></tr></thead>
          <tbody>
            {results.map((r) => (
              <tr key={r.alert}>
                <td><Link href={`/ui/alerts/${r.alert}`}>{r.rule || r.alert}</Link></td>
                <td>{r.host}</td>
                <td>{r.triggered ? 'yes' : `no: ${r.not_triggered_because}`}</td>
                <td>{(r.path as Json[]).map((s) => `${s.step}: ${s.outcome}`).join(' → ')}{r.error ? ` FAILED: ${r.error}` : ''}</td>
                <td>{(r.actions as Json[]).map((a, i) => (
                  <div key={i} title={a.why}>{a.action} to {a.target}: {a.declared_mode} → <Badge value={a.mode} /></div>
                ))}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
    </form>
  );
}

export function PlaybooksPage() {
  const list = useApi('/api/v1/playbooks');
  const rows: Json[] = list.data?.playbooks ?? [];
  return (
    <>
      <h1>Playbooks</h1>
      <Notice error={list.error} />
      {list.data && !rows.length ? <Notice info="No playbooks are loaded (playbooks.dir in the controller's configuration)." /> : null}
      <table id="playbooks">
        <thead><tr><th>name</th><th>version</th><th>description</th><th>owner</th><th>file</th><th>steps</th></tr></thead>
        <tbody>
          {rows.map((p) => (
            <tr key={p.name}>
              <td>{p.name}</td><td>{p.version}</td><td>{p.description}</td><td>{p.owner}</td>
              <td class="mono">{p.file}</td><td class="num">{Array.isArray(p.steps) ? p.steps.length : p.steps}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {rows.map((p) => (
        <section key={p.name}>
          <h2>{p.name}</h2>
          <details><summary>Impact: what each action step can touch, and in which mode</summary><Impact name={p.name} /></details>
          <details><summary>Backtest over past alerts</summary><Backtest name={p.name} /></details>
        </section>
      ))}
    </>
  );
}
