// The flow editor's state: the document (nodes, edges), its undo history, the outputs each
// node currently has, validation problems, and the path being shown. React Flow is driven
// from here (controlled); the server only sees flowToGraph(document).
import { applyEdgeChanges, applyNodeChanges, type Connection, type EdgeChange, type NodeChange } from '@xyflow/react';
import { create } from 'zustand';
import type { Graph, Id, NodeOutput, Problem } from '../api/types';
import { edgeId, flowToGraph, graphToFlow, INPUT_HANDLE, newNodeId, type PbxEdge, type PbxNode, type PbxNodeData } from '../components/flow/graph';
import { pathFrames, step, type PathFrame, type PathStep, type StepAction, type Stepper } from '../components/flow/pathAnimation';
import type { DiffMarks } from '../components/flow/diff';
import { copySelection, pasteClipboard, readClipboard, writeClipboard, type ClipboardData } from './clipboard';
import { emptyHistory, record, redo, undo, type History } from './history';

export interface Doc {
  nodes: PbxNode[];
  edges: PbxEdge[];
}

export type SaveState = 'saved' | 'dirty' | 'saving' | 'error';

export interface PathView {
  title: string;
  frames: PathFrame[];
  stepper: Stepper;
}

export interface EditorState extends Doc {
  flowId: Id | null;
  name: string;
  extra: Record<string, unknown>;
  /** a published version or a CDR's version is being viewed: no edits */
  readOnly: string | null;
  history: History<Doc>;
  /** bumped by every change to the document; autosave watches it */
  revision: number;
  saveState: SaveState;
  saveError: string | null;
  outputs: Record<string, NodeOutput[]>;
  problems: Problem[];
  path: PathView | null;
  clipboard: ClipboardData | null;
  dragging: boolean;
  /** unsaved values of a linked entity being edited in the side panel, by node id */
  drafts: Record<string, unknown>;
  /** a version diff drawn on the canvas (cleared by loading or viewing another graph) */
  diffMarks: DiffMarks | null;
  /** the node just dropped from the palette: only it offers "New …" by itself */
  justAdded: string | null;

  setDiffMarks(m: DiffMarks | null): void;
  setDraft(nodeId: string, values: unknown | null): void;
  clearJustAdded(): void;
  load(flow: { id: Id; name: string; flow_data: Graph }): void;
  view(graph: Graph, title: string): void;
  onNodesChange(changes: NodeChange<PbxNode>[]): void;
  onEdgesChange(changes: EdgeChange<PbxEdge>[]): void;
  connect(c: Connection): void;
  addNode(nodeType: string, position: { x: number; y: number }, data?: Partial<PbxNodeData>): string;
  updateNodeData(id: string, patch: Partial<PbxNodeData>, historyKey?: string): void;
  removeNodes(ids: string[]): void;
  undo(): void;
  redo(): void;
  copy(): boolean;
  cut(): boolean;
  paste(at?: { x: number; y: number }): boolean;
  selectOnly(nodeId: string | null, edgeId?: string | null): void;
  setOutputs(nodeId: string, outputs: NodeOutput[]): void;
  setProblems(p: Problem[]): void;
  setName(name: string): void;
  setSaveState(s: SaveState, error?: string | null): void;
  showPath(title: string, steps: PathStep[]): void;
  stepPath(a: StepAction): void;
  clearPath(): void;
  graph(): Graph;
}

const clean = (d: Doc): Doc => ({
  nodes: d.nodes.map(({ selected: _s, dragging: _d, ...n }) => n as PbxNode),
  edges: d.edges.map(({ selected: _s, ...e }) => e as PbxEdge),
});

/**
 * The problems that still name something of the document: a removed node's or edge's
 * problems go with it at once (the debounced validation then says what is left).
 */
export function pruneProblems(problems: Problem[], doc: Doc): Problem[] {
  if (problems.length === 0) return problems;
  const nodes = new Set(doc.nodes.map((n) => n.id));
  const edges = new Set(doc.edges.map((e) => e.id));
  const kept = problems.filter((p) => (!p.node_id || nodes.has(p.node_id)) && (!p.edge_id || edges.has(p.edge_id)));
  return kept.length === problems.length ? problems : kept;
}

let pendingOutputs: Record<string, NodeOutput[]> | null = null;

