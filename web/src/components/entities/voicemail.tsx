// A voicemail box's messages (player, mark read or unread, download, delete) and an
// extension's message-waiting subscriptions, as the entity pages show them.
import { useState } from 'react';
import { useQuery } from '@tanstack/react-query';
import { errorMessage } from '../../api/client';
import { api } from '../../api/endpoints';
import type { Id } from '../../api/types';
import { ConfirmDelete } from '../common/ConfirmDelete';
import { Empty, ErrorBanner, formatDate, formatDuration, Spinner, TableHead } from '../common/ui';

/** The box's messages, newest first; playing an unread one marks it read. */
export function VoicemailMessages({ id }: { id: Id }) {
  const q = useQuery({ queryKey: ['vm-messages', id], queryFn: () => api.voicemailBoxes.messages(id) });
  const [del, setDel] = useState<Id | null>(null);
  const [failed, setFailed] = useState<string | null>(null);
  if (q.isLoading) return <Spinner />;
  if (q.error) return <ErrorBanner error={errorMessage(q.error)} />;
  if (!q.data?.length) return <Empty>No messages.</Empty>;
  const setRead = (msg: Id, read: boolean) =>
    api.voicemailBoxes
      .setRead(id, msg, read)
      .then(() => q.refetch())
      .catch((e: unknown) => setFailed(errorMessage(e)));
  return (
    <>
      {failed && <ErrorBanner error={failed} />}
      <table className="table">
        <TableHead columns={['From', 'When', 'Length', 'Play']} />
        <tbody>
          {q.data.map((m) => (
            <tr key={m.id} className={m.read ? '' : 'font-semibold'} data-testid={`vm-message-${m.id}`}>
              <td>
                {m.caller_id_name ?? ''} {m.caller_id_num ?? ''}
                {!m.read && <span className="ml-2 rounded-full bg-sky-50 px-1.5 py-0.5 text-[11px] font-medium text-sky-700">new</span>}
              </td>
              <td>{formatDate(m.timestamp)}</td>
              <td>{formatDuration(m.duration)}</td>
              <td>
                <audio
                  controls
                  preload="none"
                  className="h-8"
                  src={api.voicemailBoxes.messageAudioUrl(id, m.id)}
                  aria-label={`Message from ${m.caller_id_num ?? 'unknown'}`}
                  onPlay={() => !m.read && void setRead(m.id, true)}
                />
              </td>
              <td className="whitespace-nowrap">
                <button type="button" className="btn btn-ghost btn-sm" onClick={() => void setRead(m.id, !m.read)}>
                  {m.read ? 'Mark unread' : 'Mark read'}
                </button>
                <a className="btn btn-ghost btn-sm" href={api.voicemailBoxes.messageAudioUrl(id, m.id)} download>
                  Download
                </a>
                <button type="button" className="btn btn-ghost btn-sm text-red-700" onClick={() => setDel(m.id)}>
                  Delete
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {del !== null && (
        <ConfirmDelete what="this message" onConfirm={() => api.voicemailBoxes.deleteMessage(id, del)} onClose={() => setDel(null)} onDone={() => void q.refetch()} />
      )}
    </>
  );
}

/** The message-waiting (MWI) subscriptions the extension's phones hold now. */
export function MwiSubscriptions({ id }: { id: Id }) {
  const q = useQuery({ queryKey: ['subscriptions', id], queryFn: () => api.extensions.subscriptions(id), refetchInterval: 30_000 });
  if (q.isLoading) return <Spinner />;
  if (q.error) return <ErrorBanner error={errorMessage(q.error)} />;
  return (
    <section className="mt-4" aria-label="Message-waiting subscriptions">
      <h3 className="mb-1 text-sm font-semibold text-slate-700">Message-waiting lamp</h3>
      {!q.data?.length ? (
        <Empty>No phone subscribes to voicemail counts (message-summary).</Empty>
      ) : (
        <table className="table">
          <TableHead columns={['Event', 'Subscriber', 'Transport', 'Expires']} actions={false} />
          <tbody>
            {q.data.map((s) => (
              <tr key={`${s.event}-${s.contact}`}>
                <td>{s.event}</td>
                <td className="font-mono text-xs">{s.contact}</td>
                <td>{s.transport.toUpperCase()}</td>
                <td>{formatDate(s.expires_at)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
