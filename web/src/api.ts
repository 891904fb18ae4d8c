// The console talks only to the controller's documented API (docs/api.md), with the session
// cookie the browser holds (HttpOnly: this code never sees it) and, on every request that
// changes something, the session's CSRF token in X-CSRF-Token.

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Json = any;

export interface Session {
  name: string;
  role: 'viewer' | 'analyst' | 'responder' | 'admin';
  csrf_token: string;
  expires_at: string;
}

export class ApiError extends Error {
  constructor(public status: number, message: string) {
    super(message);
  }
}

let csrfToken = '';
let onSignedOut: () => void = () => {};

export function setSession(session: Session | null): void {
  csrfToken = session?.csrf_token ?? '';
}
export function whenSignedOut(callback: () => void): void {
  onSignedOut = callback;
}

export async function api<T = Json>(path: string, method = 'GET', body?: unknown): Promise<T> {
  const headers: Record<string, string> = { Accept: 'application/json' };
  if (method !== 'GET') headers['X-CSRF-Token'] = csrfToken;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const response = await fetch(path, {
    method,
    headers,
    credentials: 'same-origin',
    cache: 'no-store',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let data: Json = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    if (response.status === 401 && path !== '/api/v1/session') onSignedOut();
    const message = data && typeof data.error === 'string' ? data.error : `${response.status} ${response.statusText}`;
    throw new ApiError(response.status, message);
  }
  // Something changed: pages that refresh on their own (pending approvals, runs) look now.
  if (method !== 'GET') dispatchEvent(new Event(CHANGED));
  return data as T;
}

// The event a successful change sends (ui.tsx's useApi refreshes polled data on it).
export const CHANGED = 'riposte-changed';

// A query string from the set values of `params`.
export function query(params: Record<string, string | number | undefined>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : '';
}

const ranks = { viewer: 0, analyst: 1, responder: 2, admin: 3 } as const;
export function hasRole(session: Session, needed: keyof typeof ranks): boolean {
  return (ranks[session.role] ?? -1) >= ranks[needed];
}
