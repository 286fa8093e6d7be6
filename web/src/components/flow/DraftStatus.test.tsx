import { fireEvent, screen, waitFor } from '@testing-library/react';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { mockApi } from '../../test/mockApi';
import { renderWithApp } from '../../test/render';
import { DraftStatusBar, FlowsUsing } from './DraftStatus';

afterEach(() => vi.unstubAllGlobals());

const differs = { live_version: 3, differs_from_live: true, graph_changed: true, entities_changed: [{ entity_type: 'ivr_menu', entity_id: 4, name: 'Main menu' }] };

describe('draft status', () => {
  it('says when the draft is what calls get', () => {
    renderWithApp(<DraftStatusBar flowId={1} status={{ live_version: 2, differs_from_live: false, graph_changed: false, entities_changed: [] }} onShowDiff={() => undefined} onReset={() => undefined} />);
    expect(screen.getByTestId('draft-status')).toHaveTextContent('Draft is live (version 2)');
    expect(screen.queryByRole('button', { name: 'Reset to live' })).not.toBeInTheDocument();
  });

  it('says a never-published flow is not live', () => {
    renderWithApp(<DraftStatusBar flowId={1} status={{ live_version: null, differs_from_live: false, graph_changed: false, entities_changed: [] }} onShowDiff={() => undefined} onReset={() => undefined} />);
    expect(screen.getByTestId('draft-status')).toHaveTextContent('Not published yet');
  });

  it('names what differs and resets the draft to live after confirming', async () => {
    const api = mockApi({ 'POST /flows/1/reset-draft': () => ({ flow: { id: 1, name: 'Main', flow_data: { nodes: [], edges: [] }, draft: { ...differs, differs_from_live: false, graph_changed: false, entities_changed: [] } }, version: 3, entities_restored: [] }) });
    const onReset = vi.fn();
    const onShowDiff = vi.fn();
    renderWithApp(<DraftStatusBar flowId={1} status={differs} onShowDiff={onShowDiff} onReset={onReset} />);
    expect(screen.getByTestId('draft-status')).toHaveTextContent('Draft differs from live (version 3): the graph, IVR menu “Main menu”');
    fireEvent.click(screen.getByRole('button', { name: 'What changed' }));
    expect(onShowDiff).toHaveBeenCalled();
    fireEvent.click(screen.getByRole('button', { name: 'Reset to live' }));
    expect(screen.getByRole('dialog')).toHaveTextContent('settings of IVR menu “Main menu”');
    expect(api.calls.filter((c) => c.method === 'POST')).toHaveLength(0);
    fireEvent.click(screen.getByRole('button', { name: 'Reset draft' }));
    await waitFor(() => expect(onReset).toHaveBeenCalledWith(expect.objectContaining({ id: 1 })));
    expect(api.calls.map((c) => `${c.method} ${c.path}`)).toContain('POST /flows/1/reset-draft');
  });

  it('keeps the dialog open with the server reason when a reset is refused', async () => {
    mockApi({ 'POST /flows/1/reset-draft': () => ({ status: 422, body: { error: { code: 'validation_failed', message: 'ring group Sales: extension 102 no longer exists', details: [] } } }) });
    const onReset = vi.fn();
    renderWithApp(<DraftStatusBar flowId={1} status={differs} onShowDiff={() => undefined} onReset={onReset} />);
    fireEvent.click(screen.getByRole('button', { name: 'Reset to live' }));
    fireEvent.click(screen.getByRole('button', { name: 'Reset draft' }));
    await screen.findByText(/no longer exists/);
    expect(onReset).not.toHaveBeenCalled();
    expect(screen.getByRole('dialog')).toBeInTheDocument();
  });
});

describe('flows using an entity', () => {
  it('lists the flows and which need publishing', async () => {
    mockApi({
      'GET /flows/using/ivr_menu/4': () => ({
        status: 200,
        body: {
          data: [
            { flow_id: 1, name: 'Main line', in_draft: true, live_version: 3, entity_changed: true, needs_publish: true },
            { flow_id: 2, name: 'Night line', in_draft: true, live_version: 1, entity_changed: false, needs_publish: false },
          ],
          meta: { total: 2, limit: 2, offset: 0 },
        },
      }),
    });
    renderWithApp(<FlowsUsing entityType="ivr_menu" entityId={4} />);
    const items = await screen.findAllByRole('listitem');
    expect(items[0]).toHaveTextContent('Main line — live version 3edited since published: needs publishing');
    expect(items[1]).toHaveTextContent('Night line — live version 1');
    expect(items[1]).not.toHaveTextContent('needs publishing');
  });
});
