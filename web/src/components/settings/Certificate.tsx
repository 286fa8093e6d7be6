// The server certificate, read-only: where it comes from (files, ACME, or the self-signed one
// FlowPBX made), what it names, when it ends, its renewal, and whether HTTP redirects to HTTPS.
import { useQuery } from '@tanstack/react-query';
import { errorMessage } from '../../api/client';
import { api } from '../../api/endpoints';
import { keys } from '../../api/queries';
import type { TlsStatus } from '../../api/types';
import { ErrorBanner, formatDate, Spinner, StatusDot } from '../common/ui';

const SOURCE: Record<string, string> = {
  file: 'Certificate files',
  acme: 'ACME (automatic, renewed 30 days before it ends)',
  self_signed: 'Self-signed, made by FlowPBX',
};

function Row({ label, children }: { label: string; children: React.ReactNode }) {
  return (
    <div className="grid grid-cols-3 gap-2 py-1 text-sm">
      <dt className="text-slate-500">{label}</dt>
      <dd className="col-span-2 break-all">{children}</dd>
    </div>
  );
}

function validity(t: NonNullable<TlsStatus['certificate']>): string {
  if (t.days_left < 0) return `${formatDate(t.not_after)} (expired)`;
  return `${formatDate(t.not_after)} (${t.days_left} ${t.days_left === 1 ? 'day' : 'days'} left)`;
}

export function CertificatePanel() {
  const tls = useQuery({ queryKey: keys.tls, queryFn: api.systemTls, refetchInterval: 30_000 });
  const s = tls.data;
  return (
    <section className="card mb-4 p-4" aria-labelledby="tls-title">
      <h2 id="tls-title" className="mb-2 font-semibold">
        HTTPS certificate
      </h2>
      <ErrorBanner error={tls.error ? errorMessage(tls.error) : null} />
      {tls.isLoading && <Spinner />}
      {s && !s.enabled && <p className="text-sm text-slate-500">TLS is not configured on this server.</p>}
      {s?.enabled && (
        <>
          <p className="mb-2">
            <StatusDot status={{ tone: s.health === 'ok' ? 'ok' : 'warn', text: s.health === 'ok' ? 'Valid' : 'Needs attention' }} />
          </p>
          {s.certificate?.source === 'self_signed' && (
            <p role="note" className="mb-3 rounded-md border border-amber-200 bg-amber-50 px-3 py-2 text-sm text-amber-900">
              This certificate is self-signed: browsers and phones warn about it or refuse it. Give FlowPBX certificate files
              (--tls-cert, --tls-key) or turn on ACME (--acme) for one they trust.
              {s.mode === 'acme' && ' ACME has not issued one yet.'}
            </p>
          )}
          {s.last_error && (
            <ErrorBanner
              title={s.mode === 'acme' ? `Renewal failing (${s.failures} ${s.failures === 1 ? 'attempt' : 'attempts'}):` : 'Certificate files refused:'}
              error={`${s.last_error} — the current certificate keeps serving.`}
            />
          )}
          <dl className="divide-y divide-slate-100" aria-label="Certificate">
            <Row label="Source">{SOURCE[s.certificate?.source ?? ''] ?? s.certificate?.source ?? '—'}</Row>
            {s.certificate && (
              <>
                <Row label="Subject">{s.certificate.subject}</Row>
                <Row label="Names">{s.certificate.sans.join(', ') || '—'}</Row>
                <Row label="Issuer">{s.certificate.self_signed ? `${s.certificate.issuer} (itself)` : s.certificate.issuer}</Row>
                <Row label="Valid until">{validity(s.certificate)}</Row>
                <Row label="SHA-256 fingerprint">
                  <code className="text-xs">{s.certificate.sha256_fingerprint}</code>
                </Row>
              </>
            )}
            {s.files && (
              <Row label="Files">
                {s.files.cert}, {s.files.key}
              </Row>
            )}
            {s.acme && (
              <>
                <Row label="ACME CA">{s.acme.directory}</Row>
                <Row label="Domains">{s.acme.domains.join(', ')}</Row>
                <Row label="Challenge">{s.acme.challenge}</Row>
                <Row label="Last attempt">{s.renewing ? 'in progress…' : formatDate(s.last_attempt)}</Row>
                <Row label="Next renewal">{formatDate(s.next_renewal)}</Row>
              </>
            )}
            <Row label="HTTPS">{s.https_port ? `port ${s.https_port}` : 'off'}{s.listeners.https?.error ? ` — not listening: ${s.listeners.https.error}` : ''}</Row>
            <Row label="HTTP">{s.trusted ? 'redirects to HTTPS (HSTS on)' : 'served as it is (no redirect until the certificate is CA-issued)'}</Row>
            <Row label="SIP over TLS">{listening(s.listeners['sip-tls'])}</Row>
            <Row label="SIP over WSS (WebRTC phones)">{listening(s.listeners['sip-wss'], '/ws/sip')}</Row>
          </dl>
        </>
      )}
    </section>
  );
}

/** A TLS listener in words: its address (and path), why it is not listening, or off. */
function listening(l: { address?: string | null; error?: string | null } | undefined, path = ''): string {
  if (!l) return 'off';
  if (l.error) return `not listening: ${l.error}`;
  return l.address ? `${l.address}${path}` : 'off';
}
