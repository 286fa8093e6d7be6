import { act, cleanup, screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { live } from '../../api/live';
import type { Trunk, TrunkLiveStatus, TrunkTestResult } from '../../api/types';
import { mockApi } from '../../test/mockApi';
import { renderWithApp } from '../../test/render';
import { probeWords, TrunkPanel, TrunkStatusBadge, TrunkTestResultPanel, useTrunkStatus } from './TrunkStatus';

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
  vi.useRealTimers();
  live.stop();
});

const trunk = (extra: Partial<Trunk> = {}): Trunk =>
  ({
    id: 3, name: 'Carrier', type: 'register', enabled: true, host: 'sip.carrier.example', port: 5060, transport: 'udp', username: 'acct', auth_username: null,
    register_expiry: 300, remote_hosts: [], local_host: null, codecs: ['g711u'], max_channels: 0, caller_id_name: null, caller_id_num: null, prefix_strip: 0,
    prefix_add: '', priority: 10, options_interval: 30, country_code: '', national_prefix: '', international_prefix: '', outbound_proxy: null, password_set: true,
    status: 'registering', status_detail: null, created_at: '2026-01-01T00:00:00Z', updated_at: '2026-01-01T00:00:00Z', ...extra,
  }) as Trunk;

const NOW = Date.parse('2026-03-02T10:00:00Z');

function badge(status: TrunkLiveStatus, t = trunk()) {
  renderWithApp(<TrunkStatusBadge trunk={t} status={status} />);
  return screen.getByTestId(`trunk-status-${t.id}`);
}

describe('trunk status badge', () => {
  it('says registered, when it refreshes, and the keep-alive round trip', () => {
    vi.useFakeTimers({ now: NOW, toFake: ['Date'] });
    const el = badge({ id: 3, status: 'registered', reachable: true, rtt_ms: 12, registration: { state: 'registered', next_attempt_at_ms: NOW + 255_000, last_response: { code: 200, reason: 'OK' } } });
    expect(el).toHaveTextContent('registered');
    expect(el).toHaveTextContent('refresh in 4m 15s');
    expect(el).toHaveTextContent('keep-alive: up, 12 ms');
    expect(el.querySelector('.bg-emerald-500')).not.toBeNull();
  });

  it('says why it failed and when it tries again', () => {
    vi.useFakeTimers({ now: NOW, toFake: ['Date'] });
    const el = badge({ id: 3, status: 'failed', detail: 'the provider refused the credentials', reachable: true, rtt_ms: 3,
      registration: { state: 'failed', error: 'the provider refused the credentials', next_attempt_at_ms: NOW + 90_000, last_response: { code: 401, reason: 'Unauthorized' } } });
    expect(el).toHaveTextContent('failed');
    expect(el).toHaveTextContent('the provider refused the credentials');
    expect(el).toHaveTextContent('next try in 1m 30s');
    expect(el.querySelector('.bg-red-500')).not.toBeNull();
  });

  it('shows registering, stopped, down, up, unmonitored and disabled in words', () => {
    const cases: [TrunkLiveStatus, Partial<Trunk>, RegExp, RegExp][] = [
      [{ id: 3, status: 'registering', registration: { state: 'registering' } }, {}, /registering/, /keep-alive: waiting/],
      [{ id: 3, status: 'stopped', registration: { state: 'stopped', error: 'forbidden by the provider (403): edit the trunk to try again' } }, {}, /stopped/, /Not retried until the trunk is edited/],
      [{ id: 3, status: 'down', reachable: false, detail: 'it does not answer OPTIONS: calls skip it until it does' }, {}, /down/, /keep-alive: down/],
      [{ id: 3, status: 'down', reachable: false, registration: { state: 'failed', error: 'no answer from the provider' } }, {}, /down/, /Registration: failed \(no answer from the provider\)/],
      [{ id: 3, status: 'up', reachable: true, rtt_ms: 7 }, { type: 'ip' }, /up/, /keep-alive: up, 7 ms/],
      [{ id: 3, status: 'unmonitored', detail: 'calls from 198.51.100.1 are accepted; keep-alive (OPTIONS) is off' }, { type: 'ip', options_interval: 0 }, /not monitored/, /keep-alive: off/],
      [{ id: 3, status: 'disabled' }, { enabled: false }, /disabled/, /^disabled$/],
    ];
    for (const [status, extra, word, more] of cases) {
      const { unmount } = renderWithApp(<TrunkStatusBadge trunk={trunk(extra)} status={status} />);
      const el = screen.getByTestId('trunk-status-3');
      expect(el.getAttribute('data-status')).toBe(status.status);
      expect(el.textContent).toMatch(word);
      expect(el.textContent).toMatch(more);
      unmount();
    }
  });

  it('follows /ws: a trunk.status event changes the badge without a reload', async () => {
    function Cell() {
      const t = trunk();
      return <TrunkStatusBadge trunk={t} status={useTrunkStatus(t)} />;
    }
    renderWithApp(<Cell />);
    const el = screen.getByTestId('trunk-status-3');
    // until /ws speaks, the list's status
    expect(el).toHaveAttribute('data-status', 'registering');
    act(() => live.dispatch({ type: 'snapshot', data: { calls: [], registrations: {}, trunks: [{ id: 3, status: 'failed', detail: 'no answer from the provider', registration: { state: 'failed', error: 'no answer from the provider' } }] } }));
    expect(el).toHaveAttribute('data-status', 'failed');
    expect(el).toHaveTextContent('no answer from the provider');
    act(() => live.dispatch({ type: 'trunk.status', data: { id: 3, status: 'registered', reachable: true, rtt_ms: 4, registration: { state: 'registered' } } }));
    expect(el).toHaveAttribute('data-status', 'registered');
    expect(el).toHaveTextContent('keep-alive: up, 4 ms');
    expect(el).not.toHaveTextContent('no answer');
  });
});

