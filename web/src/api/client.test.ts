import { afterEach, describe, expect, it, vi } from 'vitest';
import { ApiError, normalizeField, parseResponse, request, requestPage, setCsrfToken, setUnauthorizedHandler, toApiError } from './client';
import { mockApi } from '../test/mockApi';

const res = (status: number, body: unknown, headers: Record<string, string> = {}) =>
  new Response(typeof body === 'string' ? body : JSON.stringify(body), { status, headers });

afterEach(() => {
  vi.unstubAllGlobals();
  setCsrfToken(null);
  setUnauthorizedHandler(null);
});

describe('API client error mapping', () => {
  it('returns the data of a success envelope', async () => {
    await expect(parseResponse(res(200, { data: { id: 3 } }))).resolves.toEqual({ id: 3 });
  });

  it('maps a 422 to field errors, with paths normalised', async () => {
    const e = (await parseResponse(
      res(422, { error: { code: 'validation_failed', message: '2 fields are invalid', details: [{ field: 'extension', message: 'already taken' }, { field: 'rules[0].start', message: 'not HH:MM' }] } }),
    ).catch((x: unknown) => x)) as ApiError;
    expect(e).toBeInstanceOf(ApiError);
    expect(e.status).toBe(422);
    expect(e.code).toBe('validation_failed');
    expect(e.fieldErrors()).toEqual({ extension: 'already taken', 'rules.0.start': 'not HH:MM' });
  });

  it('turns the references of a 409 into an impact list', () => {
    const e = toApiError(409, {
      error: {
        code: 'conflict',
        message: 'in use',
        details: [],
        references: [
          { entity_type: 'call_flow', entity_id: 2, name: 'Main', via: 'node:n3' },
          { entity_type: 'ring_group', entity_id: 5, name: 'Sales', via: 'members' },
          { entity_type: 'call_flow', entity_id: 2, name: 'Main', via: 'published:v4:node:n9' },
        ],
      },
    });
    expect(e.isConflict).toBe(true);
    expect(e.impact()).toEqual([
      'Call flow “Main” (in its draft)',
      'Ring group “Sales” (as a member)',
      'Call flow “Main” (in its published version 4)',
    ]);
    // no node id reaches the reader
    expect(e.impact().join(' ')).not.toMatch(/n3|n9|node/);
  });

  it('falls back to details when a 409 has no references', () => {
    const e = toApiError(409, { error: { code: 'conflict', message: 'x', details: [{ field: 'ring_group:5', message: 'ring group "Sales" uses it (members)' }] } });
    expect(e.impact()).toEqual(['ring_group:5: ring group "Sales" uses it (members)']);
  });

  it('reads Retry-After of a 429', async () => {
    const e = (await parseResponse(res(429, { error: { code: 'too_many_requests', message: 'locked', details: [] } }, { 'Retry-After': '900' })).catch((x: unknown) => x)) as ApiError;
    expect(e.retryAfter).toBe(900);
    expect(e.message).toBe('locked');
  });

  it('gives a readable error for a body that is not the envelope', async () => {
    const e = (await parseResponse(res(502, '<html>bad gateway</html>')).catch((x: unknown) => x)) as ApiError;
    expect(e).toBeInstanceOf(ApiError);
    expect(e.status).toBe(502);
    expect(e.message).toBe('The server had a problem.');
    const ok = (await parseResponse(res(200, '<html>spa</html>')).catch((x: unknown) => x)) as ApiError;
    expect(ok.code).toBe('bad_response');
  });

  it('calls the unauthorized handler on a 401, except for login and the session check', async () => {
    const fn = vi.fn();
    setUnauthorizedHandler(fn);
    await parseResponse(res(401, { error: { code: 'unauthorized', message: 'sign in', details: [] } }), '/extensions').catch(() => undefined);
    expect(fn).toHaveBeenCalledTimes(1);
    await parseResponse(res(401, { error: { code: 'unauthorized', message: 'bad password', details: [] } }), '/auth/login').catch(() => undefined);
    await parseResponse(res(401, { error: { code: 'unauthorized', message: 'no session', details: [] } }), '/auth/me').catch(() => undefined);
    expect(fn).toHaveBeenCalledTimes(1);
  });

  it('a network failure is an ApiError with status 0', async () => {
    vi.stubGlobal('fetch', vi.fn(async () => { throw new TypeError('Failed to fetch'); }));
    const e = (await request('GET', '/health').catch((x: unknown) => x)) as ApiError;
    expect(e).toBeInstanceOf(ApiError);
    expect(e.status).toBe(0);
    expect(e.code).toBe('network');
  });

  it('normalises field paths', () => {
    expect(normalizeField('/flow_data/nodes/0/id')).toBe('flow_data.nodes.0.id');
    expect(normalizeField('members[2]')).toBe('members.2');
  });
});

describe('API client requests', () => {
  it('sends the CSRF token on state-changing requests only', async () => {
    const m = mockApi({ 'GET /extensions/1': () => ({ id: 1 }), 'PUT /extensions/1': () => ({ id: 1 }) });
    setCsrfToken('tok-123');
    await request('GET', '/extensions/1');
    await request('PUT', '/extensions/1', { body: { name: 'x' } });
    expect(m.calls[0].headers['X-CSRF-Token']).toBeUndefined();
    expect(m.calls[1].headers['X-CSRF-Token']).toBe('tok-123');
    expect(m.calls[1].headers['Content-Type']).toBe('application/json');
    expect(m.calls[1].body).toEqual({ name: 'x' });
  });

  it('reads the total of a list from meta', async () => {
    mockApi({ 'GET /cdrs': () => ({ status: 200, body: { data: [{ id: 1 }, { id: 2 }], meta: { total: 57, limit: 2, offset: 0 } } }) });
    const p = await requestPage<{ id: number }>('/cdrs', { limit: 2, direction: 'inbound', empty: '' });
    expect(p.items.map((x) => x.id)).toEqual([1, 2]);
    expect(p.total).toBe(57);
    const url = (fetch as unknown as { mock: { calls: [string][] } }).mock.calls[0][0];
    expect(url).toBe('/api/v1/cdrs?limit=2&direction=inbound');
  });
});
