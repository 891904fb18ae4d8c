// Playbook runs: the list, newest first, and one run with every step's effective mode and why,
// its actions, and (responders) cancelling it. Both refresh while runs go on.
import { useState } from 'preact/hooks';
import { api, ApiError, hasRole, Json, query, Session } from '../api';
import { Link, navigate } from '../router';
import { Badge, Fields, JsonBlock, Notice, Pager, Time, useApi } from '../ui';

export function RunsPage(props: { url: URL }) {
  const offset = Number(props.url.searchParams.get('offset') ?? 0);
  const list = useApi(`/api/v1/runs${query({ limit: 50, offset })}`, 5000);
  const rows: Json[] = list.data?.runs ?? [];
  return (
    <>
      <h1>Runs</h1>
      <Notice error={list.error} />
      <table id="runs">
        <thead><tr><th>started</th><th>playbook</th><th>state</th><th>step</th><th>waiting for</th><th>case</th><th>acts for</th></tr></thead>
        <tbody>
          {rows.map((r) => (
            <tr key={r.id}>
              <td><Link href={`/ui/runs/${r.id}`}><Time at={r.started_at} /></Link></td>
              <td><Link href={`/ui/runs/${r.id}`}>{r.playbook}</Link>{r.simulate_only ? ' (simulated)' : ''}</td>
              <td><Badge value={r.state} /></td>
              <td>{r.step}</td>
              <td>{r.waiting_for}</td>
              <td><Link href={`/ui/cases/${r.case_id}`}>{String(r.case_id ?? '').slice(0, 8)}</Link></td>
              <td>{r.requested_by}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {!list.error && list.data && rows.length === 0 ? <p class="muted">No playbook has run yet.</p> : null}
      <Pager page={list.data && { ...list.data, shown: rows.length }}
             onOffset={(o) => navigate(`/ui/runs${query({ offset: o })}`)} />
    </>
  );
}

export function RunPage(props: { id: string; session: Session }) {
  const path = `/api/v1/runs/${encodeURIComponent(props.id)}`;
  const run = useApi(path, 3000);
  const [reason, setReason] = useState('');
  const [error, setError] = useState('');
  if (run.error) return <Notice error={run.error} />;
  const r = run.data;
  if (!r) return <p class="muted">Loading…</p>;
  const cancel = async () => {
    setError('');
    try {
      await api(`${path}/cancel`, 'POST', { reason });
      run.reload();
    } catch (e) {
      setError(e instanceof ApiError ? e.message : String(e));
    }
  };
  return (
    <>
      <h1>Run of {r.playbook} <Badge value={r.state} /></h1>
      <Fields rows={[
        ['case', <Link href={`/ui/cases/${r.case_id}`}>{r.case_id}</Link>],
        ['alert', <Link href={`/ui/alerts/${r.alert_id}`}>{r.alert_id}</Link>],
        ['started by', r.started_by],
        ['acts for', r.requested_by],
        ['simulate only', r.simulate_only ? 'yes' : 'no'],
        ['waiting for', r.waiting_for],
        ['error', r.error],
        ['started', <Time at={r.started_at} />],
        ['finished', <Time at={r.finished_at} />],
      ]} />
      <h2>Steps</h2>
      <table id="run-steps">
        <thead><tr><th>step</th><th>kind</th><th>attempt</th><th>mode</th><th>why this mode</th><th>outcome</th><th>took</th></tr></thead>
        <tbody>
          {((r.steps ?? []) as Json[]).map((s, i) => (
            <tr key={i}>
              <td>{s.step}</td><td>{s.kind}</td><td class="num">{s.attempt}</td>
              <td><Badge value={s.mode} /></td><td>{s.mode_reason}</td><td>{s.outcome}</td>
              <td class="num">{s.duration_ms != null ? `${(s.duration_ms / 1000).toFixed(1)} s` : ''}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <h2>Actions</h2>
      <table id="run-actions">
        <thead><tr><th>kind</th><th>agent</th><th>state</th><th>outcome</th><th>approved by</th></tr></thead>
        <tbody>
          {((r.actions ?? []) as Json[]).map((a) => (
            <tr key={a.id}>
              <td><Link href={`/ui/actions/${a.id}`}>{a.kind}</Link></td>
              <td><Link href={`/ui/agents/${a.agent_id}`}>{a.agent_id.slice(0, 8)}</Link></td>
              <td><Badge value={a.state} /></td><td>{a.outcome}</td><td>{a.approver}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {hasRole(props.session, 'responder') && !r.finished_at ? (
        <>
          <h2>Cancel</h2>
          <div class="toolbar">
            <label>Reason (required)<textarea id="cancel-reason" value={reason} onInput={(e) => setReason((e.target as HTMLTextAreaElement).value)} /></label>
            <button class="danger" id="cancel-run" disabled={!reason.trim()} onClick={cancel}>Cancel run (undo what can be undone)</button>
          </div>
          <Notice error={error} />
        </>
      ) : null}
      <details><summary>Run as stored</summary><JsonBlock value={r} /></details>
    </>
  );
}
