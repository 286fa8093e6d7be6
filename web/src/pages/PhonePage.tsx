// The browser phone: an extension signs in with its SIP credentials over SIP-over-WebSocket
// (WSS, the server's /ws/sip listener) and makes and takes calls in the browser (WebRTC:
// ICE-lite and DTLS-SRTP on FlowPBX's side, bridged to whatever the other party speaks).
// A zero-install test phone next to the flow editor. JsSIP does the SIP; the audio plays in
// an <audio> element; the call's RTP counters come from the peer connection's getStats().
import { useEffect, useRef, useState } from 'react';
import { useQuery } from '@tanstack/react-query';
import * as JsSIP from 'jssip';
import type { RTCSession } from 'jssip/lib/RTCSession';
import { api } from '../api/endpoints';
import { ErrorBanner, PageHeader } from '../components/common/ui';

type Registration = 'signed-out' | 'connecting' | 'registered' | 'failed';
type CallState = 'idle' | 'calling' | 'ringing' | 'incoming' | 'in-call' | 'ended';

export interface RtpCounters {
  packetsSent: number;
  bytesSent: number;
  packetsReceived: number;
  bytesReceived: number;
  /** inbound-rtp's totalAudioEnergy: 0 while the other side is silent */
  energyReceived: number;
  /** the codec sent, e.g. audio/opus */
  codec: string;
  /** FlowPBX's media address the browser talks to (the selected ICE pair's remote end) */
  peer: string;
}

/** The outbound and inbound audio RTP counters of a peer connection's stats report. */
export function rtpCounters(report: RTCStatsReport): RtpCounters {
  const c: RtpCounters = { packetsSent: 0, bytesSent: 0, packetsReceived: 0, bytesReceived: 0, energyReceived: 0, codec: '', peer: '' };
  type Stat = {
    type: string;
    kind?: string;
    packetsSent?: number;
    bytesSent?: number;
    packetsReceived?: number;
    bytesReceived?: number;
    totalAudioEnergy?: number;
    codecId?: string;
    mimeType?: string;
    selectedCandidatePairId?: string;
    remoteCandidateId?: string;
    address?: string;
    port?: number;
  };
  report.forEach((s: Stat) => {
    if (s.kind !== undefined && s.kind !== 'audio') return;
    if (s.type === 'outbound-rtp') {
      c.packetsSent += s.packetsSent ?? 0;
      c.bytesSent += s.bytesSent ?? 0;
      const codec = s.codecId ? (report.get(s.codecId) as Stat | undefined) : undefined;
      if (codec?.mimeType) c.codec = codec.mimeType;
    } else if (s.type === 'inbound-rtp') {
      c.packetsReceived += s.packetsReceived ?? 0;
      c.bytesReceived += s.bytesReceived ?? 0;
      c.energyReceived += s.totalAudioEnergy ?? 0;
    } else if (s.type === 'transport' && s.selectedCandidatePairId) {
      const pair = report.get(s.selectedCandidatePairId) as Stat | undefined;
      const remote = pair?.remoteCandidateId ? (report.get(pair.remoteCandidateId) as Stat | undefined) : undefined;
      if (remote?.address && remote.port) c.peer = remote.address.includes(':') ? `[${remote.address}]:${remote.port}` : `${remote.address}:${remote.port}`;
    }
  });
  return c;
}

/** The WebSocket URL of the server's SIP-over-WSS listener, from its address in the TLS status. */
export function wssUrl(address: string | null | undefined, hostname: string): string | null {
  const port = address?.split(':').pop();
  if (!port || !/^\d+$/.test(port)) return null;
  const host = hostname.includes(':') ? `[${hostname}]` : hostname;
  return `wss://${host}:${port}/ws/sip`;
}

