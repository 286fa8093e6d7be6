// The side panel for the selected node: its label, the entity it links (searchable selector,
// "New …" inline creation in a drawer, full editing of the entity in place, delete with the
// impact list), and its config as a form generated from the node type's JSON Schema.
import { useEffect, useMemo, useState } from 'react';
import { useQueryClient } from '@tanstack/react-query';
import { ENTITY_KINDS, entityTypeForNode, type AnyEntity, type EntityType } from '../../api/entities';
import { api } from '../../api/endpoints';
import { keys, useEntities, useEntity, useNodeTypes } from '../../api/queries';
import type { Id, Problem } from '../../api/types';
import { useEditor } from '../../store/editor';
import { ConfirmDelete } from '../common/ConfirmDelete';
import { Dialog } from '../common/ui';
import { EntityForm } from '../entities/EntityForm';
import { EntitySelect } from '../entities/EntitySelect';
import { findNodeType, useNodeNamer } from './FlowNode';
import { INPUT_HANDLE } from './graph';
import { ERROR_OUTPUT } from '../../api/types';
import { checkValue } from './schema';
import { SchemaForm } from './SchemaForm';

export function Inspector({ nodeId }: { nodeId: string }) {
  const node = useEditor((s) => s.nodes.find((n) => n.id === nodeId));
  const readOnly = useEditor((s) => !!s.readOnly);
  const flowId = useEditor((s) => s.flowId);
  const problems = useEditor((s) => s.problems);
  const update = useEditor((s) => s.updateNodeData);
  const removeNodes = useEditor((s) => s.removeNodes);
  const setDraft = useEditor((s) => s.setDraft);
  const justAdded = useEditor((s) => s.justAdded);
  const clearJustAdded = useEditor((s) => s.clearJustAdded);
  const types = useNodeTypes();
  const qc = useQueryClient();
  const nt = node ? findNodeType(types.data, node.data.nodeType) : undefined;
  const entityType = node ? (entityTypeForNode(nt ?? { id: node.data.nodeType, entity_type: node.data.entity_type }) as EntityType | undefined) : undefined;
  const entity = useEntity(entityType ?? 'extension', entityType ? node?.data.entity_id : null);
  const list = useEntities(entityType ?? 'extension', !!entityType);
  const [creating, setCreating] = useState(false);
  const [editing, setEditing] = useState(false);
  const [deleting, setDeleting] = useState(false);

  // A node just dropped from the palette with no entity, and none exists yet: offer to
  // create one, once. Selecting an unfinished node later only selects it (it can be
  // deleted, or finished from this panel).
  const fresh = !!node && !!entityType && !node.data.entity_id;
  useEffect(() => {
    if (justAdded === null) return;
    if (justAdded !== nodeId) return clearJustAdded();
    if (!list.isSuccess) return;
    clearJustAdded();
    if (fresh && !readOnly && list.data.length === 0) setCreating(true);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [nodeId, list.isSuccess, justAdded]);
  useEffect(() => {
    setEditing(false);
    return () => setDraft(nodeId, null);
  }, [nodeId, setDraft]);

  const schemaErrors = useMemo(() => {
    const fromServer: Record<string, string> = {};
    for (const p of problems as Problem[]) {
      if (p.node_id === nodeId && p.code.startsWith('config')) fromServer[p.field ?? ''] = p.message;
    }
    return nt && node ? { ...fromServer, ...checkValue(nt.config_schema, node.data.config) } : fromServer;
  }, [nt, node, problems, nodeId]);

  if (!node) return null;
  const kind = entityType ? ENTITY_KINDS[entityType] : undefined;
  const title = (e: AnyEntity) => (kind!.title as (x: AnyEntity) => string)(e);

  const link = async (e: AnyEntity) => {
    // the node shows the entity's name unless it was given a label of its own
    update(nodeId, { entity_id: e.id, entity_type: entityType! });
    // a number placed on the canvas routes to this flow's node
    if (entityType === 'inbound_number' && flowId) {
      try {
        // the server checks that flow_entry_node is a node of the saved draft, and a node just
        // dropped is not saved yet (autosave waits for a pause): save the draft first
        const st = useEditor.getState();
        await api.flows.update(flowId, { name: st.name, flow_data: st.graph() });
        await api.numbers.update(e.id, { flow_id: flowId, flow_entry_node: nodeId });
        void qc.invalidateQueries({ queryKey: keys.entities('inbound_number') });
      } catch {
        /* the mapping is also shown as a validation warning; the link itself is kept */
      }
    }
  };

  const nodeProblems = (problems as Problem[]).filter((p) => p.node_id === nodeId);

  return (
    <div className="p-3" aria-label="Node settings">
      <div className="mb-3 flex items-center justify-between">
        <h2 className="text-sm font-semibold">{nt?.name ?? node.data.nodeType}</h2>
      </div>
      {nodeProblems.length > 0 && (
        <ul className="mb-3 space-y-1 rounded-md border border-red-200 bg-red-50 p-2 text-xs text-red-800" aria-label="Problems of this node">
          {nodeProblems.map((p, i) => (
            <li key={i}>
              {p.severity === 'warning' ? '⚠' : '✖'} {p.message}
            </li>
          ))}
        </ul>
      )}
      <fieldset disabled={readOnly}>
        <div className="mb-3">
          <label htmlFor={`insp-${nodeId}-label`} className="label">
            Label
          </label>
          <input id={`insp-${nodeId}-label`} className="input" value={node.data.label} placeholder={entity.data ? title(entity.data as AnyEntity) : undefined} onChange={(e) => update(nodeId, { label: e.target.value }, 'label')} />
        </div>

        {kind && entityType && (
          <section className="mb-3 rounded-md border border-slate-200 p-2" aria-label={`Linked ${kind.singular}`}>
            <EntitySelect
              type={entityType}
              value={node.data.entity_id}
              onSelect={(e) => void link(e)}
              onNew={() => setCreating(true)}
              onEdit={() => setEditing((x) => !x)}
            />
            {entity.data && editing && (
              <div className="mt-2 border-t border-slate-100 pt-2">
                <EntityForm
                  type={entityType}
                  entity={entity.data as never}
                  idPrefix={`insp-${nodeId}-${entityType}`}
                  onDraft={(v) => setDraft(nodeId, v)}
                  onSaved={(saved) => {
                    setDraft(nodeId, null);
                    qc.setQueryData(keys.entity(entityType, (saved as AnyEntity).id), saved);
                    setEditing(false);
                  }}
                  onCancel={() => {
                    setDraft(nodeId, null);
                    setEditing(false);
                  }}
                  extraActions={
                    <button type="button" className="btn btn-danger mr-auto" onClick={() => setDeleting(true)}>
                      Delete {kind.singular}
                    </button>
                  }
                />
              </div>
            )}
          </section>
        )}

        <OutputTargets nodeId={nodeId} />

        {nt && (
          <section aria-label="Node configuration" className="mb-3">
            <h3 className="mb-2 text-xs font-semibold uppercase tracking-wide text-slate-500">Settings</h3>
            <SchemaForm
              schema={nt.config_schema}
              value={node.data.config}
              onChange={(config) => update(nodeId, { config }, 'config')}
              errors={schemaErrors}
              idPrefix={`cfg-${nodeId}`}
            />
          </section>
        )}

        <button type="button" className="btn btn-danger btn-sm" onClick={() => removeNodes([nodeId])}>
          Remove node
        </button>
      </fieldset>

      {creating && kind && entityType && (
        <Dialog title={kind.newLabel.replace('…', '')} onClose={() => setCreating(false)} side>
          <EntityForm
            type={entityType}
            initial={node.data.label ? ({ name: node.data.label } as never) : undefined}
            idPrefix={`new-${entityType}`}
            onDraft={(v) => setDraft(nodeId, v)}
            onSaved={(e) => {
              setDraft(nodeId, null);
              setCreating(false);
              void link(e as AnyEntity);
            }}
            onCancel={() => {
              setDraft(nodeId, null);
              setCreating(false);
            }}
          />
        </Dialog>
      )}
      {deleting && kind && entityType && entity.data && (
        <ConfirmDelete
          what={`${kind.singular} ${title(entity.data as AnyEntity)}`}
          // this node's own link does not count: the delete unlinks it first
          usage={async () =>
            (await kind.resource.references((entity.data as AnyEntity).id as Id)).filter(
              (r) => !(r.entity_type === 'call_flow' && r.entity_id === flowId && r.via === `node:${nodeId}`),
            )
          }
          onConfirm={async () => {
            // this node's own link must not block the delete: unlink it and save the draft
            // first; when something else still uses the entity, link it back
            const id = (entity.data as AnyEntity).id as Id;
            update(nodeId, { entity_id: null });
            if (flowId) await api.flows.update(flowId, { name: useEditor.getState().name, flow_data: useEditor.getState().graph() });
            try {
              await kind.resource.remove(id);
            } catch (e) {
              update(nodeId, { entity_id: id });
              if (flowId) await api.flows.update(flowId, { name: useEditor.getState().name, flow_data: useEditor.getState().graph() }).catch(() => undefined);
              throw e;
            }
          }}
          onClose={() => setDeleting(false)}
          onDone={() => {
            update(nodeId, { entity_id: null });
            setEditing(false);
            void qc.invalidateQueries({ queryKey: keys.entities(entityType) });
          }}
        />
      )}
    </div>
  );
}

/**
 * Where each output of the node leads, as selects: connecting without a mouse (the canvas
 * needs a pointer to drag an edge), and an overview of the node's routing.
 */
function OutputTargets({ nodeId }: { nodeId: string }) {
  const outputs = useEditor((s) => s.outputs[nodeId]);
  const edges = useEditor((s) => s.edges);
  const nodes = useEditor((s) => s.nodes);
  const connect = useEditor((s) => s.connect);
  const onEdgesChange = useEditor((s) => s.onEdgesChange);
  const nameOf = useNodeNamer();
  const list = [...(outputs ?? []), { id: ERROR_OUTPUT, label: 'error (when the node fails)' }];
  const targets = nodes.filter((n) => n.data.nodeType !== 'inbound_number');
  return (
    <section aria-label="Outputs" className="mb-3">
      <h3 className="mb-2 text-xs font-semibold uppercase tracking-wide text-slate-500">Outputs</h3>
      {list.map((o) => {
        const edge = edges.find((e) => e.source === nodeId && (e.sourceHandle ?? null) === o.id);
        const id = `out-${nodeId}-${o.id}`;
        return (
          <div key={o.id} className="mb-2 grid grid-cols-[7rem_1fr] items-center gap-2">
            <label htmlFor={id} className="truncate text-sm text-slate-700" title={o.label ?? o.id}>
              {o.label ?? o.id}
            </label>
            <select
              id={id}
              className="input"
              value={edge?.target ?? ''}
              onChange={(e) => {
                if (e.target.value) connect({ source: nodeId, sourceHandle: o.id, target: e.target.value, targetHandle: INPUT_HANDLE });
                else if (edge) onEdgesChange([{ type: 'remove', id: edge.id }]);
              }}
            >
              <option value="">{'terminal' in o && o.terminal ? '— ends here —' : '— not connected —'}</option>
              {targets.map((n) => (
                <option key={n.id} value={n.id}>
                  {nameOf(n.id)}
                  {n.id === nodeId ? ' (itself)' : ''}
                </option>
              ))}
            </select>
          </div>
        );
      })}
    </section>
  );
}
