import { describe, expect, it } from 'vitest';
import type { Graph } from '../../api/types';
import { flowToGraph, graphToFlow, INPUT_HANDLE } from './graph';

// a graph of every shape the engine reads (host/flow/src/graph.rs), plus keys this editor does not know
const seed: Graph = {
  fallback: { prompt: 'sorry' },
  nodes: [
    { id: 'node_1', type: 'inbound_number', position: { x: 100, y: 200 }, data: { label: 'Main Number', entity_id: 1, entity_type: 'inbound_number', config: {} } },
    { id: 'node_2', type: 'time_switch', position: { x: 400, y: 200 }, data: { label: 'Business Hours', entity_id: 1, entity_type: 'time_switch', config: {}, note: 'kept' } },
    { id: 'node_3', type: 'voicemail', position: { x: 700, y: 400 }, data: { label: 'After Hours VM', entity_id: 2, entity_type: 'voicemail_box', config: { max_seconds: 60 } } },
  ],
  edges: [
    { id: 'edge_1-2', source: 'node_1', target: 'node_2', sourceHandle: 'next', targetHandle: 'incoming' },
    { id: 'edge_2-3', source: 'node_2', target: 'node_3', sourceHandle: 'default', targetHandle: 'incoming', label: 'After Hours', color: 'red' },
  ],
};

describe('graph <-> React Flow', () => {
  it('turns the graph into custom nodes keeping type, entity and config', () => {
    const { nodes, edges, extra } = graphToFlow(seed);
    expect(nodes).toHaveLength(3);
    expect(nodes[1]).toMatchObject({ id: 'node_2', type: 'pbx', position: { x: 400, y: 200 }, data: { nodeType: 'time_switch', label: 'Business Hours', entity_id: 1, entity_type: 'time_switch', extra: { note: 'kept' } } });
    expect(nodes[2].data.config).toEqual({ max_seconds: 60 });
    expect(edges[1]).toMatchObject({ source: 'node_2', sourceHandle: 'default', targetHandle: 'incoming', label: 'After Hours', data: { extra: { color: 'red' } } });
    expect(extra).toEqual({ fallback: { prompt: 'sorry' } });
  });

  it('round-trips to the same graph', () => {
    const { nodes, edges, extra } = graphToFlow(seed);
    expect(flowToGraph(nodes, edges, extra)).toEqual(seed);
  });

  it('drops React Flow runtime state and rounds positions', () => {
    const { nodes, edges, extra } = graphToFlow(seed);
    nodes[0] = { ...nodes[0], selected: true, dragging: true, measured: { width: 180, height: 90 }, position: { x: 100.4, y: 199.6 } };
    const g = flowToGraph(nodes, edges, extra);
    expect(g.nodes[0]).toEqual(seed.nodes[0]);
    expect(JSON.stringify(g)).not.toContain('measured');
    expect(JSON.stringify(g)).not.toContain('selected');
  });

  it('labels edges with their output and fills missing handles', () => {
    const { nodes, edges } = graphToFlow({
      nodes: [{ id: 'a', type: 'ivr_menu', position: { x: 0, y: 0 }, data: {} }],
      edges: [{ id: 'e', source: 'a', target: 'a', sourceHandle: '1' }],
    });
    expect(nodes[0].data).toMatchObject({ label: '', entity_id: null, entity_type: null, config: {} });
    expect(edges[0].targetHandle).toBe(INPUT_HANDLE);
    const g = flowToGraph(nodes, edges, {}, (e) => (e.sourceHandle === '1' ? 'Sales' : undefined));
    expect(g.edges[0]).toEqual({ id: 'e', source: 'a', target: 'a', sourceHandle: '1', targetHandle: 'incoming', label: 'Sales' });
  });

  it('accepts an empty or missing graph', () => {
    expect(graphToFlow(null)).toEqual({ nodes: [], edges: [], extra: {} });
    expect(flowToGraph([], [])).toEqual({ nodes: [], edges: [] });
  });
});