describe('trunk test result', () => {
  it('shows each answer with its round trip, and explains a refusal', () => {
    const result: TrunkTestResult = {
      id: 3,
      options: { answer: { code: 200, reason: 'OK' }, rtt_ms: 4 },
      register: { answer: { code: 403, reason: 'Forbidden' }, rtt_ms: 9 },
      status: { id: 3, status: 'stopped' },
    };
    renderWithApp(<TrunkTestResultPanel result={result} />);
    const list = screen.getByRole('list', { name: 'Test result' });
    const [opts, reg] = within(list).getAllByRole('listitem');
    expect(opts).toHaveTextContent('OPTIONS: 200 OK in 4 ms');
    expect(opts).toHaveTextContent('The carrier answers.');
    expect(opts).toHaveAttribute('data-tone', 'ok');
    expect(reg).toHaveTextContent('REGISTER: 403 Forbidden in 9 ms');
    expect(reg).toHaveTextContent('forbids this account');
    expect(reg).toHaveAttribute('data-tone', 'bad');
  });

  it('an IP trunk has no REGISTER; no answer is explained', () => {
    renderWithApp(<TrunkTestResultPanel result={{ id: 3, options: { error: 'no answer in 8 s' }, register: null, status: { id: 3, status: 'down' } }} />);
    const items = screen.getAllByRole('listitem');
    expect(items).toHaveLength(1);
    expect(items[0]).toHaveTextContent('OPTIONS: no answer in 8 s');
    expect(items[0]).toHaveTextContent('firewall');
  });

  it('a carrier’s reason phrase is shown as text, never as markup', () => {
    const { container } = renderWithApp(
      <TrunkTestResultPanel result={{ id: 3, options: { answer: { code: 200, reason: '<script>alert(1)</script><img src=x>' }, rtt_ms: 1 }, register: null, status: { id: 3, status: 'up' } }} />,
    );
    expect(screen.getByTestId('probe-OPTIONS')).toHaveTextContent('OPTIONS: 200 <script>alert(1)</script><img src=x> in 1 ms');
    expect(container.querySelector('script, img')).toBeNull();
  });

  it('words for the answers a carrier gives', () => {
    expect(probeWords('REGISTER', { answer: { code: 200, reason: 'OK' }, rtt_ms: 1 })).toMatchObject({ tone: 'ok', headline: '200 OK in 1 ms' });
    expect(probeWords('REGISTER', { answer: { code: 401, reason: 'Unauthorized' } }).explanation).toMatch(/credentials/);
    expect(probeWords('REGISTER', { answer: { code: 423, reason: 'Interval Too Brief' } }).explanation).toMatch(/Register every/);
    expect(probeWords('REGISTER', { answer: { code: 503, reason: 'Service Unavailable' } }).explanation).toMatch(/server had a problem/);
    // an OPTIONS refused is still an answer: the carrier is there
    expect(probeWords('OPTIONS', { answer: { code: 405, reason: 'Method Not Allowed' }, rtt_ms: 2 })).toMatchObject({ tone: 'warn' });
    expect(probeWords('OPTIONS', { error: 'its host does not resolve' }).explanation).toMatch(/does not resolve/);
    expect(probeWords('OPTIONS', { error: 'not reachable' }).explanation).toMatch(/could not be reached/);
  });

  it('the Test button runs the test and shows what came back, or why it could not run', async () => {
    const api = mockApi({
      'POST /trunks/3/test': () => ({ id: 3, options: { answer: { code: 200, reason: 'OK' }, rtt_ms: 5 }, register: { answer: { code: 200, reason: 'OK' }, rtt_ms: 8 }, status: { id: 3, status: 'registered', reachable: true, rtt_ms: 5, registration: { state: 'registered' } } }),
    });
    renderWithApp(<TrunkPanel trunk={trunk()} />);
    expect(screen.getByText(/Sends an OPTIONS and a REGISTER to sip.carrier.example:5060 \(UDP\)/)).toBeInTheDocument();
    await userEvent.setup().click(screen.getByRole('button', { name: 'Test' }));
    expect(await screen.findByText('REGISTER: 200 OK in 8 ms')).toBeInTheDocument();
    expect(screen.getByText('OPTIONS: 200 OK in 5 ms')).toBeInTheDocument();
    expect(api.calls.filter((c) => c.method === 'POST')).toHaveLength(1);
    // the status after the test is shown at once
    expect(live.getState().trunks['3'].status).toBe('registered');
    expect(screen.getByText('registered', { selector: 'span' })).toBeInTheDocument();

    api.on('POST /trunks/3/test', () => ({ status: 409, body: { error: { code: 'conflict', message: 'the trunk is disabled: enable it to test it', details: [] } } }));
    await userEvent.setup().click(screen.getByRole('button', { name: 'Test again' }));
    await waitFor(() => expect(screen.getByRole('alert')).toHaveTextContent('The test could not run:the trunk is disabled: enable it to test it'));
  });
});
