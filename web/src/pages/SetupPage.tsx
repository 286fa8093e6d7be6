// First boot (POST /api/v1/setup): admin account, hostname / external IP, SIP ports, optionally a
// first trunk and a first extension. One POST /api/v1/setup at the end; errors are shown on
// the step that holds the field they name.
import { useEffect, useState } from 'react';
import { Navigate, useNavigate } from 'react-router';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { ApiError, errorMessage, setCsrfToken } from '../api/client';
import { api } from '../api/endpoints';
import { keys } from '../api/queries';
import type { SetupRequest } from '../api/types';
import { Checkbox, ErrorBanner, NumberInput, Select, Spinner, TextInput } from '../components/common/ui';
import { generatePassword } from '../components/entities/EntityForm';

const STEPS = ['Administrator', 'Network', 'SIP ports', 'First trunk', 'First extension', 'Review'] as const;

/** Which step shows a field the API named. */
export function stepOfField(field: string): number {
  if (field === 'username' || field === 'password' || field === 'password_confirm') return 0;
  if (field === 'hostname' || field === 'external_ip') return 1;
  if (field.startsWith('sip_')) return 2;
  if (field.startsWith('trunk')) return 3;
  if (field.startsWith('extension')) return 4;
  return 5;
}

export default function SetupPage() {
  const status = useQuery({ queryKey: keys.setup, queryFn: api.setup.status, retry: false });
  const qc = useQueryClient();
  const navigate = useNavigate();
  const [step, setStep] = useState(0);
  const [v, setV] = useState({
    username: 'admin',
    password: '',
    password_confirm: '',
    hostname: location.hostname,
    external_ip: '',
    sip_udp_port: 5060 as number | null,
    sip_tcp_port: 5060 as number | null,
    sip_tls_port: 5061 as number | null,
    add_trunk: false,
    trunk_name: '',
    trunk_host: '',
    trunk_username: '',
    trunk_password: '',
    trunk_transport: 'udp',
    add_extension: true,
    ext_extension: '100',
    ext_name: '',
    ext_password: generatePassword(),
  });
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [banner, setBanner] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [adminDone, setAdminDone] = useState(false);
  const [trunkDone, setTrunkDone] = useState(false);
  const [extDone, setExtDone] = useState(false);
  const set = (k: keyof typeof v, x: unknown) => setV((p) => ({ ...p, [k]: x }));
  // the SIP ports start from what the server runs on (a flag or environment variable, else
  // the default); one a flag or variable fixes is shown, not edited
  const ports = status.data?.sip_ports ?? null;
  useEffect(() => {
    if (!ports) return;
    const n = (x: unknown, d: number) => (typeof x === 'number' ? x : d);
    setV((p) => ({ ...p, sip_udp_port: n(ports.sip_udp_port.value, 5060), sip_tcp_port: n(ports.sip_tcp_port.value, 5060), sip_tls_port: n(ports.sip_tls_port.value, 5061) }));
  }, [ports]);
  const fixedBy = (k: 'sip_udp_port' | 'sip_tcp_port' | 'sip_tls_port'): string | null => {
    const p = ports?.[k];
    return p && (p.source === 'flag' || p.source === 'env') ? (p.set_by ?? (p.source === 'flag' ? 'a command-line flag' : 'an environment variable')) : null;
  };
  const portHelp = (k: 'sip_udp_port' | 'sip_tcp_port' | 'sip_tls_port') => {
    const by = fixedBy(k);
    return by ? `Set by ${by}: change it there.` : undefined;
  };

  if (status.isLoading) return <Spinner />;
  if (status.data && !status.data.required && !adminDone) return <Navigate to="/login" replace />;

  const checkStep = (i: number): Record<string, string> => {
    const e: Record<string, string> = {};
    if (i === 0) {
      if (!v.username.trim()) e.username = 'Choose a username.';
      if (v.password.length < 8) e.password = 'At least 8 characters.';
      else if (v.password !== v.password_confirm) e.password_confirm = 'The passwords differ.';
    }
    if (i === 2) {
      for (const k of ['sip_udp_port', 'sip_tcp_port', 'sip_tls_port'] as const) {
        const p = v[k];
        if (p === null || p < 1 || p > 65535) e[k] = 'A port from 1 to 65535.';
      }
    }
    if (i === 3 && v.add_trunk) {
      if (!v.trunk_name.trim()) e['trunk.name'] = 'Name the trunk.';
      if (!v.trunk_host.trim()) e['trunk.host'] = 'The provider’s registrar host.';
    }
    if (i === 4 && v.add_extension) {
      if (!/^\d{2,6}$/.test(v.ext_extension)) e['extension.extension'] = '2 to 6 digits.';
      if (!v.ext_name.trim()) e['extension.name'] = 'Whose extension is it?';
    }
    return e;
  };

  const next = () => {
    const e = checkStep(step);
    setErrors(e);
    if (Object.keys(e).length === 0) setStep((s) => Math.min(STEPS.length - 1, s + 1));
  };

  // POST /setup creates the admin (and the network settings); the wizard then signs in and
  // creates the optional trunk and extension through the ordinary routes. Once the admin
  // exists a retry only repeats what failed.
  const finish = async () => {
    setBusy(true);
    setBanner(null);
    setErrors({});
    let at = 'admin';
    try {
      if (!adminDone) {
        const body: SetupRequest = {
          username: v.username.trim(),
          password: v.password,
          ...(v.hostname ? { hostname: v.hostname } : {}),
          ...(v.external_ip ? { external_ip: v.external_ip } : {}),
          ...(v.sip_udp_port && !fixedBy('sip_udp_port') ? { sip_udp_port: v.sip_udp_port } : {}),
          ...(v.sip_tcp_port && !fixedBy('sip_tcp_port') ? { sip_tcp_port: v.sip_tcp_port } : {}),
        };
        await api.setup.run(body);
        qc.setQueryData(keys.setup, { required: false });
        const session = await api.auth.login(body.username, body.password);
        setCsrfToken(session.csrf_token ?? null);
        qc.setQueryData(keys.session, session);
        setAdminDone(true);
        if (v.sip_tls_port && !fixedBy('sip_tls_port') && v.sip_tls_port !== (typeof ports?.sip_tls_port.value === 'number' ? ports.sip_tls_port.value : 5061)) {
          at = 'settings';
          await api.settings.update({ sip_tls_port: v.sip_tls_port });
        }
      }
      if (v.add_trunk && !trunkDone) {
        at = 'trunk';
        await api.trunks.create({ name: v.trunk_name, type: 'register', host: v.trunk_host, username: v.trunk_username || null, password: v.trunk_password || undefined, transport: v.trunk_transport as 'udp' });
        setTrunkDone(true);
      }
      if (v.add_extension && !extDone) {
        at = 'extension';
        await api.extensions.create({ extension: v.ext_extension, name: v.ext_name, sip_username: v.ext_extension, sip_password: v.ext_password });
        setExtDone(true);
      }
      navigate('/', { replace: true });
    } catch (e) {
      if (e instanceof ApiError) {
        const fe: Record<string, string> = {};
        for (const [f, m] of Object.entries(e.fieldErrors())) fe[at === 'trunk' || at === 'extension' ? `${at}.${f}` : f] = m;
        setErrors(fe);
        const first = Object.keys(fe)[0];
        setStep(first ? stepOfField(first) : at === 'trunk' ? 3 : at === 'extension' ? 4 : step);
        setBanner(at === 'admin' ? e.message : `The administrator was created; the ${at} was not: ${e.message}`);
      } else setBanner(errorMessage(e));
    } finally {
      setBusy(false);
    }
  };

  return (
    <main className="flex min-h-screen items-start justify-center p-4 sm:items-center">
      <div className="card w-full max-w-xl p-6">
        <h1 className="text-xl font-semibold">Set up FlowPBX</h1>
        <ol className="my-4 flex flex-wrap gap-1 text-xs" aria-label="Steps">
          {STEPS.map((s, i) => (
            <li key={s} aria-current={i === step ? 'step' : undefined} className={`rounded-full px-2 py-0.5 ${i === step ? 'bg-indigo-600 text-white' : i < step ? 'bg-indigo-100 text-indigo-800' : 'bg-slate-100 text-slate-500'}`}>
              {i + 1}. {s}
            </li>
          ))}
        </ol>
        <ErrorBanner error={banner} />
        <form
          aria-label={STEPS[step]}
          onSubmit={(e) => {
            e.preventDefault();
            if (step === STEPS.length - 1) void finish();
            else next();
          }}
          noValidate
        >
          <h2 className="mb-3 text-base font-medium">{STEPS[step]}</h2>
          {step === 0 && (
            <>
              <TextInput id="setup-username" label="Admin username" required value={v.username} error={errors.username} onChange={(x) => set('username', x)} autoComplete="username" />
              <TextInput id="setup-password" label="Password" type="password" required help="At least 8 characters." value={v.password} error={errors.password} onChange={(x) => set('password', x)} autoComplete="new-password" />
              <TextInput id="setup-password2" label="Password again" type="password" required value={v.password_confirm} error={errors.password_confirm} onChange={(x) => set('password_confirm', x)} autoComplete="new-password" />
            </>
          )}
          {step === 1 && (
            <>
              <TextInput id="setup-hostname" label="Hostname" help="The name phones and trunks use to reach this PBX." value={v.hostname} error={errors.hostname} onChange={(x) => set('hostname', x)} />
              <TextInput id="setup-external-ip" label="External IP" help="The public address, when the PBX is behind NAT. Leave empty to detect it." value={v.external_ip} error={errors.external_ip} onChange={(x) => set('external_ip', x)} />
            </>
          )}
          {step === 2 && (
            <div className="grid grid-cols-1 gap-x-3 sm:grid-cols-3">
              <NumberInput id="setup-udp" label="SIP UDP port" min={1} max={65535} value={v.sip_udp_port} error={errors.sip_udp_port} help={portHelp('sip_udp_port')} disabled={!!fixedBy('sip_udp_port')} onChange={(x) => set('sip_udp_port', x)} />
              <NumberInput id="setup-tcp" label="SIP TCP port" min={1} max={65535} value={v.sip_tcp_port} error={errors.sip_tcp_port} help={portHelp('sip_tcp_port')} disabled={!!fixedBy('sip_tcp_port')} onChange={(x) => set('sip_tcp_port', x)} />
              <NumberInput id="setup-tls" label="SIP TLS port" min={1} max={65535} value={v.sip_tls_port} error={errors.sip_tls_port} help={portHelp('sip_tls_port')} disabled={!!fixedBy('sip_tls_port')} onChange={(x) => set('sip_tls_port', x)} />
            </div>
          )}
          {step === 3 && (
            <>
              <Checkbox id="setup-add-trunk" label="Add a SIP trunk now" checked={v.add_trunk} onChange={(x) => set('add_trunk', x)} help="You can add trunks later under Trunks." />
              {v.add_trunk && (
                <div className="grid grid-cols-1 gap-x-3 sm:grid-cols-2">
                  <TextInput id="setup-trunk-name" label="Trunk name" required value={v.trunk_name} error={errors['trunk.name']} onChange={(x) => set('trunk_name', x)} />
                  <TextInput id="setup-trunk-host" label="Registrar host" required value={v.trunk_host} error={errors['trunk.host']} onChange={(x) => set('trunk_host', x)} />
                  <TextInput id="setup-trunk-user" label="Username" value={v.trunk_username} error={errors['trunk.username']} onChange={(x) => set('trunk_username', x)} autoComplete="off" />
                  <TextInput id="setup-trunk-pass" label="Password" type="password" value={v.trunk_password} error={errors['trunk.password']} onChange={(x) => set('trunk_password', x)} autoComplete="new-password" />
                  <Select id="setup-trunk-transport" label="Transport" value={v.trunk_transport} onChange={(x) => set('trunk_transport', x)} options={['udp', 'tcp', 'tls'].map((t) => ({ value: t, label: t.toUpperCase() }))} />
                </div>
              )}
            </>
          )}
          {step === 4 && (
            <>
              <Checkbox id="setup-add-ext" label="Add a first extension" checked={v.add_extension} onChange={(x) => set('add_extension', x)} />
              {v.add_extension && (
                <div className="grid grid-cols-1 gap-x-3 sm:grid-cols-2">
                  <TextInput id="setup-ext-number" label="Extension number" required value={v.ext_extension} error={errors['extension.extension']} onChange={(x) => set('ext_extension', x)} />
                  <TextInput id="setup-ext-name" label="Name" required value={v.ext_name} error={errors['extension.name']} onChange={(x) => set('ext_name', x)} />
                  <TextInput id="setup-ext-pass" label="SIP password" help="Configure the phone with it; it is not shown again." value={v.ext_password} error={errors['extension.sip_password']} onChange={(x) => set('ext_password', x)} />
                </div>
              )}
            </>
          )}
          {step === 5 && (
            <dl className="grid grid-cols-[10rem_1fr] gap-y-1 text-sm">
              <dt className="text-slate-500">Admin</dt>
              <dd>{v.username}</dd>
              <dt className="text-slate-500">Hostname</dt>
              <dd>{v.hostname || '—'}</dd>
              <dt className="text-slate-500">External IP</dt>
              <dd>{v.external_ip || 'detect'}</dd>
              <dt className="text-slate-500">SIP ports</dt>
              <dd>
                UDP {v.sip_udp_port}, TCP {v.sip_tcp_port}, TLS {v.sip_tls_port}
              </dd>
              <dt className="text-slate-500">Trunk</dt>
              <dd>{v.add_trunk ? `${v.trunk_name} (${v.trunk_host})` : 'later'}</dd>
              <dt className="text-slate-500">Extension</dt>
              <dd>{v.add_extension ? `${v.ext_extension} ${v.ext_name}` : 'later'}</dd>
            </dl>
          )}
          <div className="mt-5 flex justify-between">
            <button type="button" className="btn" disabled={step === 0} onClick={() => setStep((s) => s - 1)}>
              Back
            </button>
            <button type="submit" className="btn btn-primary" disabled={busy}>
              {step === STEPS.length - 1 ? (busy ? 'Setting up…' : 'Finish setup') : 'Next'}
            </button>
          </div>
        </form>
      </div>
    </main>
  );
}
