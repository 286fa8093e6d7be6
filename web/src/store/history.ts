// Undo/redo over whole-document snapshots. A change records the state *before* it; bursts of
// the same kind of change (typing in one field, nudging one node) within a second coalesce
// into one step, so undo goes back a word, not a letter.

export interface History<T> {
  past: T[];
  future: T[];
  lastKey?: string;
  lastAt?: number;
}

export const HISTORY_LIMIT = 200;
export const COALESCE_MS = 1000;

export function emptyHistory<T>(): History<T> {
  return { past: [], future: [] };
}

export function record<T>(h: History<T>, before: T, opts: { key?: string; now?: number } = {}): History<T> {
  const now = opts.now ?? Date.now();
  if (opts.key && h.lastKey === opts.key && h.lastAt !== undefined && now - h.lastAt < COALESCE_MS) {
    return { ...h, future: [], lastAt: now };
  }
  const past = [...h.past, before];
  if (past.length > HISTORY_LIMIT) past.splice(0, past.length - HISTORY_LIMIT);
  return { past, future: [], lastKey: opts.key, lastAt: now };
}

export function undo<T>(h: History<T>, current: T): { history: History<T>; state: T } | null {
  if (h.past.length === 0) return null;
  const state = h.past[h.past.length - 1];
  return { history: { past: h.past.slice(0, -1), future: [current, ...h.future] }, state };
}

export function redo<T>(h: History<T>, current: T): { history: History<T>; state: T } | null {
  if (h.future.length === 0) return null;
  const [state, ...future] = h.future;
  return { history: { past: [...h.past, current], future }, state };
}
