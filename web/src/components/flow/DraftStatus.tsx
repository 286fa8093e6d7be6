// Where a flow's draft stands against its live version (the editor's toolbar), resetting the
// draft to the live version, and which flows an entity's edit affects (entity forms).
import { useState } from 'react';
import { useQuery } from '@tanstack/react-query';
import { Link } from 'react-router';
import { errorMessage } from '../../api/client';
import { api } from '../../api/endpoints';
import type { DraftStatus, Flow, Id } from '../../api/types';
import { Dialog, ErrorBanner } from '../common/ui';
import { entityKindLabel } from './diff';

/** "Draft differs from live" with what differs, "What changed" and "Reset to live". */
export function DraftStatusBar({ flowId, status, onShowDiff, onReset }: { flowId: Id; status: DraftStatus; onShowDiff: () => void; onReset: (flow: Flow) => void }) {
  const [confirming, setConfirming] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  if (status.live_version == null) return <span className="text-xs text-slate-500" data-testid="draft-status">Not published yet</span>;
  if (!status.differs_from_live)
    return (
      <span className="rounded bg-emerald-50 px-1.5 py-0.5 text-xs text-emerald-800" data-testid="draft-status">
        Draft is live (version {status.live_version})
      </span>
    );
  const entities = status.entities_changed.map((e) => `${entityKindLabel(e.entity_type)} “${e.name}”`);
  const why = [status.graph_changed ? 'the graph' : null, ...entities].filter(Boolean).join(', ');
  const reset = async () => {
    setBusy(true);
    setError(null);
    try {
      const r = await api.flows.resetDraft(flowId);
      onReset(r.flow);
      setConfirming(false);
    } catch (e) {
      setError(errorMessage(e));
    } finally {
      setBusy(false);
    }
  };
  return (
    <span className="flex items-center gap-1 rounded bg-amber-50 px-1.5 py-0.5 text-xs text-amber-900" data-testid="draft-status" role="status">
      <span title={`Changed since version ${status.live_version}: ${why}`}>
        Draft differs from live (version {status.live_version}): {why}. Publish to make calls use it.
      </span>
      <button type="button" className="btn btn-sm" onClick={onShowDiff}>
        What changed
      </button>
      <button type="button" className="btn btn-sm" onClick={() => setConfirming(true)}>
        Reset to live
      </button>
      {confirming && (
        <Dialog title={`Reset the draft to version ${status.live_version}?`} onClose={() => setConfirming(false)}>
          <p className="mb-2 text-sm text-slate-700">
            The draft goes back to what calls get now: version {status.live_version}'s graph
            {entities.length > 0 ? `, and the settings of ${entities.join(', ')} as that version runs them` : ''}. Unpublished changes are lost; the published
            versions stay as they are.
          </p>
          {entities.length > 0 && <p className="mb-2 text-xs text-slate-500">Other flows whose drafts use these see the restored settings in their drafts too.</p>}
          <ErrorBanner error={error} />
          <div className="flex justify-end gap-2">
            <button type="button" className="btn" onClick={() => setConfirming(false)}>
              Cancel
            </button>
            <button type="button" className="btn btn-primary" disabled={busy} onClick={() => void reset()}>
              {busy ? 'Resetting…' : 'Reset draft'}
            </button>
          </div>
        </Dialog>
      )}
    </span>
  );
}

/** On an entity's form: the flows linking it, and whether their calls have the edit yet. */
export function FlowsUsing({ entityType, entityId }: { entityType: string; entityId: Id }) {
  const q = useQuery({ queryKey: ['flows-using', entityType, entityId], queryFn: () => api.flows.using(entityType, entityId) });
  // secondary to the form: a failure here is a note, not an alert competing with the form's
  if (q.error) return <p className="mb-3 text-xs text-slate-500">Which flows use this is not known: {errorMessage(q.error)}</p>;
  const uses = q.data ?? [];
  if (uses.length === 0) return null;
  return (
    <section className="mb-3 rounded-md border border-slate-200 p-2 text-xs" aria-label="Flows using this">
      <p className="mb-1 text-slate-600">Used by these flows. An edit changes their drafts; calls get it once the flow is published.</p>
      <ul className="space-y-0.5">
        {uses.map((u) => (
          <li key={u.flow_id}>
            <Link className="font-medium text-indigo-700 underline" to={`/flows/${u.flow_id}`}>
              {u.name}
            </Link>
            {u.live_version != null ? ` — live version ${u.live_version}` : u.in_draft ? ' — draft only' : ''}
            {u.entity_changed ? <span className="ml-1 rounded bg-amber-100 px-1 text-amber-900">edited since published: needs publishing</span> : u.needs_publish ? <span className="ml-1 rounded bg-amber-100 px-1 text-amber-900">needs publishing</span> : null}
          </li>
        ))}
      </ul>
    </section>
  );
}
