// An extension's push notifications (host/pbx/src/notify.rs, `Notifier::push_for`): a
// missed call to the extension, or a voicemail in a box that notifies it, is posted to the
// extension's ntfy topic or Gotify server. The API (`/extensions/{id}/push`, host/api's
// webhooks.rs) stores one target per extension: the kind, the URL (checked against the
// egress policy) and a write-only token. The token is never read back: the form shows
// whether one is stored and offers to keep, replace or clear it. Errors the server names
// (`kind`, `url`, `token`) are shown at that field. Rendered in the extension's edit dialog.
import { useEffect, useState } from 'react';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { ApiError, errorMessage } from '../../api/client';
import { api } from '../../api/endpoints';
import type { Id, PushInput, PushKind, PushTarget } from '../../api/types';
import { ErrorBanner, Field, formatDate, Select, Spinner, TextInput, describedBy } from '../common/ui';

export const PUSH_KINDS: { value: PushKind; label: string; url: string; token: string }[] = [
  { value: 'ntfy', label: 'ntfy', url: 'https://ntfy.example.com/alice-calls', token: 'Access token (sent as Authorization: Bearer); optional for an open topic.' },
  { value: 'gotify', label: 'Gotify', url: 'https://gotify.example.com/message', token: 'The application token (sent as X-Gotify-Key).' },
];

/** What happens to a stored token on save. */
export type TokenAction = 'keep' | 'replace' | 'clear';

/** The request body: `token` left out keeps the stored one, `''` clears it. */
export function pushBody(kind: PushKind, url: string, action: TokenAction, token: string): PushInput {
  const body: PushInput = { kind, url: url.trim() };
  if (action === 'clear') body.token = '';
  else if (action === 'replace' && token !== '') body.token = token;
  return body;
}

