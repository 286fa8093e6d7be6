// The node palette: every node type of the registry (built-ins and enabled plugins), grouped
// by category. Drag one onto the canvas, or focus it and press Enter to add it at the centre.
import { useMemo, useState } from 'react';
import { useNodeTypes } from '../../api/queries';
import type { NodeType } from '../../api/types';
import { ErrorBanner, Spinner } from '../common/ui';
import { errorMessage } from '../../api/client';
import { nodeIcon } from './FlowNode';

export const DND_TYPE = 'application/x-flowpbx-node-type';

export function Palette({ onAdd, disabled, id = 'palette' }: { onAdd: (t: NodeType) => void; disabled?: boolean; id?: string }) {
  const types = useNodeTypes();
  const [q, setQ] = useState('');
  const groups = useMemo(() => {
    const m = new Map<string, NodeType[]>();
    const needle = q.trim().toLowerCase();
    for (const t of types.data ?? []) {
      if (needle && !`${t.name} ${t.id} ${t.category} ${t.description ?? ''}`.toLowerCase().includes(needle)) continue;
      const c = t.category || 'Other';
      m.set(c, [...(m.get(c) ?? []), t]);
    }
    return [...m.entries()].sort(([a], [b]) => a.localeCompare(b));
  }, [types.data, q]);

  return (
    <nav aria-label="Node palette" className="flex h-full flex-col">
      <div className="p-2">
        <label htmlFor={`${id}-search`} className="sr-only">
          Find a node type
        </label>
        <input id={`${id}-search`} className="input" placeholder="Find node…" value={q} onChange={(e) => setQ(e.target.value)} />
      </div>
      {types.isLoading && <Spinner />}
      <ErrorBanner title="Node types could not be loaded:" error={types.error ? errorMessage(types.error) : null} />
      <div className="flex-1 overflow-y-auto px-2 pb-2">
        {groups.map(([cat, list]) => (
          <section key={cat} className="mb-3">
            <h3 className="mb-1 px-1 text-xs font-semibold uppercase tracking-wide text-slate-500">{cat}</h3>
            <ul className="space-y-1">
              {list.map((t) => (
                <li key={t.id}>
                  <button
                    type="button"
                    draggable={!disabled && !t.coming}
                    disabled={disabled || t.coming}
                    data-node-type={t.id}
                    title={t.coming ? `${t.name}: coming in a later release; a flow that uses it cannot be published` : (t.description ?? `${t.name} (${t.id} ${t.version})`)}
                    className="flex w-full cursor-grab items-center gap-2 rounded-md border border-slate-200 bg-white px-2 py-1.5 text-left text-sm hover:border-indigo-400 hover:bg-indigo-50 focus-visible:outline-2 focus-visible:outline-indigo-600 disabled:cursor-not-allowed disabled:opacity-50"
                    onDragStart={(e) => {
                      e.dataTransfer.setData(DND_TYPE, t.id);
                      e.dataTransfer.effectAllowed = 'move';
                    }}
                    onClick={() => onAdd(t)}
                    aria-label={t.coming ? `${t.name} node (coming)` : `Add ${t.name} node`}
                  >
                    <span aria-hidden="true">{nodeIcon(t.icon)}</span>
                    <span className="flex-1 truncate">{t.name}</span>
                    {t.coming && <span className="rounded bg-amber-100 px-1 text-[10px] text-amber-800">coming</span>}
                    {t.source && t.source !== 'builtin' && <span className="rounded bg-slate-100 px-1 text-[10px] text-slate-500">plugin</span>}
                  </button>
                </li>
              ))}
            </ul>
          </section>
        ))}
      </div>
    </nav>
  );
}
