// Actions: the history, one action in full, and (responders) a form that runs one action on
// agents, built from the kind's parameters as the API describes them (/api/v1/action-kinds).
import { useState } from 'preact/hooks';
import { api, ApiError, hasRole, Json, query, Session } from '../api';
import { Link, navigate } from '../router';
import { Badge, Fields, JsonBlock, Notice, Pager, Time, useApi } from '../ui';

interface Field {
  name: string;
  type: 'string' | 'integer' | 'number' | 'boolean' | 'enum' | 'object';
  repeated: boolean;
  values?: string[];
  fields?: Field[];
}

// The value a form's text becomes, by the field's type; undefined leaves the field out.
function convert(field: Field, raw: Json): Json {
  if (field.type === 'object') return raw;
  if (field.repeated) {
    const items = String(raw ?? '').split('\n').map((s) => s.trim()).filter(Boolean);
    if (!items.length) return undefined;
    return field.type === 'integer' || field.type === 'number' ? items.map(Number) : items;
  }
  if (field.type === 'boolean') return raw ? true : undefined;
  if (raw === undefined || raw === '') return undefined;
  if (field.type === 'number') return Number(raw);
  return raw;  // integers stay text: proto3 JSON takes 64-bit integers as strings
}

function ParamInputs(props: { fields: Field[]; value: Json; onChange: (v: Json) => void; prefix: string }) {
  const set = (name: string, v: Json) => {
    const next = { ...props.value };
    if (v === undefined || (typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length === 0)) delete next[name];
    else next[name] = v;
    props.onChange(next);
  };
  return (
    <>
      {props.fields.map((f) => {
        const id = `param-${props.prefix}${f.name}`;
        if (f.type === 'object' && !f.repeated) {
          return (
            <fieldset key={f.name}>
              <legend>{f.name}</legend>
              <ParamInputs fields={f.fields ?? []} value={props.value[f.name] ?? {}} prefix={`${props.prefix}${f.name}.`}
                           onChange={(v) => set(f.name, v)} />
            </fieldset>
          );
        }
        if (f.type === 'object') return <p key={f.name} class="muted">{f.name}: a list of objects; use the CLI or the API.</p>;
        if (f.type === 'boolean' && !f.repeated) {
          return (
            <label class="inline" key={f.name}>
              <input id={id} type="checkbox" checked={!!props.value[f.name]}
                     onChange={(e) => set(f.name, convert(f, (e.target as HTMLInputElement).checked))} />
              {f.name}
            </label>
          );
        }
        if (f.type === 'enum' && !f.repeated) {
          return (
            <label key={f.name}>
              {f.name}
              <select id={id} value={props.value[f.name] ?? ''} onChange={(e) => set(f.name, convert(f, (e.target as HTMLSelectElement).value))}>
                <option value="">(default)</option>
                {(f.values ?? []).map((v) => <option key={v} value={v}>{v}</option>)}
              </select>
            </label>
          );
        }
        return (
          <label key={f.name}>
            <span>{f.name} <span class="muted">({f.type}{f.repeated ? ', one per line' : ''})</span></span>
            {f.repeated
              ? <textarea id={id} onInput={(e) => set(f.name, convert(f, (e.target as HTMLTextAreaElement).value))} />
              : <input id={id} type={f.type === 'string' ? 'text' : 'number'}
                       onInput={(e) => set(f.name, convert(f, (e.target as HTMLInputElement).value))} />}
          </label>
        );
      })}
    </>
  );
}

