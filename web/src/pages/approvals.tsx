// Approvals: the first page a responder sees when something waits. What would run, where, on
// whose assets, why and for whom; approve or deny with a reason, or why you cannot decide.
import { useState } from 'preact/hooks';
import { api, ApiError, hasRole, Json, query, Session } from '../api';
import { Link, navigate } from '../router';
import { Badge, Fields, JsonBlock, Notice, Pager, parsed, Time, useApi } from '../ui';

function targets(what: Json): string {
  const list = what?.targets;
  if (!Array.isArray(list)) return '';
  return list.map((t: Json) => t.hostname || t.agent_id).join(', ');
}

// The enriched process an alert names: what an approver needs before a kill.
function processText(p: Json): string {
  const cmd = Array.isArray(p.cmdline) ? p.cmdline.join(' ') : (p.cmdline ?? '');
  const user = p.user ? `, user ${typeof p.user === 'object' ? p.user.name ?? p.user.uid : p.user}` : '';
  const state = p.running === false ? ` (not running: ${p.stopped ?? 'gone'})` : '';
  return `${p.name ?? ''} pid ${p.pid}${user}: ${cmd || p.exe || ''}${state}`;
}

export function ApprovalsPage(props: { url: URL }) {
  const state = props.url.searchParams.get('state') ?? 'pending';
  const offset = Number(props.url.searchParams.get('offset') ?? 0);
  const path = `/api/v1/approvals${query({ state: state === 'all' ? '' : state, limit: 50, offset })}`;
  const list = useApi(path, 5000);
  const go = (params: Record<string, string | number>) =>
    navigate(`/ui/approvals${query({ state, offset: 0, ...params })}`);
  const rows: Json[] = list.data?.approvals ?? [];
  return (
    <>
      <h1>Approvals</h1>
      <div class="toolbar">
        <label>
          State
          <select id="approval-state" value={state} onChange={(e) => go({ state: (e.target as HTMLSelectElement).value })}>
            {['pending', 'approved', 'denied', 'expired', 'cancelled', 'all'].map((s) => <option key={s} value={s}>{s}</option>)}
          </select>
        </label>
      </div>
      <Notice error={list.error} />
      {list.data && rows.length === 0 ? <Notice info={state === 'pending' ? 'Nothing waits for a decision.' : 'None.'} /> : null}
      {rows.length > 0 ? (
        <table id="approvals">
          <thead><tr><th>asked</th><th>action</th><th>hosts</th><th>why</th><th>for</th><th>state</th><th>expires</th><th>case</th></tr></thead>
          <tbody>
            {rows.map((a) => {
              const what = parsed(a.what);
              return (
                <tr key={a.id}>
                  <td><Link href={`/ui/approvals/${a.id}`}><Time at={a.created_at} /></Link></td>
                  <td><Link href={`/ui/approvals/${a.id}`}>{what?.action ?? a.step}</Link></td>
                  <td>{targets(what)}</td>
                  <td>{a.reason}</td>
                  <td>{a.requested_by}</td>
                  <td><Badge value={a.state} /></td>
                  <td><Time at={a.expires_at} /></td>
                  <td><Link href={`/ui/cases/${a.case_id}`}>case</Link></td>
                </tr>
              );
            })}
          </tbody>
        </table>
      ) : null}
      <Pager page={list.data && { ...list.data, shown: rows.length }} onOffset={(o) => go({ offset: o })} />
    </>
  );
}

