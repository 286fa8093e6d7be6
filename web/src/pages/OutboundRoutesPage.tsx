// Outbound routes: where numbers dialled out go. Listed in the order they are tried (the
// first enabled route that matches the number, and that the caller may use, takes the call);
// emergency numbers are matched before all of them by the server. Routes are reordered with
// the arrows or by dragging a row; the whole order is written at once
// (PUT /outbound-routes/order).
import { useState, type DragEvent } from 'react';
import { useQueryClient } from '@tanstack/react-query';
import { errorMessage } from '../api/client';
import { api } from '../api/endpoints';
import { keys, useEntities, useOrderOutboundRoutes, useOutboundRoutes } from '../api/queries';
import type { Id, OutboundRoute } from '../api/types';
import { ConfirmDelete } from '../components/common/ConfirmDelete';
import { DeleteButton, Dialog, Empty, ErrorBanner, PageHeader, Spinner, TableHead } from '../components/common/ui';
import { CALL_CLASSES } from '../components/entities/outbound';
import { RouteForm } from '../components/routes/RouteForm';

/** The ids in their new order after moving the route at `from` to `to`. */
export function moved(ids: Id[], from: number, to: number): Id[] {
  if (from === to || from < 0 || to < 0 || from >= ids.length || to >= ids.length) return ids;
  const next = [...ids];
  const [x] = next.splice(from, 1);
  next.splice(to, 0, x);
  return next;
}

const CALLER_ID: Record<string, string> = { extension: 'the extension’s', route: 'the route’s', trunk: 'the trunk’s', anonymous: 'withheld' };

