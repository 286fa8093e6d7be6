import { screen, within } from '@testing-library/react';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { TlsStatus } from '../../api/types';
import { mockApi } from '../../test/mockApi';
import { renderWithApp } from '../../test/render';
import { CertificatePanel } from './Certificate';

afterEach(() => vi.unstubAllGlobals());

const base: TlsStatus = {
  enabled: true,
  mode: 'self_signed',
  https_port: 443,
  trusted: false,
  certificate: {
    source: 'self_signed',
    subject: 'CN=localhost, O=FlowPBX (self-signed)',
    sans: ['localhost', '127.0.0.1'],
    issuer: 'CN=localhost, O=FlowPBX (self-signed)',
    not_before: '2026-01-01T00:00:00Z',
    not_after: '2027-01-01T00:00:00Z',
    days_left: 300,
    serial: '01',
    sha256_fingerprint: 'ab'.repeat(32),
    self_signed: true,
    installed_at: '2026-01-01T00:00:00Z',
  },
  files: null,
  acme: null,
  last_attempt: null,
  last_success: null,
  last_error: null,
  last_error_at: null,
  failures: 0,
  next_renewal: null,
  renewing: false,
  listeners: { https: { address: '0.0.0.0:443', error: null } },
  health: 'ok',
  health_detail: 'self-signed certificate',
};

function serve(status: TlsStatus) {
  return mockApi({ 'GET /system/tls': () => ({ status: 200, body: { data: status } }) });
}

describe('HTTPS certificate panel', () => {
  it('says a self-signed certificate is self-signed and that HTTP is not redirected', async () => {
    serve(base);
    renderWithApp(<CertificatePanel />);
    const note = await screen.findByRole('note');
    expect(note).toHaveTextContent(/self-signed: browsers and phones warn/);
    const dl = screen.getByLabelText('Certificate');
    expect(within(dl).getByText('Self-signed, made by FlowPBX')).toBeInTheDocument();
    expect(within(dl).getByText('localhost, 127.0.0.1')).toBeInTheDocument();
    expect(within(dl).getByText(/\(itself\)$/)).toBeInTheDocument();
    expect(within(dl).getByText(/300 days left/)).toBeInTheDocument();
    expect(within(dl).getByText(/no redirect until the certificate is CA-issued/)).toBeInTheDocument();
    expect(screen.queryByRole('alert')).not.toBeInTheDocument();
  });

  it('lists the SIP listeners that serve the certificate, WSS with its path', async () => {
    serve({ ...base, listeners: { ...base.listeners, 'sip-tls': { address: '0.0.0.0:5061', error: null }, 'sip-wss': { address: '0.0.0.0:8089', error: null } } });
    renderWithApp(<CertificatePanel />);
    const dl = await screen.findByLabelText('Certificate');
    expect(within(dl).getByText('0.0.0.0:5061')).toBeInTheDocument();
    expect(within(dl).getByText('0.0.0.0:8089/ws/sip')).toBeInTheDocument();
  });

  it('shows an ACME certificate, its renewal, and a failing renewal with the CA’s reason', async () => {
    serve({
      ...base,
      mode: 'acme',
      trusted: true,
      certificate: { ...base.certificate!, source: 'acme', subject: '', sans: ['pbx.example.com'], issuer: 'CN=R11, O=Let\'s Encrypt', self_signed: false, days_left: 1 },
      acme: { directory: 'https://acme-v02.api.letsencrypt.org/directory', domains: ['pbx.example.com'], challenge: 'http-01', account: 'https://acme/acct/1' },
      last_attempt: '2026-03-01T10:00:00Z',
      next_renewal: '2026-03-01T10:05:00Z',
      last_error: 'the CA refused: Connection refused (urn:ietf:params:acme:error:connection)',
      failures: 3,
      health: 'degraded',
    });
    renderWithApp(<CertificatePanel />);
    const alert = await screen.findByRole('alert');
    expect(alert).toHaveTextContent(/^Renewal failing \(3 attempts\):/);
    expect(alert).toHaveTextContent('urn:ietf:params:acme:error:connection');
    expect(alert).toHaveTextContent('the current certificate keeps serving');
    expect(screen.getByText('Needs attention')).toBeInTheDocument();
    expect(screen.getByText(/^ACME \(automatic/)).toBeInTheDocument();
    expect(screen.getByText('http-01')).toBeInTheDocument();
    expect(screen.getAllByText('pbx.example.com')).toHaveLength(2);
    expect(screen.getByText(/1 day left/)).toBeInTheDocument();
    expect(screen.getByText('redirects to HTTPS (HSTS on)')).toBeInTheDocument();
    expect(screen.queryByRole('note')).not.toBeInTheDocument();
  });

  it('names refused certificate files and a listener that could not listen', async () => {
    serve({
      ...base,
      mode: 'file',
      trusted: true,
      certificate: { ...base.certificate!, source: 'file', self_signed: false, issuer: 'CN=Corp CA' },
      files: { cert: '/etc/flowpbx/cert.pem', key: '/etc/flowpbx/key.pem' },
      last_error: 'the private key does not belong to the certificate (their public keys differ)',
      failures: 1,
      listeners: { https: { address: null, error: 'cannot listen on 0.0.0.0:443: permission denied' } },
      health: 'degraded',
    });
    renderWithApp(<CertificatePanel />);
    expect(await screen.findByRole('alert')).toHaveTextContent(/Certificate files refused:\s*the private key does not belong/);
    expect(screen.getByText('/etc/flowpbx/cert.pem, /etc/flowpbx/key.pem')).toBeInTheDocument();
    expect(screen.getByText(/not listening: cannot listen on 0.0.0.0:443/)).toBeInTheDocument();
  });

  it('says when TLS is off', async () => {
    serve({ ...base, enabled: false, mode: null, certificate: null });
    renderWithApp(<CertificatePanel />);
    expect(await screen.findByText('TLS is not configured on this server.')).toBeInTheDocument();
  });
});
