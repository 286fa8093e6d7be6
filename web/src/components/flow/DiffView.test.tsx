import { render, screen } from '@testing-library/react';
import { describe, expect, it } from 'vitest';
import { stepOfField } from '../../pages/SetupPage';
import type { FlowDiff } from '../../api/types';
import { diffMarks, entityFieldLabel, formatValue, markEntities } from './diff';
import { DiffView } from './panels';

const pos = { x: 0, y: 0 };
const none = { added: [], removed: [], changed: [] };

describe('version diff', () => {
  const diff: FlowDiff = {
    from: 1,
    to: 'draft',
    nodes: {
      added: [{ id: 'node_9x', type: 'hangup', position: pos, data: {} }],
      removed: [{ id: 'node_2y', type: 'voicemail', position: pos, data: {} }],
      changed: [
        { id: 'node_3z', before: { id: 'node_3z', type: 'ring_group', position: pos, data: { label: 'Team', config: { ring_timeout: 20 } } }, after: { id: 'node_3z', type: 'ring_group', position: { x: 50, y: 0 }, data: { label: 'Sales team', config: { ring_timeout: 30 } } }, fields: ['config.ring_timeout', 'label', 'position'] },
        { id: 'node_moved', before: { id: 'node_moved', type: 'hangup', position: pos, data: {} }, after: { id: 'node_moved', type: 'hangup', position: { x: 9, y: 9 }, data: {} }, fields: ['position'] },
      ],
    },
    edges: { added: [{ id: 'e1', source: 'node_ivr', target: 'node_9x', sourceHandle: '2' }], removed: [], changed: [] },
    settings_changed: false,
    entities: [
      { entity_type: 'ivr_menu', entity_id: 4, name: 'Main menu', change: 'changed', fields: [{ field: 'options.3', before: null, after: 'Billing' }, { field: 'timeout', before: 5, after: 10 }] },
      { entity_type: 'ring_group', entity_id: 7, name: 'Sales', change: 'changed', fields: [{ field: 'members', before: [1], after: [1, 2] }] },
    ],
    labels: { node_9x: 'Goodbye', node_2y: 'After hours', node_3z: 'Sales team', node_ivr: 'Main menu', node_moved: 'Hang up' },
  };

  it('names nodes by label, shows before → after per field, never an internal id', () => {
    const { container } = render(<DiffView diff={diff} nameOf={(f, v) => (f === 'members' && Array.isArray(v) ? v.map((x) => (x === 1 ? '101 Alice' : '102 Bob')).join(', ') : undefined)} />);
    expect(screen.getByRole('list', { name: 'Nodes added' })).toHaveTextContent('+ Goodbye');
    expect(screen.getByRole('list', { name: 'Nodes removed' })).toHaveTextContent('− After hours');
    const changed = screen.getByRole('list', { name: 'Nodes changed' });
    expect(changed).toHaveTextContent('~ Sales team');
    expect(changed).toHaveTextContent('Ring timeout: 20 → 30');
    expect(changed).toHaveTextContent('Label: Team → Sales team');
    // a move alone is not a change a caller notices
    expect(changed).not.toHaveTextContent('Hang up');
    expect(changed).not.toHaveTextContent('Position');
    expect(screen.getByRole('list', { name: 'Edges added' })).toHaveTextContent('+ Main menu —2→ Goodbye');
    const entities = screen.getByRole('list', { name: 'Settings of linked entities' });
    expect(entities).toHaveTextContent('IVR menu “Main menu”');
    expect(entities).toHaveTextContent('Option 3: (none) → Billing');
    expect(entities).toHaveTextContent('Timeout (seconds): 5 → 10');
    expect(entities).toHaveTextContent('Members: 101 Alice → 101 Alice, 102 Bob');
    expect(container.textContent).not.toMatch(/node_/);
    expect(screen.queryByText('Edges removed')).not.toBeInTheDocument();
  });

  it('says so when nothing differs, moves aside', () => {
    render(<DiffView diff={{ from: 2, to: 3, nodes: { ...none, changed: [diff.nodes.changed[1]] }, edges: none, settings_changed: false, entities: [], labels: {} }} />);
    expect(screen.getByText('No differences.')).toBeInTheDocument();
  });

  it('an entity change alone is a difference', () => {
    render(<DiffView diff={{ from: 1, to: 'draft', nodes: none, edges: none, settings_changed: false, entities: [diff.entities[0]], labels: {} }} />);
    expect(screen.queryByText('No differences.')).not.toBeInTheDocument();
    expect(screen.getAllByTestId('diff-field').map((li) => li.textContent)).toEqual(['Option 3: (none) → Billing', 'Timeout (seconds): 5 → 10']);
  });

  it('marks added, changed and removed nodes and edges for the canvas', () => {
    const m = markEntities(diffMarks({ ...diff, edges: { ...none, added: diff.edges.added, removed: [{ id: 'e0', source: 'node_ivr', target: 'node_2y', sourceHandle: '1' }] } }, 'v1 → draft'), [
      { id: 'node_ivr', data: { entity_type: 'ivr_menu', entity_id: 4 } },
      { id: 'node_other', data: { entity_type: 'ivr_menu', entity_id: 5 } },
    ], diff.entities);
    expect(m.nodes).toEqual({ node_9x: 'added', node_3z: 'changed', node_2y: 'removed', node_ivr: 'changed' });
    expect(m.edges).toEqual({ e1: 'added', e0: 'removed' });
    expect(m.ghostNodes.map((n) => [n.id, n.selectable, n.className])).toEqual([['node_2y', false, 'diff-removed']]);
    expect(m.ghostEdges.map((e) => e.id)).toEqual(['e0']);
  });

  it('labels entity fields for people', () => {
    expect(entityFieldLabel('options.3')).toBe('Option 3');
    expect(entityFieldLabel('holidays.2026-12-25')).toBe('Holiday 2026-12-25');
    expect(entityFieldLabel('strategy')).toBe('Strategy');
    expect(formatValue(true)).toBe('yes');
    expect(formatValue(null)).toBe('(none)');
    expect(formatValue({ a: 1 })).toBe('{"a":1}');
  });
});

describe('setup wizard', () => {
  it('shows an API error on the step that holds its field', () => {
    expect(stepOfField('password')).toBe(0);
    expect(stepOfField('external_ip')).toBe(1);
    expect(stepOfField('sip_udp_port')).toBe(2);
    expect(stepOfField('trunk.host')).toBe(3);
    expect(stepOfField('extension.extension')).toBe(4);
    expect(stepOfField('something')).toBe(5);
  });
});
