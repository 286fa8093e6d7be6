// The one place that speaks HTTP to the flowpbx binary. Every response is the API's envelope:
// `{"data": …}` on success, `{"error": {"code", "message", "details": [{"field", "message"}]}}`
// on failure. Callers get typed data or an ApiError; they never see a Response.

export interface FieldError {
  field: string;
  message: string;
}

/** An entity that still refers to the one being deleted (`error.references` of a 409). */
export interface Reference {
  /** the referring entity's kind: "call_flow", "ring_group", … */
  entity_type: string;
  entity_id: string | number;
  name?: string;
  /** where: a column ("members") or a flow node ("node:n3", "published:v2:node:n3") */
  via?: string;
}

export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly details: FieldError[];
  readonly references: Reference[];
  /** seconds, from Retry-After on a 429 */
  readonly retryAfter?: number;
  /** the raw `error` object, for error kinds that carry more (e.g. validation problems) */
  readonly body: Record<string, unknown>;

  constructor(opts: {
    status: number;
    code: string;
    message: string;
    details?: FieldError[];
    references?: Reference[];
    retryAfter?: number;
    body?: Record<string, unknown>;
  }) {
    super(opts.message);
    this.name = 'ApiError';
    this.status = opts.status;
    this.code = opts.code;
    this.details = opts.details ?? [];
    this.references = opts.references ?? [];
    this.retryAfter = opts.retryAfter;
    this.body = opts.body ?? {};
  }

  /** Field name → message, for showing each error next to the control it names. */
  fieldErrors(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const d of this.details) {
      if (d.field && !(d.field in out)) out[normalizeField(d.field)] = d.message;
    }
    return out;
  }

  /** Errors that name no field (or a field the form does not show) go in a banner. */
  get isConflict(): boolean {
    return this.status === 409;
  }

  /** The impact list of a 409: what still uses the entity, as lines a person can read. */
  impact(): string[] {
    if (this.references.length > 0) return referenceLines(this.references);
    return this.details.map((d) => (d.field ? `${d.field}: ${d.message}` : d.message));
  }
}

/** `rules[0].start`, `rules.0.start` and `/rules/0/start` all become `rules.0.start`. */
export function normalizeField(field: string): string {
  return field
    .replace(/^\//, '')
    .replace(/\[(\d+)\]/g, '.$1')
    .replace(/\//g, '.');
}

/** "published:v2:node:n3" → "node n3 of published version 2", "members" → "members" */
/** What uses an entity, as lines a person can read: `Call flow “Main” (in its draft)`. */
export function referenceLines(refs: Reference[]): string[] {
  return refs.map((r) => {
    const what = r.name ? `“${r.name}”` : `#${r.entity_id}`;
    return `${humanType(r.entity_type)} ${what}${r.via ? ` (${humanVia(r.via)})` : ''}`;
  });
}

/** How a reference uses the entity; a flow's node ids mean nothing to the reader. */
export function humanVia(via: string): string {
  const m = /^(?:published:v(\d+):)?node:(.+)$/.exec(via);
  if (m) return m[1] ? `in its published version ${m[1]}` : 'in its draft';
  const words: Record<string, string> = {
    members: 'as a member',
    notify_extension_id: 'for its message-waiting lamp',
    trunk_id: 'as its trunk',
    trunk_ids: 'among its trunks',
    flow_id: 'to route its calls',
    greeting_file: 'as its greeting',
    extension_ids: 'among the extensions it serves',
  };
  return words[via] ?? via.replace(/_/g, ' ');
}

function humanType(t: string): string {
  const s = t.replace(/[_-]+/g, ' ');
  return s.charAt(0).toUpperCase() + s.slice(1);
}

let csrfToken: string | null = null;
let onUnauthorized: (() => void) | null = null;

export function setCsrfToken(token: string | null): void {
  csrfToken = token;
}
export function getCsrfToken(): string | null {
  return csrfToken;
}
/** Called on a 401 from any route but login: the session has gone, send the user to /login. */
export function setUnauthorizedHandler(fn: (() => void) | null): void {
  onUnauthorized = fn;
}

export type Query = Record<string, string | number | boolean | undefined | null>;

export function buildQuery(q?: Query): string {
  if (!q) return '';
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(q)) {
    if (v === undefined || v === null || v === '') continue;
    p.set(k, String(v));
  }
  const s = p.toString();
  return s ? `?${s}` : '';
}

export const API_BASE = '/api/v1';

export interface RequestOptions {
  query?: Query;
  body?: unknown;
  signal?: AbortSignal;
  /** multipart upload: sent as is, no JSON content type */
  form?: FormData;
  /** error statuses whose body is still a data envelope (503 from /health) */
  dataOn?: number[];
}

export interface ListMeta {
  total: number;
  limit: number;
  offset: number;
}

export async function request<T>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
  return (await send<T>(method, path, opts)).data;
}

/** A list endpoint: `{"data": [...], "meta": {"total", "limit", "offset"}}`. */
export async function requestPage<T>(path: string, query?: Query): Promise<Page<T>> {
  const env = await send<unknown>('GET', path, { query });
  const page = toPage<T>(env.data);
  if (page.total === undefined && env.meta && typeof env.meta.total === 'number') page.total = env.meta.total;
  return page;
}

