// Call recordings: the call log's filters, pages of 50, each recording with its call (who
// called whom, when, how it ended) and its file beside an in-browser player (the server
// answers byte ranges, so the player seeks), a download and delete.
import { useState } from 'react';
import { keepPreviousData, useQuery, useQueryClient } from '@tanstack/react-query';
import { errorMessage } from '../api/client';
import { api } from '../api/endpoints';
import { keys } from '../api/queries';
import { useUrlFilters } from '../hooks/useUrlFilters';
import type { Recording } from '../api/types';
import { ConfirmDelete } from '../components/common/ConfirmDelete';
import { DeleteButton, Empty, ErrorBanner, formatDate, formatDuration, PageHeader, Spinner, TableHead } from '../components/common/ui';

const PAGE = 50;
function sizeText(bytes: number): string {
  if (bytes >= 1 << 20) return `${(bytes / (1 << 20)).toFixed(1)} MB`;
  return `${Math.max(1, Math.round(bytes / 1024))} kB`;
}

export default function RecordingsPage() {
  const qc = useQueryClient();
  const { filters, offset, draft, setDraft, apply, clear, page } = useUrlFilters(['party', 'direction', 'from', 'to'] as const);
  const [deleting, setDeleting] = useState<Recording | null>(null);
  const list = useQuery({
    queryKey: keys.recordings({ ...filters, offset }),
    queryFn: () => api.recordings.list({ ...filters, limit: PAGE, offset }),
    placeholderData: keepPreviousData,
  });
  const items = list.data?.items ?? [];
  const total = list.data?.total;

  return (
    <div>
      <PageHeader title="Recordings" />
      <form onSubmit={apply} className="card mb-4 grid grid-cols-2 gap-3 p-4 md:grid-cols-5" aria-label="Filter recordings">
        <div className="col-span-2">
          <label className="label" htmlFor="rec-party">
            Number (caller or called)
          </label>
          <input id="rec-party" className="input" value={draft.party} onChange={(e) => setDraft({ ...draft, party: e.target.value })} />
        </div>
        <div>
          <label className="label" htmlFor="rec-direction">
            Direction
          </label>
          <select id="rec-direction" className="input" value={draft.direction} onChange={(e) => setDraft({ ...draft, direction: e.target.value })}>
            <option value="">all</option>
            <option value="inbound">inbound</option>
            <option value="outbound">outbound</option>
            <option value="internal">internal</option>
          </select>
        </div>
        <div>
          <label className="label" htmlFor="rec-from">
            From
          </label>
          <input id="rec-from" type="date" className="input" value={draft.from} onChange={(e) => setDraft({ ...draft, from: e.target.value })} />
        </div>
        <div>
          <label className="label" htmlFor="rec-to">
            To
          </label>
          <input id="rec-to" type="date" className="input" value={draft.to} onChange={(e) => setDraft({ ...draft, to: e.target.value })} />
        </div>
        <div className="col-span-2 flex gap-2 md:col-span-5">
          <button type="submit" className="btn btn-primary">
            Apply
          </button>
          <button type="button" className="btn" onClick={clear}>
            Clear
          </button>
        </div>
      </form>
      <ErrorBanner error={list.error ? errorMessage(list.error) : null} />
      <div className="card overflow-x-auto">
        {list.isLoading ? (
          <Spinner />
        ) : items.length === 0 ? (
          <Empty>No recordings match.</Empty>
        ) : (
          <table className="table">
            <TableHead columns={['Recorded', 'Call', 'Length', 'Listen', 'File']} />
            <tbody>
              {items.map((r) => (
                <tr key={r.id} data-recording={r.id}>
                  <td className="whitespace-nowrap">{formatDate(r.created_at)}</td>
                  <td>
                    {r.cdr_id ? (
                      <>
                        {r.caller_id_name ? `${r.caller_id_name} ` : ''}
                        {r.caller_id_num ?? ''} → {r.callee ?? ''}
                        <span className="block text-xs text-slate-500">
                          {r.direction ?? ''} {r.disposition ? `· ${r.disposition}` : ''} · CDR #{r.cdr_id}
                        </span>
                      </>
                    ) : (
                      <span className="text-slate-500">call record gone ({r.call_id})</span>
                    )}
                  </td>
                  <td>{formatDuration(r.duration)}</td>
                  <td>
                    <audio controls preload="none" className="h-8" src={api.recordings.audioUrl(r.id)} aria-label={`Play recording ${r.id}`} />
                  </td>
                  <td>
                    <code className="text-xs break-all">{r.file_path}</code>
                    <span className="block text-xs text-slate-500">{sizeText(r.size_bytes)}</span>
                  </td>
                  <td className="whitespace-nowrap text-right">
                    <a className="btn btn-ghost btn-sm" href={api.recordings.downloadUrl(r.id)} download>
                      Download
                    </a>
                    <DeleteButton what={`recording ${r.id}`} onClick={() => setDeleting(r)} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </div>
      <nav className="mt-3 flex items-center justify-between text-sm" aria-label="Pages">
        <span className="text-slate-500">{items.length > 0 && `${offset + 1}–${offset + items.length}${total !== undefined ? ` of ${total}` : ''}`}</span>
        <span className="flex gap-2">
          <button type="button" className="btn btn-sm" disabled={offset === 0} onClick={() => page(offset - PAGE)}>
            Previous
          </button>
          <button type="button" className="btn btn-sm" disabled={items.length < PAGE || (total !== undefined && offset + PAGE >= total)} onClick={() => page(offset + PAGE)}>
            Next
          </button>
        </span>
      </nav>
      {deleting && (
        <ConfirmDelete
          what={`the recording of ${formatDate(deleting.created_at)}`}
          onConfirm={() => api.recordings.remove(deleting.id)}
          onClose={() => setDeleting(null)}
          onDone={() => void qc.invalidateQueries({ queryKey: ['recordings'] })}
        />
      )}
    </div>
  );
}
