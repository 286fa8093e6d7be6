// Wire types. Field names are the data model's column names (seeds/003 §4); write-only
// secrets (sip_password, password, pin) are sent and never come back.

export type Id = number;

export interface Timestamps {
  created_at?: string;
  updated_at?: string;
}

export interface AdminUser {
  id: Id;
  username: string;
}

/** GET /auth/me and POST /auth/login: an admin session (user + CSRF token), or an API token. */
export interface Session {
  user: AdminUser | null;
  token?: string | null;
  /** the API token's scope, when authenticated by one */
  scope?: TokenScope;
  csrf_token: string | null;
}

export interface SetupStatus {
  /** true while no admin exists: the SPA shows the wizard */
  required: boolean;
}

/** POST /setup: the first administrator and the network settings of the wizard. */
export interface SetupRequest {
  username: string;
  password: string;
  hostname?: string;
  external_ip?: string;
  sip_udp_port?: number;
  sip_tcp_port?: number;
  sip_realm?: string;
}

export interface FollowMeNumber {
  number: string;
  delay: number;
  timeout: number;
}

export interface Extension extends Timestamps {
  id: Id;
  extension: string;
  name: string;
  email?: string | null;
  sip_username: string;
  /** write-only */
  sip_password?: string;
  ring_timeout: number;
  dnd: boolean;
  follow_me_enabled: boolean;
  follow_me_numbers: FollowMeNumber[];
  recording_mode: 'off' | 'always' | 'on_demand';
  max_registrations: number;
  /** read-only: number of live registrations (contacts) */
  registration_count?: number;
}

export interface Registration {
  id: Id;
  extension_id: Id;
  contact_uri: string;
  transport: string;
  user_agent?: string | null;
  source_ip?: string | null;
  source_port?: number | null;
  expires?: string | null;
  registered_at?: string | null;
  device_id?: string | null;
  push_platform?: string | null;
}

/** `unmonitored`: an IP trunk the PBX accepts calls from without probing it (no OPTIONS ping) */
export type TrunkStatus = 'registered' | 'registering' | 'failed' | 'unregistered' | 'unmonitored' | 'disabled' | 'ok' | 'unknown';

export interface Trunk extends Timestamps {
  id: Id;
  name: string;
  type: 'register' | 'ip';
  enabled: boolean;
  host?: string | null;
  port: number;
  transport: 'udp' | 'tcp' | 'tls';
  username?: string | null;
  /** write-only */
  password?: string;
  auth_username?: string | null;
  register_expiry: number;
  remote_hosts: string[];
  local_host?: string | null;
  codecs: string[];
  max_channels: number;
  caller_id_name?: string | null;
  caller_id_num?: string | null;
  prefix_strip: number;
  prefix_add: string;
  priority: number;
  /** read-only: whether a password is stored (it is never returned) */
  password_set?: boolean;
  /** read-only, live */
  status?: TrunkStatus;
  status_detail?: string | null;
}

export interface InboundNumber extends Timestamps {
  id: Id;
  number: string;
  name?: string | null;
  trunk_id?: Id | null;
  flow_id?: Id | null;
  flow_entry_node?: string | null;
  enabled: boolean;
}

export interface VoicemailBox extends Timestamps {
  id: Id;
  name: string;
  mailbox_number?: string | null;
  /** write-only */
  pin?: string;
  greeting_file?: string | null;
  greeting_type: 'default' | 'custom' | 'name_only';
  email_notify: boolean;
  email_address?: string | null;
  email_attach_audio: boolean;
  max_message_duration: number;
  max_messages: number;
  retention_days: number;
  notify_extension_id?: Id | null;
  /** read-only: whether a PIN is stored */
  pin_set?: boolean;
  /** read-only */
  message_count?: number;
  unread_count?: number;
}

export interface VoicemailMessage {
  id: Id;
  mailbox_id: Id;
  caller_id_name?: string | null;
  caller_id_num?: string | null;
  timestamp: string;
  duration?: number | null;
  read: boolean;
  read_at?: string | null;
}

