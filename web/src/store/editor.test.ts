import { beforeEach, describe, expect, it } from 'vitest';
import { useEditor } from './editor';

const st = () => useEditor.getState();

beforeEach(() => {
  st().load({ id: 1, name: 'Main', flow_data: { nodes: [], edges: [] } });
});

describe('editor undo/redo', () => {
  it('undoes adding a node, connecting and editing, and redoes them', () => {
    const a = st().addNode('inbound_number', { x: 0, y: 0 });
    const b = st().addNode('voicemail', { x: 300, y: 0 });
    st().connect({ source: a, sourceHandle: 'next', target: b, targetHandle: 'incoming' });
    st().updateNodeData(b, { label: 'After hours' }, 'label');
    expect(st().edges).toHaveLength(1);
    expect(st().saveState).toBe('dirty');

    st().undo();
    expect(st().nodes.find((n) => n.id === b)!.data.label).toBe('');
    st().undo();
    expect(st().edges).toHaveLength(0);
    st().undo();
    expect(st().nodes.map((n) => n.id)).toEqual([a]);
    st().undo();
    expect(st().nodes).toHaveLength(0);
    st().undo(); // nothing left: no-op
    expect(st().nodes).toHaveLength(0);

    st().redo();
    st().redo();
    st().redo();
    expect(st().edges).toHaveLength(1);
    st().redo();
    expect(st().nodes.find((n) => n.id === b)!.data.label).toBe('After hours');
  });

  it('typing in one field is one undo step', () => {
    const a = st().addNode('hangup', { x: 0, y: 0 });
    for (const v of ['B', 'By', 'Bye']) st().updateNodeData(a, { label: v }, 'label');
    st().undo();
    expect(st().nodes[0].data.label).toBe('');
  });

  it('a drag is one undo step: from where it started to where it ended', () => {
    const a = st().addNode('hangup', { x: 0, y: 0 });
    const before = st().history.past.length;
    st().onNodesChange([{ type: 'position', id: a, position: { x: 10, y: 0 }, dragging: true }]);
    st().onNodesChange([{ type: 'position', id: a, position: { x: 50, y: 20 }, dragging: true }]);
    st().onNodesChange([{ type: 'position', id: a, position: { x: 90, y: 40 }, dragging: false }]);
    expect(st().history.past.length).toBe(before + 1);
    expect(st().nodes[0].position).toEqual({ x: 90, y: 40 });
    st().undo();
    expect(st().nodes[0].position).toEqual({ x: 0, y: 0 });
    st().redo();
    expect(st().nodes[0].position).toEqual({ x: 90, y: 40 });
  });

  it('selection changes are not undo steps', () => {
    const a = st().addNode('hangup', { x: 0, y: 0 });
    const n = st().history.past.length;
    st().onNodesChange([{ type: 'select', id: a, selected: false }]);
    st().selectOnly(a);
    expect(st().history.past.length).toBe(n);
  });

  it('removing a node removes its edges, and undo brings both back', () => {
    const a = st().addNode('inbound_number', { x: 0, y: 0 });
    const b = st().addNode('hangup', { x: 200, y: 0 });
    st().connect({ source: a, sourceHandle: 'next', target: b, targetHandle: 'incoming' });
    st().onNodesChange([{ type: 'remove', id: b }]);
    expect(st().edges).toHaveLength(0);
    st().undo();
    expect(st().nodes).toHaveLength(2);
    expect(st().edges).toHaveLength(1);
  });

  it('a removed node takes its problems (and its edges\' problems) with it at once', () => {
    const a = st().addNode('inbound_number', { x: 0, y: 0 });
    const b = st().addNode('extension', { x: 200, y: 0 });
    st().connect({ source: a, sourceHandle: 'next', target: b, targetHandle: 'incoming' });
    const edge = st().edges[0].id;
    st().setProblems([
      { severity: 'error', code: 'entity', message: 'choose an extension', node_id: b },
      { severity: 'warning', code: 'edge', message: 'x', edge_id: edge },
      { severity: 'error', code: 'flow', message: 'the flow has no entry' },
      { severity: 'error', code: 'x', message: 'y', node_id: a },
    ]);
    st().onNodesChange([{ type: 'remove', id: b }]);
    expect(st().problems.map((p) => p.message)).toEqual(['the flow has no entry', 'y']);
  });

  it('only the node just added is marked to offer its "New …" form', () => {
    const a = st().addNode('extension', { x: 0, y: 0 });
    expect(st().justAdded).toBe(a);
    st().clearJustAdded();
    expect(st().justAdded).toBeNull();
  });

  it('an output leads to one node: connecting it again replaces the edge', () => {
    const a = st().addNode('ring_group', { x: 0, y: 0 });
    const b = st().addNode('voicemail', { x: 200, y: 0 });
    const c = st().addNode('hangup', { x: 200, y: 200 });
    st().connect({ source: a, sourceHandle: 'no_answer', target: b, targetHandle: 'incoming' });
    st().connect({ source: a, sourceHandle: 'no_answer', target: c, targetHandle: 'incoming' });
    st().connect({ source: a, sourceHandle: 'answered', target: c, targetHandle: 'incoming' });
    expect(st().edges.map((e) => `${e.sourceHandle}->${e.target}`).sort()).toEqual([`answered->${c}`, `no_answer->${c}`]);
  });

  it('a read-only view refuses edits', () => {
    st().view({ nodes: [{ id: 'x', type: 'hangup', position: { x: 0, y: 0 }, data: {} }], edges: [] }, 'version 1');
    st().updateNodeData('x', { label: 'changed' });
    st().removeNodes(['x']);
    expect(st().nodes).toHaveLength(1);
    expect(st().nodes[0].data.label).toBe('');
    expect(st().paste()).toBe(false);
  });

  it('saves edge labels from the outputs the nodes have', async () => {
    const a = st().addNode('ivr_menu', { x: 0, y: 0 });
    const b = st().addNode('hangup', { x: 200, y: 0 });
    st().connect({ source: a, sourceHandle: '1', target: b, targetHandle: 'incoming' });
    st().setOutputs(a, [{ id: '1', label: '1 Sales', terminal: false }, { id: 'timeout', label: 'timeout', terminal: false }]);
    await Promise.resolve();
    expect(st().graph().edges[0].label).toBe('1 Sales');
  });
});

