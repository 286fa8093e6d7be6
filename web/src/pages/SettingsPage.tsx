// Settings (system_config keys) grouped as an administrator thinks of them; the HTTPS
// certificate (read-only); the account (password, sessions) and API tokens.
import { useEffect, useState } from 'react';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { ApiError, errorMessage } from '../api/client';
import { api } from '../api/endpoints';
import { keys } from '../api/queries';
import type { SettingsChanged, SettingsUpdate } from '../api/types';
import { Checkbox, ErrorBanner, NumberInput, PageHeader, Select, Spinner, TextInput } from '../components/common/ui';
import { ChangePassword, Sessions } from '../components/settings/Account';
import { CertificatePanel } from '../components/settings/Certificate';
import { ApiTokens } from '../components/settings/ApiTokens';
import { BackupsPanel } from '../components/settings/Backups';

/** A key `PUT /settings` takes. */
type Key = keyof SettingsUpdate;
/** A setting's value in the form. */
type FormValue = string | number | boolean | null;

/**
 * Labels and groups for the keys `PUT /settings` takes (the compiler checks each against the
 * document). A key `GET /settings` lists that is not here still shows, read-only, under "Other".
 */
const GROUPS: { title: string; keys: { [K in Key]?: { label: string; help?: string } } }[] = [
  {
    title: 'Network',
    keys: {
      hostname: { label: 'Hostname', help: 'The name phones, trunks and browsers use to reach this PBX; once set, the web UI answers only to it and to the server\'s addresses' },
      external_ip: { label: 'External IP', help: 'The public address behind NAT; empty to detect' },
      http_port: { label: 'Web and API port' },
    },
  },
  {
    title: 'SIP',
    keys: {
      sip_udp_port: { label: 'SIP UDP port' },
      sip_tcp_port: { label: 'SIP TCP port' },
      sip_tls_port: { label: 'SIP TLS port' },
      sip_realm: { label: 'Digest realm', help: 'Changing it makes every phone authenticate again' },
      sip_log: { label: 'SIP message log', help: 'What of each SIP message the log shows' },
    },
  },
  {
    title: 'Media',
    keys: {
      rtp_port_min: { label: 'RTP ports from' },
      rtp_port_max: { label: 'RTP ports to' },
      media_timeout_secs: { label: 'Hang up after silence (s)', help: 'No RTP for this long ends the call' },
      recording_min_free_mb: { label: 'Stop recording below (MB free)' },
      recording_policy: { label: 'Record calls', help: 'For every extension on top of its own recording mode: always, or on demand with *1' },
    },
  },
  {
    title: 'Retention',
    keys: {
      recording_retention_days: { label: 'Keep recordings (days)', help: 'Older ones are deleted daily; 0 keeps them for ever' },
      cdr_retention_days: { label: 'Keep call records (days)', help: 'Older ones are deleted daily; 0 keeps them for ever' },
    },
  },
  {
    title: 'Backups',
    keys: {
      backup_interval_hours: { label: 'Back up every (hours)', help: 'Into the data dir\'s backups folder; 0 for none' },
      backup_keep: { label: 'Backups kept', help: 'The oldest are deleted' },
    },
  },
];
const KNOWN = new Set(GROUPS.flatMap((g) => Object.keys(g.keys)));
const settable = (k: string): k is Key => KNOWN.has(k);

const SOURCE_TEXT: Record<string, string> = { flag: 'a command-line flag', env: 'an environment variable' };
const LABELS: Record<string, string> = Object.fromEntries(GROUPS.flatMap((g) => Object.entries(g.keys).map(([k, f]) => [k, f!.label])));
/** Settings named as the page labels them (the server's lists give keys). */
export const settingNames = (ks: string[]) => ks.map((k) => LABELS[k] ?? k.replace(/_/g, ' ')).join(', ');
const CHOICE_TEXT: Record<string, string> = { off: 'Off', headers: 'Headers only', full: 'Full messages', per_extension: "As each extension's mode", always: 'Always', on_demand: 'On demand (*1)' };

