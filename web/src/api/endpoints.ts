// Every route the SPA calls, with the server's types for it (types.ts, generated from the
// server's OpenAPI document).
import { request, requestPage, type Page, type Query, type Reference } from './client';
import type {
  MailItem,
  PushInput,
  PushTarget,
  Recording,
  Webhook,
  WebhookDelivery,
  WebhookInput,
  ActiveCall,
  AdminSession,
  AdminUser,
  ApiToken,
  Cdr,
  Conference,
  ConferenceCreate,
  ConferenceUpdate,
  CreatedApiToken,
  Extension,
  ExtensionCreate,
  ExtensionUpdate,
  Flow,
  FlowCreate,
  DiffSide,
  DraftReset,
  FlowDiff,
  FlowUse,
  FlowUpdate,
  FlowVersion,
  FlowVersionSummary,
  Graph,
  Health,
  Id,
  InboundNumber,
  InboundNumberCreate,
  InboundNumberUpdate,
  IvrMenu,
  IvrMenuCreate,
  IvrMenuUpdate,
  NewApiToken,
  NodeOutput,
  NodeType,
  OrderedOutboundRoutes,
  OutboundRoute,
  OutboundRouteCreate,
  OutboundRouteOrder,
  OutboundRouteUpdate,
  PasswordChange,
  PasswordChanged,
  Plugin,
  PluginUpdate,
  Prompt,
  PublishedVersion,
  Registration,
  EventSubscription,
  ReadState,
  RingGroup,
  RingGroupCreate,
  RingGroupUpdate,
  Session,
  SessionsEnded,
  Settings,
  TlsStatus,
  SipMessages,
  Backups,
  SettingsChanged,
  SettingsUpdate,
  SetupRequest,
  SetupStatus,
  SimulateRequest,
  SimulateResult,
  SystemStatus,
  TimeSwitch,
  TimeSwitchCreate,
  TimeSwitchUpdate,
  Trunk,
  TrunkCreate,
  TrunkLiveStatus,
  TrunkTestResult,
  TrunkUpdate,
  ValidationResult,
  VoicemailBox,
  VoicemailBoxCreate,
  VoicemailBoxUpdate,
  VoicemailMessage,
} from './types';

/**
 * A node type as the registry lists it (describe() as JSON) in the shape the editor uses:
 * the config schema as an object even when sent as JSON text, `entity_kind` as `entity_type`.
 */
export function normalizeNodeType(raw: Record<string, unknown>): NodeType {
  let schema = raw.config_schema;
  if (typeof schema === 'string') {
    try {
      schema = JSON.parse(schema);
    } catch {
      schema = {};
    }
  }
  const outputs = Array.isArray(raw.outputs)
    ? (raw.outputs as Record<string, unknown>[]).map((o) => {
        const id = String(o.id ?? o.name ?? '');
        return { id, label: o.label === undefined || o.label === null ? id : String(o.label), terminal: o.terminal === true };
      })
    : [];
  return {
    ...(raw as unknown as NodeType),
    config_schema: (schema && typeof schema === 'object' ? schema : {}) as NodeType['config_schema'],
    outputs,
    capabilities: Array.isArray(raw.capabilities) ? raw.capabilities : [],
    entity_type: (raw.entity_type ?? raw.entity_kind ?? null) as string | null,
  };
}

export interface ListParams extends Query {
  limit?: number;
  offset?: number;
}

/** An entity's CRUD routes: `T` is what they show, `C` what a create takes, `U` an update. */
export interface Resource<T extends { id: Id }, C = unknown, U = unknown> {
  path: string;
  list(params?: ListParams): Promise<Page<T>>;
  get(id: Id): Promise<T>;
  create(body: C): Promise<T>;
  update(id: Id, body: U): Promise<T>;
  remove(id: Id): Promise<void>;
  /** what uses it now: a delete is refused while anything does */
  references(id: Id): Promise<Reference[]>;
}

export function resource<T extends { id: Id }, C, U>(path: string): Resource<T, C, U> {
  return {
    path,
    list: async (params) => requestPage<T>(path, { limit: 100, ...params }),
    get: (id) => request<T>('GET', `${path}/${id}`),
    create: (body) => request<T>('POST', path, { body }),
    update: (id, body) => request<T>('PUT', `${path}/${id}`, { body }),
    remove: (id) => request<void>('DELETE', `${path}/${id}`),
    references: (id) => request<Reference[]>('GET', `${path}/${id}/references`),
  };
}

/** All rows of a list endpoint, page by page (the API caps a page at 100). */
export async function listAll<T extends { id: Id }>(r: Resource<T, never, never>, params?: ListParams): Promise<T[]> {
  const out: T[] = [];
  for (let offset = 0; ; offset += 100) {
    const page = await r.list({ ...params, limit: 100, offset });
    out.push(...page.items);
    if (page.items.length < 100 || (page.total !== undefined && out.length >= page.total)) return out;
  }
}

