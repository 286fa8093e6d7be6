// API tokens: list (scope, expiry, last use), create with a scope and a lifetime, revoke.
// Only a signed-in session can create tokens (the server refuses a token's request).
import { useState } from 'react';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { ApiError, errorMessage } from '../../api/client';
import { api } from '../../api/endpoints';
import type { ApiToken, CreatedApiToken, TokenScope } from '../../api/types';
import { ConfirmDelete } from '../common/ConfirmDelete';
import { ErrorBanner, formatDate, NumberInput, Select, TextInput } from '../common/ui';

export const TOKEN_DEFAULT_DAYS = 90;
export const TOKEN_MAX_DAYS = 365;

export const SCOPES: { value: TokenScope; label: string; help: string }[] = [
  { value: 'read', label: 'Read', help: 'reads only (GET)' },
  { value: 'write', label: 'Write', help: 'reads, and changes to extensions, trunks, flows…' },
  { value: 'admin', label: 'Admin', help: 'also settings, tokens, plugins and the audit log' },
];

export const tokensKey = ['tokens'] as const;

function expiry(t: ApiToken): string {
  if (t.revoked_at) return `revoked ${formatDate(t.revoked_at)}`;
  if (!t.expires_at) return 'never expires';
  return `${new Date(t.expires_at).getTime() <= Date.now() ? 'expired' : 'expires'} ${formatDate(t.expires_at)}`;
}

export function ApiTokens() {
  const qc = useQueryClient();
  const tokens = useQuery({ queryKey: tokensKey, queryFn: api.tokens.list });
  const [name, setName] = useState('');
  const [scope, setScope] = useState<TokenScope>('read');
  const [days, setDays] = useState<number | null>(TOKEN_DEFAULT_DAYS);
  const [created, setCreated] = useState<CreatedApiToken | null>(null);
  const [revoking, setRevoking] = useState<ApiToken | null>(null);
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const create = async (e: React.FormEvent) => {
    e.preventDefault();
    setError(null);
    setErrors({});
    setBusy(true);
    try {
      setCreated(await api.tokens.create({ name: name.trim(), scope, expires_in_days: days ?? undefined }));
      setName('');
      void qc.invalidateQueries({ queryKey: tokensKey });
    } catch (err) {
      const fields = err instanceof ApiError ? err.fieldErrors() : {};
      setErrors(fields);
      if (!['name', 'scope', 'expires_in_days'].some((f) => f in fields)) setError(errorMessage(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <section className="card mt-6 p-4" aria-labelledby="tokens-title">
      <h2 id="tokens-title" className="mb-2 font-semibold">
        API tokens
      </h2>
      <p className="mb-3 text-sm text-slate-600">
        Bearer tokens for integrations, each limited to a scope and expiring ({TOKEN_DEFAULT_DAYS} days unless you choose, at most {TOKEN_MAX_DAYS}). A token is shown once, when it is
        created; no token can create another.
      </p>
      <ErrorBanner error={error ?? (tokens.error ? errorMessage(tokens.error) : null)} />
      {created?.token && (
        <div role="status" className="mb-3 rounded-md bg-emerald-50 p-2 text-sm">
          Token for {created.name} ({created.scope}): <code className="break-all">{created.token}</code>
        </div>
      )}
      <ul className="mb-3 divide-y divide-slate-100 text-sm" aria-label="API tokens">
        {(tokens.data ?? []).map((t) => (
          <li key={t.id} className="flex items-center justify-between gap-2 py-1">
            <span>
              {t.name} <span className="rounded bg-slate-100 px-1.5 py-0.5 text-xs font-medium text-slate-700">{t.scope}</span>{' '}
              <span className="text-xs text-slate-500">
                created {formatDate(t.created_at)}, {expiry(t)}, last used {formatDate(t.last_used_at)}
              </span>
            </span>
            {!t.revoked_at && (
              <button type="button" className="btn btn-ghost btn-sm text-red-700" onClick={() => setRevoking(t)} aria-label={`Revoke token ${t.name}`}>
                Revoke
              </button>
            )}
          </li>
        ))}
      </ul>
      <form onSubmit={create} className="grid grid-cols-1 items-end gap-x-3 sm:grid-cols-[1fr_10rem_9rem_auto]">
        <TextInput id="token-name" label="New token name" value={name} onChange={setName} error={errors.name} />
        <Select
          id="token-scope"
          label="Scope"
          value={scope}
          onChange={(v) => setScope(v as TokenScope)}
          options={SCOPES.map((s) => ({ value: s.value, label: `${s.label}: ${s.help}` }))}
          error={errors.scope}
        />
        <NumberInput id="token-days" label="Expires in (days)" value={days} onChange={setDays} min={1} max={TOKEN_MAX_DAYS} error={errors.expires_in_days} />
        <button type="submit" className="btn mb-3" disabled={!name.trim() || busy}>
          Create token
        </button>
      </form>
      {revoking && (
        <ConfirmDelete verb="Revoke" what={`token ${revoking.name}`} onConfirm={() => api.tokens.revoke(revoking.id)} onClose={() => setRevoking(null)} onDone={() => void qc.invalidateQueries({ queryKey: tokensKey })} />
      )}
    </section>
  );
}
