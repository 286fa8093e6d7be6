import { screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { OutboundRoute } from '../../api/types';
import { mockApi, type Handler } from '../../test/mockApi';
import { renderWithApp } from '../../test/render';
import OutboundRoutesPage, { moved } from '../../pages/OutboundRoutesPage';
import { patternHint, RouteForm } from './RouteForm';

afterEach(() => vi.unstubAllGlobals());

const trunks = [
  { id: 1, name: 'Primary', enabled: true, type: 'ip' },
  { id: 2, name: 'Backup', enabled: true, type: 'ip' },
];
const exts = [{ id: 7, extension: '101', name: 'Alice', call_classes: ['local', 'national'] }];

const route = (id: number, name: string, position: number, extra: Partial<OutboundRoute> = {}): OutboundRoute =>
  ({
    id, name, position, enabled: true, patterns: ['9'], call_class: 'national', strip_digits: 0, prepend: '', caller_id_mode: 'extension', caller_id_name: null,
    caller_id_num: null, extension_ids: [], trunk_ids: [1], warnings: [], created_at: '2026-01-01T00:00:00Z', updated_at: '2026-01-01T00:00:00Z', ...extra,
  }) as OutboundRoute;

function lists(extra: Record<string, (req: never) => unknown> = {}) {
  return mockApi({ 'GET /trunks': () => trunks, 'GET /extensions': () => exts, ...(extra as Record<string, Handler>) });
}

describe('route form', () => {
  it('hints what each pattern matches with an example, live', async () => {
    lists();
    renderWithApp(<RouteForm position={10} onSaved={() => undefined} />);
    const user = userEvent.setup();
    const p1 = screen.getByLabelText('Pattern 1');
    await user.type(p1, '_0[[2-9]XXXXXXXX'); // [[ is a literal [ to user-event
    const hint = screen.getByTestId('pattern-hint-0');
    expect(hint).toHaveTextContent('exactly 10 characters: starting 0, then 2-9, 8 × any digit — e.g. 0550123456');
    await user.type(screen.getByLabelText('Strip digits'), '{Backspace}1');
    await user.type(screen.getByLabelText('Prepend'), '+61');
    expect(hint).toHaveTextContent('sent as +61550123456');
    await user.type(screen.getByLabelText('Try a number'), '0290000000');
    expect(screen.getByRole('status')).toHaveTextContent('Matches pattern 1 (_0[2-9]XXXXXXXX); sent to the trunk as +61290000000.');
    await user.clear(p1);
    await user.type(p1, '_9[[5-2]');
    expect(hint).toHaveTextContent('Looks wrong: the range 5-2 in \'[\' (at 3) goes backwards');
    expect(patternHint('^\\+44').text).toMatch(/regular expression/);
  });

  it('sends the route with its trunks in the order chosen', async () => {
    const api = lists({ 'POST /outbound-routes': ({ body }: { body: object }) => ({ status: 201, body: { data: { id: 4, warnings: [], ...body } } }) });
    const onSaved = vi.fn();
    renderWithApp(<RouteForm position={30} onSaved={onSaved} />);
    const user = userEvent.setup();
    await user.type(screen.getByLabelText(/^Name/), 'National');
    await user.type(screen.getByLabelText('Pattern 1'), '0');
    await user.click(screen.getByRole('button', { name: 'Add pattern' }));
    await user.type(screen.getByLabelText('Pattern 2'), '_04XXXXXXXX');
    const add = await screen.findByLabelText('Add a trunk');
    await waitFor(() => expect(within(add).getAllByRole('option')).toHaveLength(3));
    await user.selectOptions(add, '1');
    await user.selectOptions(screen.getByLabelText('Add a trunk'), '2');
    // Backup first: it is tried before Primary
    await user.click(screen.getByRole('button', { name: 'Try Backup earlier' }));
    expect(within(screen.getByRole('list', { name: 'Trunks in order' })).getAllByRole('listitem').map((li) => li.textContent?.replace(/[↑↓✕]/g, ''))).toEqual(['1.Backup', '2.Primary']);
    await user.selectOptions(screen.getByLabelText(/^Caller ID presented/), 'route');
    await user.type(screen.getByLabelText(/^Caller ID number/), '+61290000000');
    await user.click(screen.getByLabelText('101 Alice'));
    await user.click(screen.getByRole('button', { name: 'Create route' }));
    await waitFor(() => expect(onSaved).toHaveBeenCalled());
    expect(api.calls.find((c) => c.method === 'POST')?.body).toEqual({
      name: 'National', enabled: true, position: 30, patterns: ['0', '_04XXXXXXXX'], call_class: 'national', strip_digits: 0, prepend: '',
      caller_id_mode: 'route', caller_id_name: null, caller_id_num: '+61290000000', extension_ids: [7], trunk_ids: [2, 1],
    });
  });

  it('shows the server’s errors on the pattern, trunk and field they name', async () => {
    lists({
      'PUT /outbound-routes/5': () => ({
        status: 422,
        body: { error: { code: 'validation_failed', message: '3 fields are invalid', details: [
          { field: 'patterns[1]', message: "the range 5-2 in '[' (at 3) goes backwards" },
          { field: 'trunk_ids[1]', message: 'no trunk has id 2' },
          { field: 'caller_id_num', message: 'is required when caller_id_mode is route' },
        ] } },
      }),
    });
    const r = route(5, 'Intl', 10, { patterns: ['0011', '_9[5-2]'], trunk_ids: [1, 2], caller_id_mode: 'route' });
    renderWithApp(<RouteForm route={r} position={10} onSaved={() => undefined} />);
    await userEvent.setup().click(screen.getByRole('button', { name: 'Save' }));
    const p2 = screen.getByLabelText('Pattern 2');
    await waitFor(() => expect(p2).toHaveAttribute('aria-invalid', 'true'));
    expect(p2).toHaveAccessibleDescription("the range 5-2 in '[' (at 3) goes backwards");
    expect(screen.getByLabelText('Pattern 1')).not.toHaveAttribute('aria-invalid');
    const items = within(screen.getByRole('list', { name: 'Trunks in order' })).getAllByRole('listitem');
    expect(items[1]).toHaveTextContent('no trunk has id 2');
    expect(items[0]).not.toHaveTextContent('no trunk');
    expect(screen.getByLabelText(/^Caller ID number/)).toHaveAccessibleDescription('is required when caller_id_mode is route');
    // every error has its place: no banner
    expect(screen.queryByText('3 fields are invalid')).not.toBeInTheDocument();
    // editing the pattern clears its error
    await userEvent.setup().type(p2, 'x');
    expect(p2).not.toHaveAttribute('aria-invalid');
  });

  it('shows a saved route’s never-reached advice on its pattern', () => {
    lists();
    const r = route(6, 'UK', 20, { patterns: ['_0044X.', '001144'], warnings: [{ field: 'patterns[1]', message: 'route "Intl" (id 1) takes every number it matches first (0011)', other_route_id: 1 }] });
    renderWithApp(<RouteForm route={r} position={20} onSaved={() => undefined} />);
    expect(screen.getByText(/Never reached: route "Intl"/)).toBeInTheDocument();
  });
});

describe('outbound routes page', () => {
  it('lists routes after the emergency numbers and reorders them in one request', async () => {
    let order = [route(1, 'Local', 10), route(2, 'National', 20), route(3, 'Intl', 30)];
    const api = lists({
      'GET /outbound-routes': () => order,
      'PUT /outbound-routes/order': ({ body }: { body: { ids: number[] } }) => {
        order = body.ids.map((id, i) => ({ ...order.find((r) => r.id === id)!, position: (i + 1) * 10 }));
        return order;
      },
    });
    renderWithApp(<OutboundRoutesPage />);
    const table = await screen.findByRole('table', { name: 'Outbound routes in the order they are tried' });
    await within(table).findByText('Intl');
    const names = () => within(table).getAllByRole('row').slice(1).map((r) => r.querySelectorAll('td')[1]?.textContent);
    expect(names()).toEqual(['Emergency numbers', 'Local', 'National', 'Intl']);
    expect(screen.getByRole('button', { name: 'Move Local up' })).toBeDisabled();
    await userEvent.setup().click(screen.getByRole('button', { name: 'Move Intl up' }));
    await waitFor(() => expect(names()).toEqual(['Emergency numbers', 'Local', 'Intl', 'National']));
    expect(api.calls.filter((c) => c.method === 'PUT')).toEqual([expect.objectContaining({ path: '/outbound-routes/order', body: { ids: [1, 3, 2] } })]);
    expect(await screen.findByText('Order saved.')).toBeInTheDocument();
  });

  it('puts the order back when the server refuses it', async () => {
    const order = [route(1, 'Local', 10), route(2, 'National', 20)];
    lists({
      'GET /outbound-routes': () => order,
      'PUT /outbound-routes/order': () => ({ status: 422, body: { error: { code: 'validation_failed', message: '1 field is invalid', details: [{ field: 'ids', message: 'must list every outbound route; missing: "New" (id 9)' }] } } }),
    });
    renderWithApp(<OutboundRoutesPage />);
    const table = await screen.findByRole('table');
    await userEvent.setup().click(await screen.findByRole('button', { name: 'Move National up' }));
    expect(await screen.findByText(/The new order was not saved/)).toBeInTheDocument();
    const names = within(table).getAllByRole('row').slice(2).map((r) => r.querySelectorAll('td')[1]?.textContent);
    expect(names).toEqual(['Local', 'National']);
  });

  it('moves an id from one place to another', () => {
    expect(moved([1, 2, 3, 4], 3, 0)).toEqual([4, 1, 2, 3]);
    expect(moved([1, 2, 3, 4], 0, 2)).toEqual([2, 3, 1, 4]);
    const same = [1, 2];
    expect(moved(same, 1, 1)).toBe(same);
    expect(moved(same, 0, 5)).toBe(same);
  });
});
