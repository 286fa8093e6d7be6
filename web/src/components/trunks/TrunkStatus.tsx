// A trunk's live status in words (registration, next attempt, keep-alive), and the result of
// a trunk test (POST /trunks/:id/test) explained for someone who is not a SIP engineer.
// What the server sends is described in host/api/src/trunks.rs; the live copy comes over /ws
// (`snapshot` and `trunk.status`, src/api/live.ts), the REST list's status until then.
import { useEffect, useState } from 'react';
import { errorMessage } from '../../api/client';
import { api } from '../../api/endpoints';
import type { EntityStatus } from '../../api/entities';
import { live, useLive } from '../../api/live';
import type { SipAnswer, Trunk, TrunkLiveStatus, TrunkProbe, TrunkTestResult } from '../../api/types';
import { ErrorBanner, formatDuration, StatusDot } from '../common/ui';

/** Re-renders every `ms` while `on` (relative times: "next try in 42s"). */
export function useNow(on = true, ms = 1000): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    if (!on) return;
    const t = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(t);
  }, [on, ms]);
  return now;
}

/** "in 1m 05s", or "now" once due. */
export function relative(atMs: number, now: number): string {
  const s = Math.round((atMs - now) / 1000);
  return s <= 0 ? 'now' : `in ${formatDuration(s)}`;
}

/** The status to show: the live one once /ws sent it, else what the trunk list said. */
export function useTrunkStatus(trunk: Trunk & { status?: string; status_detail?: string | null }): TrunkLiveStatus {
  const liveStatus = useLive((s) => s.trunks[String(trunk.id)]);
  if (!trunk.enabled) return { id: trunk.id, status: 'disabled', detail: null };
  return liveStatus ?? { id: trunk.id, status: trunk.status ?? 'unknown', detail: trunk.status_detail ?? null };
}

export interface TrunkStatusWords {
  tone: EntityStatus['tone'];
  /** one or two words: "registered", "failed" */
  label: string;
  /** why, when there is more to say: the last error, what to do */
  detail?: string;
  /** when the next REGISTER goes (refresh or retry), Unix ms */
  nextAt?: number;
  /** "refresh" while registered, "retry" after a failure */
  nextKind?: 'refresh' | 'retry';
  /** the OPTIONS keep-alive: up (with its round trip), down, off, or not known yet */
  keepAlive: { state: 'up' | 'down' | 'off' | 'waiting'; rttMs?: number | null };
}

/** What a status means, in words. `optionsInterval` 0 is keep-alive off. */
export function trunkStatusWords(s: TrunkLiveStatus, optionsInterval?: number): TrunkStatusWords {
  const reg = s.registration ?? null;
  const keepAlive: TrunkStatusWords['keepAlive'] =
    s.reachable === true
      ? { state: 'up', rttMs: s.rtt_ms }
      : s.reachable === false
        ? { state: 'down' }
        : optionsInterval === 0 || s.status === 'unmonitored' || s.status === 'disabled'
          ? { state: 'off' }
          : { state: 'waiting' };
  const next = reg?.next_attempt_at_ms ?? undefined;
  switch (s.status) {
    case 'registered':
      return { tone: 'ok', label: 'registered', nextAt: next, nextKind: 'refresh', keepAlive };
    case 'registering':
      return { tone: 'warn', label: 'registering', detail: reg?.error ?? s.detail ?? undefined, keepAlive };
    case 'failed':
      return { tone: 'bad', label: 'failed', detail: reg?.error ?? s.detail ?? 'the last attempt failed', nextAt: next, nextKind: 'retry', keepAlive };
    case 'stopped':
      return { tone: 'bad', label: 'stopped', detail: `${reg?.error ?? s.detail ?? 'the provider refused the registration'}. Not retried until the trunk is edited or tested.`, keepAlive };
    case 'down': {
      // a registration trunk that stopped answering: how its registration fares too
      const why = s.detail ?? 'it does not answer OPTIONS: calls skip it until it does';
      const r = reg ? `. Registration: ${reg.state}${reg.error ? ` (${reg.error})` : ''}` : '';
      return { tone: 'bad', label: 'down', detail: `${why}${r}`, nextAt: next, nextKind: reg?.state === 'registered' ? 'refresh' : 'retry', keepAlive };
    }
    case 'up':
      return { tone: 'ok', label: 'up', keepAlive };
    case 'unmonitored':
      return { tone: 'idle', label: 'not monitored', detail: s.detail ?? undefined, keepAlive };
    case 'disabled':
      return { tone: 'idle', label: 'disabled', keepAlive: { state: 'off' } };
    case 'unregistered':
      return { tone: 'warn', label: 'not registered', detail: s.detail ?? undefined, keepAlive };
    default:
      return { tone: 'idle', label: s.status || 'unknown', detail: s.detail ?? undefined, keepAlive };
  }
}