export default function OutboundRoutesPage() {
  const routes = useOutboundRoutes();
  const trunks = useEntities('trunk');
  const exts = useEntities('extension');
  const order = useOrderOutboundRoutes();
  const qc = useQueryClient();
  const [editing, setEditing] = useState<OutboundRoute | 'new' | null>(null);
  const [deleting, setDeleting] = useState<OutboundRoute | null>(null);
  const [dragging, setDragging] = useState<number | null>(null);
  const [over, setOver] = useState<number | null>(null);
  const [saved, setSaved] = useState(false);
  const list = routes.data ?? [];
  const trunkName = (id: Id) => trunks.data?.find((t) => t.id === id)?.name ?? `#${id}`;
  const extName = (id: Id) => exts.data?.find((x) => x.id === id)?.extension ?? `#${id}`;
  const nextPosition = Math.min(10_000, Math.max(0, ...list.map((r) => r.position)) + 10);

  const reorder = (from: number, to: number) => {
    const current = list.map((r) => r.id);
    const ids = moved(current, from, to);
    if (ids === current) return;
    setSaved(false);
    order.mutate(ids, { onSuccess: () => setSaved(true) });
  };

  const onDrop = (ev: DragEvent, to: number) => {
    ev.preventDefault();
    if (dragging !== null) reorder(dragging, to);
    setDragging(null);
    setOver(null);
  };

  return (
    <div>
      <PageHeader title="Outbound routes">
        <button type="button" className="btn btn-primary" onClick={() => setEditing('new')}>
          New route…
        </button>
      </PageHeader>
      <p className="mb-3 max-w-3xl text-sm text-slate-600">
        A number dialled from a phone or a flow that is not internal goes out through the first enabled route below that matches it and that the caller may use. Drag a row, or use
        its arrows, to change the order.
      </p>
      <ErrorBanner error={routes.error ? errorMessage(routes.error) : null} />
      <ErrorBanner error={order.error ? `The new order was not saved: ${errorMessage(order.error)}` : null} />
      {saved && !order.isPending && (
        <p role="status" className="mb-2 text-sm text-emerald-700">
          Order saved.
        </p>
      )}
      <div className="card overflow-x-auto">
        {routes.isLoading ? (
          <Spinner />
        ) : (
          <table className="table" aria-label="Outbound routes in the order they are tried">
            <TableHead columns={['#', 'Name', 'Matches', 'Class', 'Trunks', 'Number sent', 'Caller ID', 'Who']} />
            <tbody>
              <tr className="bg-slate-50">
                <td className="text-slate-500">—</td>
                <td className="font-medium">Emergency numbers</td>
                <td colSpan={7} className="text-xs text-slate-600">
                  Always first, whatever the order below: 911, 112, 999 and 000 (unless the server is started with other <span className="font-mono">--emergency-numbers</span>), from
                  any extension whatever its classes and limits, with its emergency caller ID; through the first route that matches them, else every enabled trunk.
                </td>
              </tr>
              {list.length === 0 && (
                <tr>
                  <td colSpan={9}>
                    <Empty>No outbound routes yet: phones can call internal and emergency numbers only.</Empty>
                  </td>
                </tr>
              )}
              {list.map((r, i) => (
                <tr
                  key={r.id}
                  data-route-id={r.id}
                  draggable={!order.isPending}
                  onDragStart={(ev) => {
                    setDragging(i);
                    ev.dataTransfer.effectAllowed = 'move';
                    ev.dataTransfer.setData('text/plain', String(r.id));
                  }}
                  onDragOver={(ev) => {
                    if (dragging === null) return;
                    ev.preventDefault();
                    setOver(i);
                  }}
                  onDragEnd={() => {
                    setDragging(null);
                    setOver(null);
                  }}
                  onDrop={(ev) => onDrop(ev, i)}
                  className={`${r.enabled ? '' : 'text-slate-400'} ${over === i && dragging !== null && dragging !== i ? 'outline outline-2 outline-indigo-400' : ''} cursor-grab hover:bg-slate-50`}
                >
                  <td className="text-slate-500">
                    <span aria-hidden="true" className="mr-1 select-none">
                      ⠿
                    </span>
                    {i + 1}
                  </td>
                  <td>
                    {r.name}
                    {!r.enabled && <span className="ml-1 rounded bg-slate-100 px-1 text-xs text-slate-500">disabled</span>}
                    {r.warnings.length > 0 && (
                      <p className="text-xs text-amber-700" title={r.warnings.map((w) => w.message).join('\n')}>
                        ⚠ {r.warnings.length === 1 ? r.warnings[0].message : `${r.warnings.length} patterns are never reached`}
                      </p>
                    )}
                  </td>
                  <td className="font-mono text-xs">{r.patterns.join('  ')}</td>
                  <td>{CALL_CLASSES.find((c) => c.value === r.call_class)?.label ?? r.call_class}</td>
                  <td>{r.trunk_ids.map(trunkName).join(' → ')}</td>
                  <td className="text-xs">
                    {r.strip_digits > 0 || r.prepend ? [r.strip_digits > 0 ? `strip ${r.strip_digits}` : '', r.prepend ? `prepend ${r.prepend}` : ''].filter(Boolean).join(', ') : 'as dialled'}
                  </td>
                  <td className="text-xs">
                    {CALLER_ID[r.caller_id_mode] ?? r.caller_id_mode}
                    {r.caller_id_mode === 'route' && r.caller_id_num ? ` (${r.caller_id_num})` : ''}
                  </td>
                  <td className="text-xs">{r.extension_ids.length ? r.extension_ids.map(extName).join(', ') : 'all allowed'}</td>
                  <td className="whitespace-nowrap text-right">
                    <button type="button" className="btn btn-ghost btn-sm" aria-label={`Move ${r.name} up`} disabled={i === 0 || order.isPending} onClick={() => reorder(i, i - 1)}>
                      ↑
                    </button>
                    <button type="button" className="btn btn-ghost btn-sm" aria-label={`Move ${r.name} down`} disabled={i === list.length - 1 || order.isPending} onClick={() => reorder(i, i + 1)}>
                      ↓
                    </button>
                    <button type="button" className="btn btn-ghost btn-sm" aria-label={`Edit ${r.name}`} onClick={() => setEditing(r)}>
                      Edit
                    </button>
                    <DeleteButton what={r.name} onClick={() => setDeleting(r)} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </div>
      {editing && (
        <Dialog title={editing === 'new' ? 'New outbound route' : `Edit ${editing.name}`} onClose={() => setEditing(null)} side>
          <RouteForm route={editing === 'new' ? null : editing} position={nextPosition} onSaved={() => setEditing(null)} onCancel={() => setEditing(null)} />
        </Dialog>
      )}
      {deleting && (
        <ConfirmDelete
          what={`outbound route ${deleting.name}`}
          onConfirm={() => api.outboundRoutes.remove(deleting.id)}
          onClose={() => setDeleting(null)}
          onDone={() => void qc.invalidateQueries({ queryKey: keys.outboundRoutes })}
        />
      )}
    </div>
  );
}
