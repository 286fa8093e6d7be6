// The wire types, under the names the SPA uses. They are the server's: openapi.gen.ts is
// generated from web/openapi.json, the document the server serves at /api/v1/openapi.json
// (`npm run gen:api`, which `npm run build` and `npm run typecheck` run first; the api
// crate's tests fail when web/openapi.json is not what the server serves, and
// scripts/api-types regenerates both). A server change that breaks the SPA is therefore a
// type error here or where the type is used. Types are looked up by route where the document
// inlines them, so a route the server does not have does not compile.
//
// Written by hand is only what the document cannot say: the flow graph, the node types'
// describe() JSON and the JSON Schema of their configs are free-form JSON to the server.
import type { components, paths } from './openapi.gen';

type Schemas = components['schemas'];
type Method = 'get' | 'put' | 'post' | 'delete';
/** The methods route `P` has. */
type MethodOf<P extends keyof paths> = { [M in Method]-?: undefined extends paths[P][M] ? never : M }[Method];
type JsonOf<R> = R extends { content: { 'application/json': infer B } } ? B : never;
/** The JSON body of the success answer (200, else 201) of `M P`. */
type SuccessOf<P extends keyof paths, M extends MethodOf<P>> = paths[P][M] extends { responses: infer R }
  ? R extends { 200: infer A }
    ? JsonOf<A>
    : R extends { 201: infer A }
      ? JsonOf<A>
      : never
  : never;
/** The `data` of what `M P` answers. */
export type DataOf<P extends keyof paths, M extends MethodOf<P>> = SuccessOf<P, M> extends { data: infer D } ? D : never;
/** One item of the list `GET P` answers. */
export type ItemOf<P extends keyof paths> = 'get' extends MethodOf<P> ? (DataOf<P, 'get' & MethodOf<P>> extends readonly (infer I)[] ? I : never) : never;
/** The JSON body `M P` takes. */
export type BodyOf<P extends keyof paths, M extends MethodOf<P>> = paths[P][M] extends { requestBody?: infer B } ? JsonOf<NonNullable<B>> : never;

export type Id = number;

// ---- auth, first boot ---------------------------------------------------------------------

/** GET /auth/me and POST /auth/login: an admin session (user + CSRF token), or an API token. */
export type Session = DataOf<'/api/v1/auth/me', 'get'>;
export type AdminUser = DataOf<'/api/v1/setup', 'post'>;
export type SetupStatus = DataOf<'/api/v1/setup', 'get'>;
/** POST /setup: the first administrator and the network settings of the wizard. */
export type SetupRequest = BodyOf<'/api/v1/setup', 'post'>;
/** What an API token may do: read (GET only), write (entity changes too), admin (settings, tokens, plugins, the audit log too). */
export type TokenScope = Schemas['TokenScope'];
export type ApiToken = ItemOf<'/api/v1/api-tokens'>;
/** A token just created: the only time its `token` is shown. */
export type CreatedApiToken = DataOf<'/api/v1/api-tokens', 'post'>;
/** POST /api-tokens (from a signed-in session only). */
export type NewApiToken = BodyOf<'/api/v1/api-tokens', 'post'>;
/** GET /auth/sessions: one of the signed-in administrator's sessions. */
export type AdminSession = ItemOf<'/api/v1/auth/sessions'>;
export type PasswordChange = BodyOf<'/api/v1/auth/password', 'post'>;
export type PasswordChanged = DataOf<'/api/v1/auth/password', 'post'>;
export type SessionsEnded = DataOf<'/api/v1/auth/sessions', 'delete'>;

// ---- entities: what GET shows, what a create takes, what an update takes ------------------

export type Extension = DataOf<'/api/v1/extensions/{id}', 'get'>;
export type ExtensionCreate = BodyOf<'/api/v1/extensions', 'post'>;
export type ExtensionUpdate = BodyOf<'/api/v1/extensions/{id}', 'put'>;
export type FollowMeNumber = Schemas['FollowMeNumber'];
/** How follow-me rings: phones first then each number (`sequential`), or all together. */
export type FollowMeMode = Schemas['FollowMeMode'];
export type Registration = ItemOf<'/api/v1/extensions/{id}/registrations'>;
export type EventSubscription = ItemOf<'/api/v1/extensions/{id}/subscriptions'>;