export default function SettingsPage() {
  const qc = useQueryClient();
  const settings = useQuery({ queryKey: keys.settings, queryFn: api.settings.get });
  const [values, setValues] = useState<Record<string, FormValue>>({});
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [result, setResult] = useState<SettingsChanged | null>(null);
  useEffect(() => {
    if (settings.data) setValues(Object.fromEntries(Object.entries(settings.data).map(([k, v]) => [k, v.value as FormValue])));
  }, [settings.data]);

  const save = useMutation({
    mutationFn: () => {
      // each value is of its key's type: the inputs are chosen by the type of the value shown
      const changed: Partial<Record<Key, FormValue>> = {};
      for (const [k, v] of Object.entries(values)) if (settable(k) && settings.data?.[k] && settings.data[k].value !== v) changed[k] = v === '' ? null : v;
      return api.settings.update(changed as SettingsUpdate);
    },
    onSuccess: (r) => {
      qc.setQueryData(keys.settings, r.settings);
      setErrors({});
      setResult(r);
    },
    onError: (e) => {
      if (e instanceof ApiError) setErrors(e.fieldErrors());
      setResult(null);
    },
  });

  if (settings.isLoading) return <Spinner />;
  const data = settings.data ?? {};
  const set = (k: string, v: FormValue) => {
    setResult(null);
    setValues((p) => ({ ...p, [k]: v }));
  };
  const id = (k: string) => `set-${k.replace(/\W/g, '-')}`;
  const field = (k: string, label: string, help?: string) => {
    const view = data[k];
    if (!view) return null;
    // a flag or environment variable wins over what is stored: shown, named, not edited here
    const fixed = SOURCE_TEXT[view.source] ? (view.set_by ?? SOURCE_TEXT[view.source]) : null;
    const h = [help, fixed ? `Set by ${fixed}: change it there` : null, settable(k) ? null : 'not changed from here', view.default !== null && view.default !== '' ? `default ${String(view.default)}` : null, view.restart_required ? 'takes effect after a restart' : null]
      .filter(Boolean)
      .join(' · ');
    const numeric = typeof view.default === 'number' || typeof view.value === 'number';
    if (!settable(k)) return <TextInput key={k} id={id(k)} label={label} help={h} disabled value={view.value === null ? '' : String(view.value)} onChange={() => undefined} />;
    if (view.choices?.length)
      return <Select key={k} id={id(k)} label={label} help={h} disabled={!!fixed} value={values[k] === null || values[k] === undefined ? '' : String(values[k])} error={errors[k]} options={view.choices.map((c) => ({ value: c, label: CHOICE_TEXT[c] ?? c }))} onChange={(x) => set(k, x)} />;
    if (typeof view.value === 'boolean') return <Checkbox key={k} id={id(k)} label={label} help={h} checked={values[k] === true} error={errors[k]} onChange={(x) => set(k, x)} />;
    return numeric ? (
      <NumberInput key={k} id={id(k)} label={label} help={h} disabled={!!fixed} min={view.minimum ?? undefined} max={view.maximum ?? undefined} value={typeof values[k] === 'number' ? (values[k] as number) : values[k] ? Number(values[k]) : null} error={errors[k]} onChange={(x) => set(k, x)} />
    ) : (
      <TextInput key={k} id={id(k)} label={label} help={h} disabled={!!fixed} value={values[k] === null || values[k] === undefined ? '' : String(values[k])} error={errors[k]} onChange={(x) => set(k, x)} />
    );
  };
  const others = Object.keys(data).filter((k) => !KNOWN.has(k));

  return (
    <div className="max-w-3xl">
      <PageHeader title="Settings" />
      <ErrorBanner error={settings.error ? errorMessage(settings.error) : save.error && !(save.error instanceof ApiError && save.error.details.length) ? errorMessage(save.error) : null} />
      <form
        // the server checks every value and answers with every problem at once
        noValidate
        onSubmit={(e) => {
          e.preventDefault();
          save.mutate();
        }}
      >
        {GROUPS.map((g) => (
          <fieldset key={g.title} className="card mb-4 p-4">
            <legend className="px-1 font-semibold">{g.title}</legend>
            <div className="grid grid-cols-1 gap-x-3 sm:grid-cols-2">{Object.entries(g.keys).map(([k, f]) => field(k, f.label, f.help))}</div>
          </fieldset>
        ))}
        {others.length > 0 && (
          <fieldset className="card mb-4 p-4">
            <legend className="px-1 font-semibold">Other</legend>
            <div className="grid grid-cols-1 gap-x-3 sm:grid-cols-2">{others.map((k) => field(k, k))}</div>
          </fieldset>
        )}
        <div className="flex flex-wrap items-center gap-3">
          <button type="submit" className="btn btn-primary" disabled={save.isPending}>
            {save.isPending ? 'Saving…' : 'Save settings'}
          </button>
          {result && (
            <span role="status" className="text-sm text-emerald-700">
              Saved.
              {result.restart_required.length > 0 && ` Restart FlowPBX for ${settingNames(result.restart_required)} to take effect.`}
              {result.overridden.length > 0 && ` ${settingNames(result.overridden)}: the flag or environment variable still decides.`}
            </span>
          )}
        </div>
      </form>
      <CertificatePanel />
      <BackupsPanel />
      <ChangePassword />
      <Sessions />
      <ApiTokens />
    </div>
  );
}