function RunActionForm() {
  const kinds = useApi<{ kinds: { kind: string; parameters: Field[] }[] }>('/api/v1/action-kinds');
  const agents = useApi('/api/v1/agents?status=online&limit=1000');
  const [kind, setKind] = useState('');
  const [chosen, setChosen] = useState<string[]>([]);
  const [label, setLabel] = useState('');
  const [params, setParams] = useState<Json>({});
  const [ttl, setTtl] = useState('5m');
  const [error, setError] = useState('');
  const [created, setCreated] = useState<Json[]>([]);
  const spec = kinds.data?.kinds.find((k) => k.kind === kind);
  const submit = async (e: Event) => {
    e.preventDefault();
    setError('');
    try {
      const body: Json = { kind, parameters: params, ttl };
      if (chosen.length) body.agents = chosen;
      if (label.trim()) body.labels = label.split(',').map((s) => s.trim()).filter(Boolean);
      const answer = await api('/api/v1/actions', 'POST', body);
      setCreated(answer.actions ?? []);
    } catch (err) {
      setError(err instanceof ApiError ? err.message : String(err));
    }
  };
  return (
    <form onSubmit={submit} id="run-action">
      <div class="filters">
        <label>
          kind
          <select id="action-kind" value={kind} onChange={(e) => { setKind((e.target as HTMLSelectElement).value); setParams({}); }}>
            <option value="">choose…</option>
            {(kinds.data?.kinds ?? []).map((k) => <option key={k.kind} value={k.kind}>{k.kind}</option>)}
          </select>
        </label>
        <label>
          online agents
          <select id="action-agents" multiple size={4}
                  onChange={(e) => setChosen(Array.from((e.target as HTMLSelectElement).selectedOptions).map((o) => o.value))}>
            {((agents.data?.agents ?? []) as Json[]).map((a) => <option key={a.id} value={a.id}>{a.hostname} ({a.id.slice(0, 8)})</option>)}
          </select>
        </label>
        <label>or agents labelled<input id="action-labels" value={label} onInput={(e) => setLabel((e.target as HTMLInputElement).value)} /></label>
        <label>expires after<input id="action-ttl" value={ttl} onInput={(e) => setTtl((e.target as HTMLInputElement).value)} /></label>
      </div>
      {spec ? <fieldset><legend>parameters of {spec.kind}</legend>
        {spec.parameters.length ? <ParamInputs fields={spec.parameters} value={params} onChange={setParams} prefix="" /> : <span class="muted">none</span>}
      </fieldset> : null}
      <p><button class="primary" id="action-submit" type="submit" disabled={!kind || (!chosen.length && !label.trim())}>Run</button></p>
      <Notice error={error} />
      {created.length ? <Notice info={`${created.length} action(s) created`} /> : null}
      {created.map((a) => <div key={a.id}><Link href={`/ui/actions/${a.id}`}>{a.kind} on {a.agent_id}</Link></div>)}
    </form>
  );
}

export function ActionsPage(props: { url: URL; session: Session }) {
  const offset = Number(props.url.searchParams.get('offset') ?? 0);
  const list = useApi(`/api/v1/actions${query({ limit: 50, offset })}`, 5000);
  const rows: Json[] = list.data?.actions ?? [];
  return (
    <>
      <h1>Actions</h1>
      {hasRole(props.session, 'responder') ? <details open><summary>Run an action</summary><RunActionForm /></details> : null}
      <Notice error={list.error} />
      <table id="actions">
        <thead><tr><th>issued</th><th>kind</th><th>agent</th><th>state</th><th>outcome</th><th>requested by</th><th>case</th></tr></thead>
        <tbody>
          {rows.map((a) => (
            <tr key={a.id}>
              <td><Link href={`/ui/actions/${a.id}`}><Time at={a.issued_at} /></Link></td>
              <td><Link href={`/ui/actions/${a.id}`}>{a.kind}</Link></td>
              <td><Link href={`/ui/agents/${a.agent_id}`}>{a.agent_id.slice(0, 8)}</Link></td>
              <td><Badge value={a.state} /></td>
              <td>{a.outcome}</td>
              <td>{a.requester}</td>
              <td>{a.case_id ? <Link href={`/ui/cases/${a.case_id}`}>case</Link> : ''}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <Pager page={list.data && { ...list.data, shown: rows.length }} onOffset={(o) => navigate(`/ui/actions${query({ offset: o })}`)} />
    </>
  );
}

export function ActionPage(props: { id: string }) {
  const action = useApi(`/api/v1/actions/${encodeURIComponent(props.id)}`, 3000);
  if (action.error) return <Notice error={action.error} />;
  const a = action.data;
  if (!a) return <p class="muted">Loading…</p>;
  return (
    <>
      <h1>{a.kind} <Badge value={a.state} /></h1>
      <Fields rows={[
        ['outcome', a.outcome],
        ['agent', <Link href={`/ui/agents/${a.agent_id}`}>{a.agent_id}</Link>],
        ['requested by', a.requester],
        ['approved by', a.approver],
        ['case', a.case_id ? <Link href={`/ui/cases/${a.case_id}`}>{a.case_id}</Link> : null],
        ['run', a.playbook_run_id ? <Link href={`/ui/runs/${a.playbook_run_id}`}>{a.playbook_run_id}</Link> : null],
        ['issued', <Time at={a.issued_at} />],
        ['started', <Time at={a.started_at} />],
        ['finished', <Time at={a.finished_at} />],
        ['reason', a.reason],
      ]} />
      <h2>Parameters</h2><JsonBlock value={a.parameters} />
      <h2>Result</h2><JsonBlock value={a.result} />
      <h2>Evidence</h2><JsonBlock value={a.evidence} />
    </>
  );
}