export type Trunk = DataOf<'/api/v1/trunks/{id}', 'get'>;
export type TrunkCreate = BodyOf<'/api/v1/trunks', 'post'>;
export type TrunkUpdate = BodyOf<'/api/v1/trunks/{id}', 'put'>;
export type TrunkStatus = Trunk['status'];
/** GET /trunks/:id/status, and what the /ws snapshot and `trunk.status` frames carry. */
export type TrunkLiveStatus = DataOf<'/api/v1/trunks/{id}/status', 'get'>;
/** A registration trunk's registration: state, last error and response, next attempt. */
export type TrunkRegistration = Schemas['RegistrationView'];
/** POST /trunks/:id/test: an OPTIONS and, for a registration trunk, a REGISTER. */
export type TrunkTestResult = DataOf<'/api/v1/trunks/{id}/test', 'post'>;
export type TrunkProbe = Schemas['ProbeView'];
export type SipAnswer = Schemas['SipAnswer'];

/** A class of outbound numbers: what a route reaches and what an extension may call. */
export type CallClass = Schemas['CallClass'];
/** Whose caller ID an outbound route presents. */
export type RouteCallerId = Schemas['RouteCallerId'];
export type OutboundRoute = DataOf<'/api/v1/outbound-routes/{id}', 'get'>;
export type OutboundRouteCreate = BodyOf<'/api/v1/outbound-routes', 'post'>;
export type OutboundRouteUpdate = BodyOf<'/api/v1/outbound-routes/{id}', 'put'>;
export type RouteWarning = Schemas['RouteWarning'];
/** PUT /outbound-routes/order: every route's id, first tried first. */
export type OutboundRouteOrder = BodyOf<'/api/v1/outbound-routes/order', 'put'>;
/** What it answers: every route, in the new order. */
export type OrderedOutboundRoutes = DataOf<'/api/v1/outbound-routes/order', 'put'>;

export type InboundNumber = DataOf<'/api/v1/numbers/{id}', 'get'>;
export type InboundNumberCreate = BodyOf<'/api/v1/numbers', 'post'>;
export type InboundNumberUpdate = BodyOf<'/api/v1/numbers/{id}', 'put'>;

export type VoicemailBox = DataOf<'/api/v1/voicemail-boxes/{id}', 'get'>;
export type VoicemailBoxCreate = BodyOf<'/api/v1/voicemail-boxes', 'post'>;
export type VoicemailBoxUpdate = BodyOf<'/api/v1/voicemail-boxes/{id}', 'put'>;
export type VoicemailMessage = ItemOf<'/api/v1/voicemail-boxes/{id}/messages'>;
export type ReadState = Schemas['ReadState'];

export type RingGroup = DataOf<'/api/v1/ring-groups/{id}', 'get'>;
export type RingGroupCreate = BodyOf<'/api/v1/ring-groups', 'post'>;
export type RingGroupUpdate = BodyOf<'/api/v1/ring-groups/{id}', 'put'>;

export type IvrMenu = DataOf<'/api/v1/ivr-menus/{id}', 'get'>;
export type IvrMenuCreate = BodyOf<'/api/v1/ivr-menus', 'post'>;
export type IvrMenuUpdate = BodyOf<'/api/v1/ivr-menus/{id}', 'put'>;
/** digit ("0"–"9", "*", "#"), or "i" (invalid) / "t" (timeout) → label shown on the output */
export type IvrOptions = IvrMenu['options'];

export type TimeSwitch = DataOf<'/api/v1/time-switches/{id}', 'get'>;
export type TimeSwitchCreate = BodyOf<'/api/v1/time-switches', 'post'>;
export type TimeSwitchUpdate = BodyOf<'/api/v1/time-switches/{id}', 'put'>;
export type TimeRule = Schemas['TimeRule'];
/**
 * A date (or date range, optionally only between start and end) that overrides the weekly
 * rules. `dest_node` holds the output the call takes: a rule's label, or "default".
 */
export type TimeOverride = Schemas['DateOverride'];
/** The days a time rule names (the document says only "string"; the server checks these). */
export type Weekday = 'mon' | 'tue' | 'wed' | 'thu' | 'fri' | 'sat' | 'sun';

export type Conference = DataOf<'/api/v1/conferences/{id}', 'get'>;
export type ConferenceCreate = BodyOf<'/api/v1/conferences', 'post'>;
export type ConferenceUpdate = BodyOf<'/api/v1/conferences/{id}', 'put'>;

