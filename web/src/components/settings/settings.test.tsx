import { screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { mockApi } from '../../test/mockApi';
import { renderWithApp } from '../../test/render';
import { ChangePassword, Sessions } from './Account';
import { ApiTokens } from './ApiTokens';

afterEach(() => vi.unstubAllGlobals());

const page = (data: unknown[]) => ({ data, meta: { total: data.length, limit: 20, offset: 0 } });

describe('API tokens', () => {
  it('lists each token with its scope and expiry, and creates one with a scope and a lifetime', async () => {
    const api = mockApi({
      'GET /api-tokens': () => ({
        status: 200,
        body: page([
          { id: 1, name: 'crm', scope: 'write', created_at: '2026-01-01T00:00:00Z', expires_at: '2099-01-01T00:00:00Z', last_used_at: null },
          { id: 2, name: 'old', scope: 'admin', created_at: '2025-01-01T00:00:00Z', expires_at: '2025-04-01T00:00:00Z', revoked_at: '2025-02-01T00:00:00Z' },
        ]),
      }),
      'POST /api-tokens': ({ body }) => ({ status: 201, body: { data: { id: 3, created_at: '2026-01-02T00:00:00Z', token: 'eyJ.secret.jwt', ...(body as object) } } }),
    });
    renderWithApp(<ApiTokens />);
    const list = await screen.findByRole('list', { name: 'API tokens' });
    await within(list).findByText('crm');
    expect(within(list).getByText('write')).toBeInTheDocument();
    expect(within(list).getByText(/expires/)).toBeInTheDocument();
    expect(within(list).getByText(/revoked/)).toBeInTheDocument();
    // a revoked token has nothing to revoke
    expect(screen.getAllByRole('button', { name: /^Revoke token/ })).toHaveLength(1);

    const user = userEvent.setup();
    await user.type(screen.getByLabelText('New token name'), 'dashboard');
    expect(screen.getByLabelText('Expires in (days)')).toHaveValue(90);
    await user.selectOptions(screen.getByLabelText('Scope'), 'admin');
    await user.clear(screen.getByLabelText('Expires in (days)'));
    await user.type(screen.getByLabelText('Expires in (days)'), '30');
    await user.click(screen.getByRole('button', { name: 'Create token' }));
    expect(await screen.findByText('eyJ.secret.jwt')).toBeInTheDocument();
    expect(api.calls.find((c) => c.method === 'POST')?.body).toEqual({ name: 'dashboard', scope: 'admin', expires_in_days: 30 });
  });

  it('shows the server’s objection next to the field it names', async () => {
    mockApi({
      'GET /api-tokens': () => ({ status: 200, body: page([]) }),
      'POST /api-tokens': () => ({
        status: 422,
        body: { error: { code: 'validation_failed', message: 'name: must be at most 100 characters', details: [{ field: 'name', message: 'must be at most 100 characters' }] } },
      }),
    });
    renderWithApp(<ApiTokens />);
    const user = userEvent.setup();
    await user.type(screen.getByLabelText('New token name'), 'x'.repeat(101));
    await user.click(screen.getByRole('button', { name: 'Create token' }));
    await waitFor(() => expect(screen.getByLabelText('New token name')).toHaveAccessibleDescription('must be at most 100 characters'));
    // the browser keeps the lifetime within what the server takes
    expect(screen.getByLabelText('Expires in (days)')).toHaveAttribute('max', '365');
  });
});

describe('change password', () => {
  it('refuses a repeat that does not match without asking the server', async () => {
    const api = mockApi({});
    renderWithApp(<ChangePassword />);
    const user = userEvent.setup();
    await user.type(screen.getByLabelText(/^Current password/), 'correct horse battery');
    await user.type(screen.getByLabelText(/^New password/), 'a brand new password');
    await user.type(screen.getByLabelText(/^Repeat the new password/), 'a brand new passwort');
    await user.click(screen.getByRole('button', { name: 'Change password' }));
    expect(screen.getByLabelText(/^Repeat the new password/)).toHaveAccessibleDescription('does not match the new password');
    expect(api.calls).toHaveLength(0);
  });

  it('sends the current and new password and says what ended', async () => {
    const api = mockApi({ 'POST /auth/password': () => ({ sessions_ended: 2, tokens_revoked: 1 }) });
    renderWithApp(<ChangePassword />);
    const user = userEvent.setup();
    await user.type(screen.getByLabelText(/^Current password/), 'correct horse battery');
    await user.type(screen.getByLabelText(/^New password/), 'a brand new password');
    await user.type(screen.getByLabelText(/^Repeat the new password/), 'a brand new password');
    await user.click(screen.getByLabelText('Also revoke the API tokens I created'));
    await user.click(screen.getByRole('button', { name: 'Change password' }));
    expect(await screen.findByRole('status')).toHaveTextContent('Password changed. 2 other sessions ended, 1 token revoked.');
    expect(api.calls[0].body).toEqual({ current_password: 'correct horse battery', new_password: 'a brand new password', revoke_tokens: true });
    expect(screen.getByLabelText(/^Current password/)).toHaveValue('');
  });

  it('shows a wrong current password on that field', async () => {
    mockApi({
      'POST /auth/password': () => ({
        status: 422,
        body: { error: { code: 'validation_failed', message: 'current_password: is not your current password', details: [{ field: 'current_password', message: 'is not your current password' }] } },
      }),
    });
    renderWithApp(<ChangePassword />);
    const user = userEvent.setup();
    await user.type(screen.getByLabelText(/^Current password/), 'a guess');
    await user.type(screen.getByLabelText(/^New password/), 'a brand new password');
    await user.type(screen.getByLabelText(/^Repeat the new password/), 'a brand new password');
    await user.click(screen.getByRole('button', { name: 'Change password' }));
    await waitFor(() => expect(screen.getByLabelText(/^Current password/)).toHaveAccessibleDescription('is not your current password'));
    expect(screen.queryByRole('status')).not.toBeInTheDocument();
  });
});

describe('sessions', () => {
  const sessions = [
    { id: 7, created_at: '2026-01-01T00:00:00Z', last_seen_at: '2026-01-01T01:00:00Z', expires_at: '2026-01-02T01:00:00Z', absolute_expires_at: '2026-01-08T00:00:00Z', ip: '192.0.2.1', user_agent: 'Firefox', current: true },
    { id: 3, created_at: '2025-12-31T00:00:00Z', last_seen_at: '2025-12-31T01:00:00Z', expires_at: '2026-01-01T01:00:00Z', absolute_expires_at: '2026-01-07T00:00:00Z', ip: '198.51.100.9', user_agent: 'curl', current: false },
  ];

  it('marks this session, ends another, and ends all the others', async () => {
    const api = mockApi({
      'GET /auth/sessions': () => ({ status: 200, body: page(sessions) }),
      'DELETE /auth/sessions/:id': () => ({ id: 3, deleted: true }),
      'DELETE /auth/sessions': () => ({ ended: 1 }),
    });
    renderWithApp(<Sessions />);
    const list = await screen.findByRole('list', { name: 'Sessions' });
    await within(list).findByText(/198\.51\.100\.9/);
    expect(within(list).getByText('this session')).toBeInTheDocument();
    // the current session is not ended from here (that is signing out)
    const ends = within(list).getAllByRole('button', { name: /^End session/ });
    expect(ends).toHaveLength(1);
    const user = userEvent.setup();
    await user.click(ends[0]);
    await waitFor(() => expect(api.calls.some((c) => c.method === 'DELETE' && c.path === '/auth/sessions/3')).toBe(true));
    await user.click(screen.getByRole('button', { name: 'End all other sessions' }));
    expect(await screen.findByRole('status')).toHaveTextContent('1 session ended.');
    expect(api.calls.some((c) => c.method === 'DELETE' && c.path === '/auth/sessions')).toBe(true);
  });
});
