// Alerts as received and what the controller made of them: normalized fields, validation,
// enrichment and confidence, and who submitted each.
import { useState } from 'preact/hooks';
import { api, ApiError, hasRole, Json, query, Session } from '../api';
import { Link, navigate } from '../router';
import { Badge, Fields, JsonBlock, Notice, Pager, Time, useApi } from '../ui';

const statuses = ['new', 'validating', 'qualified', 'not_relevant', 'undetermined', 'unvalidated'];

export function AlertsPage(props: { url: URL }) {
  const status = props.url.searchParams.get('status') ?? '';
  const offset = Number(props.url.searchParams.get('offset') ?? 0);
  const list = useApi(`/api/v1/alerts${query({ status, limit: 50, offset })}`, 10000);
  const go = (change: Record<string, string | number>) =>
    navigate(`/ui/alerts${query({ status, offset: 0, ...change })}`);
  const rows: Json[] = list.data?.alerts ?? [];
  return (
    <>
      <h1>Alerts</h1>
      <div class="toolbar">
        <label>
          status
          <select id="filter-status" value={status} onChange={(e) => go({ status: (e.target as HTMLSelectElement).value })}>
            <option value="">any</option>
            {statuses.map((s) => <option key={s} value={s}>{s}</option>)}
          </select>
        </label>
      </div>
      <Notice error={list.error} />
      <table id="alerts">
        <thead><tr><th>received</th><th>rule</th><th>severity</th><th>host</th><th>source</th><th>status</th><th>decision</th><th>case</th></tr></thead>
        <tbody>
          {rows.map((a) => (
            <tr key={a.id}>
              <td><Link href={`/ui/alerts/${a.id}`}><Time at={a.received_at} /></Link></td>
              <td class="rule-name"><Link href={`/ui/alerts/${a.id}`}>{a.rule?.name || a.rule?.id || '(no rule name)'}</Link></td>
              <td><Badge value={a.severity} /></td>
              <td>{a.host?.name}</td>
              <td>{a.source}</td>
              <td><Badge value={a.status} /></td>
              <td>{a.confidence?.decision ?? ''}</td>
              <td>{a.case_id ? <Link href={`/ui/cases/${a.case_id}`}>case</Link> : ''}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <Pager page={list.data && { ...list.data, shown: rows.length }} onOffset={(o) => go({ offset: o })} />
    </>
  );
}

// Start a loaded playbook over this alert: responders for real or simulated, analysts simulated
// only (every action signed and recorded, none sent). The run's page opens.
function StartRun(props: { alertId: string; session: Session }) {
  const playbooks = useApi('/api/v1/playbooks');
  const responder = hasRole(props.session, 'responder');
  const [name, setName] = useState('');
  const [simulate, setSimulate] = useState(!responder);
  const [force, setForce] = useState(false);
  const [error, setError] = useState('');
  const start = async (e: Event) => {
    e.preventDefault();
    setError('');
    try {
      const run = await api('/api/v1/runs', 'POST', { playbook: name, alert_id: props.alertId, simulate, force });
      navigate(`/ui/runs/${run.id}`);
    } catch (err) {
      if (err instanceof ApiError && err.status === 409)
        setError(`${err.message.split('; to start another')[0]}. To start another anyway, tick "even if a run of it over this alert has not ended".`);
      else setError(err instanceof ApiError ? err.message : String(err));
    }
  };
  const names: Json[] = playbooks.data?.playbooks ?? [];
  return (
    <form class="filters" id="start-run" onSubmit={start}>
      <label>
        playbook
        <select id="run-playbook" value={name} onChange={(e) => setName((e.target as HTMLSelectElement).value)}>
          <option value="">choose…</option>
          {names.map((p) => <option key={p.name} value={p.name}>{p.name}</option>)}
        </select>
      </label>
      <label class="inline">
        <input id="run-simulate" type="checkbox" checked={simulate} disabled={!responder}
               onChange={(e) => setSimulate((e.target as HTMLInputElement).checked)} />
        simulate only{responder ? '' : ' (analysts may only simulate)'}
      </label>
      <label class="inline">
        <input id="run-force" type="checkbox" checked={force} onChange={(e) => setForce((e.target as HTMLInputElement).checked)} />
        even if a run of it over this alert has not ended
      </label>
      <button class="primary" id="run-start" type="submit" disabled={!name}>Start</button>
      {names.length === 0 && playbooks.data ? <span class="muted">no playbooks are loaded</span> : null}
      <Notice error={error} />
    </form>
  );
}

export function AlertPage(props: { id: string; session: Session }) {
  const alert = useApi(`/api/v1/alerts/${encodeURIComponent(props.id)}`);
  if (alert.error) return <Notice error={alert.error} />;
  const a = alert.data;
  if (!a) return <p class="muted">Loading…</p>;
  return (
    <>
      <h1 class="rule-name">{a.rule?.name || a.rule?.id || 'Alert'}</h1>
      <Fields rows={[
        ['status', <Badge value={a.status} />],
        ['severity', <Badge value={a.severity} />],
        ['host', `${a.host?.name ?? ''} ${(a.host?.ip ?? []).join(', ')}`],
        ['source', `${a.source} ${a.source_id ?? ''}`],
        ['submitted by', a.submitted_by ? `${a.submitted_by.name} (${a.submitted_by.role}${a.submitted_by.max_mode ? `, at most ${a.submitted_by.max_mode}` : ''})` : null],
        ['event time', <Time at={a.timestamp} />],
        ['received', <Time at={a.received_at} />],
        ['case', a.case_id ? <Link href={`/ui/cases/${a.case_id}`}>{a.case_id}</Link> : null],
      ]} />
      {(a.notes ?? []).length > 0 ? (
        <>
          <h2>Notes from intake</h2>
          <p class="muted">What was read differently from what was sent: fields dropped and why.</p>
          <ul id="alert-notes">{(a.notes as string[]).map((n, i) => <li key={i}>{n}</li>)}</ul>
        </>
      ) : null}
      {hasRole(props.session, 'analyst') ? <><h2>Run a playbook over it</h2><StartRun alertId={a.id} session={props.session} /></> : null}
      <h2>Observables</h2><JsonBlock value={a.observables} />
      <h2>Validation</h2><JsonBlock value={a.validation} />
      <h2>Enrichment</h2><JsonBlock value={a.enrichment} />
      <h2>Confidence</h2><JsonBlock value={a.confidence} />
      <details><summary>As received</summary><JsonBlock value={a.raw} /></details>
    </>
  );
}
