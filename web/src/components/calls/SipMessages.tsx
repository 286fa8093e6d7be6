// The SIP message viewer of a call (Call history → "SIP"): its last messages, caller and
// callee legs, oldest first, as the server kept them (only while the SIP log is on).
import { useQuery } from '@tanstack/react-query';
import { errorMessage } from '../../api/client';
import { api } from '../../api/endpoints';
import type { Id } from '../../api/types';
import { ErrorBanner, Spinner } from '../common/ui';

export function SipMessages({ cdrId }: { cdrId: Id }) {
  const q = useQuery({ queryKey: ['cdrs', cdrId, 'sip-messages'], queryFn: () => api.cdrs.sipMessages(cdrId) });
  if (q.isLoading) return <Spinner />;
  if (q.error) return <ErrorBanner error={errorMessage(q.error)} />;
  const data = q.data;
  if (!data) return null;
  if (data.messages.length === 0)
    return (
      <p className="text-sm text-slate-500" data-testid="sip-messages-empty">
        {data.kept
          ? `No SIP messages kept for this call (the last ${data.limit} messages of recent calls are kept in memory; a restart clears them).`
          : 'The SIP message log is off: set "SIP message log" in Settings to keep the messages of the next calls.'}
      </p>
    );
  return (
    <ol className="space-y-2" aria-label="SIP messages" data-testid="sip-messages">
      {data.messages.map((m, i) => (
        <li key={i} className="rounded border border-slate-200 p-2">
          <div className="mb-1 flex flex-wrap gap-3 text-xs text-slate-500">
            <span>{new Date(m.at).toISOString().replace('T', ' ').replace('Z', '')}</span>
            <span className={m.direction === 'in' ? 'text-blue-700' : 'text-emerald-700'}>{m.direction === 'in' ? `← from ${m.peer}` : `→ to ${m.peer}`}</span>
            <span>{m.transport.toUpperCase()}</span>
            <span className="truncate">Call-ID {m.call_id}</span>
          </div>
          <pre className="overflow-x-auto whitespace-pre-wrap break-all text-xs">{m.text.split('\n')[0]}</pre>
          <details>
            <summary className="cursor-pointer text-xs text-slate-500">Whole message</summary>
            <pre className="overflow-x-auto whitespace-pre-wrap break-all text-xs">{m.text}</pre>
          </details>
        </li>
      ))}
    </ol>
  );
}
