// A version diff as a person reads it (names, not ids; before → after) and as the canvas
// draws it (added, changed and removed nodes and edges marked; removed ones drawn as ghosts).
import type { EntityChange, FlowDiff, GraphNode } from '../../api/types';
import { graphToFlow, type PbxEdge, type PbxNode } from './graph';

export type Mark = 'added' | 'removed' | 'changed';

export interface DiffMarks {
  /** what the marks compare: "live → draft" */
  title: string;
  nodes: Record<string, Mark>;
  edges: Record<string, Mark>;
  /** removed nodes and edges, drawn faded where they were (never selectable) */
  ghostNodes: PbxNode[];
  ghostEdges: PbxEdge[];
}

const ENTITY_KINDS: Record<string, string> = {
  ivr_menu: 'IVR menu',
  ring_group: 'Ring group',
  time_switch: 'Time switch',
  voicemail_box: 'Voicemail box',
  conference_bridge: 'Conference',
  extension: 'Extension',
  inbound_number: 'Number',
};

export const entityKindLabel = (t: string) => ENTITY_KINDS[t] ?? t.replace(/_/g, ' ');

const FIELD_NAMES: Record<string, string> = {
  greeting_tts: 'Greeting text',
  greeting_prompt: 'Greeting prompt',
  invalid_prompt: 'Invalid-key prompt',
  timeout_prompt: 'Timeout prompt',
  max_retries: 'Retries',
  timeout: 'Timeout (seconds)',
  digit_timeout: 'Between digits (seconds)',
  ring_timeout: 'Ring time (seconds)',
  caller_id_mode: 'Caller ID',
  caller_id_value: 'Caller ID value',
  timezone: 'Time zone',
  max_messages: 'Most messages',
  max_message_secs: 'Longest message (seconds)',
  greeting_file: 'Greeting',
  email: 'Email address',
  email_notify: 'Email new messages',
  notify_extension_id: 'Notify extension',
};

const human = (s: string) => {
  const t = s.replace(/_/g, ' ');
  return t.charAt(0).toUpperCase() + t.slice(1);
};

/** "options.3" → "Option 3"; "holidays.2026-12-25" → "Holiday 2026-12-25"; columns by name. */
export function entityFieldLabel(field: string): string {
  const dot = field.indexOf('.');
  if (dot < 0) return FIELD_NAMES[field] ?? human(field);
  const [col, key] = [field.slice(0, dot), field.slice(dot + 1)];
  const singular = { options: 'Option', holidays: 'Holiday', rules: 'Rule', members: 'Member' }[col];
  return singular ? `${singular} ${key}` : `${FIELD_NAMES[col] ?? human(col)}: ${key}`;
}

/** A value for a person: none, yes/no, text, a list, else compact JSON. */
export function formatValue(v: unknown, nameOf?: (field: string, v: unknown) => string | undefined, field = ''): string {
  const named = nameOf?.(field, v);
  if (named !== undefined) return named;
  if (v === null || v === undefined || v === '') return '(none)';
  if (typeof v === 'boolean') return v ? 'yes' : 'no';
  if (typeof v === 'string' || typeof v === 'number') return String(v);
  if (Array.isArray(v) && v.every((x) => typeof x !== 'object' || x === null)) return v.length ? v.map((x) => formatValue(x, nameOf, `${field}[]`)).join(', ') : '(none)';
  return JSON.stringify(v);
}

const NODE_FIELDS: Record<string, string> = { type: 'Type', label: 'Label', entity: 'Linked entity', position: 'Position' };

export function nodeFieldLabel(field: string): string {
  if (field.startsWith('config.')) return human(field.slice(7));
  return NODE_FIELDS[field] ?? human(field);
}

/** A node's value of a diff field (`label`, `config.timeout`, `entity`, `type`). */
export function nodeFieldValue(n: GraphNode | undefined, field: string): unknown {
  const data = (n?.data ?? {}) as Record<string, unknown>;
  if (field === 'type') return n?.type;
  if (field === 'label') return data.label;
  if (field === 'entity') return data.entity_id == null ? null : `${entityKindLabel(String(data.entity_type ?? ''))} #${data.entity_id}`;
  if (field.startsWith('config.')) return ((data.config ?? {}) as Record<string, unknown>)[field.slice(7)];
  return undefined;
}

/** Node changes that matter to a call: a move alone is not one. */
export const meaningfulFields = (fields: string[]) => fields.filter((f) => f !== 'position');

/** What the diff has in it, positions aside. */
export function isEmptyDiff(d: FlowDiff): boolean {
  const n = d.nodes;
  const e = d.edges;
  return (
    n.added.length + n.removed.length + e.added.length + e.removed.length + e.changed.length === 0 &&
    n.changed.every((c) => meaningfulFields(c.fields).length === 0) &&
    !d.settings_changed &&
    (d.entities ?? []).length === 0
  );
}

/** The canvas marks of a diff drawn over its newer side (`markEntities` adds linked entities). */
export function diffMarks(d: FlowDiff, title: string): DiffMarks {
  const nodes: Record<string, Mark> = {};
  const edges: Record<string, Mark> = {};
  for (const n of d.nodes.added) nodes[n.id] = 'added';
  for (const c of d.nodes.changed) if (meaningfulFields(c.fields).length) nodes[c.id] = 'changed';
  for (const n of d.nodes.removed) nodes[n.id] = 'removed';
  for (const e of d.edges.added) edges[e.id] = 'added';
  for (const c of d.edges.changed) edges[c.id] = 'changed';
  for (const e of d.edges.removed) edges[e.id] = 'removed';
  const ghostNodes = graphToFlow({ nodes: d.nodes.removed, edges: [] }).nodes.map((n) => ({ ...n, selectable: false, draggable: false, deletable: false, connectable: false, className: 'diff-removed' }));
  const ghostEdges = graphToFlow({ nodes: [], edges: d.edges.removed }).edges.map((e) => ({ ...e, selectable: false, deletable: false, className: 'diff-removed' }));
  return { title, nodes, edges, ghostNodes, ghostEdges };
}

/** Marks a node whose linked entity's configuration changed (it is on the canvas unchanged). */
export function markEntities(marks: DiffMarks, graphNodes: { id: string; data: { entity_type?: string | null; entity_id?: number | null } }[], entities: EntityChange[]): DiffMarks {
  const changed = new Set(entities.map((e) => `${e.entity_type}:${e.entity_id}`));
  const nodes = { ...marks.nodes };
  for (const n of graphNodes) if (!nodes[n.id] && n.data.entity_id != null && changed.has(`${n.data.entity_type}:${n.data.entity_id}`)) nodes[n.id] = 'changed';
  return { ...marks, nodes };
}
