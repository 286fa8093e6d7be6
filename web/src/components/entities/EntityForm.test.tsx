import { screen, waitFor } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { mockApi } from '../../test/mockApi';
import { renderWithApp } from '../../test/render';
import { ConfirmDelete } from '../common/ConfirmDelete';
import { EntityForm, toRequestBody } from './EntityForm';
import { weeklyGrid } from './editors';

afterEach(() => vi.unstubAllGlobals());

describe('entity form', () => {
  it('creates an extension and hands back what the server saved', async () => {
    const api = mockApi({ 'POST /extensions': ({ body }) => ({ status: 201, body: { data: { id: 9, ...(body as object) } } }) });
    const onSaved = vi.fn();
    renderWithApp(<EntityForm type="extension" onSaved={onSaved} />);
    const user = userEvent.setup();
    await user.type(screen.getByLabelText(/Extension number/), '101');
    await user.type(screen.getByLabelText(/^Name/), 'Nick');
    await user.type(screen.getByLabelText(/SIP password/), 'correct horse battery');
    // the SIP username follows the extension number until edited
    expect(screen.getByLabelText(/SIP username/)).toHaveValue('101');
    await user.click(screen.getByRole('button', { name: 'Create extension' }));
    await waitFor(() => expect(onSaved).toHaveBeenCalled());
    expect(onSaved.mock.calls[0][0]).toMatchObject({ id: 9, extension: '101', name: 'Nick' });
    expect(api.calls[0].body).toMatchObject({ extension: '101', name: 'Nick', sip_username: '101', sip_password: 'correct horse battery', email: null, follow_me_numbers: [] });
  });

  it('turns on an extension\'s unsolicited MWI and shows the server\'s error beside it', async () => {
    const api = mockApi({
      'PUT /extensions/3': ({ body }) =>
        api.calls.length === 1
          ? { status: 422, body: { error: { code: 'validation_failed', message: '1 field is invalid', details: [{ field: 'mwi_unsolicited', message: 'not now' }] } } }
          : { status: 200, body: { data: { id: 3, ...(body as object) } } },
    });
    const onSaved = vi.fn();
    renderWithApp(<EntityForm type="extension" entity={{ id: 3, extension: '201', name: 'A', sip_username: '201', mwi_unsolicited: false, follow_me_numbers: [], call_classes: [], created_at: 'x', updated_at: 'x' } as never} onSaved={onSaved} />);
    const user = userEvent.setup();
    const box = screen.getByLabelText(/Unsolicited voicemail lamp/);
    expect(box).not.toBeChecked();
    await user.click(box);
    await user.click(screen.getByRole('button', { name: 'Save' }));
    await waitFor(() => expect(box).toHaveAttribute('aria-invalid', 'true'));
    expect(box).toHaveAccessibleDescription(/not now/);
    expect(api.calls[0].body).toMatchObject({ mwi_unsolicited: true });
    await user.click(screen.getByRole('button', { name: 'Save' }));
    await waitFor(() => expect(onSaved).toHaveBeenCalled());
    expect(onSaved.mock.calls[0][0]).toMatchObject({ id: 3, mwi_unsolicited: true });
  });

  it('shows each API error next to the field it names', async () => {
    mockApi({
      'POST /extensions': () => ({
        status: 422,
        body: { error: { code: 'validation_failed', message: '2 fields are invalid', details: [{ field: 'extension', message: 'extension 101 is taken by Nick' }, { field: 'follow_me_numbers[0].number', message: 'not a dialable number' }] } },
      }),
    });
    renderWithApp(<EntityForm type="extension" initial={{ follow_me_enabled: true, follow_me_numbers: [{ number: 'abc', delay: 0, timeout: 20 }] }} onSaved={() => undefined} />);
    await userEvent.setup().click(screen.getByRole('button', { name: 'Create extension' }));
    const ext = await screen.findByLabelText(/Extension number/);
    await waitFor(() => expect(ext).toHaveAttribute('aria-invalid', 'true'));
    expect(ext).toHaveAccessibleDescription('extension 101 is taken by Nick');
    expect(screen.getByLabelText('Number 1')).toHaveAccessibleDescription('Number: not a dialable number');
    // every error has a place on the form: no banner
    expect(screen.queryByText('2 fields are invalid')).not.toBeInTheDocument();
  });

  it('sets a trunk\'s SRTP policy and shows the server\'s error beside it', async () => {
    const api = mockApi({
      'PUT /trunks/4': ({ body }) =>
        (body as { srtp?: string }).srtp === 'required'
          ? { status: 422, body: { error: { code: 'validation_failed', message: '1 field is invalid', details: [{ field: 'srtp', message: 'the carrier cannot do SRTP' }] } } }
          : { status: 200, body: { data: { id: 4, ...(body as object) } } },
    });
    renderWithApp(<EntityForm type="trunk" entity={{ id: 4, name: 'Carrier', type: 'ip', remote_hosts: ['192.0.2.1'], codecs: ['g711u'], srtp: 'off', created_at: 'x', updated_at: 'x' } as never} onSaved={() => undefined} />);
    const user = userEvent.setup();
    const select = screen.getByLabelText(/Media encryption/);
    expect(select).toHaveValue('off');
    await user.selectOptions(select, 'required');
    expect(screen.getByText(/Offers RTP\/SAVP/)).toBeInTheDocument();
    await user.click(screen.getByRole('button', { name: 'Save' }));
    await waitFor(() => expect(select).toHaveAttribute('aria-invalid', 'true'));
    expect(select).toHaveAccessibleDescription('the carrier cannot do SRTP');
    expect(api.calls[0].body).toMatchObject({ srtp: 'required' });
  });

  it('switches a trunk\'s inbound and outbound recording and sends both flags', async () => {
    const api = mockApi({
      'PUT /trunks/4': ({ body }) =>
        (body as { record_outbound?: boolean }).record_outbound === true
          ? { status: 422, body: { error: { code: 'validation_failed', message: '1 field is invalid', details: [{ field: 'record_outbound', message: 'must be a boolean' }] } } }
          : { status: 200, body: { data: { id: 4, ...(body as object) } } },
    });
    const onSaved = vi.fn();
    renderWithApp(<EntityForm type="trunk" entity={{ id: 4, name: 'Carrier', type: 'ip', remote_hosts: ['192.0.2.1'], codecs: ['g711u'], srtp: 'off', record_inbound: false, record_outbound: false, created_at: 'x', updated_at: 'x' } as never} onSaved={onSaved} />);
    const user = userEvent.setup();
    const inbound = screen.getByRole('switch', { name: 'Record inbound calls' });
    const outbound = screen.getByRole('switch', { name: 'Record outbound calls' });
    expect(inbound).not.toBeChecked();
    expect(outbound).not.toBeChecked();
    await user.click(inbound);
    expect(inbound).toBeChecked();
    await user.click(screen.getByRole('button', { name: 'Save' }));
    await waitFor(() => expect(onSaved).toHaveBeenCalled());
    expect(api.calls[0].body).toMatchObject({ record_inbound: true, record_outbound: false });
    // the server's error lands on the switch it names
    await user.click(outbound);
    await user.click(screen.getByRole('button', { name: 'Save' }));
    await waitFor(() => expect(outbound).toHaveAttribute('aria-invalid', 'true'));
    expect(outbound).toHaveAccessibleDescription('must be a boolean');
    expect(api.calls[1].body).toMatchObject({ record_inbound: true, record_outbound: true });
  });

  it('puts errors on fields the form does not show in a banner', async () => {
    mockApi({ 'PUT /ring-groups/3': () => ({ status: 422, body: { error: { code: 'validation_failed', message: 'unknown field', details: [{ field: 'colour', message: 'unknown field' }] } } }) });
    renderWithApp(<EntityForm type="ring_group" entity={{ id: 3, name: 'Sales', strategy: 'ring_all', ring_timeout: 30, members: [], caller_id_mode: 'pass', created_at: '2026-01-01T00:00:00Z', updated_at: '2026-01-01T00:00:00Z' }} onSaved={() => undefined} />);
    await userEvent.setup().click(screen.getByRole('button', { name: 'Save' }));
    expect(await screen.findByRole('alert')).toHaveTextContent('unknown field');
  });

  it('offers the TLS verification switch for a TLS trunk only, and sends it', async () => {
    const api = mockApi({ 'POST /trunks': ({ body }) => ({ status: 201, body: { data: { id: 4, ...(body as object) } } }) });
    renderWithApp(<EntityForm type="trunk" onSaved={() => undefined} />);
    const user = userEvent.setup();
    expect(screen.queryByLabelText(/Verify the carrier's TLS certificate/)).not.toBeInTheDocument();
    await user.selectOptions(screen.getByLabelText(/Transport/), 'tls');
    const verify = screen.getByLabelText(/Verify the carrier's TLS certificate/);
    expect(verify).toBeChecked();
    await user.click(verify);
    expect(verify).toHaveAccessibleDescription(/not authenticated/);
    await user.type(screen.getByLabelText(/^Name/), 'Carrier');
    await user.type(screen.getByLabelText(/Registrar host/), 'sip.carrier.example');
    await user.type(screen.getByLabelText(/^Username/), 'acme');
    await user.type(screen.getByLabelText(/^Password/), 'pw');
    await user.click(screen.getByRole('button', { name: 'Create trunk' }));
    await waitFor(() => expect(api.calls.length).toBe(1));
    expect(api.calls[0].body).toMatchObject({ transport: 'tls', tls_verify: false });
    // back to UDP: verification is on again (off is refused for anything but TLS)
    await user.selectOptions(screen.getByLabelText(/Transport/), 'udp');
    expect(screen.queryByLabelText(/Verify the carrier's TLS certificate/)).not.toBeInTheDocument();
  });

  it('sends no empty secret on edit, and no read-only field', () => {
    const body = toRequestBody('trunk', { id: 2, name: 'T', password: '', password_set: true, status: 'registered', created_at: 'x', host: '' }, true);
    expect(body).toEqual({ name: 'T', host: null });
    expect(toRequestBody('voicemail_box', { name: 'VM', pin: '1234', pin_set: false }, true)).toEqual({ name: 'VM', pin: '1234' });
  });
});

describe('confirm delete', () => {
  it('lists what still uses the entity when the server answers 409', async () => {
    const onDone = vi.fn();
    const fail = async () => {
      const { toApiError } = await import('../../api/client');
      throw toApiError(409, { error: { code: 'conflict', message: 'extension 101 is in use', details: [], references: [{ entity_type: 'ring_group', entity_id: 5, name: 'Sales', via: 'members' }] } });
    };
    renderWithApp(<ConfirmDelete what="extension 101 Nick" onConfirm={fail} onClose={() => undefined} onDone={onDone} />);
    await userEvent.setup().click(screen.getByRole('button', { name: 'Delete' }));
    const list = await screen.findByRole('list', { name: 'Still used by' });
    expect(list).toHaveTextContent('Ring group “Sales” (as a member)');
    expect(onDone).not.toHaveBeenCalled();
  });

  it('says the entity is in use before offering to confirm', async () => {
    const onConfirm = vi.fn(async () => undefined);
    const usage = vi.fn(async () => [{ entity_type: 'call_flow', entity_id: 2, name: 'Main', via: 'node:n3' }]);
    renderWithApp(<ConfirmDelete what="extension 101 Nick" usage={usage} onConfirm={onConfirm} onClose={() => undefined} />);
    const list = await screen.findByRole('list', { name: 'Still used by' });
    expect(list).toHaveTextContent('Call flow “Main” (in its draft)');
    // nothing to confirm: no delete button at all
    expect(screen.queryByRole('button', { name: 'Delete' })).not.toBeInTheDocument();
    expect(onConfirm).not.toHaveBeenCalled();
  });

  it('offers to confirm once the check finds nothing using it', async () => {
    const onConfirm = vi.fn(async () => undefined);
    renderWithApp(<ConfirmDelete what="extension 101 Nick" usage={async () => []} onConfirm={onConfirm} onClose={() => undefined} />);
    const del = await screen.findByRole('button', { name: 'Delete' });
    await waitFor(() => expect(del).toBeEnabled());
    expect(screen.getByText('This cannot be undone.')).toBeInTheDocument();
    await userEvent.setup().click(del);
    await waitFor(() => expect(onConfirm).toHaveBeenCalled());
  });

  it('closes and reports when the delete succeeds', async () => {
    const onDone = vi.fn();
    const onClose = vi.fn();
    renderWithApp(<ConfirmDelete what="prompt x" onConfirm={async () => undefined} onClose={onClose} onDone={onDone} />);
    await userEvent.setup().click(screen.getByRole('button', { name: 'Delete' }));
    await waitFor(() => expect(onClose).toHaveBeenCalled());
    expect(onDone).toHaveBeenCalled();
  });
});

describe('weekly grid', () => {
  it('first matching rule wins, ranges past midnight wrap', () => {
    const g = weeklyGrid([
      { label: 'Lunch', days: ['mon'], start: '12:00', end: '13:00' },
      { label: 'Open', days: ['mon', 'tue'], start: '09:00', end: '17:00' },
      { label: 'Night', days: ['sun'], start: '22:00', end: '06:00' },
    ]);
    expect(g[0][17]).toBe(-1); // mon 08:30
    expect(g[0][18]).toBe(1); // mon 09:00
    expect(g[0][24]).toBe(0); // mon 12:00: lunch is listed first
    expect(g[0][26]).toBe(1); // mon 13:00
    expect(g[0][34]).toBe(-1); // mon 17:00 (end is exclusive)
    expect(g[1][24]).toBe(1); // tue 12:00
    expect(g[6][47]).toBe(2); // sun 23:30
    expect(g[0][2]).toBe(2); // mon 01:00: Sunday night runs into Monday morning
    expect(g[6][2]).toBe(-1); // sun 01:00: Saturday has no night rule
    expect(g[0][12]).toBe(-1); // mon 06:00 (end is exclusive)
  });
});

describe('entity select wording', () => {
  it('puts the right article before a kind', async () => {
    const { withArticle } = await import('./EntitySelect');
    expect(withArticle('extension')).toBe('an extension');
    expect(withArticle('IVR menu')).toBe('an IVR menu');
    expect(withArticle('ring group')).toBe('a ring group');
    expect(withArticle('voicemail box')).toBe('a voicemail box');
  });
});

describe('hints and required markers follow the server', () => {
  it('the extension password and voicemail PIN hints are the server’s bounds', () => {
    mockApi({});
    renderWithApp(<EntityForm type="extension" onSaved={() => undefined} />);
    expect(screen.getByLabelText(/^SIP password/)).toHaveAccessibleDescription('8–128 characters.');
  });

  it('a voicemail PIN says 4–12 digits', () => {
    mockApi({});
    renderWithApp(<EntityForm type="voicemail_box" onSaved={() => undefined} />);
    expect(screen.getByLabelText(/^PIN/)).toHaveAccessibleDescription('4–12 digits');
  });

  it('a trunk marks what its type needs', async () => {
    mockApi({});
    renderWithApp(<EntityForm type="trunk" onSaved={() => undefined} />);
    expect(screen.getByLabelText(/^Registrar host/)).toBeRequired();
    expect(screen.getByLabelText(/^Username/)).toBeRequired();
    expect(screen.getByLabelText(/^Password/)).toBeRequired();
    await userEvent.setup().selectOptions(screen.getByLabelText(/^Type/), 'ip');
    expect(screen.getByLabelText(/^Outbound host/)).not.toBeRequired();
    expect(screen.getByText('Allowed hosts').className).toContain("after:content-['*']");
  });
});
