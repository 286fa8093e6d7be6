import { render, screen } from '@testing-library/react';
import { describe, expect, it } from 'vitest';
import { stepOfField } from '../../pages/SetupPage';
import { DiffView } from './panels';

describe('version diff', () => {
  it('lists nodes and edges added, removed and changed', () => {
    render(
      <DiffView
        diff={{
          from: 1,
          to: 'draft',
          nodes: {
            added: [{ id: 'n9', type: 'hangup', position: { x: 0, y: 0 }, data: { label: 'Bye' } }],
            removed: [{ id: 'n2', type: 'voicemail', position: { x: 0, y: 0 }, data: {} }],
            changed: [{ id: 'n3', before: { id: 'n3', type: 'ivr_menu', position: { x: 0, y: 0 }, data: { label: 'Menu' } }, after: { id: 'n3', type: 'ivr_menu', position: { x: 0, y: 0 }, data: { label: 'Menu' } }, fields: ['config.timeout', 'label'] }],
          },
          edges: { added: [{ id: 'e1', source: 'n3', target: 'n9', sourceHandle: '2', label: '2 Bye' }], removed: [], changed: [] },
          settings_changed: false,
        }}
      />,
    );
    expect(screen.getByText('Nodes added').nextSibling).toHaveTextContent('+ Bye (n9)');
    expect(screen.getByText('Nodes removed').nextSibling).toHaveTextContent('− voicemail (n2)');
    expect(screen.getByText('Nodes changed').nextSibling).toHaveTextContent('~ Menu (n3): config.timeout, label');
    expect(screen.getByText('Edges added').nextSibling).toHaveTextContent('+ n3 —2 Bye→ n9');
    expect(screen.queryByText('Edges removed')).not.toBeInTheDocument();
  });

  it('says so when nothing differs', () => {
    const empty = { added: [], removed: [], changed: [] };
    render(<DiffView diff={{ from: 2, to: 3, nodes: empty, edges: empty, settings_changed: false }} />);
    expect(screen.getByText('No differences.')).toBeInTheDocument();
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