describe('editor copy/paste', () => {
  it('copies the selected nodes and the edges between them, pasting with new ids', () => {
    const a = st().addNode('ivr_menu', { x: 0, y: 0 }, { label: 'Menu', entity_id: 4, entity_type: 'ivr_menu', config: { x: 1 } });
    const b = st().addNode('hangup', { x: 300, y: 0 });
    const c = st().addNode('voicemail', { x: 300, y: 200 });
    st().connect({ source: a, sourceHandle: '1', target: b, targetHandle: 'incoming' });
    st().connect({ source: a, sourceHandle: '2', target: c, targetHandle: 'incoming' });
    // select a and b only
    st().onNodesChange([
      { type: 'select', id: a, selected: true },
      { type: 'select', id: b, selected: true },
      { type: 'select', id: c, selected: false },
    ]);
    expect(st().copy()).toBe(true);
    expect(st().paste()).toBe(true);

    const nodes = st().nodes;
    expect(nodes).toHaveLength(5);
    const pasted = nodes.slice(3);
    expect(pasted.every((n) => n.selected)).toBe(true);
    expect(nodes.slice(0, 3).every((n) => !n.selected)).toBe(true);
    expect(new Set(nodes.map((n) => n.id)).size).toBe(5);
    const [pa, pb] = pasted;
    expect(pa.data).toEqual({ nodeType: 'ivr_menu', label: 'Menu', entity_id: 4, entity_type: 'ivr_menu', config: { x: 1 } });
    expect(pa.position).toEqual({ x: 40, y: 40 });
    expect(pb.position).toEqual({ x: 340, y: 40 });
    // only the edge inside the selection came along, re-pointed at the copies
    const newEdges = st().edges.filter((e) => e.source === pa.id);
    expect(newEdges).toHaveLength(1);
    expect(newEdges[0]).toMatchObject({ sourceHandle: '1', target: pb.id });
    // the copy is independent of the original
    st().updateNodeData(pa.id, { config: { x: 2 } });
    expect(st().nodes.find((n) => n.id === a)!.data.config).toEqual({ x: 1 });

    // one undo removes the whole paste
    st().undo();
    st().undo();
    expect(st().nodes).toHaveLength(3);
    expect(st().edges).toHaveLength(2);
  });

  it('a second paste lands further along; paste at a point puts the copy there', () => {
    st().addNode('hangup', { x: 100, y: 100 });
    st().copy();
    st().paste();
    st().paste();
    expect(st().nodes.map((n) => n.position)).toEqual([{ x: 100, y: 100 }, { x: 140, y: 140 }, { x: 180, y: 180 }]);
    st().paste({ x: 500, y: 600 });
    expect(st().nodes[3].position).toEqual({ x: 500, y: 600 });
  });

  it('cut removes what it copied; nothing selected copies nothing', () => {
    const a = st().addNode('hangup', { x: 0, y: 0 });
    expect(st().cut()).toBe(true);
    expect(st().nodes).toHaveLength(0);
    expect(st().paste()).toBe(true);
    expect(st().nodes[0].id).not.toBe(a);
    st().selectOnly(null);
    localStorage.clear();
    useEditor.setState({ clipboard: null });
    expect(st().copy()).toBe(false);
    expect(st().paste()).toBe(false);
  });
});
