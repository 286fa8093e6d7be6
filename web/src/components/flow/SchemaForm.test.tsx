import { fireEvent, screen } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { useState } from 'react';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { mockApi } from '../../test/mockApi';
import { renderWithApp as render } from '../../test/render';
import type { JsonSchema } from '../../api/types';
import { checkValue, defaultsFromSchema } from './schema';
import { SchemaForm } from './SchemaForm';

// the shape of a webhook node's config schema
const schema: JsonSchema = {
  type: 'object',
  required: ['url'],
  properties: {
    url: { type: 'string', title: 'URL', format: 'uri', description: 'Where to POST the call' },
    method: { type: 'string', enum: ['POST', 'GET'], default: 'POST' },
    timeout_ms: { type: 'integer', title: 'Timeout (ms)', minimum: 100, maximum: 10000, default: 3000 },
    follow: { type: 'boolean', title: 'Follow redirects', default: false },
    verbose: { type: 'boolean', title: 'Verbose' },
    prompt: { type: 'string', minLength: 1 },
    variables: { type: 'object', title: 'Variables', additionalProperties: { type: 'string' } },
    mode: { oneOf: [{ const: 'json', title: 'JSON field' }, { const: 'status', title: 'HTTP status' }], default: 'json' },
    outputs: { type: 'array', title: 'Outputs', items: { type: 'string', title: 'Output' }, maxItems: 3 },
    headers: { type: 'object', title: 'Headers', properties: { authorization: { type: 'string', 'x-widget': 'password' } } },
  },
};

function Harness({ onChange, errors }: { onChange: (v: Record<string, unknown>) => void; errors?: Record<string, string> }) {
  const [v, setV] = useState(defaultsFromSchema(schema) as Record<string, unknown>);
  return (
    <SchemaForm
      schema={schema}
      value={v}
      errors={errors ?? checkValue(schema, v)}
      idPrefix="t"
      onChange={(x) => {
        setV(x);
        onChange(x);
      }}
    />
  );
}

describe('JSON-Schema form', () => {
  beforeEach(() => void mockApi({ 'GET /prompts': () => [] }));

  it('starts from the defaults', () => {
    // no invented values: a boolean without a default is left to the node
    expect(defaultsFromSchema(schema)).toEqual({ method: 'POST', timeout_ms: 3000, follow: false, mode: 'json', outputs: [], headers: {}, variables: {} });
  });

  it('renders a labelled control per property, of the right kind', () => {
    render(<Harness onChange={() => undefined} errors={{}} />);
    expect(screen.getByLabelText(/URL/)).toHaveAttribute('type', 'url');
    expect(screen.getByLabelText(/URL/)).toHaveAccessibleDescription('Where to POST the call');
    expect(screen.getByLabelText('Method')).toHaveDisplayValue('POST');
    expect(screen.getByLabelText('Timeout (ms)')).toHaveAttribute('type', 'number');
    expect(screen.getByLabelText('Follow redirects')).not.toBeChecked();
    expect(screen.getByLabelText('Mode')).toHaveDisplayValue('JSON field');
    expect(screen.getByLabelText('Authorization')).toHaveAttribute('type', 'password');
    expect(screen.getByRole('group', { name: 'Outputs' })).toBeInTheDocument();
    expect(screen.getByLabelText('Verbose')).toHaveDisplayValue("the node's default");
    // a `prompt` string is picked from the prompts library
    expect(screen.getByRole('button', { name: 'Upload…' })).toBeInTheDocument();
  });

  it('edits a free-keyed map (headers, variables) and a boolean left to the node', async () => {
    const onChange = vi.fn();
    render(<Harness onChange={onChange} />);
    const user = userEvent.setup();
    await user.click(screen.getByRole('button', { name: 'Add variables' }));
    const name = screen.getByLabelText('Variables name 1');
    await user.clear(name);
    await user.type(name, 'team');
    await user.type(screen.getByLabelText('Variables value 1'), 'sales');
    await user.selectOptions(screen.getByLabelText('Verbose'), 'no');
    expect(onChange.mock.calls.at(-1)![0]).toMatchObject({ variables: { team: 'sales' }, verbose: false });
    await user.selectOptions(screen.getByLabelText('Verbose'), "the node's default");
    expect(onChange.mock.calls.at(-1)![0]).not.toHaveProperty('verbose');
  });

  it('reports typed values as the user edits', async () => {
    const onChange = vi.fn();
    render(<Harness onChange={onChange} />);
    const user = userEvent.setup();
    await user.type(screen.getByLabelText(/URL/), 'https://x.test/hook');
    fireEvent.change(screen.getByLabelText('Timeout (ms)'), { target: { value: '500' } });
    await user.click(screen.getByLabelText('Follow redirects'));
    await user.selectOptions(screen.getByLabelText('Mode'), 'HTTP status');
    await user.type(screen.getByLabelText('Authorization'), 'k');
    const last = onChange.mock.calls.at(-1)![0];
    expect(last).toMatchObject({ url: 'https://x.test/hook', timeout_ms: 500, follow: true, mode: 'status', headers: { authorization: 'k' } });
  });

  it('adds and removes array items, within maxItems', async () => {
    const onChange = vi.fn();
    render(<Harness onChange={onChange} />);
    const user = userEvent.setup();
    const add = screen.getByRole('button', { name: 'Add output' });
    await user.click(add);
    await user.type(screen.getByLabelText('Output 1'), 'sales');
    await user.click(add);
    await user.click(add);
    expect(add).toBeDisabled();
    await user.click(screen.getByRole('button', { name: 'Remove output 2' }));
    expect(onChange.mock.calls.at(-1)![0].outputs).toEqual(['sales', '']);
  });

  it('shows a problem next to its field and marks it invalid', () => {
    render(<Harness onChange={() => undefined} />);
    const url = screen.getByLabelText(/URL/);
    expect(url).toHaveAttribute('aria-invalid', 'true');
    expect(url).toHaveAccessibleDescription('Required.');
  });

  it('shows errors from the server by path', () => {
    render(<Harness onChange={() => undefined} errors={{ 'headers.authorization': 'must start with Bearer' }} />);
    expect(screen.getByLabelText('Authorization')).toHaveAccessibleDescription('must start with Bearer');
  });
});

describe('checkValue', () => {
  it('finds type, range, length, pattern and enum problems by path', () => {
    const s: JsonSchema = {
      type: 'object',
      properties: {
        n: { type: 'integer', minimum: 1 },
        s: { type: 'string', pattern: '^[0-9]+$' },
        e: { enum: ['a', 'b'] },
        list: { type: 'array', items: { type: 'object', required: ['k'], properties: { k: { type: 'string', maxLength: 2 } } } },
      },
    };
    expect(checkValue(s, { n: 0, s: 'x1', e: 'c', list: [{ k: 'ok' }, {}, { k: 'long' }] })).toEqual({
      n: 'At least 1.',
      s: 'Does not have the expected form.',
      e: 'Pick one of the choices.',
      'list.1.k': 'Required.',
      'list.2.k': 'At most 2 characters.',
    });
    expect(checkValue(s, { n: 1.5 })).toEqual({ n: 'Expected a whole number.' });
    expect(checkValue(s, { n: 3, s: '12', e: 'a', list: [] })).toEqual({});
  });
});
