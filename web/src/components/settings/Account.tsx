// The signed-in administrator's account: change the password (every other session ends) and
// see and end their sessions.
import { useState } from 'react';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { ApiError, errorMessage } from '../../api/client';
import { api } from '../../api/endpoints';
import type { AdminSession, PasswordChanged } from '../../api/types';
import { Checkbox, ErrorBanner, formatDate, TextInput } from '../common/ui';
import { tokensKey } from './ApiTokens';

export const sessionsKey = ['sessions'] as const;

export function ChangePassword() {
  const qc = useQueryClient();
  const [current, setCurrent] = useState('');
  const [next, setNext] = useState('');
  const [confirm, setConfirm] = useState('');
  const [revokeTokens, setRevokeTokens] = useState(false);
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [error, setError] = useState<string | null>(null);
  const [done, setDone] = useState<PasswordChanged | null>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (e: React.FormEvent) => {
    e.preventDefault();
    setDone(null);
    setError(null);
    if (next !== confirm) {
      setErrors({ confirm: 'does not match the new password' });
      return;
    }
    setErrors({});
    setBusy(true);
    try {
      const r = await api.auth.changePassword({ current_password: current, new_password: next, revoke_tokens: revokeTokens });
      setDone(r);
      setCurrent('');
      setNext('');
      setConfirm('');
      void qc.invalidateQueries({ queryKey: sessionsKey });
      if (r.tokens_revoked > 0) void qc.invalidateQueries({ queryKey: tokensKey });
    } catch (err) {
      const fields = err instanceof ApiError ? err.fieldErrors() : {};
      setErrors(fields);
      if (!('current_password' in fields || 'new_password' in fields)) setError(errorMessage(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <section className="card mt-6 p-4" aria-labelledby="password-title">
      <h2 id="password-title" className="mb-2 font-semibold">
        Change password
      </h2>
      <ErrorBanner error={error} />
      <form onSubmit={submit} className="grid grid-cols-1 gap-x-3 sm:grid-cols-3">
        <TextInput id="pw-current" label="Current password" type="password" autoComplete="current-password" value={current} onChange={setCurrent} error={errors.current_password} required />
        <TextInput id="pw-new" label="New password" type="password" autoComplete="new-password" value={next} onChange={setNext} error={errors.new_password} help="8 characters or more" required />
        <TextInput id="pw-confirm" label="Repeat the new password" type="password" autoComplete="new-password" value={confirm} onChange={setConfirm} error={errors.confirm} required />
        <div className="sm:col-span-3">
          <Checkbox id="pw-revoke-tokens" label="Also revoke the API tokens I created" checked={revokeTokens} onChange={setRevokeTokens} help="Your other sessions end in any case" />
        </div>
        <div className="flex flex-wrap items-center gap-3 sm:col-span-3">
          <button type="submit" className="btn btn-primary" disabled={busy || !current || !next}>
            {busy ? 'Changing…' : 'Change password'}
          </button>
          {done && (
            <span role="status" className="text-sm text-emerald-700">
              Password changed. {done.sessions_ended} other session{done.sessions_ended === 1 ? '' : 's'} ended
              {done.tokens_revoked > 0 && `, ${done.tokens_revoked} token${done.tokens_revoked === 1 ? '' : 's'} revoked`}.
            </span>
          )}
        </div>
      </form>
    </section>
  );
}

function describe(s: AdminSession): string {
  const agent = !s.user_agent ? 'unknown browser' : s.user_agent.length > 60 ? `${s.user_agent.slice(0, 60)}…` : s.user_agent;
  return `${s.ip ?? 'unknown address'} · ${agent}`;
}

export function Sessions() {
  const qc = useQueryClient();
  const sessions = useQuery({ queryKey: sessionsKey, queryFn: api.auth.sessions });
  const [error, setError] = useState<string | null>(null);
  const [ended, setEnded] = useState<number | null>(null);
  const others = (sessions.data ?? []).filter((s) => !s.current).length;

  const run = async (f: () => Promise<unknown>) => {
    setError(null);
    setEnded(null);
    try {
      const r = await f();
      if (r && typeof r === 'object' && 'ended' in r) setEnded((r as { ended: number }).ended);
      void qc.invalidateQueries({ queryKey: sessionsKey });
    } catch (err) {
      setError(errorMessage(err));
    }
  };

  return (
    <section className="card mt-6 p-4" aria-labelledby="sessions-title">
      <h2 id="sessions-title" className="mb-2 font-semibold">
        Sessions
      </h2>
      <p className="mb-3 text-sm text-slate-600">Where you are signed in. A session ends after 24 hours unused, and 7 days after signing in in any case.</p>
      <ErrorBanner error={error ?? (sessions.error ? errorMessage(sessions.error) : null)} />
      <ul className="mb-3 divide-y divide-slate-100 text-sm" aria-label="Sessions">
        {(sessions.data ?? []).map((s) => (
          <li key={s.id} className="flex items-center justify-between gap-2 py-1">
            <span>
              {describe(s)} {s.current && <span className="rounded bg-emerald-50 px-1.5 py-0.5 text-xs font-medium text-emerald-800">this session</span>}{' '}
              <span className="text-xs text-slate-500">
                signed in {formatDate(s.created_at)}, last used {formatDate(s.last_seen_at)}, ends by {formatDate(s.absolute_expires_at)}
              </span>
            </span>
            {!s.current && (
              <button type="button" className="btn btn-ghost btn-sm text-red-700" onClick={() => void run(() => api.auth.endSession(s.id))} aria-label={`End session ${describe(s)}`}>
                End
              </button>
            )}
          </li>
        ))}
      </ul>
      <div className="flex flex-wrap items-center gap-3">
        <button type="button" className="btn" disabled={others === 0} onClick={() => void run(api.auth.endOtherSessions)}>
          End all other sessions
        </button>
        {ended !== null && (
          <span role="status" className="text-sm text-emerald-700">
            {ended} session{ended === 1 ? '' : 's'} ended.
          </span>
        )}
      </div>
    </section>
  );
}
