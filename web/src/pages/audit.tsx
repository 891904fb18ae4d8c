// The audit chain: whether it verifies, and (admins) its export.
import { hasRole, Session } from '../api';
import { Badge, Fields, Notice, useApi } from '../ui';

export function AuditPage(props: { session: Session }) {
  const verify = useApi('/api/v1/audit/verify');
  const v = verify.data;
  return (
    <>
      <h1>Audit log</h1>
      <Notice error={verify.error} />
      {v ? (
        <Fields rows={[
          ['chain', <Badge value={v.ok ? 'succeeded' : 'failed'} />],
          ['entries verified', String(v.entries_verified)],
          ['first broken entry', v.first_broken_seq ?? null],
          ['problem', v.problem || null],
          ['head hash', <span class="mono">{v.head_hash}</span>],
        ]} />
      ) : <p class="muted">Verifying the chain…</p>}
      <p><button onClick={verify.reload}>Verify again</button></p>
      {hasRole(props.session, 'admin')
        ? <p><a href="/api/v1/audit?after=0&limit=100000" download="riposte-audit.jsonl">Export (JSON lines)</a></p>
        : <p class="muted">Exporting the log needs the admin role.</p>}
    </>
  );
}