export default function PhonePage() {
  const tls = useQuery({ queryKey: ['system', 'tls'], queryFn: api.systemTls });
  const detected = wssUrl(tls.data?.listeners?.['sip-wss']?.address, window.location.hostname);
  const [server, setServer] = useState('');
  const [user, setUser] = useState('');
  const [password, setPassword] = useState('');
  const [target, setTarget] = useState('');
  const [reg, setReg] = useState<Registration>('signed-out');
  const [call, setCall] = useState<CallState>('idle');
  const [peer, setPeer] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [counters, setCounters] = useState<RtpCounters | null>(null);
  /** how long the last call took: to the answer (SIP) and to DTLS-SRTP being up (ms) */
  const [setup, setSetup] = useState<{ answered?: number; media?: number }>({});
  const started = useRef(0);
  const ua = useRef<JsSIP.UA | null>(null);
  /** the SIP domain the phone signed in to */
  const domain = useRef('');
  const session = useRef<RTCSession | null>(null);
  const audio = useRef<HTMLAudioElement>(null);

  useEffect(() => {
    if (!server && detected) setServer(detected);
  }, [detected, server]);

  // the call's RTP counters, every second while a call is up
  useEffect(() => {
    if (call !== 'in-call') return;
    const t = window.setInterval(async () => {
      const pc = session.current?.connection;
      if (pc) setCounters(rtpCounters(await pc.getStats()));
    }, 1000);
    return () => window.clearInterval(t);
  }, [call]);

  useEffect(() => () => ua.current?.stop(), []);

  const attach = (s: RTCSession) => {
    session.current = s;
    const play = () => {
      const pc = s.connection;
      if (!pc || !audio.current) return;
      const stream = new MediaStream();
      pc.getReceivers().forEach((r) => r.track && stream.addTrack(r.track));
      audio.current.srcObject = stream;
      void audio.current.play().catch(() => undefined);
    };
    started.current = performance.now();
    setSetup({});
    const watch = (pc: RTCPeerConnection) => {
      pc.addEventListener('track', play);
      pc.addEventListener('connectionstatechange', () => {
        if (pc.connectionState === 'connected') setSetup((x) => ({ ...x, media: Math.round(performance.now() - started.current) }));
      });
    };
    if (s.connection) watch(s.connection);
    else s.on('peerconnection', (e: { peerconnection: RTCPeerConnection }) => watch(e.peerconnection));
    s.on('progress', () => setCall((c) => (c === 'calling' ? 'ringing' : c)));
    s.on('confirmed', () => {
      setSetup((x) => ({ ...x, answered: Math.round(performance.now() - started.current) }));
      setCall('in-call');
      play();
    });
    s.on('accepted', play);
    const end = (e: { cause?: string }) => {
      setCall('ended');
      if (e.cause && e.cause !== JsSIP.C.causes.BYE && e.cause !== JsSIP.C.causes.CANCELED) setError(`Call ended: ${e.cause}`);
      session.current = null;
    };
    s.on('ended', end);
    s.on('failed', end);
  };

  const signIn = (e: React.FormEvent) => {
    e.preventDefault();
    setError(null);
    ua.current?.stop();
    let host: string;
    try {
      host = new URL(server.replace(/^ws/, 'http')).hostname;
    } catch {
      return setError('The server address is not a wss:// URL.');
    }
    if (!user.trim() || !password) return setError('Give the extension and its SIP password.');
    setReg('connecting');
    domain.current = host;
    const socket = new JsSIP.WebSocketInterface(server);
    const agent = new JsSIP.UA({
      sockets: [socket],
      uri: `sip:${user.trim()}@${host}`,
      password,
      register: true,
      session_timers: false,
      user_agent: 'FlowPBX browser phone',
    });
    agent.on('registered', () => setReg('registered'));
    agent.on('unregistered', () => setReg('signed-out'));
    agent.on('registrationFailed', (ev: { cause?: string }) => {
      setReg('failed');
      setError(`Sign-in failed: ${ev.cause ?? 'no answer'}`);
    });
    agent.on('disconnected', () => setReg((r) => (r === 'registered' ? 'failed' : r)));
    agent.on('newRTCSession', (ev: { originator: string; session: RTCSession }) => {
      if (ev.originator !== 'remote') return;
      if (session.current) {
        ev.session.terminate({ status_code: 486 });
        return;
      }
      attach(ev.session);
      setPeer(ev.session.remote_identity?.uri?.user ?? 'unknown');
      setCounters(null);
      setCall('incoming');
    });
    agent.start();
    ua.current = agent;
  };

  const signOut = () => {
    ua.current?.stop();
    ua.current = null;
    setReg('signed-out');
    setCall('idle');
  };

  const dial = (e: React.FormEvent) => {
    e.preventDefault();
    const agent = ua.current;
    if (!agent || !target.trim()) return;
    setError(null);
    setCounters(null);
    setPeer(target.trim());
    setCall('calling');
    const s = agent.call(`sip:${target.trim()}@${domain.current}`, {
      mediaConstraints: { audio: true, video: false },
      pcConfig: { iceServers: [] },
    });
    attach(s);
  };

  const answer = () => {
    session.current?.answer({ mediaConstraints: { audio: true, video: false }, pcConfig: { iceServers: [] } });
  };

  const hangUp = () => {
    session.current?.terminate();
  };

  const busy = call === 'calling' || call === 'ringing' || call === 'in-call' || call === 'incoming';

  return (
    <div className="max-w-2xl">
      <PageHeader title="Browser phone" />
      <p className="mb-4 text-sm text-slate-600">
        Sign in as an extension with its SIP password to make and take calls in this browser (WebRTC over secure WebSocket). With the
        self-signed certificate, open the WebSocket address in a tab once and accept it.
      </p>
      <ErrorBanner error={error} />
      <form onSubmit={signIn} aria-label="Sign in" className="card mb-4 grid gap-3 p-4 sm:grid-cols-2">
        <div className="sm:col-span-2">
          <label className="label" htmlFor="phone-server">
            Server
          </label>
          <input id="phone-server" className="input w-full" value={server} onChange={(e) => setServer(e.target.value)} placeholder="wss://pbx:8089/ws/sip" />
          {tls.isSuccess && !detected && <p className="mt-1 text-xs text-amber-700">The server has no SIP-over-WSS listener (--sip-wss-port).</p>}
        </div>
        <div>
          <label className="label" htmlFor="phone-user">
            Extension
          </label>
          <input id="phone-user" className="input w-full" value={user} onChange={(e) => setUser(e.target.value)} autoComplete="username" />
        </div>
        <div>
          <label className="label" htmlFor="phone-password">
            SIP password
          </label>
          <input
            id="phone-password"
            type="password"
            className="input w-full"
            value={password}
            onChange={(e) => setPassword(e.target.value)}
            autoComplete="current-password"
          />
        </div>
        <div className="flex items-center gap-3 sm:col-span-2">
          <button type="submit" className="btn btn-primary" disabled={reg === 'connecting'}>
            {reg === 'registered' ? 'Sign in again' : 'Sign in'}
          </button>
          {reg !== 'signed-out' && (
            <button type="button" className="btn" onClick={signOut}>
              Sign out
            </button>
          )}
          <span role="status" aria-label="Registration" className="text-sm">
            {
              {
                'signed-out': 'Signed out',
                connecting: 'Signing in…',
                registered: `Registered as ${user}`,
                failed: 'Not registered',
              }[reg]
            }
          </span>
        </div>
      </form>

      <form onSubmit={dial} aria-label="Dial" className="card mb-4 flex flex-wrap items-end gap-3 p-4">
        <div>
          <label className="label" htmlFor="phone-target">
            Number
          </label>
          <input id="phone-target" className="input" value={target} onChange={(e) => setTarget(e.target.value)} inputMode="tel" />
        </div>
        <button type="submit" className="btn btn-primary" disabled={reg !== 'registered' || busy}>
          Call
        </button>
        {call === 'incoming' && (
          <button type="button" className="btn btn-primary" onClick={answer}>
            Answer
          </button>
        )}
        {busy && (
          <button type="button" className="btn btn-danger" onClick={hangUp}>
            {call === 'incoming' ? 'Decline' : 'Hang up'}
          </button>
        )}
        <span role="status" aria-label="Call" className="text-sm">
          {
            {
              idle: 'No call',
              calling: `Calling ${peer}…`,
              ringing: `Ringing ${peer}…`,
              incoming: `Incoming call from ${peer}`,
              'in-call': `In call with ${peer}`,
              ended: 'Call ended',
            }[call]
          }
        </span>
      </form>

      {counters && (
        <dl aria-label="Call audio" className="card grid grid-cols-2 gap-2 p-4 text-sm">
          <dt>FlowPBX media address</dt>
          <dd data-testid="media-peer">{counters.peer || '–'}</dd>
          <dt>Codec sent</dt>
          <dd data-testid="codec">{counters.codec || '–'}</dd>
          <dt>Packets sent</dt>
          <dd data-testid="packets-sent">{counters.packetsSent}</dd>
          <dt>Bytes sent</dt>
          <dd data-testid="bytes-sent">{counters.bytesSent}</dd>
          <dt>Packets received</dt>
          <dd data-testid="packets-received">{counters.packetsReceived}</dd>
          <dt>Bytes received</dt>
          <dd data-testid="bytes-received">{counters.bytesReceived}</dd>
          <dt>Audio energy received</dt>
          <dd data-testid="energy-received">{counters.energyReceived.toFixed(4)}</dd>
          <dt>Answered after</dt>
          <dd data-testid="answered-ms">{setup.answered ?? '–'} ms</dd>
          <dt>Media (DTLS-SRTP) up after</dt>
          <dd data-testid="media-ms">{setup.media ?? '–'} ms</dd>
        </dl>
      )}
      <audio ref={audio} autoPlay />
    </div>
  );
}
