import { cleanup, screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { mockApi } from '../../test/mockApi';
import { renderWithApp } from '../../test/render';
import { MwiSubscriptions, VoicemailMessages } from './voicemail';

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

const message = (id: number, read: boolean) => ({
  id, mailbox_id: 3, caller_id_name: 'Carrier Caller', caller_id_num: '+15550001111', timestamp: '2026-12-08T01:00:00.000Z',
  duration: 4, file_path: `voicemail/3/${id}.wav`, read, read_at: null, transcription: null, created_at: '2026-12-08T01:00:00.000Z',
});

describe('voicemail messages', () => {
  it('lists messages with a player and a download, and marks one read or unread', async () => {
    let list = [message(7, false), message(8, true)];
    const api = mockApi({
      'GET /voicemail-boxes/3/messages': () => ({ status: 200, body: { data: list, meta: { total: list.length, limit: 50, offset: 0 } } }),
      'PUT /voicemail-boxes/3/messages/:m/read': ({ path, body }) => {
        const id = Number(path.split('/')[4]);
        list = list.map((m) => (m.id === id ? { ...m, read: (body as { read: boolean }).read } : m));
        return list.find((m) => m.id === id);
      },
    });
    renderWithApp(<VoicemailMessages id={3} />);
    const user = userEvent.setup();
    const row7 = await screen.findByTestId('vm-message-7');
    expect(within(row7).getByText('new')).toBeInTheDocument();
    expect(within(row7).getByLabelText('Message from +15550001111')).toHaveAttribute('src', '/api/v1/voicemail-boxes/3/messages/7/audio');
    expect(within(row7).getByRole('link', { name: 'Download' })).toHaveAttribute('href', '/api/v1/voicemail-boxes/3/messages/7/audio');
    expect(within(screen.getByTestId('vm-message-8')).getByRole('button', { name: 'Mark unread' })).toBeInTheDocument();

    await user.click(within(row7).getByRole('button', { name: 'Mark read' }));
    await waitFor(() => expect(within(screen.getByTestId('vm-message-7')).getByRole('button', { name: 'Mark unread' })).toBeInTheDocument());
    expect(api.calls.find((c) => c.method === 'PUT')).toMatchObject({ path: '/voicemail-boxes/3/messages/7/read', body: { read: true } });
    expect(within(screen.getByTestId('vm-message-7')).queryByText('new')).toBeNull();
  });

  it('deletes a message after confirming', async () => {
    let list = [message(7, false)];
    const api = mockApi({
      'GET /voicemail-boxes/3/messages': () => ({ status: 200, body: { data: list, meta: { total: list.length, limit: 50, offset: 0 } } }),
      'DELETE /voicemail-boxes/3/messages/7': () => {
        list = [];
        return { id: 7, deleted: true };
      },
    });
    renderWithApp(<VoicemailMessages id={3} />);
    const user = userEvent.setup();
    await user.click(within(await screen.findByTestId('vm-message-7')).getByRole('button', { name: 'Delete' }));
    await user.click(within(screen.getByRole('dialog')).getByRole('button', { name: /Delete/ }));
    await waitFor(() => expect(screen.getByText('No messages.')).toBeInTheDocument());
    expect(api.calls.some((c) => c.method === 'DELETE' && c.path === '/voicemail-boxes/3/messages/7')).toBe(true);
  });

  it('says when reading fails', async () => {
    mockApi({
      'GET /voicemail-boxes/3/messages': () => ({ status: 200, body: { data: [message(7, false)], meta: { total: 1, limit: 50, offset: 0 } } }),
      'PUT /voicemail-boxes/3/messages/7/read': () => ({ status: 404, body: { error: { code: 'not_found', message: 'voicemail message not found', details: [] } } }),
    });
    renderWithApp(<VoicemailMessages id={3} />);
    const user = userEvent.setup();
    await user.click(within(await screen.findByTestId('vm-message-7')).getByRole('button', { name: 'Mark read' }));
    expect(await screen.findByText(/not found/)).toBeInTheDocument();
  });
});

describe('message-waiting subscriptions', () => {
  it('shows what the phones subscribe to, or that none does', async () => {
    mockApi({
      'GET /extensions/4/subscriptions': () => ({
        status: 200,
        body: { data: [{ event: 'message-summary', contact: '192.0.2.10:5060', transport: 'udp', expires_at: '2026-12-08T03:00:00.000Z' }] },
      }),
      'GET /extensions/5/subscriptions': () => ({ status: 200, body: { data: [] } }),
    });
    renderWithApp(<MwiSubscriptions id={4} />);
    expect(await screen.findByText('message-summary')).toBeInTheDocument();
    expect(screen.getByText('192.0.2.10:5060')).toBeInTheDocument();
    expect(screen.getByText('UDP')).toBeInTheDocument();
    cleanup();
    renderWithApp(<MwiSubscriptions id={5} />);
    expect(await screen.findByText(/No phone subscribes/)).toBeInTheDocument();
  });
});
