import { screen } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { mockApi } from '../../test/mockApi';
import { renderWithApp } from '../../test/render';
import { BackupsPanel } from '../settings/Backups';
import { SipMessages } from './SipMessages';

afterEach(() => vi.unstubAllGlobals());

describe('SIP message viewer', () => {
  it('shows each message with its direction, peer and first line, the whole message on demand', async () => {
    mockApi({
      'GET /cdrs/7/sip-messages': () => ({
        kept: true,
        limit: 200,
        messages: [
          { at: '2026-12-08T01:00:00Z', direction: 'in', transport: 'udp', peer: '127.0.0.1:5071', call_id: 'a@x', text: 'INVITE sip:102@pbx SIP/2.0\r\nVia: x' },
          { at: '2026-12-08T01:00:01Z', direction: 'out', transport: 'udp', peer: '127.0.0.1:5072', call_id: 'b@y', text: 'INVITE sip:102@127.0.0.1:5072 SIP/2.0\r\nVia: y' },
        ],
      }),
    });
    renderWithApp(<SipMessages cdrId={7} />);
    const list = await screen.findByTestId('sip-messages');
    expect(list.querySelectorAll('li')).toHaveLength(2);
    expect(screen.getByText('← from 127.0.0.1:5071')).toBeInTheDocument();
    expect(screen.getByText('→ to 127.0.0.1:5072')).toBeInTheDocument();
    expect(screen.getByText('Call-ID b@y')).toBeInTheDocument();
  });

  it('says why there is nothing: the log is off, or the call is gone from memory', async () => {
    mockApi({ 'GET /cdrs/1/sip-messages': () => ({ kept: false, limit: 200, messages: [] }), 'GET /cdrs/2/sip-messages': () => ({ kept: true, limit: 200, messages: [] }) });
    const { unmount } = renderWithApp(<SipMessages cdrId={1} />);
    expect(await screen.findByTestId('sip-messages-empty')).toHaveTextContent(/SIP message log is off/);
    unmount();
    renderWithApp(<SipMessages cdrId={2} />);
    expect(await screen.findByTestId('sip-messages-empty')).toHaveTextContent(/last 200 messages of recent calls/);
  });
});

describe('backups panel', () => {
  it('shows the last backup and takes one now', async () => {
    const list = (n: number) => ({
      dir: '/data/backups',
      interval_hours: 24,
      keep: 7,
      backups: Array.from({ length: n }, (_, i) => ({ name: `flowpbx-2026120${8 - i}T000000Z.tar`, size_bytes: 2 << 20, created_at: `2026-12-0${8 - i}T00:00:00Z` })),
    });
    const api = mockApi({ 'GET /system/backups': () => list(0), 'POST /system/backups': () => ({ status: 201, body: { data: list(1) } }) });
    renderWithApp(<BackupsPanel />);
    expect(await screen.findByTestId('last-backup')).toHaveTextContent('No backup yet.');
    await userEvent.click(screen.getByRole('button', { name: 'Back up now' }));
    expect(await screen.findByText(/Last backup: .*flowpbx-20261208T000000Z.tar, 2.0 MiB/)).toBeInTheDocument();
    expect(api.calls.some((c) => c.method === 'POST' && c.path === '/system/backups')).toBe(true);
  });
});
