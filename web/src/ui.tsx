// Small pieces every page uses. Everything from the API is rendered as text (Preact escapes
// it); nothing here builds HTML from strings.
import type { ComponentChildren } from 'preact';
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { api, ApiError, CHANGED, Json } from './api';

export interface Loaded<T> {
  data: T | null;
  error: string;
  reload: () => void;
}

// GET `path` (null: nothing yet), again every `pollMs` while the page is open (0: once).
export function useApi<T = Json>(path: string | null, pollMs = 0): Loaded<T> {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState('');
  const [tick, setTick] = useState(0);
  const current = useRef(path);
  current.current = path;
  useEffect(() => {
    if (!path) return;
    let live = true;
    api<T>(path)
      .then((d) => {
        if (live && current.current === path) {
          setData(d);
          setError('');
        }
      })
      .catch((e: unknown) => live && setError(e instanceof ApiError ? e.message : String(e)));
    return () => {
      live = false;
    };
  }, [path, tick]);
  useEffect(() => {
    if (!pollMs) return;
    const refresh = () => setTick((t) => t + 1);
    const timer = setInterval(() => {
      if (document.visibilityState === 'visible') refresh();
    }, pollMs);
    addEventListener(CHANGED, refresh);
    return () => {
      clearInterval(timer);
      removeEventListener(CHANGED, refresh);
    };
  }, [pollMs]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  return { data, error, reload };
}

export function Time(props: { at?: string | null }) {
  if (!props.at) return <span class="muted">—</span>;
  const d = new Date(props.at);
  if (isNaN(d.getTime())) return <span>{props.at}</span>;
  return <time dateTime={props.at} title={props.at}>{d.toLocaleString()}</time>;
}

export function Badge(props: { value?: string | null }) {
  const v = props.value ?? '';
  // The class names a colour; only plain words are used as one.
  const cls = /^[a-z_]+$/.test(v) ? `badge ${v}` : 'badge';
  return <span class={cls}>{v || '—'}</span>;
}

export function Notice(props: { error?: string; info?: string }) {
  if (props.error) return <div class="notice error" role="alert">{props.error}</div>;
  if (props.info) return <div class="notice info">{props.info}</div>;
  return null;
}

export function JsonBlock(props: { value: unknown }) {
  let text: string;
  if (typeof props.value === 'string') {
    try {
      text = JSON.stringify(JSON.parse(props.value), null, 2);
    } catch {
      text = props.value;
    }
  } else {
    text = JSON.stringify(props.value ?? null, null, 2);
  }
  return <pre>{text}</pre>;
}

export function Fields(props: { rows: [string, ComponentChildren][] }) {
  return (
    <dl class="fields">
      {props.rows.map(([k, v]) => [<dt key={`${k}-t`}>{k}</dt>, <dd key={`${k}-d`}>{v ?? '—'}</dd>])}
    </dl>
  );
}

// Older/newer buttons over an API list that answers {limit, offset, next_offset}.
export function Pager(props: { page: Json; onOffset: (offset: number) => void }) {
  const p = props.page;
  if (!p || typeof p.offset !== 'number') return null;
  const first = p.offset + 1;
  const shown = p.shown ?? 0;
  return (
    <div class="pager">
      <button disabled={p.offset === 0} onClick={() => props.onOffset(Math.max(0, p.offset - p.limit))}>
        ← Newer
      </button>
      <span class="muted">
        {shown ? `${first}–${p.offset + shown}` : 'none'}
        {typeof p.total === 'number' ? ` of ${p.total}` : ''}
      </span>
      <button disabled={p.next_offset === null} onClick={() => props.onOffset(p.next_offset)}>
        Older →
      </button>
    </div>
  );
}

export function bytes(n?: number | string | null): string {
  const v = Number(n ?? 0);
  if (v < 1024) return `${v} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let x = v / 1024;
  let i = 0;
  while (x >= 1024 && i < units.length - 1) {
    x /= 1024;
    i++;
  }
  return `${x.toFixed(1)} ${units[i]}`;
}

// A JSON text from the API (an approval's `what`) as a value; the text itself when not JSON.
export function parsed(text: unknown): Json {
  if (typeof text !== 'string') return text;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
