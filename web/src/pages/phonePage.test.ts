import { describe, expect, it } from 'vitest';
import { rtpCounters, wssUrl } from './PhonePage';

describe('browser phone helpers', () => {
  it('finds the WSS address from the listener and the page host', () => {
    expect(wssUrl('127.0.0.1:8089', 'pbx.example.com')).toBe('wss://pbx.example.com:8089/ws/sip');
    expect(wssUrl('[::]:9000', '::1')).toBe('wss://[::1]:9000/ws/sip');
    expect(wssUrl(undefined, 'pbx')).toBeNull();
    expect(wssUrl('nonsense', 'pbx')).toBeNull();
  });

  it('sums the audio RTP counters of a stats report, ignoring video and other stats', () => {
    const stats = new Map<string, object>([
      ['o1', { type: 'outbound-rtp', kind: 'audio', packetsSent: 50, bytesSent: 8000, codecId: 'c0' }],
      ['c0', { type: 'codec', mimeType: 'audio/PCMU' }],
      ['i1', { type: 'inbound-rtp', kind: 'audio', packetsReceived: 40, bytesReceived: 6400, totalAudioEnergy: 0.5 }],
      ['v1', { type: 'inbound-rtp', kind: 'video', packetsReceived: 999, bytesReceived: 999999 }],
      ['t', { type: 'transport', bytesSent: 12345, selectedCandidatePairId: 'p' }],
      ['p', { type: 'candidate-pair', remoteCandidateId: 'r' }],
      ['r', { type: 'remote-candidate', address: '192.0.2.2', port: 31006 }],
    ]);
    expect(rtpCounters(stats as unknown as RTCStatsReport)).toEqual({
      packetsSent: 50,
      bytesSent: 8000,
      packetsReceived: 40,
      bytesReceived: 6400,
      energyReceived: 0.5,
      codec: 'audio/PCMU',
      peer: '192.0.2.2:31006',
    });
  });
});
