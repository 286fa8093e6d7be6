import { screen, waitFor } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { mockApi } from '../test/mockApi';
import { renderWithApp } from '../test/render';
import SettingsPage from './SettingsPage';
import SetupPage from './SetupPage';

afterEach(() => vi.unstubAllGlobals());

const view = (value: unknown, extra: Record<string, unknown> = {}) => ({ value, source: 'default', default: value, restart_required: true, ...extra });
const settings = () => ({
  http_port: view(8080, { source: 'flag', set_by: '--http-port', minimum: 1, maximum: 65535 }),
  sip_udp_port: view(5070, { source: 'env', set_by: 'FLOWPBX_SIP_PORT', minimum: 1, maximum: 65535 }),
  sip_tcp_port: view(5060, { minimum: 1, maximum: 65535 }),
  sip_tls_port: view(5061, { minimum: 1, maximum: 65535 }),
  sip_log: view('off', { choices: ['off', 'headers', 'full'] }),
  rtp_port_min: view(10000, { minimum: 1, maximum: 65535 }),
  rtp_port_max: view(20000, { minimum: 1, maximum: 65535 }),
});

describe('settings page', () => {
  it('shows a value a flag or variable fixes read-only and names it; the SIP log is a select', async () => {
    mockApi({ 'GET /settings': settings });
    renderWithApp(<SettingsPage />);
    const http = await screen.findByLabelText('Web and API port');
    expect(http).toBeDisabled();
    expect(http).toHaveAccessibleDescription(/Set by --http-port: change it there/);
    expect(screen.getByLabelText('SIP UDP port')).toBeDisabled();
    expect(screen.getByLabelText('SIP UDP port')).toHaveAccessibleDescription(/Set by FLOWPBX_SIP_PORT/);
    expect(screen.getByLabelText('SIP TCP port')).toBeEnabled();
    expect(screen.getByLabelText('SIP TCP port')).toHaveAttribute('max', '65535');
    const log = screen.getByLabelText('SIP message log');
    expect(log.tagName).toBe('SELECT');
    expect([...(log as HTMLSelectElement).options].map((o) => o.value)).toEqual(['off', 'headers', 'full']);
  });

  it('shows every error the server returns at once, each at its field', async () => {
    const api = mockApi({
      'GET /settings': settings,
      'PUT /settings': () => ({
        status: 422,
        body: {
          error: {
            code: 'validation_failed',
            message: '2 values are not valid',
            details: [
              { field: 'sip_tls_port', message: 'must be a port number from 1 to 65535' },
              { field: 'rtp_port_min', message: 'must be lower than the last RTP port (20000)' },
            ],
          },
        },
      }),
    });
    renderWithApp(<SettingsPage />);
    const user = userEvent.setup();
    const tls = await screen.findByLabelText('SIP TLS port');
    // the form is seeded once the settings (and the certificate panel's query) have loaded
    await waitFor(() => expect(tls).toHaveValue(5061));
    await waitFor(() => expect(screen.getByLabelText('RTP ports from')).toHaveValue(10000));
    await user.clear(tls);
    await user.type(tls, '70000');
    await user.clear(screen.getByLabelText('RTP ports from'));
    await user.type(screen.getByLabelText('RTP ports from'), '30000');
    await user.selectOptions(screen.getByLabelText('SIP message log'), 'headers');
    await user.click(screen.getByRole('button', { name: 'Save settings' }));
    await waitFor(() => expect(screen.getByLabelText('SIP TLS port')).toHaveAccessibleDescription(/must be a port number from 1 to 65535/));
    expect(screen.getByLabelText('RTP ports from')).toHaveAccessibleDescription(/must be lower than the last RTP port/);
    const put = api.calls.find((c) => c.method === 'PUT')!.body as Record<string, unknown>;
    expect(put).toMatchObject({ sip_tls_port: 70000, rtp_port_min: 30000, sip_log: 'headers' });
    // what a flag fixes is not sent
    expect(put).not.toHaveProperty('http_port');
  });
});

describe('setup wizard', () => {
  it('starts the SIP ports from what the server runs on, naming what fixes them', async () => {
    mockApi({
      'GET /setup': () => ({
        required: true,
        sip_ports: {
          sip_udp_port: view(5090, { source: 'flag', set_by: '--sip-port' }),
          sip_tcp_port: view(5090, { source: 'flag', set_by: '--sip-port' }),
          sip_tls_port: view(5061),
        },
      }),
    });
    renderWithApp(<SetupPage />);
    const user = userEvent.setup();
    await user.type(await screen.findByLabelText(/^Password$|^Password \*/), 'a long password');
    await user.type(screen.getByLabelText(/^Password again/), 'a long password');
    await user.click(screen.getByRole('button', { name: 'Next' }));
    await user.click(await screen.findByRole('button', { name: 'Next' }));
    const udp = await screen.findByLabelText('SIP UDP port');
    expect(udp).toHaveValue(5090);
    expect(udp).toBeDisabled();
    expect(udp).toHaveAccessibleDescription(/Set by --sip-port/);
    expect(screen.getByLabelText('SIP TLS port')).toHaveValue(5061);
    expect(screen.getByLabelText('SIP TLS port')).toBeEnabled();
  });
});
