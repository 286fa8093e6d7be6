// The prompts library: upload, listen, delete (a prompt an IVR uses answers 409 with the list).
import { useRef, useState } from 'react';
import { useQueryClient } from '@tanstack/react-query';
import { errorMessage } from '../api/client';
import { api } from '../api/endpoints';
import { keys, usePrompts } from '../api/queries';
import type { Prompt } from '../api/types';
import { ConfirmDelete } from '../components/common/ConfirmDelete';
import { Empty, ErrorBanner, formatDate, PageHeader, Spinner, TableHead, DeleteButton } from '../components/common/ui';

export default function PromptsPage() {
  const prompts = usePrompts();
  const qc = useQueryClient();
  const file = useRef<HTMLInputElement>(null);
  const [name, setName] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [deleting, setDeleting] = useState<Prompt | null>(null);

  const upload = async (e: React.FormEvent) => {
    e.preventDefault();
    const f = file.current?.files?.[0];
    if (!f) return setError('Choose an audio file.');
    setBusy(true);
    setError(null);
    try {
      await api.prompts.upload(f, name.trim() || api.prompts.nameFromFile(f.name));
      setName('');
      if (file.current) file.current.value = '';
      await qc.invalidateQueries({ queryKey: keys.prompts });
    } catch (err) {
      setError(errorMessage(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <div>
      <PageHeader title="Prompts" />
      <form onSubmit={upload} className="card mb-4 flex flex-wrap items-end gap-3 p-4" aria-label="Upload a prompt">
        <div>
          <label className="label" htmlFor="prompt-name">
            Name
          </label>
          <input id="prompt-name" className="input" value={name} onChange={(e) => setName(e.target.value)} placeholder="welcome" />
        </div>
        <div>
          <label className="label" htmlFor="prompt-file">
            Audio file
          </label>
          <input id="prompt-file" ref={file} type="file" accept=".wav,audio/wav,audio/x-wav" className="text-sm" />
        </div>
        <button type="submit" className="btn btn-primary" disabled={busy}>
          {busy ? 'Uploading…' : 'Upload'}
        </button>
        <div className="w-full">
          <ErrorBanner error={error} />
        </div>
      </form>
      <div className="card overflow-x-auto">
        {prompts.isLoading ? (
          <Spinner />
        ) : !prompts.data?.length ? (
          <Empty>No prompts yet.</Empty>
        ) : (
          <table className="table">
            <TableHead columns={['Name', 'Kind', 'Length', 'Added', 'Listen']} />
            <tbody>
              {prompts.data.map((p) => (
                <tr key={p.id}>
                  <td>{p.name}</td>
                  <td>{p.kind ?? 'custom'}{p.original_name ? <span className="block text-xs text-slate-500">{p.original_name}</span> : null}</td>
                  <td>{p.duration_ms ? `${(p.duration_ms / 1000).toFixed(1)} s` : ''}</td>
                  <td>{formatDate(p.created_at)}</td>
                  <td>
                    <audio controls preload="none" className="h-8" src={api.prompts.audioUrl(p.id)} aria-label={`Play ${p.name}`} />
                  </td>
                  <td className="text-right">
                    {p.kind !== 'system' && (
                      <DeleteButton what={p.name} onClick={() => setDeleting(p)} />
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </div>
      {deleting && (
        <ConfirmDelete what={`prompt ${deleting.name}`} onConfirm={() => api.prompts.remove(deleting.id)} onClose={() => setDeleting(null)} onDone={() => void qc.invalidateQueries({ queryKey: keys.prompts })} />
      )}
    </div>
  );
}
