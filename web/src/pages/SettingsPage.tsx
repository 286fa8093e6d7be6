// Settings (system_config keys) grouped as an administrator thinks of them, and API tokens.
import { useEffect, useState } from 'react';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { ApiError, errorMessage } from '../api/client';
import { api } from '../api/endpoints';
import { keys } from '../api/queries';
import type { ApiToken, Settings } from '../api/types';
import { ConfirmDelete } from '../components/common/ConfirmDelete';
import { Checkbox, ErrorBanner, formatDate, NumberInput, PageHeader, Spinner, TextInput } from '../components/common/ui';

type Kind = 'text' | 'number' | 'bool' | 'secret';
const GROUPS: { title: string; fields: { key: string; label: string; kind: Kind; help?: string }[] }[] = [
  {
    title: 'SIP and network',
    fields: [
      { key: 'hostname', label: 'Hostname', kind: 'text' },
      { key: 'external_ip', label: 'External IP', kind: 'text', help: 'Empty to detect' },
      { key: 'sip.udp_port', label: 'SIP UDP port', kind: 'number' },
      { key: 'sip.tcp_port', label: 'SIP TCP port', kind: 'number' },
      { key: 'sip.tls_port', label: 'SIP TLS port', kind: 'number' },
      { key: 'rtp.port_min', label: 'RTP ports from', kind: 'number' },
      { key: 'rtp.port_max', label: 'RTP ports to', kind: 'number' },
      { key: 'sip.codecs', label: 'Codecs, in order', kind: 'text', help: 'e.g. opus,g711u,g711a' },
    ],
  },
  {
    title: 'TLS',
    fields: [
      { key: 'tls.cert_file', label: 'Certificate file', kind: 'text' },
      { key: 'tls.key_file', label: 'Key file', kind: 'text' },
    ],
  },
  {
    title: 'Recording',
    fields: [
      { key: 'recording.dir', label: 'Recordings directory', kind: 'text', help: 'Relative to the data dir' },
      { key: 'recording.retention_days', label: 'Keep recordings (days)', kind: 'number', help: '0 = forever' },
    ],
  },
  {
    title: 'Email (voicemail notifications)',
    fields: [
      { key: 'smtp.host', label: 'SMTP host', kind: 'text' },
      { key: 'smtp.port', label: 'SMTP port', kind: 'number' },
      { key: 'smtp.username', label: 'SMTP username', kind: 'text' },
      { key: 'smtp.password', label: 'SMTP password', kind: 'secret' },
      { key: 'smtp.from', label: 'From address', kind: 'text' },
      { key: 'smtp.starttls', label: 'Use STARTTLS', kind: 'bool' },
    ],
  },
  {
    title: 'License and push',
    fields: [
      { key: 'license.key', label: 'License key', kind: 'secret' },
      { key: 'push.gateway_url', label: 'Push gateway URL', kind: 'text' },
    ],
  },
];
const KNOWN = new Set(GROUPS.flatMap((g) => g.fields.map((f) => f.key)));

