// Toll-fraud alerts: when an `outbound.limit` event arrives over /ws (an outbound call was
// refused or ended by a limit, or by a class the extension may not call), a notice stays in
// the corner of every page until dismissed. The same event is in the audit log.
import { Link } from 'react-router';
import { live, useLive, type LiveNotice } from '../../api/live';
import { useEntities } from '../../api/queries';

/** What tripped, in words: the end of "Extension 101 …". */
export function limitWords(limit: string): string {
  switch (limit) {
    case 'extension_concurrent_calls':
      return 'has as many outbound calls at once as it may make';
    case 'pbx_concurrent_calls':
      return 'was refused: the PBX has as many outbound calls at once as it allows';
    case 'daily_minutes':
      return 'has used up its outbound minutes for today';
    case 'class_not_permitted':
      return 'may not call this class of number (see its call classes)';
    default:
      return `hit a limit (${limit})`;
  }
}

export function NoticeText({ notice, extension }: { notice: LiveNotice; extension?: string }) {
  const who = notice.extension_id ? `Extension ${extension ?? `#${notice.extension_id}`}` : 'A call flow';
  return (
    <>
      <strong className="block">Outbound call blocked</strong>
      {who} {limitWords(notice.limit)}: <span className="font-mono">{notice.number}</span>.
    </>
  );
}

export function Notices() {
  const notices = useLive((s) => s.notices);
  const exts = useEntities('extension', notices.length > 0);
  if (notices.length === 0) return null;
  const name = (id: number) => {
    const x = exts.data?.find((e) => e.id === id);
    return x ? `${x.extension} ${x.name}` : undefined;
  };
  return (
    <div className="pointer-events-none fixed right-4 top-4 z-40 flex w-96 max-w-[calc(100vw-2rem)] flex-col gap-2" aria-label="Alerts">
      {notices.map((n) => (
        <div key={n.id} role="alert" className="pointer-events-auto rounded-md border border-red-300 bg-white px-3 py-2 text-sm text-red-900 shadow-lg">
          <div className="flex items-start gap-2">
            <span aria-hidden="true">⚠</span>
            <p className="flex-1">
              <NoticeText notice={n} extension={name(n.extension_id)} />
              <span className="mt-1 block text-xs text-slate-500">
                {new Date(n.at).toLocaleTimeString()} ·{' '}
                <Link className="underline" to="/extensions" onClick={() => live.dismissNotice(n.id)}>
                  Extensions
                </Link>
              </span>
            </p>
            <button type="button" className="btn btn-ghost btn-sm" aria-label="Dismiss" onClick={() => live.dismissNotice(n.id)}>
              ✕
            </button>
          </div>
        </div>
      ))}
    </div>
  );
}