export const api = {
  auth: {
    login: (username: string, password: string) => request<Session>('POST', '/auth/login', { body: { username, password } }),
    logout: () => request<void>('POST', '/auth/logout'),
    me: () => request<Session>('GET', '/auth/me'),
    /** ends every other session; revokes the administrator's tokens only when asked */
    changePassword: (body: PasswordChange) => request<PasswordChanged>('POST', '/auth/password', { body }),
    sessions: async () => (await requestPage<AdminSession>('/auth/sessions')).items,
    endSession: (id: Id) => request<void>('DELETE', `/auth/sessions/${id}`),
    endOtherSessions: () => request<SessionsEnded>('DELETE', '/auth/sessions'),
  },
  setup: {
    status: () => request<SetupStatus>('GET', '/setup'),
    run: (body: SetupRequest) => request<AdminUser>('POST', '/setup', { body }),
  },
  /** 503 (a component down) still carries the health report */
  health: () => request<Health>('GET', '/health', { dataOn: [503] }),
  systemStatus: () => request<SystemStatus>('GET', '/system/status'),
  systemTls: () => request<TlsStatus>('GET', '/system/tls'),
  backups: () => request<Backups>('GET', '/system/backups'),
  backupNow: () => request<Backups>('POST', '/system/backups', { body: {} }),
  activeCalls: async () => (await requestPage<ActiveCall>('/calls/active')).items,
  hangupCall: (id: string) => request<void>('POST', `/calls/${encodeURIComponent(id)}/hangup`),

  extensions: {
    ...resource<Extension, ExtensionCreate, ExtensionUpdate>('/extensions'),
    registrations: async (id: Id) => (await requestPage<Registration>(`/extensions/${id}/registrations`)).items,
    /** the SIP event subscriptions (message-waiting lamps) its phones hold */
    subscriptions: async (id: Id) => (await requestPage<EventSubscription>(`/extensions/${id}/subscriptions`)).items,
    /** The extension's ntfy or Gotify target; null when it has none. The token is never sent back. */
    push: (id: Id) => request<PushTarget | null>('GET', `/extensions/${id}/push`),
    setPush: (id: Id, body: PushInput) => request<PushTarget>('PUT', `/extensions/${id}/push`, { body }),
    removePush: (id: Id) => request<unknown>('DELETE', `/extensions/${id}/push`),
  },
  trunks: {
    ...resource<Trunk, TrunkCreate, TrunkUpdate>('/trunks'),
    /** registration state, next attempt, last response, keep-alive */
    status: (id: Id) => request<TrunkLiveStatus>('GET', `/trunks/${id}/status`),
    /** sends an OPTIONS (and a REGISTER for a registration trunk); answers within ~8 s */
    test: (id: Id) => request<TrunkTestResult>('POST', `/trunks/${id}/test`),
  },
  outboundRoutes: {
    ...resource<OutboundRoute, OutboundRouteCreate, OutboundRouteUpdate>('/outbound-routes'),
    /** every route's id in the order they are to be tried; answers the routes in that order */
    order: (ids: Id[]) => request<OrderedOutboundRoutes>('PUT', '/outbound-routes/order', { body: { ids } satisfies OutboundRouteOrder }),
  },
  numbers: resource<InboundNumber, InboundNumberCreate, InboundNumberUpdate>('/numbers'),
  voicemailBoxes: {
    ...resource<VoicemailBox, VoicemailBoxCreate, VoicemailBoxUpdate>('/voicemail-boxes'),
    messages: async (id: Id) => (await requestPage<VoicemailMessage>(`/voicemail-boxes/${id}/messages`)).items,
    markRead: (id: Id, msg: Id) => request<void>('PUT', `/voicemail-boxes/${id}/messages/${msg}/read`),
    /** read or unread again (the phones' message-waiting lamps follow) */
    setRead: (id: Id, msg: Id, read: boolean) => request<void>('PUT', `/voicemail-boxes/${id}/messages/${msg}/read`, { body: { read } satisfies ReadState }),
    deleteMessage: (id: Id, msg: Id) => request<void>('DELETE', `/voicemail-boxes/${id}/messages/${msg}`),
    messageAudioUrl: (id: Id, msg: Id) => `/api/v1/voicemail-boxes/${id}/messages/${msg}/audio`,
    /** the box's custom greeting (WAV), multipart field `file` */
    uploadGreeting: (id: Id, file: File) => {
      const form = new FormData();
      form.set('file', file);
      return request<VoicemailBox>('POST', `/voicemail-boxes/${id}/greeting`, { form });
    },
  },
  ringGroups: resource<RingGroup, RingGroupCreate, RingGroupUpdate>('/ring-groups'),
  ivrMenus: resource<IvrMenu, IvrMenuCreate, IvrMenuUpdate>('/ivr-menus'),
  timeSwitches: resource<TimeSwitch, TimeSwitchCreate, TimeSwitchUpdate>('/time-switches'),
  conferences: resource<Conference, ConferenceCreate, ConferenceUpdate>('/conferences'),

  prompts: {
    /** A prompt name the API takes (1–64 letters, digits, _ or -) from a file name. */
    nameFromFile: (fileName: string) =>
      fileName
        .replace(/\.[^.]+$/, '')
        .replace(/[^A-Za-z0-9_-]+/g, '_')
        .replace(/^_+|_+$/g, '')
        .slice(0, 64) || 'prompt',
    list: async (params?: ListParams) => requestPage<Prompt>('/prompts', { limit: 100, ...params }),
    upload: (file: File, name: string) => {
      const form = new FormData();
      form.set('name', name);
      form.set('file', file);
      return request<Prompt>('POST', '/prompts', { form });
    },
    remove: (id: Id | string) => request<void>('DELETE', `/prompts/${id}`),
    audioUrl: (id: Id | string) => `/api/v1/prompts/${id}/audio`,
  },

  flows: {
    ...resource<Flow, FlowCreate, FlowUpdate>('/flows'),
    validate: (id: Id, flow_data?: Graph) =>
      request<ValidationResult>('POST', `/flows/${id}/validate`, { body: flow_data ? { flow_data } : {} }),
    publish: (id: Id) => request<PublishedVersion>('POST', `/flows/${id}/publish`),
    versions: async (id: Id) => (await requestPage<FlowVersionSummary>(`/flows/${id}/versions`, { limit: 100 })).items,
    version: (id: Id, v: number) => request<FlowVersion>('GET', `/flows/${id}/versions/${v}`),
    diff: (id: Id, a: DiffSide, b: DiffSide) => request<FlowDiff>('GET', `/flows/${id}/versions/${a}/diff/${b}`),
    /** Every flow whose draft or live version links the entity. */
    using: async (entityType: string, entityId: Id) => (await requestPage<FlowUse>(`/flows/using/${entityType}/${entityId}`)).items,
    /** The draft back to the live version: its graph and the entities as the version captured them. */
    resetDraft: (id: Id) => request<DraftReset>('POST', `/flows/${id}/reset-draft`),
    rollback: (id: Id, version: number) => request<PublishedVersion>('POST', `/flows/${id}/rollback`, { body: { version } }),
    simulate: (id: Id, body: SimulateRequest) => request<SimulateResult>('POST', `/flows/${id}/simulate`, { body }),
  },

  nodeTypes: {
    list: async () => (await requestPage<Record<string, unknown>>('/node-types')).items.map(normalizeNodeType),
    outputs: (typeId: string, config: Record<string, unknown>, entity?: { entity_type: string; entity_id?: Id | null; entity?: unknown }) =>
      request<NodeOutput[]>('POST', `/node-types/${encodeURIComponent(typeId)}/outputs`, { body: { config, ...entity } }),
  },

  cdrs: {
    list: async (params?: ListParams) => requestPage<Cdr>('/cdrs', params),
    get: (id: Id) => request<Cdr>('GET', `/cdrs/${id}`),
    sipMessages: (id: Id) => request<SipMessages>('GET', `/cdrs/${id}/sip-messages`),
    exportUrl: (params?: Query) => {
      const p = new URLSearchParams();
      for (const [k, v] of Object.entries(params ?? {})) if (v !== undefined && v !== null && v !== '') p.set(k, String(v));
      const s = p.toString();
      return `/api/v1/cdrs/export${s ? `?${s}` : ''}`;
    },
  },

  recordings: {
    list: async (params?: ListParams) => requestPage<Recording>('/recordings', params),
    remove: (id: Id) => request<unknown>('DELETE', `/recordings/${id}`),
    audioUrl: (id: Id) => `/api/v1/recordings/${id}/audio`,
    downloadUrl: (id: Id) => `/api/v1/recordings/${id}/audio?download=true`,
  },

  webhooks: {
    list: async () => (await requestPage<Webhook>('/webhooks')).items,
    create: (body: WebhookInput) => request<Webhook>('POST', '/webhooks', { body }),
    update: (id: Id, body: WebhookInput) => request<Webhook>('PUT', `/webhooks/${id}`, { body }),
    remove: (id: Id) => request<unknown>('DELETE', `/webhooks/${id}`),
    test: (id: Id) => request<WebhookDelivery>('POST', `/webhooks/${id}/test`, { body: {} }),
    deliveries: async (id: Id) => (await requestPage<WebhookDelivery>(`/webhooks/${id}/deliveries`, { limit: 50 })).items,
  },

  mail: {
    list: async () => (await requestPage<MailItem>('/mail-outbox', { limit: 50 })).items,
  },

  plugins: {
    list: async () => (await requestPage<Plugin>('/plugins')).items,
    upload: (file: File) => {
      const form = new FormData();
      form.set('file', file);
      return request<Plugin>('POST', '/plugins', { form });
    },
    update: (id: Id, body: PluginUpdate) => request<Plugin>('PUT', `/plugins/${id}`, { body }),
    remove: (id: Id) => request<void>('DELETE', `/plugins/${id}`),
  },

  settings: {
    get: () => request<Settings>('GET', '/settings'),
    update: (body: SettingsUpdate) => request<SettingsChanged>('PUT', '/settings', { body }),
  },

  tokens: {
    list: async () => (await requestPage<ApiToken>('/api-tokens')).items,
    create: (body: NewApiToken) => request<CreatedApiToken>('POST', '/api-tokens', { body }),
    revoke: (id: Id) => request<void>('DELETE', `/api-tokens/${id}`),
  },
};
