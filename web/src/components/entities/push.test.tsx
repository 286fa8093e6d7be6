import { screen, waitFor } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { PushTarget } from '../../api/types';
import { mockApi } from '../../test/mockApi';
import { renderWithApp } from '../../test/render';
import { PushTargetForm, pushBody } from './push';

afterEach(() => vi.unstubAllGlobals());

const SECRET = 'tk_s3cret-never-shown';

function target(over: Partial<PushTarget> = {}): PushTarget {
  return { extension_id: 7, kind: 'ntfy', url: 'https://ntfy.example.com/alice', token_set: true, updated_at: '2026-01-01T00:00:00Z', ...over };
}

/** What the server answers a PUT with, given whether a token was stored: never the token. */
function server(tokenSet: boolean) {
  return ({ body }: { body: unknown }) => {
    const b = body as { kind: PushTarget['kind']; url: string; token?: string };
    // absent: kept; empty: removed
    tokenSet = b.token === undefined ? tokenSet : b.token !== '';
    return target({ kind: b.kind, url: b.url, token_set: tokenSet });
  };
}

describe('pushBody', () => {
  it('leaves the token out to keep it, sends an empty one to clear it, the new one to replace it', () => {
    expect(pushBody('ntfy', ' https://n.example/t ', 'keep', 'ignored')).toEqual({ kind: 'ntfy', url: 'https://n.example/t' });
    expect(pushBody('gotify', 'https://g.example/message', 'clear', 'ignored')).toEqual({ kind: 'gotify', url: 'https://g.example/message', token: '' });
    expect(pushBody('ntfy', 'https://n.example/t', 'replace', 'abc')).toEqual({ kind: 'ntfy', url: 'https://n.example/t', token: 'abc' });
    expect(pushBody('ntfy', 'https://n.example/t', 'replace', '')).toEqual({ kind: 'ntfy', url: 'https://n.example/t' });
  });
});

