import { ReactFlow, ReactFlowProvider } from '@xyflow/react';
import { act, screen, waitFor } from '@testing-library/react';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { NodeType } from '../../api/types';
import { useEditor } from '../../store/editor';
import { mockApi, type MockApi } from '../../test/mockApi';
import { renderWithApp } from '../../test/render';
import { FlowNode } from './FlowNode';

const ivr: NodeType = {
  id: 'ivr_menu',
  name: 'IVR menu',
  version: '0.1.0',
  category: 'Routing',
  icon: 'dialpad',
  config_schema: { type: 'object', properties: {} },
  outputs: [{ id: 'timeout', label: 'timeout', terminal: false }, { id: 'invalid', label: 'invalid', terminal: false }],
  dynamic_outputs: true,
  capabilities: [],
  entity_type: 'ivr_menu',
  source: 'builtin',
  entry: false,
};
const ringGroup: NodeType = {
  id: 'ring_group',
  name: 'Ring group',
  version: '0.1.0',
  category: 'Ring',
  icon: '👥',
  config_schema: { type: 'object', properties: {} },
  outputs: [{ id: 'answered', label: 'Answered', terminal: true }, { id: 'no_answer', label: 'No answer', terminal: false }],
  dynamic_outputs: false,
  capabilities: [],
  source: 'builtin',
  entry: false,
};

let api: MockApi;
beforeEach(() => {
  api = mockApi({
    'GET /node-types': () => [ivr, ringGroup],
    'GET /ivr-menus/4': () => ({ id: 4, name: 'Main menu', options: { '1': 'Sales' }, timeout: 10, max_retries: 3, digit_timeout: 3 }),
    'GET /ring-groups/7': () => ({ id: 7, name: 'Sales team', strategy: 'ring_all', ring_timeout: 30, members: [], caller_id_mode: 'pass' }),
    // what the host answers from the node's outputs(config): one output per digit, then timeout and invalid
    'POST /node-types/ivr_menu/outputs': ({ body }) => {
      const b = body as { entity?: { options?: Record<string, string> } };
      const digits = Object.entries(b.entity?.options ?? {}).map(([d, l]) => ({ id: d, label: l ? `${d} ${l}` : d }));
      return [...digits, { id: 'timeout' }, { id: 'invalid' }];
    },
  });
  useEditor.getState().load({
    id: 1,
    name: 'f',
    flow_data: {
      nodes: [
        { id: 'n_ivr', type: 'ivr_menu', position: { x: 0, y: 0 }, data: { label: 'Menu', entity_id: 4, entity_type: 'ivr_menu', config: {} } },
        { id: 'n_rg', type: 'ring_group', position: { x: 300, y: 0 }, data: { label: '', entity_id: 7, entity_type: 'ring_group', config: {} } },
      ],
      edges: [],
    },
  });
});
afterEach(() => vi.unstubAllGlobals());

function Canvas() {
  const nodes = useEditor((s) => s.nodes);
  return (
    <div style={{ width: 800, height: 600 }}>
      <ReactFlow nodes={nodes} edges={[]} nodeTypes={{ pbx: FlowNode }} />
    </div>
  );
}

const handles = (nodeId: string) =>
  Array.from(document.querySelectorAll(`[data-id="${nodeId}"] .react-flow__handle.source`)).map((h) => h.getAttribute('data-handleid'));

describe('node output handles', () => {
  it('has one handle per output, and outputs that depend on config follow the edit live', async () => {
    renderWithApp(
      <ReactFlowProvider>
        <Canvas />
      </ReactFlowProvider>,
    );
    await waitFor(() => expect(handles('n_ivr')).toEqual(['1', 'timeout', 'invalid', 'error']));
    expect(screen.getByText('1 Sales')).toBeInTheDocument();
    expect(screen.getByText('Main menu')).toBeInTheDocument();
    // the fixed outputs of a type that does not depend on config
    expect(handles('n_rg')).toEqual(['answered', 'no_answer', 'error']);
    // a fixed type is not asked
    expect(api.calls.some((c) => c.path.includes('ring_group'))).toBe(false);
    expect(screen.getByText('No answer')).toBeInTheDocument();
    // the node is labelled with its linked entity when it has no label of its own
    expect(screen.getAllByText('Sales team').length).toBeGreaterThan(0);

    // the side panel's unsaved edit of the IVR adds digit 3: a handle appears
    act(() => useEditor.getState().setDraft('n_ivr', { options: { '1': 'Sales', '2': 'Support', '3': 'Accounts' } }));
    await waitFor(() => expect(handles('n_ivr')).toEqual(['1', '2', '3', 'timeout', 'invalid', 'error']));
    expect(screen.getByText('3 Accounts')).toBeInTheDocument();
    // the editor knows the outputs too (edge labels, saved graph)
    expect(useEditor.getState().outputs.n_ivr.map((o) => o.id)).toEqual(['1', '2', '3', 'timeout', 'invalid']);

    // removing a digit removes its handle
    act(() => useEditor.getState().setDraft('n_ivr', { options: { '2': 'Support' } }));
    await waitFor(() => expect(handles('n_ivr')).toEqual(['2', 'timeout', 'invalid', 'error']));
    // outputs(input) failing (an unusable or unfinished config) puts no red note on the node:
    // the validator's problem says what is missing; the last good handles stay meanwhile
    api.on('POST /node-types/ivr_menu/outputs', () => ({ status: 422, body: { error: { code: 'validation_failed', message: 'digit "x" is not a key', details: [] } } }));
    act(() => useEditor.getState().setDraft('n_ivr', { options: { x: 'bad' } }));
    await waitFor(() => expect(api.calls.filter((c) => c.path === '/node-types/ivr_menu/outputs').at(-1)!.body).toMatchObject({ entity: { options: { x: 'bad' } } }));
    expect(document.querySelector('[data-id="n_ivr"] [role="note"]')).toBeNull();
    expect(handles('n_ivr')).toEqual(['2', 'timeout', 'invalid', 'error']);
    // typing (a draft changing at every keystroke) asks once it pauses, for the last value
    const before = api.calls.filter((c) => c.path === '/node-types/ivr_menu/outputs').length;
    for (const tz of ['E', 'Eu', 'Eur', 'Euro', 'Europe']) act(() => useEditor.getState().setDraft('n_ivr', { options: { '9': tz } }));
    await waitFor(() => expect(api.calls.filter((c) => c.path === '/node-types/ivr_menu/outputs').length).toBe(before + 1));
    await new Promise((r) => setTimeout(r, 600));
    const typed = api.calls.filter((c) => c.path === '/node-types/ivr_menu/outputs');
    expect(typed.length).toBe(before + 1);
    expect(typed.at(-1)!.body).toMatchObject({ entity: { options: { '9': 'Europe' } } });
    const asked = api.calls.filter((c) => c.path === '/node-types/ivr_menu/outputs');
    expect(asked[0].body).toMatchObject({ config: {}, entity_type: 'ivr_menu', entity_id: 4 });
  });

  it('has an input handle unless it is an entry node', async () => {
    renderWithApp(
      <ReactFlowProvider>
        <Canvas />
      </ReactFlowProvider>,
    );
    await waitFor(() => expect(document.querySelectorAll('[data-id="n_ivr"] .react-flow__handle.target')).toHaveLength(1));
  });
});