function keepAliveText(k: TrunkStatusWords['keepAlive']): string {
  switch (k.state) {
    case 'up':
      return k.rttMs === null || k.rttMs === undefined ? 'keep-alive: up' : `keep-alive: up, ${k.rttMs} ms`;
    case 'down':
      return 'keep-alive: down (no answer to OPTIONS)';
    case 'off':
      return 'keep-alive: off';
    case 'waiting':
      return 'keep-alive: waiting for the first answer';
  }
}

/**
 * The Trunks table's status cell: a dot and a word, then what else matters now (the error,
 * the next retry, the keep-alive). Updates as /ws sends new states.
 */
export function TrunkStatusBadge({ trunk, status, compact = false }: { trunk: Trunk; status: TrunkLiveStatus; compact?: boolean }) {
  const w = trunkStatusWords(status, trunk.options_interval);
  const now = useNow(w.nextAt !== undefined && !compact);
  return (
    <div className="min-w-0" data-testid={`trunk-status-${trunk.id}`} data-status={status.status}>
      <StatusDot status={{ tone: w.tone, text: w.label }} />
      {!compact && (
        <>
          {w.detail && <p className="max-w-xs text-xs text-slate-600">{w.detail}</p>}
          {w.nextAt !== undefined && (
            <p className="text-xs text-slate-500">
              {w.nextKind === 'retry' ? 'next try' : 'refresh'} {relative(w.nextAt, now)}
            </p>
          )}
          {status.status !== 'disabled' && (
            <p className={`text-xs ${w.keepAlive.state === 'down' ? 'text-red-700' : 'text-slate-500'}`}>{keepAliveText(w.keepAlive)}</p>
          )}
        </>
      )}
    </div>
  );
}

function answerText(a: SipAnswer | null | undefined): string {
  return a ? `${a.code}${a.reason ? ` ${a.reason}` : ''}` : '';
}

/** Everything the server says of a trunk now: the status dialog. */
export function TrunkStatusDetails({ trunk, status }: { trunk: Trunk; status: TrunkLiveStatus }) {
  const w = trunkStatusWords(status, trunk.options_interval);
  const reg = status.registration;
  const now = useNow(true);
  const rows: [string, string][] = [];
  if (reg) {
    rows.push(['Registration', reg.state]);
    if (reg.error) rows.push(['Last error', reg.error]);
    if (reg.last_response) rows.push(['Last response', answerText(reg.last_response)]);
    if (reg.expires_at_ms) rows.push(['Registered until', `${new Date(reg.expires_at_ms).toLocaleString()} (${relative(reg.expires_at_ms, now)})`]);
    if (reg.next_attempt_at_ms) rows.push([reg.state === 'registered' ? 'Next refresh' : 'Next try', `${new Date(reg.next_attempt_at_ms).toLocaleString()} (${relative(reg.next_attempt_at_ms, now)})`]);
  }
  rows.push(['Keep-alive', keepAliveText(w.keepAlive).replace(/^keep-alive: /, '') + (trunk.options_interval ? ` (OPTIONS every ${trunk.options_interval} s)` : '')]);
  return (
    <div className="text-sm">
      <p className="mb-2">
        Status: <StatusDot status={{ tone: w.tone, text: w.label }} />
      </p>
      {w.detail && <p className="mb-2 text-slate-600">{w.detail}</p>}
      <dl className="grid grid-cols-[max-content_1fr] gap-x-4 gap-y-1">
        {rows.map(([k, v]) => (
          <div key={k} className="contents">
            <dt className="text-slate-500">{k}</dt>
            <dd>{v}</dd>
          </div>
        ))}
      </dl>
    </div>
  );
}

export interface ProbeWords {
  tone: 'ok' | 'warn' | 'bad';
  /** "200 OK in 4 ms", "no answer in 8 s" */
  headline: string;
  /** what it means and what to check */
  explanation: string;
}

