// Call history: filters, a date range, pages of 50, CSV export of the same filter, and "Show
// path" to open the flow version a call used with its traversal drawn.
import { Fragment, useState } from 'react';
import { keepPreviousData, useQuery } from '@tanstack/react-query';
import { Link } from 'react-router';
import { errorMessage } from '../api/client';
import { api } from '../api/endpoints';
import { keys } from '../api/queries';
import { useUrlFilters } from '../hooks/useUrlFilters';
import { SipMessages } from '../components/calls/SipMessages';
import { Empty, ErrorBanner, formatDate, formatDuration, PageHeader, Spinner, SrtpBadge, TableHead } from '../components/common/ui';

const PAGE = 50;

export default function CallHistoryPage() {
  const { filters, offset, draft, setDraft, apply, clear, page } = useUrlFilters(['direction', 'disposition', 'party', 'from', 'to'] as const);
  const [sipOf, setSipOf] = useState<number | null>(null);
  const list = useQuery({
    queryKey: keys.cdrs({ ...filters, offset }),
    queryFn: () => api.cdrs.list({ ...filters, limit: PAGE, offset }),
    placeholderData: keepPreviousData,
  });
  const items = list.data?.items ?? [];
  const total = list.data?.total;

  return (
    <div>
      <PageHeader title="Call history">
        <a className="btn" href={api.cdrs.exportUrl(filters)} download>
          Export CSV
        </a>
      </PageHeader>
      <form onSubmit={apply} className="card mb-4 grid grid-cols-2 gap-3 p-4 md:grid-cols-6" aria-label="Filter calls">
        <div className="col-span-2">
          <label className="label" htmlFor="cdr-party">
            Number (caller or called)
          </label>
          <input id="cdr-party" className="input" value={draft.party} onChange={(e) => setDraft({ ...draft, party: e.target.value })} />
        </div>
        <div>
          <label className="label" htmlFor="cdr-direction">
            Direction
          </label>
          <select id="cdr-direction" className="input" value={draft.direction} onChange={(e) => setDraft({ ...draft, direction: e.target.value })}>
            <option value="">all</option>
            <option value="inbound">inbound</option>
            <option value="outbound">outbound</option>
            <option value="internal">internal</option>
          </select>
        </div>
        <div>
          <label className="label" htmlFor="cdr-disposition">
            Result
          </label>
          <select id="cdr-disposition" className="input" value={draft.disposition} onChange={(e) => setDraft({ ...draft, disposition: e.target.value })}>
            <option value="">all</option>
            <option value="answered">answered</option>
            <option value="no_answer">no answer</option>
            <option value="busy">busy</option>
            <option value="failed">failed</option>
            <option value="voicemail">voicemail</option>
          </select>
        </div>
        <div>
          <label className="label" htmlFor="cdr-from">
            From
          </label>
          <input id="cdr-from" type="date" className="input" value={draft.from} onChange={(e) => setDraft({ ...draft, from: e.target.value })} />
        </div>
        <div>
          <label className="label" htmlFor="cdr-to">
            To
          </label>
          <input id="cdr-to" type="date" className="input" value={draft.to} onChange={(e) => setDraft({ ...draft, to: e.target.value })} />
        </div>
        <div className="col-span-2 flex gap-2 md:col-span-6">
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
          <Empty>No calls match.</Empty>
        ) : (
          <table className="table">
            <TableHead columns={['Start', 'Direction', 'From', 'To', 'Result', 'Duration']} />
            <tbody>
              {items.map((c) => (
                <Fragment key={c.id}>
                <tr>
                  <td className="whitespace-nowrap">{formatDate(c.start_time)}</td>
                  <td>{c.direction}</td>
                  <td>
                    {c.caller_id_name ? `${c.caller_id_name} ` : ''}
                    {c.caller_id_num ?? ''}
                    <SrtpBadge suite={c.caller_srtp} />
                  </td>
                  <td>{c.callee ?? ''}<SrtpBadge suite={c.callee_srtp} /></td>
                  <td>{c.disposition ?? ''}</td>
                  <td>{formatDuration(c.duration)}</td>
                  <td className="text-right">
                    {c.flow_id && c.flow_path && c.flow_path.length > 0 ? (
                      <Link className="btn btn-ghost btn-sm" to={`/flows/${c.flow_id}?cdr=${c.id}`}>
                        Show path
                      </Link>
                    ) : null}
                    <button type="button" className="btn btn-ghost btn-sm" aria-expanded={sipOf === c.id} onClick={() => setSipOf(sipOf === c.id ? null : c.id)}>
                      SIP
                    </button>
                  </td>
                </tr>
                {sipOf === c.id && (
                  <tr>
                    <td colSpan={7}>
                      <SipMessages cdrId={c.id} />
                    </td>
                  </tr>
                )}
                </Fragment>
              ))}
            </tbody>
          </table>
        )}
      </div>
      <nav className="mt-3 flex items-center justify-between text-sm" aria-label="Pages">
        <span className="text-slate-500">
          {items.length > 0 && `${offset + 1}–${offset + items.length}${total !== undefined ? ` of ${total}` : ''}`}
        </span>
        <span className="flex gap-2">
          <button type="button" className="btn btn-sm" disabled={offset === 0} onClick={() => page(offset - PAGE)}>
            Previous
          </button>
          <button type="button" className="btn btn-sm" disabled={items.length < PAGE || (total !== undefined && offset + PAGE >= total)} onClick={() => page(offset + PAGE)}>
            Next
          </button>
        </span>
      </nav>
    </div>
  );
}
