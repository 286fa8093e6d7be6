// A fetch replacement for component tests: routes "METHOD /path" to handlers that answer
// with the API's envelope. Unknown routes answer 404 in the envelope, as the server does.
import { vi } from 'vitest';

export type Handler = (req: { method: string; path: string; query: URLSearchParams; body: unknown; headers: Record<string, string> }) => { status?: number; body?: unknown; headers?: Record<string, string> } | unknown;

export interface MockApi {
  calls: { method: string; path: string; body: unknown; headers: Record<string, string> }[];
  on(route: string, h: Handler): void;
}

export function mockApi(routes: Record<string, Handler> = {}): MockApi {
  const table = new Map(Object.entries(routes));
  const api: MockApi = {
    calls: [],
    on: (route, h) => void table.set(route, h),
  };
  vi.stubGlobal(
    'fetch',
    vi.fn(async (input: string, init: RequestInit = {}) => {
      const url = new URL(input, 'http://localhost');
      const method = (init.method ?? 'GET').toUpperCase();
      const path = url.pathname.replace(/^\/api\/v1/, '');
      const headers = (init.headers ?? {}) as Record<string, string>;
      const body = typeof init.body === 'string' ? JSON.parse(init.body) : init.body;
      api.calls.push({ method, path, body, headers });
      const h = table.get(`${method} ${path}`) ?? [...table.entries()].find(([k]) => matches(k, method, path))?.[1];
      if (!h) return json(404, { error: { code: 'not_found', message: 'not found', details: [] } });
      const r = h({ method, path, query: url.searchParams, body, headers }) as { status?: number; body?: unknown; headers?: Record<string, string> };
      if (r && typeof r === 'object' && 'status' in r && typeof r.status === 'number') return json(r.status, r.body, r.headers);
      return json(200, { data: r });
    }),
  );
  return api;
}

function matches(route: string, method: string, path: string): boolean {
  const [m, p] = route.split(' ');
  if (m !== method) return false;
  const re = new RegExp(`^${p.replace(/:[a-z_]+/g, '[^/]+')}$`);
  return re.test(path);
}

function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(body === undefined ? null : JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json', ...headers } });
}