export function ApprovalPage(props: { id: string; session: Session }) {
  const approval = useApi(`/api/v1/approvals/${encodeURIComponent(props.id)}`, 5000);
  const a = approval.data;
  const run = useApi(a ? `/api/v1/runs/${encodeURIComponent(a.run_id)}` : null);
  const alert = useApi(run.data?.alert_id ? `/api/v1/alerts/${encodeURIComponent(run.data.alert_id)}` : null);
  // Once this one is decided, a run often asks the next question: say where it waits.
  const others = useApi(a ? `/api/v1/approvals?state=pending&case=${encodeURIComponent(a.case_id)}` : null, 5000);
  const [reason, setReason] = useState('');
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  if (approval.error) return <Notice error={approval.error} />;
  if (!a) return <p class="muted">Loading…</p>;
  const what = parsed(a.what);
  const impact: Json[] = Array.isArray(a.impact) ? a.impact : [];
  const notDeciders: string[] = Array.isArray(a.not_deciders) ? a.not_deciders : [];
  // Why this person cannot decide, if they cannot: the controller refuses the same, this only
  // says so before they try.
  let cannot = '';
  if (a.state !== 'pending') cannot = `This request is ${a.state}${a.decided_by ? ` (by ${a.decided_by})` : ''}.`;
  else if (!hasRole(props.session, 'responder'))
    cannot = `Deciding needs the responder role; you are ${props.session.role}.`;
  else if (notDeciders.includes(props.session.name))
    cannot = `You asked for this run (as ${notDeciders.join(', ')}), so another responder must decide: four eyes.`;
  const decide = async (verdict: 'approve' | 'deny') => {
    setBusy(true);
    setError('');
    try {
      await api(`/api/v1/approvals/${encodeURIComponent(a.id)}/${verdict}`, 'POST', { reason });
      setReason('');
      approval.reload();
    } catch (e) {
      setError(e instanceof ApiError ? e.message : String(e));
    } finally {
      setBusy(false);
    }
  };
  return (
    <>
      <h1>Approval: {what?.action ?? a.step} on {targets(what) || 'no host'}</h1>
      <Fields rows={[
        ['state', <Badge value={a.state} />],
        ['why it asks', a.reason],
        ['asked for', a.requested_by],
        ['cannot decide', notDeciders.join(', ')],
        ['asked at', <Time at={a.created_at} />],
        ['expires', <Time at={a.expires_at} />],
        ['decided', a.decided_by ? <span>{a.decided_by}, <Time at={a.decided_at} />: {a.decision_reason}</span> : null],
        ['alert', alert.data
          ? <span><Link href={`/ui/alerts/${alert.data.id}`}>{alert.data.rule?.name || alert.data.id}</Link>{' '}
              <Badge value={alert.data.severity} /> on {alert.data.host?.name}</span>
          : run.data?.alert_id],
        // The proof each target is the one meant (host_resolution.h; enrichment's process identity).
        ['why this host', Array.isArray(what?.targets)
          ? (what.targets as Json[]).map((t) => `${t.hostname || t.agent_id}: ${t.why ?? t.by ?? ''}`).join('; ')
          : null],
        ['process', alert.data?.enrichment?.process?.pid
          ? processText(alert.data.enrichment.process)
          : null],
        ['why this process', alert.data?.enrichment?.process?.identity?.proven_by
          ?? alert.data?.enrichment?.process?.why ?? null],
        ['case', <Link href={`/ui/cases/${a.case_id}`}>{a.case_id}</Link>],
        ['run', <Link href={`/ui/runs/${a.run_id}`}>{run.data ? `${run.data.playbook} (${run.data.state})` : a.run_id}</Link>],
        ['step', `${a.step} (attempt ${a.attempt})`],
      ]} />
      <h2>What would run</h2>
      <JsonBlock value={what} />
      <h2>Hosts and their owners</h2>
      <table id="impact">
        <thead><tr><th>host</th><th>asset</th><th>environment</th><th>criticality</th><th>owner</th><th>stakeholders</th></tr></thead>
        <tbody>
          {impact.map((i, n) => (
            <tr key={n}>
              <td><Link href={`/ui/agents/${i.agent_id}`}>{i.hostname || i.agent_id}</Link></td>
              <td>{i.asset ?? <span class="muted">not in the asset map</span>}</td>
              <td>{i.environment}</td>
              <td><Badge value={i.criticality} /></td>
              <td>{i.owner}</td>
              <td>{Array.isArray(i.stakeholders) ? i.stakeholders.join(', ') : ''}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <h2>Decision</h2>
      {cannot ? <Notice info={cannot} /> : null}
      <div class="toolbar">
        <label>
          Reason (required)
          <textarea id="decision-reason" value={reason} disabled={!!cannot}
                    onInput={(e) => setReason((e.target as HTMLTextAreaElement).value)} />
        </label>
        <button class="primary" id="approve" disabled={!!cannot || busy || !reason.trim()} onClick={() => decide('approve')}>Approve</button>
        <button class="danger" id="deny" disabled={!!cannot || busy || !reason.trim()} onClick={() => decide('deny')}>Deny</button>
      </div>
      <Notice error={error} />
      {(others.data?.approvals ?? []).filter((o: Json) => o.id !== a.id).map((o: Json) => (
        <div class="notice info" key={o.id}>
          Also waiting on this case: <Link href={`/ui/approvals/${o.id}`}>{parsed(o.what)?.action ?? o.step} ({o.reason})</Link>
        </div>
      ))}
    </>
  );
}