export default function SettingsPage() {
  const qc = useQueryClient();
  const settings = useQuery({ queryKey: keys.settings, queryFn: api.settings.get });
  const [values, setValues] = useState<Settings>({});
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [saved, setSaved] = useState(false);
  useEffect(() => {
    if (settings.data) setValues(settings.data);
  }, [settings.data]);

  const save = useMutation({
    mutationFn: () => {
      const changed: Settings = {};
      for (const [k, v] of Object.entries(values)) if (settings.data?.[k] !== v) changed[k] = v;
      return api.settings.update(changed);
    },
    onSuccess: (s) => {
      qc.setQueryData(keys.settings, s);
      setErrors({});
      setSaved(true);
    },
    onError: (e) => {
      if (e instanceof ApiError) setErrors(e.fieldErrors());
      setSaved(false);
    },
  });

  if (settings.isLoading) return <Spinner />;
  const set = (k: string, v: Settings[string]) => {
    setSaved(false);
    setValues((p) => ({ ...p, [k]: v }));
  };
  const others = Object.keys(values).filter((k) => !KNOWN.has(k));
  const id = (k: string) => `set-${k.replace(/\W/g, '-')}`;

  return (
    <div className="max-w-3xl">
      <PageHeader title="Settings" />
      <ErrorBanner error={settings.error ? errorMessage(settings.error) : save.error && !(save.error instanceof ApiError && save.error.details.length) ? errorMessage(save.error) : null} />
      <form
        onSubmit={(e) => {
          e.preventDefault();
          save.mutate();
        }}
      >
        {GROUPS.map((g) => (
          <fieldset key={g.title} className="card mb-4 p-4">
            <legend className="px-1 font-semibold">{g.title}</legend>
            <div className="grid grid-cols-1 gap-x-3 sm:grid-cols-2">
              {g.fields.map((f) =>
                f.kind === 'bool' ? (
                  <Checkbox key={f.key} id={id(f.key)} label={f.label} checked={values[f.key] === true || values[f.key] === 'true'} error={errors[f.key]} onChange={(x) => set(f.key, x)} />
                ) : f.kind === 'number' ? (
                  <NumberInput key={f.key} id={id(f.key)} label={f.label} help={f.help} value={values[f.key] === undefined || values[f.key] === null || values[f.key] === '' ? null : Number(values[f.key])} error={errors[f.key]} onChange={(x) => set(f.key, x)} />
                ) : (
                  <TextInput key={f.key} id={id(f.key)} label={f.label} help={f.kind === 'secret' ? 'Write-only: leave empty to keep it' : f.help} type={f.kind === 'secret' ? 'password' : 'text'} autoComplete="off" value={(values[f.key] as string) ?? ''} error={errors[f.key]} onChange={(x) => set(f.key, x)} />
                ),
              )}
            </div>
          </fieldset>
        ))}
        {others.length > 0 && (
          <fieldset className="card mb-4 p-4">
            <legend className="px-1 font-semibold">Other</legend>
            {others.map((k) => (
              <TextInput key={k} id={id(k)} label={k} value={String(values[k] ?? '')} error={errors[k]} onChange={(x) => set(k, x)} />
            ))}
          </fieldset>
        )}
        <div className="flex items-center gap-3">
          <button type="submit" className="btn btn-primary" disabled={save.isPending}>
            {save.isPending ? 'Saving…' : 'Save settings'}
          </button>
          {saved && (
            <span role="status" className="text-sm text-emerald-700">
              Saved.
            </span>
          )}
        </div>
      </form>
      <Tokens />
    </div>
  );
}

function Tokens() {
  const qc = useQueryClient();
  const tokens = useQuery({ queryKey: ['tokens'], queryFn: api.tokens.list });
  const [name, setName] = useState('');
  const [created, setCreated] = useState<ApiToken | null>(null);
  const [revoking, setRevoking] = useState<ApiToken | null>(null);
  const [error, setError] = useState<string | null>(null);
  const create = async (e: React.FormEvent) => {
    e.preventDefault();
    setError(null);
    try {
      setCreated(await api.tokens.create(name));
      setName('');
      void qc.invalidateQueries({ queryKey: ['tokens'] });
    } catch (err) {
      setError(errorMessage(err));
    }
  };
  return (
    <section className="card mt-6 p-4" aria-labelledby="tokens-title">
      <h2 id="tokens-title" className="mb-2 font-semibold">
        API tokens
      </h2>
      <p className="mb-3 text-sm text-slate-600">Bearer tokens for integrations. A token is shown once, when it is created.</p>
      <ErrorBanner error={error ?? (tokens.error ? errorMessage(tokens.error) : null)} />
      {created?.token && (
        <div role="status" className="mb-3 rounded-md bg-emerald-50 p-2 text-sm">
          Token for {created.name}: <code className="break-all">{created.token}</code>
        </div>
      )}
      <ul className="mb-3 divide-y divide-slate-100 text-sm">
        {(tokens.data ?? []).map((t) => (
          <li key={t.id} className="flex items-center justify-between py-1">
            <span>
              {t.name} <span className="text-xs text-slate-500">created {formatDate(t.created_at)}, last used {formatDate(t.last_used_at)}</span>
            </span>
            <button type="button" className="btn btn-ghost btn-sm text-red-700" onClick={() => setRevoking(t)}>
              Revoke
            </button>
          </li>
        ))}
      </ul>
      <form onSubmit={create} className="flex items-end gap-2">
        <TextInput id="token-name" label="New token name" value={name} onChange={setName} className="mb-0 flex-1" />
        <button type="submit" className="btn" disabled={!name.trim()}>
          Create token
        </button>
      </form>
      {revoking && <ConfirmDelete verb="Revoke" what={`token ${revoking.name}`} onConfirm={() => api.tokens.revoke(revoking.id)} onClose={() => setRevoking(null)} onDone={() => void qc.invalidateQueries({ queryKey: ['tokens'] })} />}
    </section>
  );
}
