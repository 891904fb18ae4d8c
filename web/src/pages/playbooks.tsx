// Playbooks loaded by the controller: name, version, owner, file and steps.
import { Json } from '../api';
import { Notice, useApi } from '../ui';

export function PlaybooksPage() {
  const list = useApi('/api/v1/playbooks');
  const rows: Json[] = list.data?.playbooks ?? [];
  return (
    <>
      <h1>Playbooks</h1>
      <Notice error={list.error} />
      {list.data && !rows.length ? <Notice info="No playbooks are loaded (playbooks_dir in the controller's configuration)." /> : null}
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
      <p class="muted">Impact maps and backtests over past alerts: <code>riposte playbooks impact</code> and <code>riposte playbooks test</code>.</p>
    </>
  );
}
