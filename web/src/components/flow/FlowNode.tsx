// The canvas node: icon, type, label, linked entity, one input handle (entry nodes have none)
// and one labelled output handle per output. Outputs that depend on config (IVR digits,
// time-switch rules) are asked of the node type and update while the config is edited.
import { Handle, Position, useUpdateNodeInternals, type NodeProps } from '@xyflow/react';
import { memo, useEffect, useRef, useState } from 'react';
import { ENTITY_KINDS, entityTypeForNode, type AnyEntity, type EntityType } from '../../api/entities';
import { keys, useEntity, useNodeOutputs, useNodeTypes } from '../../api/queries';
import { useQueryClient } from '@tanstack/react-query';
import { ERROR_OUTPUT, type NodeType } from '../../api/types';
import { useEditor } from '../../store/editor';
import { INPUT_HANDLE, type PbxNode } from './graph';

const ICON_NAMES: Record<string, string> = {
  phone: '📞',
  clock: '🕐',
  dialpad: '🔢',
  keypad: '🔢',
  users: '👥',
  user: '👤',
  voicemail: '📬',
  mailbox: '📬',
  speaker: '🔊',
  volume: '🔊',
  conference: '🎙️',
  microphone: '🎙️',
  transfer: '↗️',
  'arrow-up-right': '↗️',
  hangup: '⛔',
  stop: '⛔',
  tag: '🏷️',
  globe: '🌐',
  webhook: '🌐',
  queue: '⏳',
  hourglass: '⏳',
  plugin: '🧩',
};

/** describe()'s icon: an emoji as is, a known icon name as its emoji, else a puzzle piece. */
export function nodeIcon(icon: string | undefined): string {
  if (!icon) return '🧩';
  if (ICON_NAMES[icon]) return ICON_NAMES[icon];
  // short strings that are not plain words are taken to be emoji
  if (icon.length <= 4 && !/^[a-z0-9-]+$/i.test(icon)) return icon;
  return '🧩';
}

/** A node's name for lists (problems, path steps): its label, its entity's name, its type. */
export function useNodeNamer(): (nodeId: string) => string {
  const nodes = useEditor((s) => s.nodes);
  const types = useNodeTypes();
  const qc = useQueryClient();
  return (nodeId) => {
    const n = nodes.find((x) => x.id === nodeId);
    // a node of another version of the flow, or one removed since: its id means nothing
    if (!n) return 'a node no longer in the flow';
    if (n.data.label) return n.data.label;
    const nt = findNodeType(types.data, n.data.nodeType);
    const et = entityTypeForNode(nt ?? { id: n.data.nodeType, entity_type: n.data.entity_type });
    const e = et && n.data.entity_id ? qc.getQueryData<AnyEntity>(keys.entity(et, n.data.entity_id)) : undefined;
    if (et && e) return (ENTITY_KINDS[et].title as (x: AnyEntity) => string)(e);
    return nt?.name ?? n.data.nodeType;
  };
}

/** An output's label on a node of the canvas (paths and traces report output ids: "1", "default"). */
export function useOutputLabel(): (nodeId: string, output: string) => string {
  const outputs = useEditor((s) => s.outputs);
  return (nodeId, output) => outputs[nodeId]?.find((o) => o.id === output)?.label ?? outputWords(output);
}

/** An output id in words when no label is known: `no_answer` → "no answer". */
export function outputWords(id: string): string {
  return id.replace(/[_-]+/g, ' ').trim() || id;
}

/** `value`, once it has stopped changing for `ms` (a form being typed into). */
export function useDebounced<T>(value: T, ms: number): T {
  const [v, setV] = useState(value);
  useEffect(() => {
    if (v === value) return;
    const t = setTimeout(() => setV(value), ms);
    return () => clearTimeout(t);
  }, [value, ms, v]);
  return v;
}

export function findNodeType(types: NodeType[] | undefined, id: string): NodeType | undefined {
  return types?.find((t) => t.id === id);
}

