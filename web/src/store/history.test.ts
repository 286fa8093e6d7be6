import { describe, expect, it } from 'vitest';
import { COALESCE_MS, emptyHistory, HISTORY_LIMIT, record, redo, undo } from './history';

describe('history', () => {
  it('undoes and redoes in order', () => {
    let h = emptyHistory<number>();
    h = record(h, 0, { now: 0 });
    h = record(h, 1, { now: 5000 });
    // current state is 2
    const u1 = undo(h, 2)!;
    expect(u1.state).toBe(1);
    const u2 = undo(u1.history, 1)!;
    expect(u2.state).toBe(0);
    expect(undo(u2.history, 0)).toBeNull();
    const r1 = redo(u2.history, 0)!;
    expect(r1.state).toBe(1);
    const r2 = redo(r1.history, 1)!;
    expect(r2.state).toBe(2);
    expect(redo(r2.history, 2)).toBeNull();
  });

  it('a new change after undo drops the redo stack', () => {
    let h = record(emptyHistory<string>(), 'a', { now: 0 });
    const u = undo(h, 'b')!;
    h = record(u.history, 'a', { now: 9000 });
    expect(h.future).toEqual([]);
    expect(redo(h, 'c')).toBeNull();
  });

  it('coalesces a burst of the same change into one step', () => {
    let h = emptyHistory<string>();
    h = record(h, '', { key: 'label', now: 0 });
    h = record(h, 'S', { key: 'label', now: 200 });
    h = record(h, 'Sa', { key: 'label', now: 400 });
    expect(h.past).toEqual(['']);
    // after a pause, or for another field, a new step
    h = record(h, 'Sal', { key: 'label', now: 400 + COALESCE_MS + 1 });
    h = record(h, 'Sale', { key: 'config', now: 1500 });
    expect(h.past).toEqual(['', 'Sal', 'Sale']);
  });

  it('keeps at most HISTORY_LIMIT steps', () => {
    let h = emptyHistory<number>();
    for (let i = 0; i < HISTORY_LIMIT + 10; i++) h = record(h, i, { now: i * 10_000 });
    expect(h.past).toHaveLength(HISTORY_LIMIT);
    expect(h.past[0]).toBe(10);
  });
});
