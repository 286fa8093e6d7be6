import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
// @ts-expect-error: a plain ES module of the build scripts, no types
import { constraintsModule } from '../../scripts/constraints.mjs';
import { bounds, isRequired, lengthHint, range } from './constraints';

describe('form constraints from the OpenAPI document', () => {
  it('the generated module is what web/openapi.json says (run npm run gen:api when not)', () => {
    const doc = JSON.parse(readFileSync('openapi.json', 'utf8'));
    const generated = readFileSync('src/api/constraints.gen.ts', 'utf8');
    expect(generated).toBe(constraintsModule(doc));
  });

  it('hints say what the server checks', () => {
    expect(lengthHint('extension', 'sip_password')).toBe('8–128 characters');
    expect(lengthHint('voicemail_box', 'pin')).toBe('4–12 digits');
    expect(lengthHint('conference_bridge', 'pin')).toBe('4–12 digits');
    expect(bounds('voicemail_box', 'pin').pattern).toBe('^[0-9]{4,12}$');
    expect(range('conference_bridge', 'max_members')).toEqual({ min: 2, max: 100 });
  });

  it('required fields, also by trunk type', () => {
    expect(isRequired('extension', 'sip_password')).toBe(true);
    expect(isRequired('extension', 'email')).toBe(false);
    expect(isRequired('trunk', 'name')).toBe(true);
    expect(isRequired('trunk', 'host', { type: 'register' })).toBe(true);
    expect(isRequired('trunk', 'password', { type: 'register' })).toBe(true);
    expect(isRequired('trunk', 'host', { type: 'ip' })).toBe(false);
    expect(isRequired('trunk', 'remote_hosts', { type: 'ip' })).toBe(true);
    expect(isRequired('trunk', 'remote_hosts', { type: 'register' })).toBe(false);
  });
});