function FlowNodeView({ id, data, selected }: NodeProps<PbxNode>) {
  const types = useNodeTypes();
  const nt = findNodeType(types.data, data.nodeType);
  const entityType = entityTypeForNode(nt ?? { id: data.nodeType, entity_type: data.entity_type }) as EntityType | undefined;
  const entity = useEntity(entityType ?? 'extension', entityType ? data.entity_id : null);
  // an entity being typed into asks for the outputs once typing pauses, not per keystroke
  const draft = useDebounced(useEditor((s) => s.drafts[id]), 400);
  // an unfinished node cannot say its outputs yet (a transfer with no target): it keeps the
  // declared ones, and what is missing is the validator's to say (Problems, outlined in red)
  const { outputs } = useNodeOutputs(nt, data.config, entityType ? { entity_type: entityType, entity_id: data.entity_id, entity: draft ?? entity.data } : undefined);
  const setOutputs = useEditor((s) => s.setOutputs);
  const updateInternals = useUpdateNodeInternals();
  const outputKey = outputs.map((o) => `${o.id}:${o.label ?? ''}`).join('|');

  const mounted = useRef(false);
  useEffect(() => {
    setOutputs(id, outputs);
    // handles moved or appeared: React Flow must re-measure them to attach edges (on mount it
    // measures by itself)
    if (mounted.current) updateInternals(id);
    mounted.current = true;
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [id, outputKey]);

  const kind = entityType ? ENTITY_KINDS[entityType] : undefined;
  const entityTitle = entity.data ? (kind?.title as (e: AnyEntity) => string)(entity.data as AnyEntity) : null;
  const isEntry = nt?.entry ?? data.nodeType === 'inbound_number';
  const unknown = types.data && !nt;

  return (
    <div
      className={`w-52 rounded-lg border bg-white text-left shadow-sm ${selected ? 'border-indigo-500 ring-2 ring-indigo-500/30' : 'border-slate-300'} ${unknown ? 'border-dashed border-red-400' : ''}`}
      aria-label={`${nt?.name ?? data.nodeType}: ${data.label || entityTitle || 'unnamed'}`}
    >
      {!isEntry && <Handle type="target" id={INPUT_HANDLE} position={Position.Left} className="!h-3 !w-3 !bg-slate-500" aria-label="input" />}
      <div className="flex items-center gap-2 border-b border-slate-100 px-3 py-1.5">
        <span aria-hidden="true">{nodeIcon(nt?.icon)}</span>
        <span className="text-xs font-medium uppercase tracking-wide text-slate-500">{nt?.name ?? data.nodeType}</span>
      </div>
      <div className="px-3 py-1.5">
        <div className="truncate text-sm font-semibold text-slate-900">{data.label || entityTitle || <span className="text-slate-400">unnamed</span>}</div>
        {kind && !data.entity_id && <div className="text-xs text-amber-600">no {kind.singular} linked</div>}
        {kind && data.entity_id && data.label && data.label !== entityTitle && (
          <div className="truncate text-xs text-slate-500">{entityTitle ?? `${kind.singular} #${data.entity_id}`}</div>
        )}
        {unknown && <div className="text-xs text-red-600">unknown node type</div>}
      </div>
      {outputs.length > 0 && (
        <ul className="border-t border-slate-100 py-1">
          {outputs.map((o) => (
            <li key={o.id} className="relative flex h-6 items-center justify-end pr-3 text-xs text-slate-600" data-output={o.id}>
              {o.label ?? o.id}
              <Handle
                type="source"
                id={o.id}
                position={Position.Right}
                className="!h-3 !w-3 !bg-indigo-500"
                style={{ top: '50%' }}
                aria-label={`output ${o.label ?? o.id}`}
              />
            </li>
          ))}
        </ul>
      )}
      {nt && (
        <div className="relative flex h-5 items-center justify-end border-t border-slate-100 pr-3 text-[10px] text-red-500" data-output={ERROR_OUTPUT} title="Taken when the node fails; unconnected, the flow's fallback runs">
          {ERROR_OUTPUT}
          <Handle type="source" id={ERROR_OUTPUT} position={Position.Right} className="!h-2 !w-2 !bg-red-400" style={{ top: '50%' }} aria-label="output error" />
        </div>
      )}
    </div>
  );
}

export const FlowNode = memo(FlowNodeView);