describe('the push target form', () => {
  it('saves a new Gotify target with its token, then shows the token only as "set"', async () => {
    const api = mockApi({ 'GET /extensions/7/push': () => null, 'PUT /extensions/7/push': server(false) });
    renderWithApp(<PushTargetForm extensionId={7} />);
    const user = userEvent.setup();
    expect(await screen.findByLabelText('Token (not set)')).toHaveValue('');
    expect(screen.queryByRole('button', { name: 'Remove push target' })).not.toBeInTheDocument();
    await user.selectOptions(screen.getByLabelText('Provider'), 'gotify');
    await user.type(screen.getByLabelText(/Message URL/), 'https://gotify.example.com/message');
    await user.type(screen.getByLabelText('Token (not set)'), SECRET);
    await user.click(screen.getByRole('button', { name: 'Save push target' }));
    expect(await screen.findByRole('status')).toHaveTextContent('Push target saved.');
    const call = api.calls.find((c) => c.method === 'PUT');
    expect(call?.path).toBe('/extensions/7/push');
    expect(call?.body).toEqual({ kind: 'gotify', url: 'https://gotify.example.com/message', token: SECRET });
    // stored: the form says a token is set, offers keep/replace/clear, and the token is gone from the page
    expect(screen.getByRole('group', { name: 'Token: set' })).toBeInTheDocument();
    expect(screen.getByRole('radio', { name: 'Keep it' })).toBeChecked();
    expect(screen.queryByDisplayValue(SECRET)).not.toBeInTheDocument();
    expect(document.body.innerHTML).not.toContain(SECRET);
    expect(screen.getByLabelText(/Message URL/)).toHaveValue('https://gotify.example.com/message');
  });

  it('never puts a token into the page, even one a server wrongly sends back', async () => {
    mockApi({ 'GET /extensions/7/push': () => ({ ...target(), token: SECRET }) });
    renderWithApp(<PushTargetForm extensionId={7} />);
    const user = userEvent.setup();
    expect(await screen.findByRole('group', { name: 'Token: set' })).toBeInTheDocument();
    expect(document.body.innerHTML).not.toContain(SECRET);
    await user.click(screen.getByRole('radio', { name: 'Replace it' }));
    expect(screen.getByLabelText('New token')).toHaveValue('');
    expect(screen.getByLabelText('New token')).toHaveAttribute('type', 'password');
    expect(document.body.innerHTML).not.toContain(SECRET);
  });

  it('keeps a stored token by leaving it out, and clears it with an empty one', async () => {
    const api = mockApi({ 'GET /extensions/7/push': () => target(), 'PUT /extensions/7/push': server(true) });
    renderWithApp(<PushTargetForm extensionId={7} />);
    const user = userEvent.setup();
    expect(await screen.findByLabelText(/Topic URL/)).toHaveValue('https://ntfy.example.com/alice');
    // a stored token is never put into an input
    expect(screen.queryByLabelText('New token')).not.toBeInTheDocument();
    await user.click(screen.getByRole('button', { name: 'Save push target' }));
    await waitFor(() => expect(api.calls.filter((c) => c.method === 'PUT')).toHaveLength(1));
    expect(api.calls.find((c) => c.method === 'PUT')?.body).toEqual({ kind: 'ntfy', url: 'https://ntfy.example.com/alice' });
    await user.click(screen.getByRole('radio', { name: 'Clear it' }));
    await user.click(screen.getByRole('button', { name: 'Save push target' }));
    await waitFor(() => expect(api.calls.filter((c) => c.method === 'PUT')).toHaveLength(2));
    expect(api.calls.filter((c) => c.method === 'PUT')[1].body).toEqual({ kind: 'ntfy', url: 'https://ntfy.example.com/alice', token: '' });
    expect(await screen.findByLabelText('Token (not set)')).toHaveValue('');
  });

  it('replacing asks for the new token; an empty one is not sent', async () => {
    const api = mockApi({ 'GET /extensions/7/push': () => target(), 'PUT /extensions/7/push': server(true) });
    renderWithApp(<PushTargetForm extensionId={7} />);
    const user = userEvent.setup();
    await user.click(await screen.findByRole('radio', { name: 'Replace it' }));
    await user.click(screen.getByRole('button', { name: 'Save push target' }));
    expect(screen.getByLabelText('New token')).toHaveAccessibleDescription('Enter the new token, or keep the stored one.');
    expect(api.calls.some((c) => c.method === 'PUT')).toBe(false);
    await user.type(screen.getByLabelText('New token'), 'new-one');
    await user.click(screen.getByRole('button', { name: 'Save push target' }));
    await waitFor(() => expect(api.calls.find((c) => c.method === 'PUT')?.body).toEqual({ kind: 'ntfy', url: 'https://ntfy.example.com/alice', token: 'new-one' }));
  });

  it("shows the server's field errors at the field they name, and others in a banner", async () => {
    mockApi({
      'GET /extensions/7/push': () => null,
      'PUT /extensions/7/push': () => ({
        status: 422,
        body: { error: { code: 'validation_failed', message: 'invalid input', details: [
          { field: 'url', message: 'the host resolves to a private address (127.0.0.1), which the egress policy refuses' },
          { field: 'token', message: 'at most 512 characters, no control characters' },
        ] } },
      }),
    });
    renderWithApp(<PushTargetForm extensionId={7} />);
    const user = userEvent.setup();
    await user.type(await screen.findByLabelText(/Topic URL/), 'http://127.0.0.1/topic');
    await user.type(screen.getByLabelText('Token (not set)'), 'x');
    await user.click(screen.getByRole('button', { name: 'Save push target' }));
    const url = screen.getByLabelText(/Topic URL/);
    await waitFor(() => expect(url).toHaveAccessibleDescription(/egress policy refuses/));
    expect(url).toHaveAttribute('aria-invalid', 'true');
    expect(screen.getByLabelText('Token (not set)')).toHaveAccessibleDescription('at most 512 characters, no control characters');
    expect(screen.queryByText('invalid input')).not.toBeInTheDocument();
    // editing the URL takes its error away
    await user.type(url, 'x');
    expect(url).not.toHaveAttribute('aria-invalid');
  });

  it('an error naming no field of the form goes in a banner', async () => {
    mockApi({
      'GET /extensions/7/push': () => null,
      'PUT /extensions/7/push': () => ({ status: 404, body: { error: { code: 'not_found', message: 'the extension is gone', details: [] } } }),
    });
    renderWithApp(<PushTargetForm extensionId={7} />);
    const user = userEvent.setup();
    await user.type(await screen.findByLabelText(/Topic URL/), 'https://ntfy.example.com/a');
    await user.click(screen.getByRole('button', { name: 'Save push target' }));
    expect(await screen.findByText('the extension is gone')).toBeInTheDocument();
  });

  it('does not send without a URL', async () => {
    const api = mockApi({ 'GET /extensions/7/push': () => null, 'PUT /extensions/7/push': server(false) });
    renderWithApp(<PushTargetForm extensionId={7} />);
    const user = userEvent.setup();
    await user.click(await screen.findByRole('button', { name: 'Save push target' }));
    expect(screen.getByLabelText(/Topic URL/)).toHaveAccessibleDescription('Enter the URL the notifications are posted to.');
    expect(api.calls.some((c) => c.method === 'PUT')).toBe(false);
  });

  it('removes the target', async () => {
    const api = mockApi({ 'GET /extensions/7/push': () => target(), 'DELETE /extensions/7/push': () => ({ id: 7, deleted: true }) });
    renderWithApp(<PushTargetForm extensionId={7} />);
    const user = userEvent.setup();
    await user.click(await screen.findByRole('button', { name: 'Remove push target' }));
    expect(await screen.findByRole('status')).toHaveTextContent('Push target removed.');
    expect(api.calls.some((c) => c.method === 'DELETE' && c.path === '/extensions/7/push')).toBe(true);
    expect(screen.getByLabelText(/Topic URL/)).toHaveValue('');
    expect(screen.getByLabelText('Token (not set)')).toBeInTheDocument();
    expect(screen.queryByRole('button', { name: 'Remove push target' })).not.toBeInTheDocument();
  });
});
