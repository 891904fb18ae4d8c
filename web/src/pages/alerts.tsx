// Alerts as received and what the controller made of them: normalized fields, validation,
// enrichment and confidence, and who submitted each.
import { Json, query } from '../api';
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

export function AlertPage(props: { id: string }) {
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
      <h2>Observables</h2><JsonBlock value={a.observables} />
      <h2>Validation</h2><JsonBlock value={a.validation} />
      <h2>Enrichment</h2><JsonBlock value={a.enrichment} />
      <h2>Confidence</h2><JsonBlock value={a.confidence} />
      <details><summary>As received</summary><JsonBlock value={a.raw} /></details>
    </>
  );
}
