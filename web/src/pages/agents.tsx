// Agents: status, facts, labels; admins label and revoke them.
import { useState } from 'preact/hooks';
import { api, ApiError, hasRole, Json, query, Session } from '../api';
import { Link, navigate } from '../router';
import { Badge, Fields, Notice, Pager, Time, useApi } from '../ui';

export function AgentsPage(props: { url: URL }) {
  const p = props.url.searchParams;
  const filter = { status: p.get('status') ?? '', q: p.get('q') ?? '', label: p.get('label') ?? '', offset: Number(p.get('offset') ?? 0) };
  const list = useApi(`/api/v1/agents${query({ ...filter, limit: 50 })}`, 10000);
  const go = (change: Record<string, string | number>) => navigate(`/ui/agents${query({ ...filter, offset: 0, ...change })}`);
  const [q, setQ] = useState(filter.q);
  const [label, setLabel] = useState(filter.label);
  const rows: Json[] = list.data?.agents ?? [];
  return (
    <>
      <h1>Agents</h1>
      <form class="filters" onSubmit={(e) => { e.preventDefault(); go({ q, label }); }}>
        <label>
          status
          <select id="filter-status" value={filter.status} onChange={(e) => go({ status: (e.target as HTMLSelectElement).value })}>
            <option value="">any</option>
            {['online', 'offline', 'revoked'].map((s) => <option key={s} value={s}>{s}</option>)}
          </select>
        </label>
        <label>hostname contains<input id="filter-q" value={q} onInput={(e) => setQ((e.target as HTMLInputElement).value)} /></label>
        <label>label<input id="filter-label" value={label} onInput={(e) => setLabel((e.target as HTMLInputElement).value)} /></label>
        <button type="submit">Filter</button>
      </form>
      <Notice error={list.error} />
      <table id="agents">
        <thead><tr><th>hostname</th><th>status</th><th>OS</th><th>addresses</th><th>labels</th><th>last seen</th><th>agent</th></tr></thead>
        <tbody>
          {rows.map((a) => (
            <tr key={a.id}>
              <td><Link href={`/ui/agents/${a.id}`}>{a.hostname || a.id}</Link></td>
              <td><Badge value={a.status} /></td>
              <td>{a.os} {a.os_version}</td>
              <td>{(a.ip_addresses ?? []).join(', ')}</td>
              <td>{(a.labels ?? []).join(', ')}</td>
              <td><Time at={a.last_seen} /></td>
              <td>{a.agent_version}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <Pager page={list.data && { ...list.data, shown: rows.length }} onOffset={(o) => go({ offset: o })} />
    </>
  );
}

export function AgentPage(props: { id: string; session: Session }) {
  const path = `/api/v1/agents/${encodeURIComponent(props.id)}`;
  const agent = useApi(path, 10000);
  const [labels, setLabels] = useState<string | null>(null);
  const [error, setError] = useState('');
  if (agent.error) return <Notice error={agent.error} />;
  const a = agent.data;
  if (!a) return <p class="muted">Loading…</p>;
  const admin = hasRole(props.session, 'admin');
  const network: Json = a.network ?? {};
  const post = async (what: string, body?: unknown) => {
    setError('');
    try {
      await api(`${path}/${what}`, 'POST', body);
      agent.reload();
      setLabels(null);
    } catch (e) {
      setError(e instanceof ApiError ? e.message : String(e));
    }
  };
  return (
    <>
      <h1>{a.hostname || a.id}</h1>
      <Fields rows={[
        ['status', <Badge value={a.status} />],
        ['network (last Riposte action)', network.last_action
          ? <span>{network.quarantined ? <Badge value="quarantined" /> : 'released'} by <Link href={`/ui/actions/${network.action_id}`}>{network.last_action}</Link> <Time at={network.at} /></span>
          : 'never quarantined by Riposte'],
        ['id', <span class="mono">{a.id}</span>],
        ['OS', `${a.os} ${a.os_version} (${a.kernel}, ${a.arch})`],
        ['addresses', (a.ip_addresses ?? []).join(', ')],
        ['labels', (a.labels ?? []).join(', ')],
        ['agent', `${a.agent_version} (protocol ${a.protocol_version})`],
        ['capabilities', (a.capabilities ?? []).join(', ')],
        ['connected since', <Time at={a.connected_since} />],
        ['last heartbeat', <Time at={a.last_heartbeat} />],
        ['connects from', a.remote_address],
        ['last disconnect', a.last_disconnect_reason],
        ['enrolled', <Time at={a.enrolled_at} />],
        ['revoked', <Time at={a.revoked_at} />],
        ['certificate', <span class="mono">{a.cert_fingerprint}</span>],
      ]} />
      {admin ? (
        <>
          <h2>Manage</h2>
          <div class="toolbar">
            <label>labels (comma separated)
              <input id="agent-labels" value={labels ?? (a.labels ?? []).join(', ')} onInput={(e) => setLabels((e.target as HTMLInputElement).value)} />
            </label>
            <button id="save-labels" onClick={() => post('labels', { labels: (labels ?? '').split(',').map((s) => s.trim()).filter(Boolean) })} disabled={labels === null}>Save labels</button>
            <button class="danger" id="revoke" disabled={a.status === 'revoked'}
                    onClick={() => { if (confirm(`Revoke ${a.hostname}? Its certificate stops working at once.`)) post('revoke'); }}>Revoke</button>
          </div>
          <Notice error={error} />
        </>
      ) : null}
    </>
  );
}