async function send<T>(method: string, path: string, opts: RequestOptions): Promise<{ data: T; meta?: ListMeta }> {
  const headers: Record<string, string> = { Accept: 'application/json' };
  let body: BodyInit | undefined;
  if (opts.form) {
    body = opts.form;
  } else if (opts.body !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(opts.body);
  }
  if (method !== 'GET' && method !== 'HEAD' && csrfToken) headers['X-CSRF-Token'] = csrfToken;

  let res: Response;
  try {
    res = await fetch(API_BASE + path + buildQuery(opts.query), {
      method,
      headers,
      body,
      credentials: 'same-origin',
      signal: opts.signal,
    });
  } catch (e) {
    if (e instanceof DOMException && e.name === 'AbortError') throw e;
    throw new ApiError({ status: 0, code: 'network', message: 'The server cannot be reached.' });
  }
  if (opts.dataOn?.includes(res.status)) {
    const json = (await res.json().catch(() => null)) as { data?: T } | null;
    if (json && 'data' in json) return { data: json.data as T };
    throw toApiError(res.status, json);
  }
  return parseEnvelope<T>(res, path);
}

/** Turns a Response into the envelope's data or an ApiError. Exported for tests. */
export async function parseResponse<T>(res: Response, path = ''): Promise<T> {
  return (await parseEnvelope<T>(res, path)).data;
}

/** The whole success envelope: `data`, and `meta` on lists ({total, limit, offset}). */
export async function parseEnvelope<T>(res: Response, path = ''): Promise<{ data: T; meta?: ListMeta }> {
  if (res.status === 204) return { data: undefined as T };
  const text = await res.text();
  let json: unknown = undefined;
  if (text) {
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
  }
  if (res.ok) {
    if (json && typeof json === 'object' && 'data' in json) return json as { data: T; meta?: ListMeta };
    if (!text) return { data: undefined as T };
    throw new ApiError({
      status: res.status,
      code: 'bad_response',
      message: 'The server answered with something that is not the API envelope.',
    });
  }
  const err = toApiError(res.status, json, res.headers.get('Retry-After'));
  // /auth/me answers 401 before sign-in: the session guard decides between /setup and /login
  if (res.status === 401 && onUnauthorized && !/^\/(auth\/login|auth\/me|setup)\b/.test(path)) {
    onUnauthorized();
  }
  throw err;
}

export function toApiError(status: number, json: unknown, retryAfterHeader: string | null = null): ApiError {
  const e = json && typeof json === 'object' && 'error' in json ? (json as { error: unknown }).error : undefined;
  const retryAfter = retryAfterHeader && /^\d+$/.test(retryAfterHeader) ? Number(retryAfterHeader) : undefined;
  if (e && typeof e === 'object') {
    const o = e as Record<string, unknown>;
    const details = Array.isArray(o.details)
      ? o.details
          .filter((d): d is Record<string, unknown> => !!d && typeof d === 'object')
          .map((d) => ({ field: String(d.field ?? ''), message: String(d.message ?? '') }))
      : [];
    const references = Array.isArray(o.references)
      ? o.references
          .filter((r): r is Record<string, unknown> => !!r && typeof r === 'object')
          .map((r) => ({
            entity_type: String(r.entity_type ?? ''),
            entity_id: (r.entity_id as string | number) ?? '',
            name: r.name === undefined ? undefined : String(r.name),
            via: r.via === undefined ? undefined : String(r.via),
          }))
      : [];
    return new ApiError({
      status,
      code: typeof o.code === 'string' ? o.code : String(status),
      message: typeof o.message === 'string' ? o.message : defaultMessage(status),
      details,
      references,
      retryAfter,
      body: o,
    });
  }
  return new ApiError({ status, code: String(status), message: defaultMessage(status), retryAfter });
}

function defaultMessage(status: number): string {
  switch (status) {
    case 400:
      return 'The request was not understood.';
    case 401:
      return 'Please sign in.';
    case 403:
      return 'You are not allowed to do that.';
    case 404:
      return 'Not found.';
    case 409:
      return 'It is still in use.';
    case 413:
      return 'The upload is too large.';
    case 422:
      return 'Some values are not valid.';
    case 429:
      return 'Too many attempts; wait and try again.';
    default:
      return status >= 500 ? 'The server had a problem.' : `Request failed (${status}).`;
  }
}

/** A page of a list endpoint. Accepts `data: [...]` or `data: {items, total}`. */
export interface Page<T> {
  items: T[];
  total?: number;
}

export function toPage<T>(data: unknown): Page<T> {
  if (Array.isArray(data)) return { items: data as T[] };
  if (data && typeof data === 'object' && Array.isArray((data as { items?: unknown }).items)) {
    const d = data as { items: T[]; total?: number };
    return { items: d.items, total: typeof d.total === 'number' ? d.total : undefined };
  }
  return { items: [] };
}

export function errorMessage(e: unknown): string {
  if (e instanceof ApiError) return e.message;
  if (e instanceof Error) return e.message;
  return String(e);
}
