import { act, screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { NodeType } from '../../api/types';
import { useEditor } from '../../store/editor';
import { mockApi, type MockApi } from '../../test/mockApi';
import { renderWithApp } from '../../test/render';
import { Inspector } from './Inspector';

const voicemail: NodeType = {
  id: 'voicemail',
  name: 'Voicemail',
  version: '0.1.0',
  category: 'destination',
  icon: 'voicemail',
  config_schema: { type: 'object', properties: { beep: { type: 'boolean', title: 'Beep before recording', default: true } } },
  outputs: [{ id: 'done', label: 'After recording', terminal: false }],
  dynamic_outputs: false,
  capabilities: ['voicemail'],
  entity_type: 'voicemail_box',
  source: 'builtin',
  entry: false,
};
const hangup: NodeType = { id: 'hangup', name: 'Hang up', version: '0.1.0', category: 'destination', icon: 'hangup', config_schema: { type: 'object', properties: {} }, outputs: [], dynamic_outputs: false, capabilities: [], source: 'builtin', entry: false };

let api: MockApi;
let boxes: { id: number; name: string }[];
beforeEach(() => {
  boxes = [];
  api = mockApi({
    'GET /node-types': () => [voicemail, hangup],
    'GET /voicemail-boxes': () => ({ status: 200, body: { data: boxes, meta: { total: boxes.length, limit: 100, offset: 0 } } }),
    'POST /voicemail-boxes': ({ body }) => {
      const b = { id: 12, ...(body as { name: string }) };
      boxes.push(b);
      return { status: 201, body: { data: b } };
    },
    'GET /voicemail-boxes/12': () => boxes[0],
    'GET /extensions': () => ({ status: 200, body: { data: [], meta: { total: 0, limit: 100, offset: 0 } } }),
  });
  useEditor.getState().load({
    id: 1,
    name: 'f',
    flow_data: {
      nodes: [
        { id: 'vm', type: 'voicemail', position: { x: 0, y: 0 }, data: { config: { beep: true } } },
        { id: 'bye', type: 'hangup', position: { x: 300, y: 0 }, data: { label: 'Bye' } },
      ],
      edges: [],
    },
  });
  useEditor.getState().setOutputs('vm', voicemail.outputs);
});
afterEach(() => vi.unstubAllGlobals());

describe('inspector', () => {
  it('a node just dropped with no entity, and none exists: the creation drawer opens, the new entity is linked', async () => {
    // as the palette adds it
    useEditor.setState({ justAdded: 'vm' });
    renderWithApp(<Inspector nodeId="vm" />);
    const dialog = await screen.findByRole('dialog', { name: 'New voicemail box' });
    const user = userEvent.setup();
    await user.type(within(dialog).getByLabelText(/^Name/), 'After hours');
    await user.click(within(dialog).getByRole('button', { name: 'Create voicemail box' }));
    await waitFor(() => expect(useEditor.getState().nodes[0].data.entity_id).toBe(12));
    expect(useEditor.getState().nodes[0].data.entity_type).toBe('voicemail_box');
    expect(api.calls.find((c) => c.method === 'POST')!.body).toMatchObject({ name: 'After hours' });
    await waitFor(() => expect(screen.queryByRole('dialog')).not.toBeInTheDocument());
  });

  it('selecting an unfinished node later only selects it: no form in the way, it can be removed', async () => {
    renderWithApp(<Inspector nodeId="vm" />);
    const remove = await screen.findByRole('button', { name: 'Remove node' });
    // the entity list has loaded (empty) and still no drawer
    await waitFor(() => expect(api.calls.some((c) => c.path.startsWith('/voicemail-boxes'))).toBe(true));
    expect(screen.queryByRole('dialog')).not.toBeInTheDocument();
    expect(screen.getAllByRole('combobox')[0]).toHaveAttribute('placeholder', 'Choose or create a voicemail box…');
    await userEvent.setup().click(remove);
    expect(useEditor.getState().nodes.map((n) => n.id)).toEqual(['bye']);
  });

  it('edits the config from the schema form, and connects outputs from the keyboard', async () => {
    boxes.push({ id: 12, name: 'Sales VM' });
    renderWithApp(<Inspector nodeId="vm" />);
    const user = userEvent.setup();
    await user.click(await screen.findByLabelText('Beep before recording'));
    expect(useEditor.getState().nodes[0].data.config).toEqual({ beep: false });

    await user.selectOptions(screen.getByLabelText('After recording'), 'Bye');
    expect(useEditor.getState().edges).toMatchObject([{ source: 'vm', sourceHandle: 'done', target: 'bye' }]);
    // the implicit error output can be connected too
    await user.selectOptions(screen.getByLabelText('error (when the node fails)'), 'Bye');
    expect(useEditor.getState().edges).toHaveLength(2);
    await user.selectOptions(screen.getByLabelText('After recording'), '');
    expect(useEditor.getState().edges.map((e) => e.sourceHandle)).toEqual(['error']);
    // one undo per change
    act(() => useEditor.getState().undo());
    expect(useEditor.getState().edges).toHaveLength(2);
  });

  it('the selector lists existing entities with "New …" first', async () => {
    boxes.push({ id: 12, name: 'Sales VM' }, { id: 13, name: 'Support VM' } as never);
    renderWithApp(<Inspector nodeId="vm" />);
    const user = userEvent.setup();
    await user.click(await screen.findByRole('combobox', { name: 'Voicemail box' }));
    const options = within(await screen.findByRole('listbox')).getAllByRole('option');
    expect(options.map((o) => o.textContent)).toEqual(['New voicemail box…', 'Sales VM', 'Support VM']);
    await user.keyboard('{ArrowDown}{ArrowDown}{Enter}');
    expect(useEditor.getState().nodes[0].data.entity_id).toBe(13);
  });

  it('a number linked on the canvas enters the flow at its node: the draft is saved first', async () => {
    const inbound: NodeType = { id: 'inbound_number', name: 'Inbound Number', version: '0.1.0', category: 'entry', icon: 'phone', config_schema: { type: 'object' }, outputs: [{ id: 'next', label: 'Next', terminal: false }], dynamic_outputs: false, capabilities: [], entity_type: 'inbound_number', entry: true, source: 'builtin' };
    api.on('GET /node-types', () => [voicemail, hangup, inbound]);
    api.on('GET /numbers', () => ({ status: 200, body: { data: [{ id: 5, number: '+61299990000', enabled: true }], meta: { total: 1, limit: 100, offset: 0 } } }));
    api.on('GET /trunks', () => ({ status: 200, body: { data: [], meta: { total: 0, limit: 100, offset: 0 } } }));
    api.on('PUT /flows/1', ({ body }) => ({ id: 1, ...(body as object) }));
    api.on('PUT /numbers/5', ({ body }) => ({ id: 5, number: '+61299990000', ...(body as object) }));
    let id = '';
    act(() => void (id = useEditor.getState().addNode('inbound_number', { x: 0, y: 0 })));
    renderWithApp(<Inspector nodeId={id} />);
    const user = userEvent.setup();
    await user.click(await screen.findByRole('combobox', { name: 'Number' }));
    await user.click(await screen.findByRole('option', { name: /\+61299990000/ }));
    await waitFor(() => expect(api.calls.some((c) => c.method === 'PUT' && c.path === '/numbers/5')).toBe(true));
    const puts = api.calls.filter((c) => c.method === 'PUT');
    expect(puts.map((c) => c.path)).toEqual(['/flows/1', '/numbers/5']);
    expect((puts[0].body as { flow_data: { nodes: { id: string; data: { entity_id: number } }[] } }).flow_data.nodes.find((n) => n.id === id)?.data.entity_id).toBe(5);
    expect(puts[1].body).toEqual({ flow_id: 1, flow_entry_node: id });
  });
});
