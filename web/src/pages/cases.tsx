// Cases: a filtered list, and a case from its first event to its resolution (the case report's
// JSON: alerts, runs and their steps, actions simulated and real, evidence, notes, timeline).
import { useState } from 'preact/hooks';
import { api, ApiError, hasRole, Json, query, Session } from '../api';
import { Link, navigate } from '../router';
import { Badge, bytes, Fields, JsonBlock, Notice, Pager, Time, useApi } from '../ui';

const statuses = ['new', 'in_progress', 'contained', 'resolved', 'false_positive'];
const severities = ['low', 'medium', 'high', 'critical'];

export function CasesPage(props: { url: URL }) {
  const p = props.url.searchParams;
  const filter = {
    status: p.get('status') ?? '',
    severity: p.get('severity') ?? '',
    host: p.get('host') ?? '',
    since: p.get('since') ?? '3650d',
    offset: Number(p.get('offset') ?? 0),
  };
  const list = useApi(`/api/v1/cases${query({ ...filter, limit: 50 })}`, 10000);
  const go = (change: Record<string, string | number>) =>
    navigate(`/ui/cases${query({ ...filter, offset: 0, ...change })}`);
  const [host, setHost] = useState(filter.host);
  const rows: Json[] = list.data?.cases ?? [];
  const select = (name: string, values: string[], value: string) => (
    <label>
      {name}
      <select id={`filter-${name}`} value={value} onChange={(e) => go({ [name]: (e.target as HTMLSelectElement).value })}>
        <option value="">any</option>
        {values.map((v) => <option key={v} value={v}>{v}</option>)}
      </select>
    </label>
  );
  return (
    <>
      <h1>Cases</h1>
      <form class="filters" onSubmit={(e) => { e.preventDefault(); go({ host }); }}>
        {select('status', statuses, filter.status)}
        {select('severity', severities, filter.severity)}
        <label>host<input id="filter-host" value={host} onInput={(e) => setHost((e.target as HTMLInputElement).value)} /></label>
        <label>
          opened in the last
          <select id="filter-since" value={filter.since} onChange={(e) => go({ since: (e.target as HTMLSelectElement).value })}>
            {[['24h', '24 hours'], ['7d', '7 days'], ['30d', '30 days'], ['90d', '90 days'], ['3650d', 'any time']].map(
              ([v, text]) => <option key={v} value={v}>{text}</option>)}
          </select>
        </label>
        <button type="submit">Filter</button>
      </form>
      <Notice error={list.error} />
      <table id="cases">
        <thead><tr><th>opened</th><th>title</th><th>severity</th><th>status</th><th>host</th><th>alerts</th><th>assignee</th></tr></thead>
        <tbody>
          {rows.map((c) => (
            <tr key={c.id}>
              <td><Time at={c.created_at} /></td>
              <td><Link href={`/ui/cases/${c.id}`}>{c.title}</Link></td>
              <td><Badge value={c.severity} /></td>
              <td><Badge value={c.status} /></td>
              <td>{c.host}</td>
              <td class="num">{c.alert_count}</td>
              <td>{c.assignee}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <Pager page={list.data && { ...list.data, shown: rows.length }} onOffset={(o) => go({ offset: o })} />
    </>
  );
}

function CaseEditor(props: { c: Json; onSaved: () => void }) {
  const [status, setStatus] = useState('');
  const [severity, setSeverity] = useState('');
  const [assignee, setAssignee] = useState('');
  const [note, setNote] = useState('');
  const [error, setError] = useState('');
  const save = async (e: Event) => {
    e.preventDefault();
    setError('');
    try {
      await api(`/api/v1/cases/${encodeURIComponent(props.c.id)}`, 'POST', { status, severity, assignee, note });
      setStatus(''); setSeverity(''); setAssignee(''); setNote('');
      props.onSaved();
    } catch (err) {
      setError(err instanceof ApiError ? err.message : String(err));
    }
  };
  const choose = (name: string, values: string[], value: string, set: (v: string) => void) => (
    <label>
      {name}
      <select id={`case-${name}`} value={value} onChange={(e) => set((e.target as HTMLSelectElement).value)}>
        <option value="">(unchanged)</option>
        {values.map((v) => <option key={v} value={v}>{v}</option>)}
      </select>
    </label>
  );
  return (
    <form class="filters" onSubmit={save}>
      {choose('status', statuses, status, setStatus)}
      {choose('severity', severities, severity, setSeverity)}
      <label>assignee<input id="case-assignee" value={assignee} onInput={(e) => setAssignee((e.target as HTMLInputElement).value)} /></label>
      <label>note<textarea id="case-note" value={note} onInput={(e) => setNote((e.target as HTMLTextAreaElement).value)} /></label>
      <button class="primary" id="case-save" type="submit" disabled={!status && !severity && !assignee && !note.trim()}>Save</button>
      <Notice error={error} />
    </form>
  );
}

export function CasePage(props: { id: string; session: Session }) {
  const id = encodeURIComponent(props.id);
  const report = useApi(`/api/v1/cases/${id}/report?format=json`, 10000);
  if (report.error) return <Notice error={report.error} />;
  const r = report.data;
  if (!r) return <p class="muted">Loading…</p>;
  const c = r.case;
  const mayDownload = hasRole(props.session, 'responder');
  const simulated = (r.actions as Json[]).filter((a) => a.state === 'simulated');
  const real = (r.actions as Json[]).filter((a) => a.state !== 'simulated');
  const actionRows = (list: Json[]) => (
    <tbody>
      {list.map((a) => (
        <tr key={a.id}>
          <td><Link href={`/ui/actions/${a.id}`}>{a.kind}</Link></td>
          <td><Link href={`/ui/agents/${a.agent_id}`}>{a.agent_id.slice(0, 8)}</Link></td>
          <td><Badge value={a.state} /></td>
          <td>{a.outcome}</td>
          <td>{a.requester}{a.approver ? ` / approved by ${a.approver}` : ''}</td>
          <td><Time at={a.issued_at} /></td>
        </tr>
      ))}
    </tbody>
  );
  const actionHead = <thead><tr><th>kind</th><th>agent</th><th>state</th><th>outcome</th><th>requested / approved</th><th>issued</th></tr></thead>;
  return (
    <>
      <h1 id="case-title">{c.title}</h1>
      <Fields rows={[
        ['status', <Badge value={c.status} />],
        ['severity', <Badge value={c.severity} />],
        ['host', c.host],
        ['assignee', c.assignee],
        ['opened', <Time at={c.created_at} />],
        ['validation decided', <Time at={c.validated_at} />],
        ['contained', <Time at={c.contained_at} />],
        ['resolved', <Time at={c.resolved_at} />],
        ['report', <span>
          <a href={`/api/v1/cases/${id}/report?format=html`} target="_blank" rel="noopener">HTML</a>{' · '}
          <a href={`/api/v1/cases/${id}/report?format=md`} target="_blank" rel="noopener">Markdown</a>{' · '}
          <a href={`/api/v1/cases/${id}/report?format=json`} target="_blank" rel="noopener">JSON</a>
        </span>],
      ]} />
      {hasRole(props.session, 'analyst') ? <><h2>Change</h2><CaseEditor c={c} onSaved={report.reload} /></> : null}
      <h2>Alerts ({r.alerts.length})</h2>
      <table id="case-alerts">
        <thead><tr><th>received</th><th>rule</th><th>severity</th><th>host</th><th>status</th><th>confidence</th></tr></thead>
        <tbody>
          {(r.alerts as Json[]).map((a) => (
            <tr key={a.id}>
              <td><Link href={`/ui/alerts/${a.id}`}><Time at={a.received_at} /></Link></td>
              <td class="rule-name">{a.rule?.name}</td>
              <td><Badge value={a.severity} /></td>
              <td>{a.host?.name}</td>
              <td><Badge value={a.status} /></td>
              <td>{a.confidence ? `${a.confidence.score ?? ''} ${a.confidence.decision ?? ''}` : ''}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <h2>Playbook runs ({r.runs.length})</h2>
      <table id="case-runs">
        <thead><tr><th>started</th><th>playbook</th><th>state</th><th>started by / for</th><th>steps</th></tr></thead>
        <tbody>
          {(r.runs as Json[]).map((run) => (
            <tr key={run.id}>
              <td><Link href={`/ui/runs/${run.id}`}><Time at={run.started_at} /></Link></td>
              <td><Link href={`/ui/runs/${run.id}`}>{run.playbook}</Link></td>
              <td><Badge value={run.state} /></td>
              <td>{run.started_by}{run.requested_by && run.requested_by !== run.started_by ? ` for ${run.requested_by}` : ''}</td>
              <td>{(run.steps ?? []).map((s: Json) => `${s.step}: ${s.mode ? `${s.mode}, ` : ''}${s.outcome}`).join(' · ')}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <h2>Actions ({real.length} carried out, {simulated.length} simulated and not sent)</h2>
      <table id="case-actions">{actionHead}{actionRows(r.actions as Json[])}</table>
      <h2>Evidence ({r.evidence.length})</h2>
      <table id="case-evidence">
        <thead><tr><th>object</th><th>SHA-256</th><th>size</th><th>from</th><th>stored</th><th>downloaded by</th></tr></thead>
        <tbody>
          {(r.evidence as Json[]).map((e) => (
            <tr key={`${e.sha256}-${e.action_id}`}>
              <td>{e.name}</td>
              <td class="mono">
                {mayDownload && e.stored
                  ? <a href={`/api/v1/evidence/${encodeURIComponent(e.sha256)}`} download={e.name}>{e.sha256}</a>
                  : e.sha256}
              </td>
              <td class="num">{bytes(e.size)}</td>
              <td><Link href={`/ui/actions/${e.action_id}`}>{e.kind}</Link></td>
              <td>{e.stored ? <Time at={e.stored_at} /> : 'not yet'}</td>
              <td>{(e.downloads as Json[]).map((d) => `${d.by} (${new Date(d.at).toLocaleString()})`).join(', ')}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {!mayDownload && r.evidence.length ? <p class="muted">Downloading evidence needs the responder role: memory images and collected files hold secrets.</p> : null}
      <h2>Notes ({r.notes.length})</h2>
      {(r.notes as Json[]).map((n, i) => <div class="notice" key={i}><span class="muted"><Time at={n.at} /> {n.author}:</span> <span class="note-text">{n.text}</span></div>)}
      <h2>Timeline</h2>
      <table id="case-timeline">
        <thead><tr><th>at</th><th>what</th><th>by</th></tr></thead>
        <tbody>
          {(r.timeline as Json[]).map((e, i) => (
            <tr key={i}><td><Time at={e.at} /></td><td>{e.what}</td><td>{e.actor}</td></tr>
          ))}
        </tbody>
      </table>
      <details><summary>Approvals ({r.approvals.length})</summary><JsonBlock value={r.approvals} /></details>
    </>
  );
}
