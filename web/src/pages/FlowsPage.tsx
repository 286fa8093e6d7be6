// The list of call flows: open one, create one, delete one (with the numbers still using it).
import { useState } from 'react';
import { Link, useNavigate } from 'react-router';
import { useQueryClient } from '@tanstack/react-query';
import { ApiError, errorMessage } from '../api/client';
import { api } from '../api/endpoints';
import { keys, useFlows } from '../api/queries';
import type { Flow } from '../api/types';
import { ConfirmDelete } from '../components/common/ConfirmDelete';
import { Dialog, Empty, ErrorBanner, formatDate, PageHeader, Spinner, TextInput, TableHead, DeleteButton } from '../components/common/ui';

export default function FlowsPage() {
  const flows = useFlows();
  const qc = useQueryClient();
  const navigate = useNavigate();
  const [creating, setCreating] = useState(false);
  const [name, setName] = useState('');
  const [error, setError] = useState<string | undefined>();
  const [deleting, setDeleting] = useState<Flow | null>(null);

  const create = async (e: React.FormEvent) => {
    e.preventDefault();
    setError(undefined);
    try {
      const f = await api.flows.create({ name, flow_data: { nodes: [], edges: [] } });
      await qc.invalidateQueries({ queryKey: keys.flows });
      navigate(`/flows/${f.id}`);
    } catch (err) {
      setError(err instanceof ApiError ? (err.fieldErrors().name ?? err.message) : errorMessage(err));
    }
  };

  return (
    <div>
      <PageHeader title="Call flows">
        <button type="button" className="btn btn-primary" onClick={() => setCreating(true)}>
          New flow…
        </button>
      </PageHeader>
      <ErrorBanner error={flows.error ? errorMessage(flows.error) : null} />
      <div className="card">
        {flows.isLoading ? (
          <Spinner />
        ) : !flows.data?.length ? (
          <Empty>No flows yet. A flow is where calls to your numbers go: create one to start.</Empty>
        ) : (
          <table className="table">
            <TableHead columns={['Name', 'Live version', 'Nodes', 'Changed']} />
            <tbody>
              {flows.data.map((f) => (
                <tr key={f.id} className="hover:bg-slate-50">
                  <td>
                    <Link to={`/flows/${f.id}`} className="font-medium text-indigo-700 hover:underline">
                      {f.name}
                    </Link>
                  </td>
                  <td>{f.published && f.version ? `v${f.version}` : <span className="text-amber-700">not published</span>}</td>
                  <td>{f.flow_data?.nodes?.length ?? 0}</td>
                  <td>{formatDate(f.updated_at)}</td>
                  <td className="text-right">
                    <DeleteButton what={f.name} onClick={() => setDeleting(f)} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </div>
      {creating && (
        <Dialog title="New flow" onClose={() => setCreating(false)}>
          <form onSubmit={create}>
            <TextInput id="flow-new-name" label="Name" required value={name} onChange={setName} error={error} placeholder="Main inbound" />
            <div className="flex justify-end gap-2">
              <button type="button" className="btn" onClick={() => setCreating(false)}>
                Cancel
              </button>
              <button type="submit" className="btn btn-primary" disabled={!name.trim()}>
                Create and open
              </button>
            </div>
          </form>
        </Dialog>
      )}
      {deleting && (
        <ConfirmDelete
          what={`flow ${deleting.name}`}
          onConfirm={() => api.flows.remove(deleting.id)}
          onClose={() => setDeleting(null)}
          onDone={() => void qc.invalidateQueries({ queryKey: keys.flows })}
        />
      )}
    </div>
  );
}