export type Prompt = ItemOf<'/api/v1/prompts'>;

// ---- flows ------------------------------------------------------------------------------
// The document gives a flow's graph as free-form JSON: its shape (React Flow's) is the SPA's.

export interface GraphNode {
  id: string;
  type: string;
  position: { x: number; y: number };
  data: {
    label?: string;
    entity_id?: Id | null;
    entity_type?: string | null;
    config?: Record<string, unknown>;
    [k: string]: unknown;
  };
}

export interface GraphEdge {
  id: string;
  source: string;
  target: string;
  sourceHandle?: string | null;
  targetHandle?: string | null;
  label?: string;
  [k: string]: unknown;
}

/** The flow graph (host/flow/src/graph.rs). Top-level keys other than nodes/edges are kept as they came. */
export interface Graph {
  nodes: GraphNode[];
  edges: GraphEdge[];
  [k: string]: unknown;
}

/** A flow as the SPA holds it: the server's, with its draft graph typed. */
export type Flow = Omit<DataOf<'/api/v1/flows/{id}', 'get'>, 'flow_data'> & { flow_data: Graph };
export type FlowCreate = Omit<BodyOf<'/api/v1/flows', 'post'>, 'flow_data'> & { flow_data?: Graph | null };
export type FlowUpdate = Omit<BodyOf<'/api/v1/flows/{id}', 'put'>, 'flow_data'> & { flow_data?: Graph | null };
/** A row of GET /flows/:id/versions. */
export type FlowVersionSummary = ItemOf<'/api/v1/flows/{id}/versions'>;
/** GET /flows/:id/versions/:v: a published version with its graph. */
export type FlowVersion = Omit<DataOf<'/api/v1/flows/{id}/versions/{version}', 'get'>, 'flow_data'> & { flow_data: Graph };
/** What publishing and rolling back answer: the version now live. */
export type PublishedVersion = DataOf<'/api/v1/flows/{id}/publish', 'post'>;
export type Problem = Schemas['ProblemView'];
export type ValidationResult = DataOf<'/api/v1/flows/{id}/validate', 'post'>;

type ServerDiff = DataOf<'/api/v1/flows/{id}/versions/{a}/diff/{b}', 'get'>;
export type Change<T> = Omit<Schemas['Change'], 'before' | 'after'> & { before: T; after: T };
export interface Changes<T> {
  added: T[];
  removed: T[];
  changed: Change<T>[];
}
export type FlowDiff = Omit<ServerDiff, 'nodes' | 'edges'> & { nodes: Changes<GraphNode>; edges: Changes<GraphEdge> };
/** An entity's configuration between the two sides of a diff, field by field. */
export type EntityChange = Schemas['EntityChangeView'];
/** How a flow's draft stands against its live version (part of every flow the API shows). */
export type DraftStatus = Schemas['DraftStatusView'];
/** A flow that links an entity, and what an edit of the entity means for it. */
export type FlowUse = ItemOf<'/api/v1/flows/using/{entity_type}/{id}'>;
/** POST /flows/{id}/reset-draft: the flow with its draft back to the live version. */
export type DraftReset = Omit<DataOf<'/api/v1/flows/{id}/reset-draft', 'post'>, 'flow'> & { flow: Flow };
/** A side of a diff: a version number, the draft, or the live version. */
export type DiffSide = number | 'draft' | 'live';

/** One output handle of a node (wit `output`): what `run` returns and an edge's sourceHandle. */
export type NodeOutput = DataOf<'/api/v1/node-types/{id}/outputs', 'post'>[number];

/** Every node has this output implicitly: the host takes it when the node fails. */
export const ERROR_OUTPUT = 'error';

type NodeTypeView = Schemas['NodeTypeView'];

/**
 * A node type as the editor uses it (endpoints.ts `normalizeNodeType`): describe()'s JSON,
 * which the document leaves free-form, plus what the host adds and the document does say.
 */
export interface NodeType extends Pick<NodeTypeView, 'source' | 'entry' | 'dynamic_outputs'> {
  id: string;
  name: string;
  version: string;
  category: string;
  icon: string;
  description?: string;
  config_schema: JsonSchema;
  /** fixed outputs; config-dependent ones come from POST /node-types/:id/outputs */
  outputs: NodeOutput[];
  capabilities: unknown[];
  /** the entity type a node of this type links (wit `entity-kind`) */
  entity_type?: string | null;
  entity_required?: boolean;
  waits_for_caller?: boolean;
  wall_clock_ms?: number;
  /** drawn but not working yet (the queue, until queues exist): not offered, refused at publishing */
  coming?: boolean;
}

