import { screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { useEditor } from '../../store/editor';
import { mockApi, type MockApi } from '../../test/mockApi';
import { renderWithApp } from '../../test/render';
import { ProblemsPanel, VersionsPanel } from './panels';

let api: MockApi;
beforeEach(() => {
  api = mockApi({
    'GET /node-types': () => [],
    'GET /flows/1': () => ({ id: 1, name: 'Main', published: true, version: 2, flow_data: { nodes: [], edges: [] } }),
    'GET /flows/1/versions': () => ({
      status: 200,
      body: {
        data: [
          { version: 2, published_at: '2026-01-02T10:00:00Z', published_by: 'admin:alice', live: true },
          { version: 1, published_at: '2026-01-01T10:00:00Z', published_by: 'token:ci', live: false },
        ],
        meta: { total: 2, limit: 100, offset: 0 },
      },
    }),
    'POST /flows/1/rollback': () => ({ version: 1 }),
  });
  useEditor.getState().load({ id: 1, name: 'Main', flow_data: { nodes: [], edges: [] } });
});
afterEach(() => vi.unstubAllGlobals());

describe('versions panel', () => {
  it('names who published in words and says a rollback can be undone', async () => {
    renderWithApp(<VersionsPanel flowId={1} onView={() => undefined} />);
    const list = await screen.findByRole('list', { name: 'Published versions' });
    expect(list).toHaveTextContent('by alice');
    expect(list).toHaveTextContent('by the API token “ci”');
    expect(list).not.toHaveTextContent('admin:');
    const user = userEvent.setup();
    await user.click(within(list).getByRole('button', { name: 'Roll back to this' }));
    const dialog = await screen.findByRole('dialog', { name: 'Roll back to version 1?' });
    expect(dialog).toHaveTextContent('can be undone');
    expect(dialog).not.toHaveTextContent('cannot be undone');
    // the button says what it does, not "Roll back to"
    await user.click(within(dialog).getByRole('button', { name: 'Roll back' }));
    await waitFor(() => expect(api.calls.some((c) => c.method === 'POST' && c.path === '/flows/1/rollback')).toBe(true));
  });
});

describe('problems panel', () => {
  it('names an edge by the nodes it joins, never by its id', () => {
    useEditor.getState().load({
      id: 1,
      name: 'Main',
      flow_data: {
        nodes: [
          { id: 'node_a1', type: 'hangup', position: { x: 0, y: 0 }, data: { label: 'Menu' } },
          { id: 'node_b2', type: 'hangup', position: { x: 0, y: 0 }, data: { label: 'Bye' } },
        ],
        edges: [{ id: 'edge_zz9', source: 'node_a1', target: 'node_b2', sourceHandle: 'x' }],
      },
    });
    useEditor.getState().setProblems([{ severity: 'error', code: 'edge', message: 'leads nowhere', edge_id: 'edge_zz9' }]);
    renderWithApp(<ProblemsPanel onFocus={() => undefined} />);
    const list = screen.getByRole('list', { name: 'Problems' });
    expect(list).toHaveTextContent('connection Menu → Bye: leads nowhere');
    expect(list).not.toHaveTextContent('edge_zz9');
  });
});
