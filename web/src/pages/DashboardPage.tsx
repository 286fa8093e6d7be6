// Dashboard: active calls (live), registrations, trunk status, recent calls, health.
import { useQuery } from '@tanstack/react-query';
import { Link } from 'react-router';
import { errorMessage } from '../api/client';
import { api } from '../api/endpoints';
import { useLive } from '../api/live';
import { keys, useEntities } from '../api/queries';
import type { ActiveCall, Trunk } from '../api/types';
import { TrunkStatusBadge, trunkStatusWords, useTrunkStatus } from '../components/trunks/TrunkStatus';
import { ErrorBanner, formatDate, formatDuration, PageHeader, Spinner, SrtpBadge, StatusDot, TableHead } from '../components/common/ui';
import { useEffect, useState } from 'react';

function Stat({ label, value }: { label: string; value: string | number }) {
  return (
    <div className="card p-4">
      <div className="text-xs font-medium uppercase tracking-wide text-slate-500">{label}</div>
      <div className="mt-1 text-2xl font-semibold">{value}</div>
    </div>
  );
}

function useNow(ms = 1000) {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(t);
  }, [ms]);
  return now;
}

export default function DashboardPage() {
  const seq = useLive((s) => s.seq);
  const synced = useLive((s) => s.synced);
  const liveCalls = useLive((s) => s.calls);
  const liveRegs = useLive((s) => s.registrations);
  // refetch the lists that live events change, at most every few events
  const tick = Math.floor(seq / 5);
  const status = useQuery({ queryKey: ['system-status', tick], queryFn: api.systemStatus, placeholderData: (p) => p });
  const recent = useQuery({ queryKey: keys.cdrs({ recent: true, tick }), queryFn: () => api.cdrs.list({ limit: 10 }), placeholderData: (p) => p });
  const today = new Date().toISOString().slice(0, 10);
  const callsToday = useQuery({ queryKey: keys.cdrs({ from: today, tick }), queryFn: () => api.cdrs.list({ limit: 1, from: today }), placeholderData: (p) => p });
  const trunks = useEntities('trunk');
  // every 2 s while the server drains: the calls left and the time left move
  const health = useQuery({ queryKey: keys.health, queryFn: api.health, refetchInterval: (q) => (q.state.data?.drain?.draining ? 2_000 : 30_000) });
  const restCalls = useQuery({ queryKey: keys.activeCalls, queryFn: api.activeCalls, enabled: !synced, refetchInterval: synced ? false : 5000, retry: false });
  const now = useNow();

  const calls: ActiveCall[] = synced ? Object.values(liveCalls) : (restCalls.data ?? []);
  const registrations = synced ? Object.values(liveRegs).reduce((a, b) => a + b, 0) : (status.data?.counts.registrations ?? 0);
  const stats = { data: status.data && { extensions: status.data.counts.extensions, calls_today: callsToday.data?.total ?? callsToday.data?.items.length, recent_cdrs: recent.data?.items ?? [], trunks: trunks.data ?? [] }, isLoading: status.isLoading || trunks.isLoading, error: status.error ?? recent.error };

  return (
    <div>
      <PageHeader title="Dashboard" />
      <ErrorBanner error={stats.error ? errorMessage(stats.error) : null} />
      <div className="mb-4 grid grid-cols-2 gap-3 lg:grid-cols-4">
        <Stat label="Active calls" value={calls.length} />
        <Stat label="Registered devices" value={registrations} />
        <Stat label="Extensions" value={stats.data?.extensions ?? '—'} />
        <Stat label="Calls today" value={stats.data?.calls_today ?? '—'} />
      </div>
      <div className="grid grid-cols-1 gap-4 lg:grid-cols-2">
        <section className="card p-4" aria-labelledby="active-calls">
          <h2 id="active-calls" className="mb-2 font-semibold">
            Active calls
          </h2>
          {calls.length === 0 ? (
            <p className="text-sm text-slate-500">No calls right now.</p>
          ) : (
            <table className="table">
              <TableHead columns={['From', 'To', 'State', 'Time']} />
              <tbody>
                {calls.map((c) => (
                  <tr key={c.id}>
                    <td>{c.caller_id_name ?? ''} {c.caller_id_num ?? ''}<SrtpBadge suite={c.caller_srtp} /></td>
                    <td>{c.callee ?? ''}<SrtpBadge suite={c.callee_srtp} /></td>
                    <td>{c.state}</td>
                    <td>{c.started_at ? formatDuration((now - Date.parse(c.started_at)) / 1000) : ''}</td>
                    <td>
                      <button type="button" className="btn btn-ghost btn-sm text-red-700" onClick={() => void api.hangupCall(c.id)}>
                        Hang up
                      </button>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </section>
        <section className="card p-4" aria-labelledby="trunk-status">
          <h2 id="trunk-status" className="mb-2 font-semibold">
            Trunks
          </h2>
          {stats.isLoading && <Spinner />}
          <ul className="space-y-1 text-sm" aria-label="Trunk states">
            {stats.data && (trunks.data ?? []).map((t) => <DashboardTrunk key={t.id} trunk={t} />)}
            {stats.data && stats.data.trunks.length === 0 && (
              <li className="text-slate-500">
                No trunks. <Link className="text-indigo-700 underline" to="/trunks">Add one</Link>
              </li>
            )}
          </ul>
        </section>
        <section className="card p-4" aria-labelledby="recent-calls">
          <h2 id="recent-calls" className="mb-2 font-semibold">
            Recent calls
          </h2>
          <ul className="divide-y divide-slate-100 text-sm">
            {(stats.data?.recent_cdrs ?? []).map((c) => (
              <li key={c.id} className="flex justify-between py-1">
                <span>
                  {c.caller_id_num ?? 'unknown'} → {c.callee ?? ''}
                </span>
                <span className="text-slate-500">
                  {c.disposition ?? ''} · {formatDate(c.start_time)}
                </span>
              </li>
            ))}
          </ul>
          <Link to="/calls" className="mt-2 inline-block text-sm text-indigo-700 underline">
            All calls
          </Link>
        </section>
        <section className="card p-4" aria-labelledby="health">
          <h2 id="health" className="mb-2 font-semibold">
            System health
          </h2>
          {health.error && <ErrorBanner error={errorMessage(health.error)} />}
          {health.data && (
            <>
              <p className="mb-2 text-sm text-slate-600">
                Version {health.data.version}
                {health.data.schema_version ? ` (schema ${health.data.schema_version})` : ''}, up {formatDuration(health.data.uptime_seconds)}
              </p>
              {health.data.drain?.draining && (
                <p role="status" className="mb-2 rounded bg-amber-50 p-2 text-sm text-amber-900" data-testid="drain-status">
                  Draining: new calls are refused; {health.data.drain.active_calls} call{health.data.drain.active_calls === 1 ? '' : 's'} in progress
                  {health.data.drain.deadline_seconds !== undefined && health.data.drain.deadline_seconds !== null
                    ? `, ended in ${formatDuration(health.data.drain.deadline_seconds)} at the latest`
                    : ''}
                  . The server stops when the last call ends.
                </p>
              )}
              <ul className="space-y-1 text-sm">
                {Object.entries(health.data.components ?? {}).map(([name, c]) => (
                  <li key={name} className="flex justify-between">
                    <span>{name}</span>
                    <StatusDot status={{ tone: c.status === 'ok' ? 'ok' : c.status === 'down' ? 'bad' : 'warn', text: c.detail ? `${c.status}: ${c.detail}` : c.status }} />
                  </li>
                ))}
              </ul>
            </>
          )}
        </section>
      </div>
    </div>
  );
}

/** A trunk on the dashboard: its state, and the error when it is not working. */
function DashboardTrunk({ trunk }: { trunk: Trunk }) {
  const status = useTrunkStatus(trunk);
  const w = trunkStatusWords(status, trunk.options_interval);
  return (
    <li>
      <div className="flex justify-between gap-2">
        <Link to="/trunks" className="hover:underline">
          {trunk.name}
        </Link>
        <TrunkStatusBadge trunk={trunk} status={status} compact />
      </div>
      {w.tone === 'bad' && w.detail && <p className="text-xs text-slate-500">{w.detail}</p>}
    </li>
  );
}