export interface RingGroup extends Timestamps {
  id: Id;
  name: string;
  strategy: 'ring_all' | 'round_robin' | 'random' | 'longest_idle' | 'sequential';
  ring_timeout: number;
  members: Id[];
  caller_id_mode: 'pass' | 'fixed' | 'prepend';
  /** the fixed caller ID, or the text prepended */
  caller_id_value?: string | null;
}

/** digit ("0"–"9", "*", "#"), or "i" (invalid) / "t" (timeout) → label shown on the output */
export type IvrOptions = Record<string, string>;

export interface IvrMenu extends Timestamps {
  id: Id;
  name: string;
  /** a prompt id from the prompts library (as text), or empty */
  greeting_file?: string | null;
  greeting_tts?: string | null;
  timeout: number;
  max_retries: number;
  digit_timeout: number;
  options: IvrOptions;
}

export type Weekday = 'mon' | 'tue' | 'wed' | 'thu' | 'fri' | 'sat' | 'sun';

export interface TimeRule {
  label: string;
  days: Weekday[];
  /** HH:MM; an end before the start spans midnight */
  start: string;
  end: string;
  dest_node?: string | null;
}

/**
 * A date (or date range, optionally only between start and end) that overrides the weekly
 * rules. `dest_node` holds the output the call takes: a rule's label, or "default".
 */
export interface TimeOverride {
  label: string;
  date: string;
  end_date?: string | null;
  start?: string | null;
  end?: string | null;
  dest_node?: string | null;
}

export interface TimeSwitch extends Timestamps {
  id: Id;
  name: string;
  timezone: string;
  rules: TimeRule[];
  overrides: TimeOverride[];
  default_dest?: string | null;
}

export interface Conference extends Timestamps {
  id: Id;
  name: string;
  extension?: string | null;
  /** write-only */
  pin?: string;
  /** read-only: whether a PIN is stored */
  pin_set?: boolean;
  max_members: number;
  record: boolean;
  mute_on_join: boolean;
  announce_joins: boolean;
  /** read-only, live */
  participant_count?: number;
}

export interface Prompt extends Timestamps {
  /** a number for uploads, `system:<name>` for the prompts shipped with the binary */
  id: Id | string;
  name: string;
  original_name?: string | null;
  /** system prompts ship with the binary and cannot be deleted */
  kind?: 'system' | 'custom';
  sample_rate?: number;
  duration_ms?: number | null;
  size_bytes?: number | null;
}

// ---- flows ----------------------------------------------------------------------------

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

/** seeds/003 §5.2. Top-level keys other than nodes/edges are kept as they came. */
export interface Graph {
  nodes: GraphNode[];
  edges: GraphEdge[];
  [k: string]: unknown;
}

export interface Flow extends Timestamps {
  id: Id;
  name: string;
  flow_data: Graph;
  /** the last published version, 0 or null when never published */
  version?: number | null;
  published: boolean;
  published_at?: string | null;
}

export interface FlowVersion {
  id?: Id;
  flow_id?: Id;
  version: number;
  published_at: string;
  published_by?: string | null;
  /** present on GET /flows/:id/versions/:v */
  flow_data?: Graph;
  /** the version currently live */
  live?: boolean;
  /** on publish and rollback: what the validator warned about */
  warnings?: Problem[];
}

export interface Problem {
  severity: 'error' | 'warning';
  code: string;
  message: string;
  node_id?: string | null;
  edge_id?: string | null;
  /** for a config problem (code `config_invalid`): the dotted path inside the node's config */
  field?: string | null;
}

export interface ValidationResult {
  valid: boolean;
  problems: Problem[];
}

export interface Change<T> {
  id: string;
  before?: T;
  after?: T;
  /** for changed items: what differs */
  fields?: string[];
}

export interface FlowDiff {
  from: number | 'draft';
  to: number | 'draft';
  nodes: { added: GraphNode[]; removed: GraphNode[]; changed: Change<GraphNode>[] };
  edges: { added: GraphEdge[]; removed: GraphEdge[]; changed: Change<GraphEdge>[] };
}