export function PushTargetForm({ extensionId }: { extensionId: Id }) {
  const key = ['push', extensionId];
  const qc = useQueryClient();
  const q = useQuery({ queryKey: key, queryFn: () => api.extensions.push(extensionId) });
  const stored = q.data ?? null;
  const idp = `push-${extensionId}`;
  const [kind, setKind] = useState<PushKind>('ntfy');
  const [url, setUrl] = useState('');
  const [action, setAction] = useState<TokenAction>('replace');
  const [token, setToken] = useState('');
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [banner, setBanner] = useState<string | null>(null);
  const [done, setDone] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  // the form starts from what is stored (again after a save or a removal)
  const reset = (t: PushTarget | null) => {
    setKind(t?.kind ?? 'ntfy');
    setUrl(t?.url ?? '');
    setAction(t?.token_set ? 'keep' : 'replace');
    setToken('');
  };
  useEffect(() => {
    if (q.isSuccess) reset(q.data ?? null);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [q.isSuccess, q.dataUpdatedAt]);

  if (q.isLoading) return <Spinner />;
  if (q.error) return <ErrorBanner error={errorMessage(q.error)} title="Push notifications" />;

  const fail = (e: unknown) => {
    if (e instanceof ApiError) {
      const fe = e.fieldErrors();
      const shown = Object.fromEntries(Object.entries(fe).filter(([f]) => f === 'kind' || f === 'url' || f === 'token'));
      setErrors(shown);
      const rest = Object.entries(fe).filter(([f]) => !(f in shown));
      setBanner(rest.length > 0 ? rest.map(([f, m]) => `${f}: ${m}`).join('; ') : Object.keys(shown).length > 0 ? null : e.message);
    } else {
      setErrors({});
      setBanner(errorMessage(e));
    }
  };

  const save = async () => {
    setDone(null);
    setBanner(null);
    const local: Record<string, string> = {};
    if (url.trim() === '') local.url = 'Enter the URL the notifications are posted to.';
    if (stored?.token_set && action === 'replace' && token === '') local.token = 'Enter the new token, or keep the stored one.';
    setErrors(local);
    if (Object.keys(local).length > 0) return;
    setBusy(true);
    try {
      const t = await api.extensions.setPush(extensionId, pushBody(kind, url, action, token));
      qc.setQueryData(key, t);
      reset(t);
      setDone('Push target saved.');
    } catch (e) {
      fail(e);
    } finally {
      setBusy(false);
    }
  };

  const remove = async () => {
    setDone(null);
    setBanner(null);
    setErrors({});
    setBusy(true);
    try {
      await api.extensions.removePush(extensionId);
      qc.setQueryData(key, null);
      reset(null);
      setDone('Push target removed.');
    } catch (e) {
      fail(e);
    } finally {
      setBusy(false);
    }
  };

  const k = PUSH_KINDS.find((x) => x.value === kind) ?? PUSH_KINDS[0];
  const tokenId = `${idp}-token`;
  return (
    <section className="mt-6 border-t border-slate-200 pt-4" aria-labelledby={`${idp}-title`}>
      <h3 id={`${idp}-title`} className="mb-1 text-sm font-semibold text-slate-700">
        Push notifications
      </h3>
      <p className="mb-3 text-xs text-slate-500">
        Sent for a missed call to this extension and for a new voicemail in a box that notifies this extension, to a self-hosted ntfy or Gotify server.
        {stored ? ` Last changed ${formatDate(stored.updated_at)}.` : ' None is set.'}
      </p>
      <ErrorBanner error={banner} />
      <form
        noValidate
        aria-label="Push target"
        onSubmit={(e) => {
          e.preventDefault();
          void save();
        }}
      >
        <div className="grid grid-cols-1 gap-x-3 sm:grid-cols-[10rem_1fr]">
          <Select id={`${idp}-kind`} label="Provider" value={kind} options={PUSH_KINDS.map(({ value, label }) => ({ value, label }))} error={errors.kind}
            onChange={(x) => { setKind(x as PushKind); setErrors(({ kind: _, ...r }) => r); }} />
          <TextInput id={`${idp}-url`} label={kind === 'gotify' ? 'Message URL' : 'Topic URL'} required type="url" placeholder={k.url} value={url} error={errors.url}
            help="http or https; private addresses only where the egress policy allows them." onChange={(x) => { setUrl(x); setErrors(({ url: _, ...r }) => r); }} />
        </div>
        {stored?.token_set ? (
          <fieldset className="mb-3" aria-describedby={errors.token ? `${tokenId}-error` : undefined}>
            <legend className="label">Token: set</legend>
            <div className="flex flex-wrap gap-4">
              {(['keep', 'replace', 'clear'] as const).map((a) => (
                <label key={a} className="flex items-center gap-1.5 text-sm text-slate-700">
                  <input type="radio" name={`${idp}-token-action`} value={a} checked={action === a} className="h-4 w-4 border-slate-300 text-indigo-600"
                    onChange={() => { setAction(a); setToken(''); setErrors(({ token: _, ...r }) => r); }} />
                  {a === 'keep' ? 'Keep it' : a === 'replace' ? 'Replace it' : 'Clear it'}
                </label>
              ))}
            </div>
            {action === 'replace' && (
              <div className="mt-2">
                <label htmlFor={tokenId} className="sr-only">
                  New token
                </label>
                <input {...describedBy(tokenId, errors.token, k.token)} className={`input ${errors.token ? 'input-error' : ''}`} type="password" autoComplete="new-password"
                  placeholder="New token" value={token} onChange={(e) => { setToken(e.target.value); setErrors(({ token: _, ...r }) => r); }} />
              </div>
            )}
            {errors.token ? (
              <p id={`${tokenId}-error`} role="alert" className="mt-1 text-xs text-red-600">{errors.token}</p>
            ) : (
              action === 'replace' && <p id={`${tokenId}-help`} className="mt-1 text-xs text-slate-500">{k.token}</p>
            )}
          </fieldset>
        ) : (
          <Field id={tokenId} label="Token (not set)" error={errors.token} help={k.token}>
            <input {...describedBy(tokenId, errors.token, k.token)} className={`input ${errors.token ? 'input-error' : ''}`} type="password" autoComplete="new-password"
              value={token} onChange={(e) => { setToken(e.target.value); setErrors(({ token: _, ...r }) => r); }} />
          </Field>
        )}
        <div className="flex flex-wrap items-center gap-2">
          <button type="submit" className="btn btn-primary btn-sm" disabled={busy}>
            Save push target
          </button>
          {stored && (
            <button type="button" className="btn btn-sm text-red-700" disabled={busy} onClick={() => void remove()}>
              Remove push target
            </button>
          )}
          {done && <span role="status" className="text-xs text-emerald-700">{done}</span>}
        </div>
      </form>
    </section>
  );
}
