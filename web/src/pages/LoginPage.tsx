// Sign in. A 429 (too many failures from this address) says how long to wait.
import { useState } from 'react';
import { useLocation, useNavigate } from 'react-router';
import { useQueryClient } from '@tanstack/react-query';
import { ApiError, errorMessage, setCsrfToken } from '../api/client';
import { api } from '../api/endpoints';
import { keys } from '../api/queries';
import { ErrorBanner, TextInput } from '../components/common/ui';

export default function LoginPage() {
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const navigate = useNavigate();
  const loc = useLocation();
  const qc = useQueryClient();
  const from = (loc.state as { from?: string } | null)?.from ?? '/';

  const submit = async (e: React.FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const s = await api.auth.login(username, password);
      setCsrfToken(s.csrf_token ?? null);
      qc.setQueryData(keys.session, s);
      navigate(from === '/login' ? '/' : from, { replace: true });
    } catch (err) {
      if (err instanceof ApiError && err.status === 429) {
        const mins = err.retryAfter ? Math.ceil(err.retryAfter / 60) : 15;
        setError(`Too many failed sign-ins from this address. Try again in ${mins} minute${mins === 1 ? '' : 's'}.`);
      } else if (err instanceof ApiError && err.status === 401) {
        setError('Wrong username or password.');
      } else setError(errorMessage(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <main className="flex min-h-screen items-center justify-center p-4">
      <form onSubmit={submit} className="card w-full max-w-sm p-6" aria-label="Sign in">
        <h1 className="mb-1 text-xl font-semibold">FlowPBX</h1>
        <p className="mb-4 text-sm text-slate-500">Sign in to manage your phone system.</p>
        <ErrorBanner error={error} />
        <TextInput id="login-username" label="Username" value={username} onChange={setUsername} autoComplete="username" required />
        <TextInput id="login-password" label="Password" type="password" value={password} onChange={setPassword} autoComplete="current-password" required />
        <button type="submit" className="btn btn-primary mt-2 w-full" disabled={busy || !username || !password}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
    </main>
  );
}