/** One output handle of a node (wit `output`): what `run` returns and an edge's sourceHandle. */
export interface NodeOutput {
  id: string;
  label?: string;
  /** the call has left the flow when it takes this output: no edge is needed */
  terminal?: boolean;
}

/** Every node has this output implicitly: the host takes it when the node fails. */
export const ERROR_OUTPUT = 'error';

export interface NodeType {
  id: string;
  name: string;
  version: string;
  category: string;
  icon: string;
  description?: string;
  config_schema: JsonSchema;
  /** fixed outputs; config-dependent ones come from POST /node-types/:id/outputs */
  outputs: NodeOutput[];
  /** false when outputs(input) always equals `outputs` (saves asking the host per node) */
  dynamic_outputs?: boolean;
  capabilities: unknown[];
  /** the entity type a node of this type links (wit `entity-kind`) */
  entity_type?: string | null;
  entity_required?: boolean;
  waits_for_caller?: boolean;
  wall_clock_ms?: number;
  /** entry nodes have no input handle */
  entry?: boolean;
  /** "builtin" or the plugin id */
  source?: string;
}

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

// ---- simulator ------------------------------------------------------------------------

export interface SimDigits {
  digits: string;
  /** ms after the node starts collecting */
  after_ms?: number;
}

export interface SimHttpResponse {
  /** a URL prefix the webhook node calls */
  url: string;
  status: number;
  body: string;
  /** simulate no answer within the node's timeout */
  timeout?: boolean;
}

export interface SimulateRequest {
  /** the draft, the live version, or a published version number */
  version: 'draft' | 'live' | number;
  caller: string;
  caller_name?: string;
  dialled: string;
  /** the entry node (an inbound_number node); defaults to the one mapped to `dialled` */
  entry_node?: string;
  /** local time in `timezone`, "2026-12-25T09:00" */
  time: string;
  timezone: string;
  digits: SimDigits[];
  /** extension id → what it does when rung */
  answers: Record<string, 'answer' | 'busy' | 'no_answer' | 'unavailable'>;
  http: SimHttpResponse[];
}

export interface SimStep {
  node_id: string;
  node_type: string;
  output?: string | null;
  entered_at_ms: number;
  duration_ms: number;
  error?: string | null;
  logs: string[];
}

export interface SimulateResult {
  steps: SimStep[];
  /** how the call ended: "answered by 101", "voicemail", "hangup", … */
  outcome: string;
  error?: string | null;
}

// ---- calls, CDRs, system ----------------------------------------------------------------

export interface PathEntry {
  node_id: string;
  output?: string | null;
  entered_at?: string | null;
  duration_ms?: number | null;
  error?: string | null;
}

export interface Cdr {
  id: Id;
  call_id: string;
  start_time: string;
  answer_time?: string | null;
  end_time?: string | null;
  duration?: number | null;
  billable_dur?: number | null;
  caller_id_name?: string | null;
  caller_id_num?: string | null;
  callee?: string | null;
  trunk_id?: Id | null;
  direction: 'inbound' | 'outbound' | 'internal';
  disposition?: 'answered' | 'no_answer' | 'busy' | 'failed' | 'voicemail' | null;
  recording_file?: string | null;
  flow_id?: Id | null;
  flow_version?: number | null;
  flow_path?: PathEntry[] | string[] | null;
  hangup_cause?: string | null;
}

export interface ActiveCall {
  id: string;
  call_id?: string;
  direction: 'inbound' | 'outbound' | 'internal';
  caller_id_name?: string | null;
  caller_id_num?: string | null;
  callee?: string | null;
  state: 'ringing' | 'in_flow' | 'answered' | 'bridged' | 'held' | string;
  started_at: string;
  answered_at?: string | null;
  flow_id?: Id | null;
  current_node?: string | null;
}

export interface ComponentHealth {
  status: 'ok' | 'degraded' | 'down' | string;
  detail?: string | null;
}

export interface Health {
  status: 'ok' | 'degraded' | 'down' | string;
  version: string;
  uptime_seconds: number;
  components: Record<string, ComponentHealth>;
}

