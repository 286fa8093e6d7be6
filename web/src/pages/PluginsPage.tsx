// Node plugins: upload a component, grant the capabilities it asks for, enable or disable it.
import { useRef, useState } from 'react';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { errorMessage } from '../api/client';
import { api } from '../api/endpoints';
import { keys } from '../api/queries';
import type { Plugin } from '../api/types';
import { ConfirmDelete } from '../components/common/ConfirmDelete';
import { Empty, ErrorBanner, PageHeader, Spinner } from '../components/common/ui';

export default function PluginsPage() {
  const qc = useQueryClient();
  const plugins = useQuery({ queryKey: keys.plugins, queryFn: api.plugins.list });
  const file = useRef<HTMLInputElement>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [deleting, setDeleting] = useState<Plugin | null>(null);

  const refresh = () => {
    void qc.invalidateQueries({ queryKey: keys.plugins });
    void qc.invalidateQueries({ queryKey: keys.nodeTypes });
  };

  const upload = async (f: File) => {
    setBusy(true);
    setError(null);
    try {
      await api.plugins.upload(f);
      refresh();
    } catch (e) {
      setError(errorMessage(e));
    } finally {
      setBusy(false);
      if (file.current) file.current.value = '';
    }
  };

  const update = async (p: Plugin, body: { granted_capabilities?: string[]; enabled?: boolean }) => {
    setError(null);
    try {
      await api.plugins.update(p.id, body);
      refresh();
    } catch (e) {
      setError(errorMessage(e));
    }
  };

  return (
    <div>
      <PageHeader title="Plugins">
        <button type="button" className="btn btn-primary" onClick={() => file.current?.click()} disabled={busy}>
          {busy ? 'Uploading…' : 'Upload plugin…'}
        </button>
        <input ref={file} type="file" accept=".wasm,application/wasm" className="sr-only" aria-label="Plugin component (.wasm)" onChange={(e) => e.target.files?.[0] && void upload(e.target.files[0])} />
      </PageHeader>
      <p className="mb-3 text-sm text-slate-600">
        A plugin is a WebAssembly component that adds node types. It can only do what you grant it here; a new version changes no published flow until that flow is published again.
      </p>
      <ErrorBanner error={error ?? (plugins.error ? errorMessage(plugins.error) : null)} />
      {plugins.isLoading ? (
        <Spinner />
      ) : !plugins.data?.length ? (
        <div className="card">
          <Empty>No plugins installed.</Empty>
        </div>
      ) : (
        <ul className="space-y-3">
          {plugins.data.map((p) => (
            <li key={p.id} className="card p-4">
              <div className="flex flex-wrap items-center justify-between gap-2">
                <div>
                  <h2 className="font-semibold">
                    {p.name} <span className="text-sm font-normal text-slate-500">{p.version}</span>
                  </h2>
                  <p className="font-mono text-xs text-slate-500" title="sha256">
                    {p.vendor}/{p.name} · {p.sha256.slice(0, 16)}…
                  </p>
                  {p.node_types?.length ? <p className="text-xs text-slate-600">Node types: {p.node_types.join(', ')}</p> : null}
                </div>
                <div className="flex items-center gap-2">
                  <label className="flex items-center gap-1.5 text-sm">
                    <input type="checkbox" checked={p.enabled} onChange={(e) => void update(p, { enabled: e.target.checked })} />
                    Enabled
                  </label>
                  <button type="button" className="btn btn-ghost btn-sm text-red-700" onClick={() => setDeleting(p)}>
                    Remove
                  </button>
                </div>
              </div>
              <fieldset className="mt-3">
                <legend className="text-sm font-medium">Capabilities it asks for</legend>
                {p.requested_capabilities.length === 0 ? (
                  <p className="text-sm text-slate-500">None.</p>
                ) : (
                  <ul className="mt-1 space-y-1">
                    {p.requested_capabilities.map((c) => {
                      const granted = p.granted_capabilities.includes(c);
                      return (
                        <li key={c}>
                          <label className="flex items-center gap-2 text-sm">
                            <input
                              type="checkbox"
                              checked={granted}
                              onChange={(e) =>
                                void update(p, {
                                  granted_capabilities: e.target.checked ? [...p.granted_capabilities, c] : p.granted_capabilities.filter((x) => x !== c),
                                })
                              }
                            />
                            <code className="rounded bg-slate-100 px-1">{c}</code>
                            {!granted && <span className="text-xs text-amber-700">not granted: the node gets “denied”</span>}
                          </label>
                        </li>
                      );
                    })}
                  </ul>
                )}
              </fieldset>
            </li>
          ))}
        </ul>
      )}
      {deleting && <ConfirmDelete what={`plugin ${deleting.name}`} verb="Remove" onConfirm={() => api.plugins.remove(deleting.id)} onClose={() => setDeleting(null)} onDone={refresh} />}
    </div>
  );
}
