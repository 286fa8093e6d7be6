// Destructive actions go through this: a confirmation, then the request. When `usage` is
// given the dialog asks first what still uses the thing and, if anything does, says so
// instead of offering to confirm (the impact list); a 409 from the request shows the same.
import { useEffect, useState, type ReactNode } from 'react';
import { ApiError, errorMessage, referenceLines, type Reference } from '../../api/client';
import { Dialog, ErrorBanner } from './ui';

export function ConfirmDelete({
  what,
  onConfirm,
  onClose,
  onDone,
  verb = 'Delete',
  message = 'This cannot be undone.',
  usage,
}: {
  /** "extension 101 Nick" */
  what: string;
  onConfirm: () => Promise<unknown>;
  onClose: () => void;
  onDone?: () => void;
  /** the title's verb and the button's text ("Delete", "Revoke", "Roll back") */
  verb?: string;
  /** what confirming means; a deletion cannot be undone, a rollback can */
  message?: ReactNode;
  /** what uses the thing now (GET …/references), asked before offering to confirm */
  usage?: () => Promise<Reference[]>;
}) {
  const [busy, setBusy] = useState(false);
  const [impact, setImpact] = useState<string[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [checking, setChecking] = useState(!!usage);

  useEffect(() => {
    if (!usage) return;
    let cancelled = false;
    usage()
      .then((refs) => {
        if (!cancelled && refs.length > 0) setImpact(referenceLines(refs));
      })
      // the check is a courtesy: the delete itself is refused (409) while something uses it
      .catch(() => undefined)
      .finally(() => !cancelled && setChecking(false));
    return () => {
      cancelled = true;
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);

  const run = async () => {
    setBusy(true);
    setError(null);
    try {
      await onConfirm();
      onDone?.();
      onClose();
    } catch (e) {
      if (e instanceof ApiError && e.status === 409) {
        setImpact(e.impact());
        setError(e.message);
      } else {
        setError(errorMessage(e));
      }
    } finally {
      setBusy(false);
    }
  };

  return (
    <Dialog title={`${verb} ${what}?`} onClose={onClose}>
      {impact ? (
        <div>
          <p className="mb-2 text-sm text-slate-700">
            <strong>{what.charAt(0).toUpperCase() + what.slice(1)}</strong> cannot be removed: it is still used by
          </p>
          <ul className="mb-3 list-disc space-y-0.5 pl-5 text-sm text-slate-800" aria-label="Still used by">
            {impact.map((line) => (
              <li key={line}>{line}</li>
            ))}
          </ul>
          <p className="mb-3 text-xs text-slate-500">{error ?? 'Remove it from there first, then delete it.'}</p>
          <div className="flex justify-end">
            <button type="button" className="btn" onClick={onClose}>
              Close
            </button>
          </div>
        </div>
      ) : (
        <div>
          <div className="mb-3 text-sm text-slate-700">{checking ? 'Checking what uses it…' : message}</div>
          <ErrorBanner error={error} />
          <div className="flex justify-end gap-2">
            <button type="button" className="btn" onClick={onClose}>
              Cancel
            </button>
            <button type="button" className="btn btn-danger" onClick={run} disabled={busy || checking}>
              {busy ? 'Working…' : verb}
            </button>
          </div>
        </div>
      )}
    </Dialog>
  );
}