/** GET /system/status */
export interface SystemStatus {
  version: string;
  uptime_seconds: number;
  schema_version: number;
  database_path: string;
  database_size_bytes: number;
  data_dir: string;
  sip_realm: string;
  /** extensions, registrations, trunks, call_flows, cdrs */
  counts: Record<string, number>;
  components: Record<string, ComponentHealth>;
  now: string;
}

/** GET /system/tls: the server certificate (HTTPS; SIP over TLS uses the same one). */
export interface TlsCertificate {
  source: 'file' | 'acme' | 'self_signed' | string;
  subject: string;
  /** DNS names and IP addresses it is valid for */
  sans: string[];
  issuer: string;
  not_before: string;
  not_after: string;
  /** whole days until not_after (negative once expired) */
  days_left: number;
  serial: string;
  sha256_fingerprint: string;
  self_signed: boolean;
  installed_at: string;
}

export interface TlsStatus {
  /** false when the server runs without TLS */
  enabled: boolean;
  /** the configured source (the certificate may still be the self-signed one while ACME has not issued) */
  mode: 'file' | 'acme' | 'self_signed' | string | null;
  https_port: number | null;
  /** CA-issued and valid: HTTP redirects to HTTPS and HSTS is sent */
  trusted: boolean;
  certificate: TlsCertificate | null;
  files: { cert: string; key: string } | null;
  acme: { directory: string; domains: string[]; challenge: string; account: string | null } | null;
  last_attempt: string | null;
  last_success: string | null;
  /** why the last renewal or reload failed; the previous certificate keeps serving */
  last_error: string | null;
  last_error_at: string | null;
  failures: number;
  next_renewal: string | null;
  renewing: boolean;
  listeners: Record<string, { address: string | null; error: string | null }>;
  health: 'ok' | 'degraded' | string;
  health_detail: string;
}

/** Where a setting's effective value comes from: a flag or an environment variable beat the stored value. */
export type SettingSource = 'flag' | 'env' | 'stored' | 'default' | string;

export interface SettingView {
  value: string | number | boolean | null;
  source: SettingSource;
  default: string | number | boolean | null;
  /** a change takes effect after a restart */
  restart_required: boolean;
}

/** GET /settings: every key the server knows, with its effective value. */
export type Settings = Record<string, SettingView>;

/** PUT /settings: the keys to change; null clears the stored value (back to the default). */
export type SettingsUpdate = Record<string, string | number | boolean | null>;

export interface SettingsChanged {
  settings: Settings;
  restart_required: string[];
  overridden: string[];
}

export interface Plugin {
  id: Id;
  vendor: string;
  name: string;
  version: string;
  sha256: string;
  requested_capabilities: string[];
  granted_capabilities: string[];
  enabled: boolean;
  node_types?: string[];
  size?: number;
  created_at?: string;
}

/** What an API token may do: read (GET only), write (entity changes too), admin (settings, tokens, plugins, the audit log too). */
export type TokenScope = 'read' | 'write' | 'admin';

export interface ApiToken {
  id: Id;
  name: string;
  scope: TokenScope;
  created_at: string;
  expires_at?: string | null;
  revoked_at?: string | null;
  last_used_at?: string | null;
  /** only in the response that creates it */
  token?: string;
}

/** POST /api-tokens (from a signed-in session only). */
export interface NewApiToken {
  name: string;
  scope: TokenScope;
  /** 1..=365; the server's default is 90 */
  expires_in_days?: number;
}

/** GET /auth/sessions: one of the signed-in administrator's sessions. */
export interface AdminSession {
  id: Id;
  created_at: string;
  last_seen_at: string;
  /** the sliding expiry (24 h after the last use) */
  expires_at: string;
  /** the end of the session however active (7 days after the login) */
  absolute_expires_at: string;
  ip?: string | null;
  user_agent?: string | null;
  /** the session making the request */
  current: boolean;
}

/** POST /auth/password */
export interface PasswordChange {
  current_password: string;
  new_password: string;
  /** also revoke every API token this administrator created */
  revoke_tokens?: boolean;
}

export interface PasswordChanged {
  sessions_ended: number;
  tokens_revoked: number;
}
