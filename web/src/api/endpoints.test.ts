import { describe, expect, it } from 'vitest';
import { api, normalizeNodeType } from './endpoints';
import { entityTypeForNode } from './entities';

describe('node type normalisation', () => {
  it('reads describe() JSON: schema as text, outputs by id (labelled by it when unlabelled), entity_kind', () => {
    const t = normalizeNodeType({
      id: 'acme/crm',
      name: 'CRM lookup',
      version: '1.2.0',
      category: 'integration',
      icon: 'globe',
      config_schema: '{"type":"object","properties":{"url":{"type":"string"}}}',
      outputs: [{ id: 'found', label: 'Found', terminal: false }, { name: 'legacy' }],
      capabilities: ['http:crm.example.com'],
      entity_kind: null,
    });
    expect(t.config_schema).toEqual({ type: 'object', properties: { url: { type: 'string' } } });
    expect(t.outputs).toEqual([{ id: 'found', label: 'Found', terminal: false }, { id: 'legacy', label: 'legacy', terminal: false }]);
    expect(t.entity_type).toBeNull();
    expect(normalizeNodeType({ id: 'x', config_schema: 'not json', outputs: 'nope' }).config_schema).toEqual({});
  });

  it('links built-ins to their entity, plugins only when they declare one', () => {
    expect(entityTypeForNode(normalizeNodeType({ id: 'voicemail', entity_kind: 'voicemail_box' }))).toBe('voicemail_box');
    expect(entityTypeForNode({ id: 'conference' })).toBe('conference_bridge');
    expect(entityTypeForNode({ id: 'acme/crm' })).toBeUndefined();
    expect(entityTypeForNode({ id: 'acme/desk', entity_type: 'extension' })).toBe('extension');
    expect(entityTypeForNode({ id: 'acme/odd', entity_type: 'spaceship' })).toBeUndefined();
  });
});

describe('prompt names', () => {
  it('become what the API takes', () => {
    expect(api.prompts.nameFromFile('Welcome message (v2).wav')).toBe('Welcome_message_v2');
    expect(api.prompts.nameFromFile('...wav')).toBe('prompt');
    expect(api.prompts.nameFromFile(`${'a'.repeat(80)}.wav`)).toHaveLength(64);
  });
});
