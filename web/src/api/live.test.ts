import { describe, expect, it } from 'vitest';
import { applyLiveEvent, initialLive, MAX_NOTICES, parseLiveEvent, reconnectDelay } from './live';

describe('live updates', () => {
  it('applies a snapshot then events', () => {
    let s = applyLiveEvent(initialLive, {
      type: 'snapshot',
      data: { calls: [{ id: 'c1', call_id: 'sip-c1', caller_id_num: '+15555550100', callee: '+61299990000', direction: 'inbound', state: 'ringing', started_at: '2026-01-01T00:00:00Z' }], registrations: { '1': 2 }, trunks: [{ id: 3, status: 'registered' }] },
    });
    expect(s.synced).toBe(true);
    expect(Object.keys(s.calls)).toEqual(['c1']);
    s = applyLiveEvent(s, { type: 'call.updated', data: { id: 'c1', call_id: 'sip-c1', caller_id_num: '+15555550100', callee: '+61299990000', direction: 'inbound', state: 'answered', started_at: '2026-01-01T00:00:00Z' } });
    expect(s.calls.c1.state).toBe('answered');
    s = applyLiveEvent(s, { type: 'call.started', data: { id: 'c2', call_id: 'sip-c2', caller_id_num: '+15555550100', callee: '+61299990000', direction: 'internal', state: 'ringing', started_at: '2026-01-01T00:01:00Z' } });
    s = applyLiveEvent(s, { type: 'call.ended', data: { id: 'c1' } });
    expect(Object.keys(s.calls)).toEqual(['c2']);
    s = applyLiveEvent(s, { type: 'registration.changed', data: { extension_id: 1, registration_count: 0, action: 'removed' } });
    expect(s.registrations['1']).toBe(0);
    s = applyLiveEvent(s, { type: 'trunk.status', data: { id: 3, status: 'failed', detail: '403 Forbidden', registration: { state: 'failed', error: '403 Forbidden', next_attempt_at_ms: 1 } } });
    expect(s.trunks['3']).toEqual({ id: 3, status: 'failed', detail: '403 Forbidden', registration: { state: 'failed', error: '403 Forbidden', next_attempt_at_ms: 1 } });
    expect(s.seq).toBe(6);
  });

  it('keeps the last few toll-fraud notices, across snapshots', () => {
    let s = initialLive;
    for (let i = 0; i < MAX_NOTICES + 2; i++) s = applyLiveEvent(s, { type: 'outbound.limit', data: { extension_id: 7, number: `00${i}`, limit: 'daily_minutes' } });
    expect(s.notices.map((n) => n.number)).toEqual(['002', '003', '004', '005', '006']);
    expect(new Set(s.notices.map((n) => n.id)).size).toBe(MAX_NOTICES);
    s = applyLiveEvent(s, { type: 'snapshot', data: { calls: [], registrations: {}, trunks: [] } });
    expect(s.notices).toHaveLength(MAX_NOTICES);
    expect(parseLiveEvent('{"type":"outbound.limit","data":{"extension_id":7,"number":"0011","limit":"class_not_permitted"}}')?.type).toBe('outbound.limit');
  });

  it('ignores what it does not understand', () => {
    expect(parseLiveEvent('not json')).toBeNull();
    expect(parseLiveEvent('{"type":"weather","data":{}}')).toBeNull();
    expect(parseLiveEvent('{"type":"call.ended"}')).toBeNull();
    expect(parseLiveEvent('{"type":"call.ended","data":{"id":"x"}}')).toEqual({ type: 'call.ended', data: { id: 'x' } });
  });

  it('backs off when reconnecting', () => {
    expect([0, 1, 2, 3, 10].map(reconnectDelay)).toEqual([1000, 2000, 4000, 8000, 30000]);
  });
});
