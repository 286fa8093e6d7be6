import { act, cleanup, screen, waitFor } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { live } from '../../api/live';
import type { Extension, Trunk } from '../../api/types';
import { mockApi } from '../../test/mockApi';
import { renderWithApp } from '../../test/render';
import { Notices } from '../layout/Notices';
import { EntityForm, toRequestBody } from './EntityForm';

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
  live.stop();
});

const saved = () => ({ 'POST /extensions': ({ body }: { body: object }) => ({ status: 201, body: { data: { id: 9, ...body } } }) });

describe('extension: calling out', () => {
  it('a new extension may call local and national numbers only, until ticked', async () => {
    const api = mockApi(saved() as never);
    renderWithApp(<EntityForm type="extension" onSaved={() => undefined} />);
    const user = userEvent.setup();
    expect(screen.getByRole('checkbox', { name: /^Local/ })).toBeChecked();
    expect(screen.getByRole('checkbox', { name: /^National/ })).toBeChecked();
    expect(screen.getByRole('checkbox', { name: /^International/ })).not.toBeChecked();
    expect(screen.getByRole('checkbox', { name: /^Premium/ })).not.toBeChecked();
    await user.type(screen.getByLabelText(/Extension number/), '101');
    await user.type(screen.getByLabelText(/^Name/), 'Nick');
    await user.type(screen.getByLabelText(/SIP password/), 'correct horse battery');
    await user.click(screen.getByRole('button', { name: 'Create extension' }));
    await waitFor(() => expect(api.calls.some((c) => c.method === 'POST')).toBe(true));
    expect(api.calls.find((c) => c.method === 'POST')?.body).toMatchObject({
      call_classes: ['local', 'national'], max_outbound_calls: 2, daily_outbound_minutes: 0,
      outbound_caller_id_name: null, outbound_caller_id_num: null, emergency_caller_id_num: null,
    });
  });

  it('ticking a class adds it in order; caller IDs and limits are sent', async () => {
    const api = mockApi(saved() as never);
    renderWithApp(<EntityForm type="extension" initial={{ extension: '102', name: 'Ann', sip_password: 'correct horse battery' } as Partial<Extension>} onSaved={() => undefined} />);
    const user = userEvent.setup();
    await user.click(screen.getByRole('checkbox', { name: /^Premium/ }));
    await user.click(screen.getByRole('checkbox', { name: /^Local/ }));
    await user.click(screen.getByRole('checkbox', { name: /^International/ }));
    await user.type(screen.getByLabelText('Outbound caller ID number'), '+61290000001');
    await user.type(screen.getByLabelText('Emergency caller ID number'), '+61290000009');
    await user.clear(screen.getByLabelText('Outbound calls at once'));
    await user.type(screen.getByLabelText('Outbound calls at once'), '4');
    await user.type(screen.getByLabelText('Outbound minutes a day'), '{Backspace}120');
    await user.click(screen.getByRole('button', { name: 'Create extension' }));
    await waitFor(() => expect(api.calls.some((c) => c.method === 'POST')).toBe(true));
    expect(api.calls.find((c) => c.method === 'POST')?.body).toMatchObject({
      call_classes: ['national', 'international', 'premium'], outbound_caller_id_num: '+61290000001', emergency_caller_id_num: '+61290000009', max_outbound_calls: 4, daily_outbound_minutes: 120,
    });
  });

  it('shows a class error from the server on the classes, and a limit error on its field', async () => {
    mockApi({
      'POST /extensions': () => ({
        status: 422,
        body: { error: { code: 'validation_failed', message: '2 fields are invalid', details: [{ field: 'call_classes[1]', message: 'is listed twice' }, { field: 'max_outbound_calls', message: 'must be between 0 and 100' }] } },
      }),
    });
    renderWithApp(<EntityForm type="extension" initial={{ extension: '103', name: 'B', sip_password: 'correct horse battery' } as Partial<Extension>} onSaved={() => undefined} />);
    await userEvent.setup().click(screen.getByRole('button', { name: 'Create extension' }));
    expect(await screen.findByRole('group', { name: 'May call' })).toHaveAccessibleDescription('is listed twice');
    expect(screen.getByLabelText('Outbound calls at once')).toHaveAccessibleDescription('must be between 0 and 100');
    expect(screen.queryByText('2 fields are invalid')).not.toBeInTheDocument();
  });
});

