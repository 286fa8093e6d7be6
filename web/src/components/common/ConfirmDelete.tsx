// Destructive actions go through this: a confirmation, then the request; when the server
// answers 409 the dialog stays open and lists what still uses the thing (the impact list).
import { useState } from 'react';
import { ApiError, errorMessage } from '../../api/client';
import { Dialog, ErrorBanner } from './ui';

export function ConfirmDelete({
  what,
  onConfirm,
  onClose,
  onDone,
  verb = 'Delete',
}: {
  /** "extension 101 Nick" */
  what: string;
  onConfirm: () => Promise<unknown>;
  onClose: () => void;
  onDone?: () => void;
  verb?: string;
}) {
  const [busy, setBusy] = useState(false);
  const [impact, setImpact] = useState<string[] | null>(null);
  const [error, setError] = useState<string | null>(null);

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
          <p className="mb-3 text-xs text-slate-500">{error}</p>
          <div className="flex justify-end">
            <button type="button" className="btn" onClick={onClose}>
              Close
            </button>
          </div>
        </div>
      ) : (
        <div>
          <p className="mb-3 text-sm text-slate-700">This cannot be undone.</p>
          <ErrorBanner error={error} />
          <div className="flex justify-end gap-2">
            <button type="button" className="btn" onClick={onClose}>
              Cancel
            </button>
            <button type="button" className="btn btn-danger" onClick={run} disabled={busy}>
              {busy ? 'Working…' : verb}
            </button>
          </div>
        </div>
      )}
    </Dialog>
  );
}
