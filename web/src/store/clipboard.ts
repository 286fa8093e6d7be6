// Copy and paste of nodes: the selected nodes and the edges between them, pasted with fresh ids
// and an offset so the copy does not hide the original. Kept in localStorage so a copy can be
// pasted into another flow or tab.
import { edgeId, newNodeId, type PbxEdge, type PbxNode } from '../components/flow/graph';

export interface ClipboardData {
  kind: 'flowpbx/nodes';
  version: 1;
  nodes: PbxNode[];
  edges: PbxEdge[];
}

export function copySelection(nodes: PbxNode[], edges: PbxEdge[]): ClipboardData | null {
  const picked = nodes.filter((n) => n.selected);
  if (picked.length === 0) return null;
  const ids = new Set(picked.map((n) => n.id));
  return {
    kind: 'flowpbx/nodes',
    version: 1,
    nodes: picked.map((n) => ({ id: n.id, type: n.type, position: { ...n.position }, data: structuredClone(n.data) })),
    edges: edges
      .filter((e) => ids.has(e.source) && ids.has(e.target))
      .map((e) => ({ id: e.id, source: e.source, target: e.target, sourceHandle: e.sourceHandle, targetHandle: e.targetHandle, ...(e.data ? { data: structuredClone(e.data) } : {}) })),
  };
}

/**
 * New nodes and edges for a paste. `at` puts the copy's top-left corner there; without it the
 * copy lands `offset` below-right of the original.
 */
export function pasteClipboard(
  data: ClipboardData,
  takenIds: Set<string>,
  opts: { offset?: number; at?: { x: number; y: number } } = {},
): { nodes: PbxNode[]; edges: PbxEdge[] } {
  const taken = new Set(takenIds);
  const map = new Map<string, string>();
  for (const n of data.nodes) {
    const id = newNodeId(taken);
    taken.add(id);
    map.set(n.id, id);
  }
  const minX = Math.min(...data.nodes.map((n) => n.position.x));
  const minY = Math.min(...data.nodes.map((n) => n.position.y));
  const off = opts.offset ?? 40;
  const dx = opts.at ? opts.at.x - minX : off;
  const dy = opts.at ? opts.at.y - minY : off;
  const nodes: PbxNode[] = data.nodes.map((n) => ({
    id: map.get(n.id)!,
    type: 'pbx',
    position: { x: n.position.x + dx, y: n.position.y + dy },
    data: structuredClone(n.data),
    selected: true,
  }));
  const edges: PbxEdge[] = data.edges.map((e) => {
    const source = map.get(e.source)!;
    const target = map.get(e.target)!;
    return { ...structuredClone(e), id: edgeId(source, e.sourceHandle, target), source, target, selected: false };
  });
  return { nodes, edges };
}

const KEY = 'flowpbx.clipboard';

export function writeClipboard(d: ClipboardData): void {
  try {
    localStorage.setItem(KEY, JSON.stringify(d));
  } catch {
    /* storage full or disabled: the in-memory copy still works */
  }
}

export function readClipboard(): ClipboardData | null {
  try {
    const raw = localStorage.getItem(KEY);
    if (!raw) return null;
    const d = JSON.parse(raw) as ClipboardData;
    return d && d.kind === 'flowpbx/nodes' && Array.isArray(d.nodes) && Array.isArray(d.edges) && d.nodes.length > 0 ? d : null;
  } catch {
    return null;
  }
}