describe('trunk: keep-alive, proxy, numbering', () => {
  it('marks what a registration trunk needs, and shows E.164 examples of its numbering', async () => {
    mockApi();
    renderWithApp(<EntityForm type="trunk" onSaved={() => undefined} />);
    const user = userEvent.setup();
    for (const label of [/^Name/, /^Registrar host/, /^Username/, /^Password/]) {
      expect(screen.getByText(label, { selector: 'label' }).className).toMatch(/after:content-\['\*'\]/);
    }
    expect(screen.getByLabelText('Keep-alive every (s)')).toHaveValue(30);
    await user.type(screen.getByLabelText('National prefix'), '0');
    expect(screen.getByText('Needs the country code')).toBeInTheDocument();
    await user.type(screen.getByLabelText('Country code'), '61');
    await user.type(screen.getByLabelText('International prefix'), '0011');
    const ex = screen.getByRole('list', { name: 'E.164 examples' });
    expect(ex).toHaveTextContent('0212345678 becomes +61212345678');
    expect(ex).toHaveTextContent('0011442079460000 becomes +442079460000');
  });

  it('sends cleared numbering rules as empty text, and a cleared proxy as none', () => {
    const body = toRequestBody('trunk', { name: 'T', country_code: '', national_prefix: '', international_prefix: '00', outbound_proxy: '', options_interval: 0 } as Partial<Trunk> as never, true);
    expect(body).toEqual({ name: 'T', country_code: '', national_prefix: '', international_prefix: '00', outbound_proxy: null, options_interval: 0 });
  });
});

describe('toll-fraud notices', () => {
  it('shows a dialled string from a phone as text, never as markup', async () => {
    mockApi({ 'GET /extensions': () => [] });
    const { container } = renderWithApp(<Notices />);
    act(() => live.dispatch({ type: 'outbound.limit', data: { extension_id: 9, number: '<img src=x onerror=alert(1)>', limit: '<b>x</b>' } }));
    const alert = await screen.findByRole('alert');
    expect(alert).toHaveTextContent('<img src=x onerror=alert(1)>');
    expect(alert).toHaveTextContent('hit a limit (<b>x</b>)');
    expect(container.querySelector('img, b')).toBeNull();
  });

  it('an outbound.limit event shows a notice naming the extension until dismissed', async () => {
    mockApi({ 'GET /extensions': () => [{ id: 7, extension: '101', name: 'Alice' }] });
    renderWithApp(<Notices />);
    expect(screen.queryByRole('alert')).not.toBeInTheDocument();
    act(() => live.dispatch({ type: 'outbound.limit', data: { extension_id: 7, number: '0011442079460000', limit: 'class_not_permitted' } }));
    const alert = await screen.findByRole('alert');
    expect(alert).toHaveTextContent('Outbound call blocked');
    expect(alert).toHaveTextContent('may not call this class of number');
    expect(alert).toHaveTextContent('0011442079460000');
    await waitFor(() => expect(alert).toHaveTextContent('Extension 101 Alice'));
    act(() => live.dispatch({ type: 'outbound.limit', data: { extension_id: 0, number: '0290000000', limit: 'pbx_concurrent_calls' } }));
    expect(screen.getAllByRole('alert')).toHaveLength(2);
    expect(screen.getAllByRole('alert')[1]).toHaveTextContent('A call flow was refused: the PBX has as many outbound calls at once as it allows');
    await userEvent.setup().click(screen.getAllByRole('button', { name: 'Dismiss' })[0]);
    expect(screen.getAllByRole('alert')).toHaveLength(1);
    expect(screen.getByRole('alert')).toHaveTextContent('0290000000');
  });
});