export const useEditor = create<EditorState>((set, get) => {
  /** Applies a document change, recording the state before it for undo. */
  const change = (next: Partial<Doc>, key?: string) => {
    const s = get();
    if (s.readOnly) return;
    set({
      ...next,
      problems: pruneProblems(s.problems, { nodes: next.nodes ?? s.nodes, edges: next.edges ?? s.edges }),
      history: record(s.history, clean({ nodes: s.nodes, edges: s.edges }), { key }),
      revision: s.revision + 1,
      saveState: 'dirty',
    });
  };

  return {
    flowId: null,
    name: '',
    nodes: [],
    edges: [],
    extra: {},
    readOnly: null,
    history: emptyHistory<Doc>(),
    revision: 0,
    saveState: 'saved',
    saveError: null,
    outputs: {},
    problems: [],
    path: null,
    clipboard: null,
    dragging: false,
    drafts: {},
    diffMarks: null,

    setDiffMarks(diffMarks) {
      set({ diffMarks });
    },

    justAdded: null,

    clearJustAdded() {
      if (get().justAdded !== null) set({ justAdded: null });
    },

    setDraft(nodeId, values) {
      const drafts = { ...get().drafts };
      if (values === null) delete drafts[nodeId];
      else drafts[nodeId] = values;
      set({ drafts });
    },

    load(flow) {
      const { nodes, edges, extra } = graphToFlow(flow.flow_data);
      set({ flowId: flow.id, name: flow.name, nodes, edges, extra, readOnly: null, history: emptyHistory(), revision: 0, saveState: 'saved', saveError: null, problems: [], path: null, outputs: {}, drafts: {}, diffMarks: null, justAdded: null });
    },

    view(graph, title) {
      const { nodes, edges, extra } = graphToFlow(graph);
      set({ nodes, edges, extra, readOnly: title, history: emptyHistory(), problems: [], path: null, diffMarks: null });
    },

    onNodesChange(changes) {
      const s = get();
      const structural = changes.filter((c) => c.type === 'remove' || c.type === 'add' || c.type === 'replace');
      const moves = changes.filter((c) => c.type === 'position');
      if (s.readOnly) {
        // a read-only view still lets the user select and look around
        set({ nodes: applyNodeChanges(changes.filter((c) => c.type === 'select' || c.type === 'dimensions'), s.nodes) });
        return;
      }
      if (structural.length > 0) {
        const removed = new Set(structural.filter((c) => c.type === 'remove').map((c) => (c as { id: string }).id));
        change({
          nodes: applyNodeChanges(changes, s.nodes),
          edges: s.edges.filter((e) => !removed.has(e.source) && !removed.has(e.target)),
        });
        return;
      }
      if (moves.length > 0) {
        const draggingNow = moves.some((c) => c.type === 'position' && c.dragging);
        if (draggingNow && !s.dragging) {
          // the drag starts: remember where everything was
          set({ dragging: true, history: record(s.history, clean({ nodes: s.nodes, edges: s.edges })), nodes: applyNodeChanges(changes, s.nodes) });
          return;
        }
        if (!draggingNow && s.dragging) {
          set({ dragging: false, nodes: applyNodeChanges(changes, s.nodes), revision: s.revision + 1, saveState: 'dirty' });
          return;
        }
        if (!draggingNow) {
          // a keyboard move (arrow keys on a selected node)
          change({ nodes: applyNodeChanges(changes, s.nodes) }, 'move-keys');
          return;
        }
      }
      set({ nodes: applyNodeChanges(changes, s.nodes) });
    },

    onEdgesChange(changes) {
      const s = get();
      if (!s.readOnly && changes.some((c) => c.type === 'remove')) change({ edges: applyEdgeChanges(changes, s.edges) });
      else set({ edges: applyEdgeChanges(changes.filter((c) => !s.readOnly || c.type === 'select'), s.edges) });
    },

    connect(c) {
      const s = get();
      if (!c.source || !c.target) return;
      // an output leads to exactly one next node: a new edge replaces the old one
      const edges = s.edges.filter((e) => !(e.source === c.source && (e.sourceHandle ?? null) === (c.sourceHandle ?? null)));
      edges.push({ id: edgeId(c.source, c.sourceHandle, c.target), source: c.source, target: c.target, sourceHandle: c.sourceHandle ?? null, targetHandle: c.targetHandle ?? INPUT_HANDLE });
      change({ edges });
    },

    addNode(nodeType, position, data) {
      const s = get();
      const id = newNodeId(new Set(s.nodes.map((n) => n.id)));
      const node: PbxNode = {
        id,
        type: 'pbx',
        position,
        selected: true,
        data: { nodeType, label: '', entity_id: null, entity_type: null, config: {}, ...data },
      };
      change({ nodes: [...s.nodes.map((n) => (n.selected ? { ...n, selected: false } : n)), node] });
      set({ justAdded: id });
      return id;
    },

    updateNodeData(id, patch, historyKey) {
      const s = get();
      change({ nodes: s.nodes.map((n) => (n.id === id ? { ...n, data: { ...n.data, ...patch } } : n)) }, historyKey ? `${id}:${historyKey}` : undefined);
    },

    removeNodes(ids) {
      const s = get();
      const gone = new Set(ids);
      change({ nodes: s.nodes.filter((n) => !gone.has(n.id)), edges: s.edges.filter((e) => !gone.has(e.source) && !gone.has(e.target)) });
    },

    undo() {
      const s = get();
      if (s.readOnly) return;
      const r = undo(s.history, clean({ nodes: s.nodes, edges: s.edges }));
      if (r) set({ ...r.state, problems: pruneProblems(s.problems, r.state), history: r.history, revision: s.revision + 1, saveState: 'dirty' });
    },

    redo() {
      const s = get();
      if (s.readOnly) return;
      const r = redo(s.history, clean({ nodes: s.nodes, edges: s.edges }));
      if (r) set({ ...r.state, problems: pruneProblems(s.problems, r.state), history: r.history, revision: s.revision + 1, saveState: 'dirty' });
    },

    copy() {
      const s = get();
      const d = copySelection(s.nodes, s.edges);
      if (!d) return false;
      writeClipboard(d);
      set({ clipboard: d });
      return true;
    },

    cut() {
      const s = get();
      if (!s.copy()) return false;
      s.removeNodes(s.nodes.filter((n) => n.selected).map((n) => n.id));
      return true;
    },

    paste(at) {
      const s = get();
      if (s.readOnly) return false;
      const d = readClipboard() ?? s.clipboard;
      if (!d) return false;
      const p = pasteClipboard(d, new Set(s.nodes.map((n) => n.id)), at ? { at } : {});
      change({
        nodes: [...s.nodes.map((n) => (n.selected ? { ...n, selected: false } : n)), ...p.nodes],
        edges: [...s.edges.map((e) => (e.selected ? { ...e, selected: false } : e)), ...p.edges],
      });
      // a second paste of the same copy lands further down
      const moved: ClipboardData = { ...d, nodes: d.nodes.map((n) => ({ ...n, position: { x: n.position.x + 40, y: n.position.y + 40 } })) };
      writeClipboard(moved);
      set({ clipboard: moved });
      return true;
    },

    selectOnly(nodeId, eid) {
      const s = get();
      set({
        nodes: s.nodes.map((n) => ({ ...n, selected: n.id === nodeId })),
        edges: s.edges.map((e) => ({ ...e, selected: e.id === eid })),
      });
    },

    setOutputs(nodeId, outputs) {
      // every node reports its outputs as it mounts: gather them and apply them in one update
      // (300 nodes, one re-render of the canvas rather than 300)
      const cur = pendingOutputs?.[nodeId] ?? get().outputs[nodeId];
      if (cur && JSON.stringify(cur) === JSON.stringify(outputs)) return;
      if (!pendingOutputs) {
        pendingOutputs = {};
        queueMicrotask(() => {
          const batch = pendingOutputs ?? {};
          pendingOutputs = null;
          set({ outputs: { ...get().outputs, ...batch } });
        });
      }
      pendingOutputs[nodeId] = outputs;
    },

    setProblems(problems) {
      set({ problems });
    },

    setName(name) {
      const s = get();
      set({ name, revision: s.revision + 1, saveState: 'dirty' });
    },

    setSaveState(saveState, saveError = null) {
      set({ saveState, saveError });
    },

    showPath(title, steps) {
      const s = get();
      set({ path: { title, frames: pathFrames(steps, s.edges), stepper: { index: 0, playing: steps.length > 1 } } });
    },

    stepPath(a) {
      const p = get().path;
      if (!p) return;
      set({ path: { ...p, stepper: step(p.stepper, a, p.frames.length) } });
    },

    clearPath() {
      set({ path: null });
    },

    graph() {
      const s = get();
      return flowToGraph(s.nodes, s.edges, s.extra, (e) => {
        const o = s.outputs[e.source]?.find((x) => x.id === e.sourceHandle);
        return o ? (o.label ?? o.id) : undefined;
      });
    },
  };
});
