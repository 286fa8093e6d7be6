// Backups: the last scheduled (or manual) backup, the ones kept, and "Back up now".
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { errorMessage } from '../../api/client';
import { api } from '../../api/endpoints';
import { ErrorBanner, formatDate, Spinner } from '../common/ui';

const KEY = ['system', 'backups'] as const;

function size(bytes: number): string {
  if (bytes >= 1 << 20) return `${(bytes / (1 << 20)).toFixed(1)} MiB`;
  return `${Math.max(1, Math.round(bytes / 1024))} KiB`;
}

export function BackupsPanel() {
  const qc = useQueryClient();
  const q = useQuery({ queryKey: KEY, queryFn: api.backups, refetchInterval: 60_000 });
  const now = useMutation({ mutationFn: api.backupNow, onSuccess: (d) => qc.setQueryData(KEY, d) });
  const d = q.data;
  const last = d?.backups[0];
  return (
    <section className="card mb-4 p-4" aria-labelledby="backups-title">
      <h2 id="backups-title" className="mb-2 font-semibold">
        Backups
      </h2>
      <ErrorBanner error={q.error ? errorMessage(q.error) : now.error ? errorMessage(now.error) : (d?.last_error ?? null)} title={d?.last_error ? 'The last scheduled backup failed' : undefined} />
      {q.isLoading && <Spinner />}
      {d && (
        <>
          <p className="mb-2 text-sm" data-testid="last-backup">
            {last ? `Last backup: ${formatDate(last.created_at)} (${last.name}, ${size(last.size_bytes)})` : 'No backup yet.'}
          </p>
          <p className="mb-2 text-sm text-slate-500">
            {d.interval_hours > 0 ? `Every ${d.interval_hours} h, the newest ${d.keep} kept, in ${d.dir}.` : `Scheduled backups are off; backups go to ${d.dir}.`} Restore one with
            <code className="mx-1">flowpbx --data-dir NEW_DIR restore FILE</code>into an empty data dir.
          </p>
          {d.backups.length > 1 && (
            <ul className="mb-2 text-sm text-slate-600">
              {d.backups.slice(1).map((b) => (
                <li key={b.name}>
                  {formatDate(b.created_at)} · {b.name} · {size(b.size_bytes)}
                </li>
              ))}
            </ul>
          )}
          <button type="button" className="btn btn-sm" disabled={now.isPending} onClick={() => now.mutate()}>
            {now.isPending ? 'Backing up…' : 'Back up now'}
          </button>
        </>
      )}
    </section>
  );
}