/** One probe of a test, explained. */
export function probeWords(kind: 'OPTIONS' | 'REGISTER', p: TrunkProbe): ProbeWords {
  const rtt = p.rtt_ms === null || p.rtt_ms === undefined ? '' : ` in ${p.rtt_ms} ms`;
  const a = p.answer;
  if (!a) {
    const why = p.error ?? 'no answer';
    if (/no answer/.test(why))
      return { tone: 'bad', headline: why, explanation: 'Nothing came back. Check the host, port and transport, and that no firewall drops SIP between FlowPBX and the carrier.' };
    if (/not reachable/.test(why))
      return { tone: 'bad', headline: why, explanation: 'The carrier could not be reached (refused, or no route to it). Check the host, port and transport.' };
    if (/resolve/.test(why)) return { tone: 'bad', headline: why, explanation: 'The host name does not resolve. Check its spelling, or use the carrier’s IP address.' };
    if (/could not be sent/.test(why)) return { tone: 'bad', headline: why, explanation: 'FlowPBX could not send the request. Check that the trunk’s transport is one FlowPBX listens on.' };
    return { tone: 'bad', headline: why, explanation: 'The test did not get an answer.' };
  }
  const headline = `${answerText(a)}${rtt}`;
  const c = a.code;
  if (c >= 200 && c < 300)
    return { tone: 'ok', headline, explanation: kind === 'OPTIONS' ? 'The carrier answers.' : 'Registered: the carrier accepted the credentials.' };
  if (kind === 'OPTIONS' && c < 500)
    return {
      tone: 'warn',
      headline,
      explanation: 'The carrier answers, so it is reachable, but refuses OPTIONS itself. Keep-alive counts any answer as up, so calls are not affected.',
    };
  if (c === 401 || c === 407) return { tone: 'bad', headline, explanation: 'The carrier refused the credentials. Check the username, the auth username and the password.' };
  if (c === 403) return { tone: 'bad', headline, explanation: 'The carrier forbids this account. Check the username and that the account is active; FlowPBX stops retrying until the trunk is edited or tested again.' };
  if (c === 404) return { tone: 'bad', headline, explanation: 'The carrier does not know this account. Check the username and the registrar host.' };
  if (c === 423) return { tone: 'bad', headline, explanation: 'The carrier wants a longer registration interval. Raise “Register every”.' };
  if (c === 408 || c === 480) return { tone: 'bad', headline, explanation: 'The carrier did not answer in time.' };
  if (c >= 500 && c < 600) return { tone: 'bad', headline, explanation: `The carrier’s server had a problem (${answerText(a)}). Try again later, or ask the carrier.` };
  if (c >= 600) return { tone: 'bad', headline, explanation: `The carrier declined (${answerText(a)}).` };
  return { tone: 'bad', headline, explanation: `The carrier refused the request (${answerText(a)}).` };
}

const TONE = { ok: 'border-emerald-200 bg-emerald-50', warn: 'border-amber-200 bg-amber-50', bad: 'border-red-200 bg-red-50' };

/** The answers of a trunk test, one block per request sent. */
export function TrunkTestResultPanel({ result }: { result: TrunkTestResult }) {
  const probes: ['OPTIONS' | 'REGISTER', TrunkProbe][] = [['OPTIONS', result.options]];
  if (result.register) probes.push(['REGISTER', result.register]);
  return (
    <ul aria-label="Test result" className="space-y-2">
      {probes.map(([kind, p]) => {
        const w = probeWords(kind, p);
        return (
          <li key={kind} className={`rounded-md border px-3 py-2 text-sm ${TONE[w.tone]}`} data-testid={`probe-${kind}`} data-tone={w.tone}>
            <p className="font-medium">
              {kind}: {w.headline}
            </p>
            <p className="text-slate-700">{w.explanation}</p>
          </li>
        );
      })}
    </ul>
  );
}

/**
 * The status of one trunk with a Test button: sends an OPTIONS (and a REGISTER for a
 * registration trunk) and shows what came back. `autoTest` runs the test on open.
 */
export function TrunkPanel({ trunk, autoTest = false }: { trunk: Trunk; autoTest?: boolean }) {
  const status = useTrunkStatus(trunk);
  const [state, setState] = useState<{ running: boolean; result?: TrunkTestResult; error?: string }>({ running: false });
  const run = async () => {
    setState({ running: true });
    try {
      const result = await api.trunks.test(trunk.id);
      // the status after the test is the server's newest: show it before /ws repeats it
      live.dispatch({ type: 'trunk.status', data: result.status });
      setState({ running: false, result });
    } catch (e) {
      setState({ running: false, error: errorMessage(e) });
    }
  };
  useEffect(() => {
    if (autoTest) void run();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);
  const target = trunk.type === 'register' ? `${trunk.host ?? ''}:${trunk.port}` : trunk.host || (trunk.remote_hosts ?? []).join(', ');
  return (
    <div className="space-y-4">
      <TrunkStatusDetails trunk={trunk} status={status} />
      <div>
        <div className="mb-2 flex items-center gap-2">
          <button type="button" className="btn btn-primary btn-sm" onClick={() => void run()} disabled={state.running || !trunk.enabled}>
            {state.running ? 'Testing…' : state.result || state.error ? 'Test again' : 'Test'}
          </button>
          <span className="text-xs text-slate-500">
            {trunk.enabled
              ? `Sends an OPTIONS${trunk.type === 'register' ? ' and a REGISTER' : ''} to ${target} (${trunk.transport.toUpperCase()}) and waits up to 8 s.`
              : 'Enable the trunk to test it.'}
          </span>
        </div>
        {state.running && (
          <p role="status" className="text-sm text-slate-500">
            Waiting for the carrier’s answers…
          </p>
        )}
        <ErrorBanner error={state.error} title="The test could not run:" />
        {state.result && <TrunkTestResultPanel result={state.result} />}
      </div>
    </div>
  );
}
