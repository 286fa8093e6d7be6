// Live updates over the WebSocket at /ws (frames in web/API-NEEDS.md §2: the OpenAPI document
// does not describe them; host/api/src/ws.rs writes them). The connection carries the session
// cookie; the server sends a `snapshot` first, then one event per change. The state here is a
// plain reducer so it can be tested without a socket.
import { useSyncExternalStore } from 'react';
import type { ActiveCall, Cdr, Id, TrunkLiveStatus } from './types';

/**
 * `outbound.limit`: a toll-fraud guard refused (or ended) an outbound call. `limit` is
 * `extension_concurrent_calls`, `pbx_concurrent_calls`, `daily_minutes` or
 * `class_not_permitted`; `extension_id` is 0 for a flow's call.
 */
export interface OutboundLimitEvent {
  extension_id: Id;
  number: string;
  limit: string;
}

/** A notice shown until dismissed (a toll-fraud guard that tripped). */
export interface LiveNotice extends OutboundLimitEvent {
  id: number;
  at: number;
}

/** At most this many notices are kept: a flood of refused calls does not bury the page. */
export const MAX_NOTICES = 5;

export type LiveEvent =
  | { type: 'snapshot'; data: { calls: ActiveCall[]; registrations: Record<string, number>; trunks: TrunkLiveStatus[] } }
  | { type: 'call.started' | 'call.updated'; data: ActiveCall }
  | { type: 'call.ended'; data: { id: string; disposition?: Cdr['disposition']; cause?: string | null } }
  | { type: 'registration.changed'; data: { extension_id: Id; registration_count: number; action?: 'added' | 'removed' | 'refreshed' } }
  | { type: 'trunk.status'; data: TrunkLiveStatus }
  | { type: 'outbound.limit'; data: OutboundLimitEvent }
  | { type: 'source.banned'; data: { ip: string; until_secs: number } };

export type Connection = 'connecting' | 'open' | 'closed';

export interface LiveState {
  connection: Connection;
  /** true once a snapshot arrived: until then pages use the REST values */
  synced: boolean;
  calls: Record<string, ActiveCall>;
  registrations: Record<string, number>;
  /** each trunk's status as the server last sent it (registration, keep-alive) */
  trunks: Record<string, TrunkLiveStatus>;
  /** toll-fraud guards that tripped, newest last, until dismissed */
  notices: LiveNotice[];
  /** bumps on every event, so pages can refetch lists that depend on it (e.g. recent calls) */
  seq: number;
}

export const initialLive: LiveState = { connection: 'closed', synced: false, calls: {}, registrations: {}, trunks: {}, notices: [], seq: 0 };

export function applyLiveEvent(s: LiveState, ev: LiveEvent): LiveState {
  const seq = s.seq + 1;
  switch (ev.type) {
    case 'snapshot': {
      const calls: Record<string, ActiveCall> = {};
      for (const c of ev.data.calls ?? []) calls[c.id] = c;
      const trunks: LiveState['trunks'] = {};
      for (const t of ev.data.trunks ?? []) trunks[String(t.id)] = t;
      return { ...s, synced: true, calls, registrations: { ...(ev.data.registrations ?? {}) }, trunks, seq };
    }
    case 'call.started':
    case 'call.updated':
      return { ...s, calls: { ...s.calls, [ev.data.id]: { ...s.calls[ev.data.id], ...ev.data } }, seq };
    case 'call.ended': {
      const calls = { ...s.calls };
      delete calls[ev.data.id];
      return { ...s, calls, seq };
    }
    case 'registration.changed':
      return { ...s, registrations: { ...s.registrations, [String(ev.data.extension_id)]: ev.data.registration_count }, seq };
    case 'trunk.status':
      return { ...s, trunks: { ...s.trunks, [String(ev.data.id)]: ev.data }, seq };
    case 'outbound.limit': {
      return { ...s, notices: [...s.notices, { ...ev.data, id: seq, at: Date.now() }].slice(-MAX_NOTICES), seq };
    }
    default:
      return s;
  }
}

export function parseLiveEvent(raw: string): LiveEvent | null {
  try {
    const v = JSON.parse(raw) as { type?: unknown; data?: unknown };
    if (typeof v.type !== 'string' || v.data === undefined || v.data === null) return null;
    const known = ['snapshot', 'call.started', 'call.updated', 'call.ended', 'registration.changed', 'trunk.status', 'outbound.limit'];
    return known.includes(v.type) ? (v as LiveEvent) : null;
  } catch {
    return null;
  }
}

/** Backoff after the n-th failed attempt: 1 s, 2 s, 4 s … capped at 30 s. */
export function reconnectDelay(attempt: number): number {
  return Math.min(30_000, 1000 * 2 ** Math.max(0, attempt));
}

type Listener = () => void;

class LiveStore {
  state: LiveState = initialLive;
  private listeners = new Set<Listener>();
  private ws: WebSocket | null = null;
  private attempt = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private wanted = false;

  subscribe = (l: Listener) => {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  };
  getState = () => this.state;

  dispatch(ev: LiveEvent) {
    this.set(applyLiveEvent(this.state, ev));
  }

  dismissNotice(id: number) {
    this.set({ ...this.state, notices: this.state.notices.filter((n) => n.id !== id) });
  }

  private set(s: LiveState) {
    this.state = s;
    for (const l of this.listeners) l();
  }

  start() {
    if (this.wanted) return;
    this.wanted = true;
    this.open();
  }

  stop() {
    this.wanted = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.ws?.close();
    this.ws = null;
    this.set(initialLive);
  }

  private open() {
    if (!this.wanted || typeof WebSocket === 'undefined') return;
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const ws = new WebSocket(`${proto}//${location.host}/ws`);
    this.ws = ws;
    this.set({ ...this.state, connection: 'connecting' });
    ws.onopen = () => {
      this.attempt = 0;
      this.set({ ...this.state, connection: 'open' });
    };
    ws.onmessage = (m) => {
      const ev = typeof m.data === 'string' ? parseLiveEvent(m.data) : null;
      if (ev) this.dispatch(ev);
    };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.set({ ...this.state, connection: 'closed', synced: false });
      if (!this.wanted) return;
      this.timer = setTimeout(() => this.open(), reconnectDelay(this.attempt++));
    };
  }
}

export const live = new LiveStore();

export function useLive<T>(select: (s: LiveState) => T): T {
  return useSyncExternalStore(live.subscribe, () => select(live.getState()));
}
