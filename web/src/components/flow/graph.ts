// The flow graph JSON (host/flow/src/graph.rs) <-> React Flow's nodes and edges. The stored graph
// keeps only what the engine reads (id, type, position, data, edges with handles and labels);
// React Flow's runtime fields (selection, measured size, dragging) never reach the server.
import type { Edge, Node } from '@xyflow/react';
import type { Graph, GraphEdge, GraphNode, Id } from '../../api/types';

export interface PbxNodeData extends Record<string, unknown> {
  /** the node type id from the registry (GraphNode.type) */
  nodeType: string;
  label: string;
  entity_id: Id | null;
  entity_type: string | null;
  config: Record<string, unknown>;
  /** keys of the graph node's data this editor does not know, kept for the round trip */
  extra?: Record<string, unknown>;
}

export type PbxNode = Node<PbxNodeData, 'pbx'>;
export type PbxEdge = Edge<{ extra?: Record<string, unknown> }>;

export const INPUT_HANDLE = 'incoming';

const KNOWN_NODE_DATA = new Set(['label', 'entity_id', 'entity_type', 'config']);
const KNOWN_EDGE = new Set(['id', 'source', 'target', 'sourceHandle', 'targetHandle', 'label']);

export function graphToFlow(g: Graph | null | undefined): { nodes: PbxNode[]; edges: PbxEdge[]; extra: Record<string, unknown> } {
  const graph = g ?? { nodes: [], edges: [] };
  const extra: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(graph)) if (k !== 'nodes' && k !== 'edges') extra[k] = v;
  const nodes: PbxNode[] = (graph.nodes ?? []).map((n) => {
    const data = n.data ?? {};
    const rest: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(data)) if (!KNOWN_NODE_DATA.has(k)) rest[k] = v;
    return {
      id: n.id,
      type: 'pbx',
      position: { x: Number(n.position?.x) || 0, y: Number(n.position?.y) || 0 },
      data: {
        nodeType: n.type,
        label: typeof data.label === 'string' ? data.label : '',
        entity_id: (data.entity_id as Id | null | undefined) ?? null,
        entity_type: (data.entity_type as string | null | undefined) ?? null,
        config: (data.config && typeof data.config === 'object' ? data.config : {}) as Record<string, unknown>,
        ...(Object.keys(rest).length ? { extra: rest } : {}),
      },
    };
  });
  const edges: PbxEdge[] = (graph.edges ?? []).map((e) => {
    const rest: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(e)) if (!KNOWN_EDGE.has(k)) rest[k] = v;
    return {
      id: e.id,
      source: e.source,
      target: e.target,
      sourceHandle: e.sourceHandle ?? null,
      targetHandle: e.targetHandle ?? INPUT_HANDLE,
      ...(e.label ? { label: e.label } : {}),
      ...(Object.keys(rest).length ? { data: { extra: rest } } : {}),
    };
  });
  return { nodes, edges, extra };
}

/**
 * React Flow state -> the graph JSON saved as the flow's draft. `labelOf` names each edge
 * after the output it leaves from (the node's current output label).
 */
export function flowToGraph(
  nodes: PbxNode[],
  edges: PbxEdge[],
  extra: Record<string, unknown> = {},
  labelOf?: (e: PbxEdge) => string | undefined,
): Graph {
  const gNodes: GraphNode[] = nodes.map((n) => ({
    id: n.id,
    type: n.data.nodeType,
    position: { x: Math.round(n.position.x), y: Math.round(n.position.y) },
    data: {
      ...(n.data.extra ?? {}),
      label: n.data.label,
      entity_id: n.data.entity_id,
      entity_type: n.data.entity_type,
      config: n.data.config,
    },
  }));
  const gEdges: GraphEdge[] = edges.map((e) => {
    const label = labelOf?.(e) ?? (typeof e.label === 'string' ? e.label : undefined);
    return {
      ...(e.data?.extra ?? {}),
      id: e.id,
      source: e.source,
      target: e.target,
      sourceHandle: e.sourceHandle ?? null,
      targetHandle: e.targetHandle ?? INPUT_HANDLE,
      ...(label ? { label } : {}),
    };
  });
  return { ...extra, nodes: gNodes, edges: gEdges };
}

/** A node id not yet used: node_<base36 time><random>. */
export function newNodeId(taken: Set<string>): string {
  for (;;) {
    const id = `node_${Date.now().toString(36).slice(-4)}${Math.random().toString(36).slice(2, 6)}`;
    if (!taken.has(id)) return id;
  }
}

export function edgeId(source: string, sourceHandle: string | null | undefined, target: string): string {
  return `edge_${source}-${sourceHandle ?? 'out'}-${target}`;
}