/** The JSON Schema of a node type's config, as far as the generated form reads it. */
export interface JsonSchema {
  type?: string | string[];
  title?: string;
  description?: string;
  default?: unknown;
  enum?: unknown[];
  const?: unknown;
  oneOf?: JsonSchema[];
  anyOf?: JsonSchema[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  items?: JsonSchema;
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  minItems?: number;
  maxItems?: number;
  pattern?: string;
  format?: string;
  additionalProperties?: boolean | JsonSchema;
  /** widget hint: "textarea", "prompt", "password" */
  'x-widget'?: string;
  [k: string]: unknown;
}

// ---- simulator --------------------------------------------------------------------------

export type SimDigits = Schemas['SimDigits'];
export type SimHttpResponse = Schemas['SimHttp'];
export type SimulateRequest = BodyOf<'/api/v1/flows/{id}/simulate', 'post'>;
export type SimStep = Schemas['SimStep'];
export type SimulateResult = DataOf<'/api/v1/flows/{id}/simulate', 'post'>;

// ---- calls, CDRs, system ----------------------------------------------------------------

/** One step of a CDR's `flow_path`: the flow engine's trace (flow::trace), without log lines. */
export interface PathEntry {
  node_id: string;
  node_type?: string;
  output?: string | null;
  entered_at?: string | null;
  duration_ms?: number | null;
  error?: string | null;
}

/**
 * A CDR. The document types `flow_path` as an object (store::Cdr's annotation); the server
 * writes the trace's steps as an array (older rows: node ids).
 */
export type Cdr = Omit<DataOf<'/api/v1/cdrs/{id}', 'get'>, 'flow_path'> & { flow_path?: PathEntry[] | string[] | null };
export type ActiveCall = ItemOf<'/api/v1/calls/active'>;
export type ComponentHealth = Schemas['ComponentStatus'];
export type Health = DataOf<'/api/v1/health', 'get'>;
/** GET /system/status */
export type SystemStatus = DataOf<'/api/v1/system/status', 'get'>;

/** GET /system/tls: the server certificate (HTTPS; SIP over TLS uses the same one). */
export type TlsStatus = DataOf<'/api/v1/system/tls', 'get'>;
export type SipMessages = DataOf<'/api/v1/cdrs/{id}/sip-messages', 'get'>;
export type Backups = DataOf<'/api/v1/system/backups', 'get'>;
export type TlsCertificate = NonNullable<TlsStatus['certificate']>;

/** Where a setting's effective value comes from: a flag or an environment variable beat the stored value. */
export type SettingSource = Schemas['SettingSource'];
export type SettingView = Schemas['SettingView'];
/** GET /settings: every key the server knows, with its effective value. */
export type Settings = DataOf<'/api/v1/settings', 'get'>;
/** PUT /settings: the keys to change; null clears the stored value (back to the default). */
export type SettingsUpdate = BodyOf<'/api/v1/settings', 'put'>;
export type SettingsChanged = DataOf<'/api/v1/settings', 'put'>;

export type Plugin = DataOf<'/api/v1/plugins/{id}', 'get'>;
export type PluginUpdate = BodyOf<'/api/v1/plugins/{id}', 'put'>;

// ---- recordings, webhooks -------------------------------------------------------------------

/** A call recording with its CDR's parties (GET /recordings). */
export type Recording = ItemOf<'/api/v1/recordings'>;
/** A webhook endpoint with its circuit. */
export type Webhook = ItemOf<'/api/v1/webhooks'>;
export type WebhookInput = BodyOf<'/api/v1/webhooks', 'post'>;
export type WebhookDelivery = ItemOf<'/api/v1/webhooks/{id}/deliveries'>;
export type MailItem = ItemOf<'/api/v1/mail-outbox'>;
/** An extension's push target (ntfy or Gotify); `token_set` says a token is stored, never the token. */
export type PushTarget = NonNullable<DataOf<'/api/v1/extensions/{id}/push', 'get'>>;
/** PUT /extensions/{id}/push: `token` absent keeps the stored one, empty removes it. */
export type PushInput = BodyOf<'/api/v1/extensions/{id}/push', 'put'>;
export type PushKind = PushInput['kind'];
