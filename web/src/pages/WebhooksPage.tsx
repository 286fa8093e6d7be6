// Webhook endpoints: add (URL, events, optional secret — a generated one is shown once),
// enable/disable, test, delete; each endpoint's circuit and its delivery log (attempts, the
// endpoint's last answer, why a delivery waits or failed).
import { useState } from 'react';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { ApiError, errorMessage } from '../api/client';
import { api } from '../api/endpoints';
import { keys } from '../api/queries';
import type { Webhook } from '../api/types';
import { ConfirmDelete } from '../components/common/ConfirmDelete';
import { DeleteButton, Empty, ErrorBanner, formatDate, PageHeader, Spinner, TableHead } from '../components/common/ui';

const EVENTS = ['call.started', 'call.answered', 'call.ended', 'call.missed', 'voicemail.left', 'registration.lost', 'trunk.down', 'trunk.up', 'ban.imposed'];

function Deliveries({ hook }: { hook: Webhook }) {
  const log = useQuery({ queryKey: keys.deliveries(hook.id), queryFn: () => api.webhooks.deliveries(hook.id), refetchInterval: 5000 });
  if (log.isLoading) return <Spinner />;
  if (!log.data?.length) return <Empty>No deliveries yet.</Empty>;
  return (
    <table className="table" aria-label={`Deliveries of ${hook.name}`}>
      <TableHead columns={['Queued', 'Event', 'Status', 'Attempts', 'Last answer', 'Next try']} />
      <tbody>
        {log.data.map((d) => (
          <tr key={d.id}>
            <td className="whitespace-nowrap">{formatDate(d.created_at)}</td>
            <td>{d.event}</td>
            <td className={d.status === 'failed' ? 'text-red-700' : d.status === 'delivered' ? 'text-green-700' : ''}>{d.status}</td>
            <td>{d.attempts}</td>
            <td>
              {d.last_status ?? ''}
              {d.last_error ? <span className="block text-xs text-slate-500">{d.last_error}</span> : null}
            </td>
            <td className="whitespace-nowrap">{d.status === 'pending' ? formatDate(d.next_attempt_at) : ''}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

/** Voicemail e-mail: queued, sent, and failed with the reason (after an hour of retries or a
 * permanent refusal). */
function MailLog() {
  const mail = useQuery({ queryKey: keys.mail, queryFn: api.mail.list, refetchInterval: 10_000 });
  return (
    <div className="card mt-6 overflow-x-auto">
      <h2 className="p-3 font-semibold">E-mail</h2>
      {mail.isLoading ? (
        <Spinner />
      ) : !mail.data?.length ? (
        <Empty>No e-mail yet.</Empty>
      ) : (
        <table className="table" aria-label="E-mail">
          <TableHead columns={['Queued', 'To', 'Subject', 'Status', 'Attempts', 'Why']} />
          <tbody>
            {mail.data.map((m) => (
              <tr key={m.id}>
                <td className="whitespace-nowrap">{formatDate(m.created_at)}</td>
                <td>{m.recipient}</td>
                <td>{m.subject}{m.attachment_name ? <span className="block text-xs text-slate-500">📎 {m.attachment_name}</span> : null}</td>
                <td className={m.status === 'failed' ? 'text-red-700' : m.status === 'sent' ? 'text-green-700' : ''}>
                  {m.status}
                  {m.status === 'pending' && m.next_attempt_at ? <span className="block text-xs text-slate-500">next {formatDate(m.next_attempt_at)}</span> : null}
                </td>
                <td>{m.attempts}</td>
                <td className="text-xs">{m.last_error ?? ''}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}

export default function WebhooksPage() {
  const qc = useQueryClient();
  const hooks = useQuery({ queryKey: keys.webhooks, queryFn: api.webhooks.list, refetchInterval: 5000 });
  const [name, setName] = useState('');
  const [url, setUrl] = useState('');
  const [secret, setSecret] = useState('');
  const [events, setEvents] = useState<string[]>(['call.missed', 'voicemail.left']);
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [error, setError] = useState<string | null>(null);
  const [shown, setShown] = useState<string | null>(null);
  const [open, setOpen] = useState<number | null>(null);
  const [deleting, setDeleting] = useState<Webhook | null>(null);
  const refresh = () => void qc.invalidateQueries({ queryKey: keys.webhooks });

  const add = async (e: React.FormEvent) => {
    e.preventDefault();
    setErrors({});
    setError(null);
    try {
      const w = await api.webhooks.create({ name, url, events, enabled: true, secret: secret || null });
      setShown(w.secret ?? null);
      setName('');
      setUrl('');
      setSecret('');
      refresh();
    } catch (err) {
      if (err instanceof ApiError && Object.keys(err.fieldErrors()).length) setErrors(err.fieldErrors());
      else setError(errorMessage(err));
    }
  };
  const toggle = async (w: Webhook) => {
    try {
      await api.webhooks.update(w.id, { name: w.name, url: w.url, events: w.events, enabled: !w.enabled, secret: null });
      refresh();
    } catch (err) {
      setError(errorMessage(err));
    }
  };
  const test = async (w: Webhook) => {
    try {
      await api.webhooks.test(w.id);
      setOpen(w.id);
      void qc.invalidateQueries({ queryKey: keys.deliveries(w.id) });
    } catch (err) {
      setError(errorMessage(err));
    }
  };

  return (
    <div>
      <PageHeader title="Webhooks" />
      <form onSubmit={add} className="card mb-4 grid gap-3 p-4 md:grid-cols-3" aria-label="Add a webhook">
        <div>
          <label className="label" htmlFor="wh-name">Name</label>
          <input id="wh-name" className="input" value={name} onChange={(e) => setName(e.target.value)} aria-invalid={!!errors.name} />
          {errors.name && <p className="text-xs text-red-700">{errors.name}</p>}
        </div>
        <div className="md:col-span-2">
          <label className="label" htmlFor="wh-url">URL</label>
          <input id="wh-url" className="input" value={url} onChange={(e) => setUrl(e.target.value)} placeholder="https://crm.example.com/pbx-events" aria-invalid={!!errors.url} />
          {errors.url && <p className="text-xs text-red-700" role="alert">{errors.url}</p>}
        </div>
        <fieldset className="md:col-span-3">
          <legend className="label">Events</legend>
          <div className="flex flex-wrap gap-3 text-sm">
            {EVENTS.map((ev) => (
              <label key={ev} className="flex items-center gap-1">
                <input type="checkbox" checked={events.includes(ev)} onChange={(e) => setEvents(e.target.checked ? [...events, ev] : events.filter((x) => x !== ev))} />
                {ev}
              </label>
            ))}
          </div>
          {Object.entries(errors).filter(([k]) => k.startsWith('events')).map(([k, m]) => <p key={k} className="text-xs text-red-700">{m}</p>)}
        </fieldset>
        <div className="md:col-span-2">
          <label className="label" htmlFor="wh-secret">Signing secret (optional)</label>
          <input id="wh-secret" className="input" type="password" value={secret} onChange={(e) => setSecret(e.target.value)} placeholder="generated when empty" />
          {errors.secret && <p className="text-xs text-red-700">{errors.secret}</p>}
          <p className="text-xs text-slate-500">Each request carries X-FlowPBX-Timestamp and X-FlowPBX-Signature: sha256=HMAC-SHA256(secret, "timestamp.body").</p>
        </div>
        <div className="flex items-end">
          <button type="submit" className="btn btn-primary">Add</button>
        </div>
      </form>
      {shown && (
        <div className="card mb-4 p-4 text-sm" role="status">
          The generated secret, shown only now: <code className="break-all">{shown}</code>{' '}
          <button type="button" className="btn btn-sm" onClick={() => setShown(null)}>Done</button>
        </div>
      )}
      <ErrorBanner error={error ?? (hooks.error ? errorMessage(hooks.error) : null)} />
      <div className="card overflow-x-auto">
        {hooks.isLoading ? (
          <Spinner />
        ) : !hooks.data?.length ? (
          <Empty>No webhooks yet.</Empty>
        ) : (
          <table className="table">
            <TableHead columns={['Name', 'URL', 'Events', 'State']} />
            <tbody>
              {hooks.data.map((w) => (
                <tr key={w.id}>
                  <td>{w.name}</td>
                  <td><code className="text-xs break-all">{w.url}</code></td>
                  <td className="text-xs">{w.events.join(', ')}</td>
                  <td>
                    {w.enabled ? 'enabled' : 'disabled'}
                    <span className={`block text-xs ${w.circuit === 'open' ? 'text-red-700' : 'text-slate-500'}`}>
                      circuit {w.circuit.replace('_', '-')}
                      {w.circuit === 'open' && w.circuit_open_until ? ` until ${formatDate(w.circuit_open_until)}` : ''}
                    </span>
                  </td>
                  <td className="whitespace-nowrap text-right">
                    <button type="button" className="btn btn-ghost btn-sm" onClick={() => setOpen(open === w.id ? null : w.id)}>Deliveries</button>
                    <button type="button" className="btn btn-ghost btn-sm" onClick={() => void test(w)}>Test</button>
                    <button type="button" className="btn btn-ghost btn-sm" onClick={() => void toggle(w)}>{w.enabled ? 'Disable' : 'Enable'}</button>
                    <DeleteButton what={w.name} onClick={() => setDeleting(w)} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </div>
      {open !== null && hooks.data?.find((w) => w.id === open) && (
        <div className="card mt-4 overflow-x-auto">
          <Deliveries hook={hooks.data.find((w) => w.id === open)!} />
        </div>
      )}
      <MailLog />
      {deleting && <ConfirmDelete what={`webhook ${deleting.name}`} onConfirm={() => api.webhooks.remove(deleting.id)} onClose={() => setDeleting(null)} onDone={refresh} />}
    </div>
  );
}
