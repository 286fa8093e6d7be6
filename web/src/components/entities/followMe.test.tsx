import { screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Extension } from '../../api/types';
import EntityPage from '../../pages/EntityPages';
import { mockApi } from '../../test/mockApi';
import { renderWithApp } from '../../test/render';
import { EntityForm } from './EntityForm';
import { cleanNumber, followMeTimeline, isDialString } from './followMe';

afterEach(() => vi.unstubAllGlobals());

function ext(over: Partial<Extension> = {}): Extension {
  return {
    id: 7, extension: '101', name: 'Alice', email: null, sip_username: '101', ring_timeout: 30, dnd: false,
    follow_me_enabled: false, follow_me_numbers: [], follow_me_mode: 'sequential', follow_me_confirm: true,
    recording_mode: 'off', max_registrations: 5, outbound_caller_id_name: null, outbound_caller_id_num: null, emergency_caller_id_num: null,
    call_classes: ['local', 'national'], max_outbound_calls: 2, daily_outbound_minutes: 0,
    created_at: '2026-01-01T00:00:00Z', updated_at: '2026-01-01T00:00:00Z',
    ...over,
  } as Extension;
}

const saved = ({ body }: { body: unknown }) => ({ data: { ...ext(), ...(body as object) } });

describe('follow-me on the extension form', () => {
  it('shows what is stored: the switch, the mode, the confirmation, the numbers with when they ring', () => {
    mockApi();
    renderWithApp(
      <EntityForm type="extension" entity={ext({ follow_me_enabled: true, follow_me_numbers: [{ number: '+61412345678', delay: 5, timeout: 20 }, { number: '102', delay: 0, timeout: 25 }] })} onSaved={() => undefined} />,
    );
    expect(screen.getByRole('switch', { name: 'Follow me' })).toBeChecked();
    expect(screen.getByRole('radio', { name: 'Sequential' })).toBeChecked();
    expect(screen.getByRole('radio', { name: 'Sequential' })).toHaveAccessibleDescription(": ring this extension's phones first, then each number in order");
    expect(screen.getByRole('radio', { name: 'Simultaneous' })).toHaveAccessibleDescription(': ring phones and numbers together, each after its delay');
    expect(screen.getByRole('switch', { name: /Ask outside numbers to press 1 before connecting, so a mobile's voicemail cannot take the call/ })).toBeChecked();
    expect(screen.getByLabelText('Number 1')).toHaveValue('+61412345678');
    expect(screen.getByLabelText('Ring time of number 2 (s)')).toHaveValue(25);
    // sequential: the phones for the ring timeout, then one number after the other; no delays
    expect(screen.getByTestId('follow-me-when-0')).toHaveTextContent('30–50 s');
    expect(screen.getByTestId('follow-me-when-1')).toHaveTextContent('50–75 s');
    expect(screen.queryByLabelText('Delay of number 1 (s)')).not.toBeInTheDocument();
  });

  it('hides the section while off, and says the numbers are kept', () => {
    mockApi();
    renderWithApp(<EntityForm type="extension" entity={ext({ follow_me_numbers: [{ number: '0412345678', delay: 0, timeout: 20 }] })} onSaved={() => undefined} />);
    expect(screen.getByRole('switch', { name: 'Follow me' })).not.toBeChecked();
    expect(screen.getByRole('switch', { name: 'Follow me' })).toHaveAccessibleDescription('Off: its number is kept for when it is turned on.');
    expect(screen.queryByRole('radio')).not.toBeInTheDocument();
    expect(screen.queryByLabelText('Number 1')).not.toBeInTheDocument();
  });

  it('edits everything and sends it: mode, confirmation, numbers added, reordered and removed', async () => {
    const api = mockApi({ 'PUT /extensions/7': saved });
    const onSaved = vi.fn();
    renderWithApp(<EntityForm type="extension" entity={ext()} onSaved={onSaved} />);
    const user = userEvent.setup();
    await user.click(screen.getByRole('switch', { name: 'Follow me' }));
    await user.click(screen.getByRole('radio', { name: 'Simultaneous' }));
    await user.click(screen.getByRole('switch', { name: /Ask outside numbers to press 1/ }));
    for (let i = 0; i < 3; i++) await user.click(screen.getByRole('button', { name: 'Add number' }));
    // Add puts the cursor in the new row
    expect(screen.getByLabelText('Number 3')).toHaveFocus();
    await user.type(screen.getByLabelText('Number 1'), '0412 345-678');
    await user.type(screen.getByLabelText('Number 2'), '102');
    await user.type(screen.getByLabelText('Number 3'), '999');
    // simultaneous: delays are there
    await user.clear(screen.getByLabelText('Delay of number 1 (s)'));
    await user.type(screen.getByLabelText('Delay of number 1 (s)'), '10');
    await user.clear(screen.getByLabelText('Ring time of number 2 (s)'));
    await user.type(screen.getByLabelText('Ring time of number 2 (s)'), '45');
    expect(screen.getByTestId('follow-me-when-0')).toHaveTextContent('10–30 s');
    await user.click(screen.getByRole('button', { name: 'Move number 2 up' }));
    expect(screen.getByLabelText('Number 1')).toHaveValue('102');
    await user.click(screen.getByRole('button', { name: 'Remove number 3' }));
    await user.click(screen.getByRole('button', { name: 'Save' }));
    await waitFor(() => expect(onSaved).toHaveBeenCalled());
    const body = api.calls.find((c) => c.method === 'PUT')?.body as Record<string, unknown>;
    expect(body).toMatchObject({ follow_me_enabled: true, follow_me_mode: 'simultaneous', follow_me_confirm: false });
    // separators dropped, in the new order, the removed one gone
    expect(body.follow_me_numbers).toEqual([
      { number: '102', delay: 0, timeout: 45 },
      { number: '0412345678', delay: 10, timeout: 20 },
    ]);
  });

  it("puts a 422 on the row's field, moves it with the row, and clears it when that field is edited", async () => {
    mockApi({
      'PUT /extensions/7': () => ({
        status: 422,
        body: { error: { code: 'validation_failed', message: '2 fields are invalid', details: [{ field: 'follow_me_numbers[1].timeout', message: 'must be between 5 and 300' }, { field: 'follow_me_numbers[0].number', message: 'must be a phone number' }] } },
      }),
    });
    renderWithApp(
      <EntityForm type="extension" entity={ext({ follow_me_enabled: true, follow_me_numbers: [{ number: '12a', delay: 0, timeout: 20 }, { number: '0412345678', delay: 0, timeout: 2 }] })} onSaved={() => undefined} />,
    );
    const user = userEvent.setup();
    await user.click(screen.getByRole('button', { name: 'Save' }));
    const ring2 = screen.getByLabelText('Ring time of number 2 (s)');
    await waitFor(() => expect(ring2).toHaveAttribute('aria-invalid', 'true'));
    expect(ring2).toHaveAccessibleDescription('Ring time: must be between 5 and 300');
    // the first field in error has the focus
    expect(screen.getByLabelText('Number 1')).toHaveFocus();
    expect(screen.getByLabelText('Ring time of number 1 (s)')).not.toHaveAttribute('aria-invalid');
    expect(screen.getByLabelText('Number 1')).toHaveAccessibleDescription('Number: must be a phone number');
    expect(within(screen.getByTestId('follow-me-row-1')).getByRole('alert')).toHaveTextContent('Ring time: must be between 5 and 300');
    // every error has its place: no banner
    expect(screen.queryByText('2 fields are invalid')).not.toBeInTheDocument();
    // the row moves up, its error with it
    await user.click(screen.getByRole('button', { name: 'Move number 2 up' }));
    expect(screen.getByLabelText('Ring time of number 1 (s)')).toHaveAttribute('aria-invalid', 'true');
    expect(screen.getByLabelText('Number 2')).toHaveAccessibleDescription('Number: must be a phone number');
    expect(screen.getByLabelText('Ring time of number 2 (s)')).not.toHaveAttribute('aria-invalid');
    // editing the field clears its error only
    await user.type(screen.getByLabelText('Ring time of number 1 (s)'), '0');
    expect(screen.getByLabelText('Ring time of number 1 (s)')).toHaveValue(20);
    expect(screen.getByLabelText('Ring time of number 1 (s)')).not.toHaveAttribute('aria-invalid');
    expect(screen.getByLabelText('Number 2')).toHaveAttribute('aria-invalid', 'true');
  });

  it('shows an error on the list, and a delay error even in sequential mode', async () => {
    mockApi({
      'PUT /extensions/7': () => ({
        status: 422,
        body: { error: { code: 'validation_failed', message: '2 fields are invalid', details: [{ field: 'follow_me_numbers', message: 'at most 10 numbers' }, { field: 'follow_me_numbers[0].delay', message: 'must be between 0 and 300' }] } },
      }),
    });
    renderWithApp(<EntityForm type="extension" entity={ext({ follow_me_enabled: true, follow_me_numbers: [{ number: '0412345678', delay: 400, timeout: 20 }] })} onSaved={() => undefined} />);
    await userEvent.setup().click(screen.getByRole('button', { name: 'Save' }));
    expect(await screen.findByText('at most 10 numbers')).toHaveAttribute('role', 'alert');
    expect(screen.getByRole('group', { name: 'Numbers, in order' })).toHaveAccessibleDescription('at most 10 numbers');
    expect(screen.getByLabelText('Delay of number 1 (s)')).toHaveAccessibleDescription('Delay: must be between 0 and 300');
  });

  it('allows at most 10 numbers', async () => {
    mockApi();
    const ten = Array.from({ length: 10 }, (_, i) => ({ number: `04123456${String(i).padStart(2, '0')}`, delay: 0, timeout: 20 }));
    renderWithApp(<EntityForm type="extension" entity={ext({ follow_me_enabled: true, follow_me_numbers: ten })} onSaved={() => undefined} />);
    expect(screen.getByRole('button', { name: 'Add number' })).toBeDisabled();
    expect(screen.getByText('At most 10 numbers.')).toBeInTheDocument();
  });

  it('a new extension starts as the server does: sequential, confirmation on', async () => {
    const api = mockApi({ 'POST /extensions': ({ body }) => ({ status: 201, body: { data: { id: 9, ...(body as object) } } }) });
    renderWithApp(<EntityForm type="extension" onSaved={() => undefined} />);
    const user = userEvent.setup();
    await user.type(screen.getByLabelText(/Extension number/), '105');
    await user.type(screen.getByLabelText(/^Name/), 'Eve');
    await user.type(screen.getByLabelText(/SIP password/), 'correct horse battery');
    await user.click(screen.getByRole('button', { name: 'Create extension' }));
    await waitFor(() => expect(api.calls.length).toBe(1));
    expect(api.calls[0].body).toMatchObject({ follow_me_enabled: false, follow_me_numbers: [], follow_me_mode: 'sequential', follow_me_confirm: true });
  });
});

describe('follow-me helpers', () => {
  it('times the numbers as the call engine does', () => {
    const ns = [{ number: '1', delay: 10, timeout: 20 }, { number: '2', timeout: 60 }, { number: '3', delay: 0 }];
    expect(followMeTimeline(ns, 'sequential', 30)).toEqual({ phones: 30, rows: [[30, 50], [50, 110], [110, 130]] });
    // simultaneous: each after its delay (0 unless given), phones until the last number stops
    expect(followMeTimeline(ns, 'simultaneous', 30)).toEqual({ phones: 60, rows: [[10, 30], [0, 60], [0, 20]] });
    expect(followMeTimeline([], 'simultaneous', 30)).toEqual({ phones: 30, rows: [] });
  });

  it('reads numbers as the server does', () => {
    expect(cleanNumber(' +61 (0)412-345.678 ')).toBe('+610412345678');
    expect(isDialString('+61412345678')).toBe(true);
    expect(isDialString('102')).toBe(true);
    expect(isDialString('*98#')).toBe(true);
    expect(isDialString('1')).toBe(false);
    expect(isDialString('++61')).toBe(false);
    expect(isDialString('041234567x')).toBe(false);
    expect(isDialString('1'.repeat(21))).toBe(false);
  });
});

describe('the extension list', () => {
  it('badges an extension whose follow-me is on', async () => {
    mockApi({
      'GET /extensions': () => [ext({ follow_me_enabled: true, follow_me_mode: 'simultaneous', follow_me_numbers: [{ number: '0412345678', delay: 0, timeout: 20 }] }), ext({ id: 8, extension: '102', name: 'Bob', follow_me_numbers: [{ number: '0412345679' }] })],
    });
    renderWithApp(<EntityPage type="extension" />);
    const alice = (await screen.findByText('Alice')).closest('tr')!;
    expect(within(alice).getByText('follow-me')).toHaveAttribute('title', 'Follow-me on: 1 number, simultaneous, press 1 to accept');
    const bob = screen.getByText('Bob').closest('tr')!;
    expect(within(bob).queryByText('follow-me')).not.toBeInTheDocument();
  });
});
