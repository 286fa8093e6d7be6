-- FlowPBX initial schema: the whole data model of the product specification (§4) plus the
-- tables the host needs (flow versions, plugins, plugin state, auth, audit).
--
-- Conventions:
-- * Timestamps are TEXT in one fixed-width UTC form, 'YYYY-MM-DDTHH:MM:SS.mmmZ', so that they
--   sort and compare as strings (indexes on them work for ranges).
-- * JSON columns are TEXT holding JSON; the store checks json_valid() on write.
-- * Secrets are BLOBs sealed with AES-256-GCM (12-byte nonce || ciphertext || tag) and have a
--   name ending in _enc. Hashes (argon2id PHC strings) end in _hash.
-- * Booleans are INTEGER 0/1.

-- Key/value settings; values that are secret are sealed (encrypted = 1, value_enc set).
CREATE TABLE system_config (
    id          INTEGER PRIMARY KEY,
    key         TEXT NOT NULL UNIQUE,
    value       TEXT,
    value_enc   BLOB,
    encrypted   INTEGER NOT NULL DEFAULT 0 CHECK (encrypted IN (0, 1)),
    updated_at  TEXT NOT NULL
);

CREATE TABLE trunks (
    id              INTEGER PRIMARY KEY,
    name            TEXT NOT NULL,
    type            TEXT NOT NULL CHECK (type IN ('register', 'ip')),
    enabled         INTEGER NOT NULL DEFAULT 1,
    host            TEXT,
    port            INTEGER NOT NULL DEFAULT 5060,
    transport       TEXT NOT NULL DEFAULT 'udp' CHECK (transport IN ('udp', 'tcp', 'tls')),
    username        TEXT,
    password_enc    BLOB,
    auth_username   TEXT,
    register_expiry INTEGER NOT NULL DEFAULT 300,
    remote_hosts    TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(remote_hosts)),
    local_host      TEXT,
    codecs          TEXT NOT NULL DEFAULT '["g711u","g711a"]' CHECK (json_valid(codecs)),
    max_channels    INTEGER NOT NULL DEFAULT 0,
    caller_id_name  TEXT,
    caller_id_num   TEXT,
    prefix_strip    INTEGER NOT NULL DEFAULT 0,
    prefix_add      TEXT NOT NULL DEFAULT '',
    priority        INTEGER NOT NULL DEFAULT 10,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE INDEX trunks_priority ON trunks (priority, id);

CREATE TABLE call_flows (
    id              INTEGER PRIMARY KEY,
    name            TEXT NOT NULL,
    flow_data       TEXT NOT NULL CHECK (json_valid(flow_data)),
    -- the number of the latest published version (0: never published)
    version         INTEGER NOT NULL DEFAULT 0,
    published       INTEGER NOT NULL DEFAULT 0,
    published_at    TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);

-- Published versions of a flow. Immutable: rows are inserted, never updated (trigger below).
CREATE TABLE flow_versions (
    id              INTEGER PRIMARY KEY,
    flow_id         INTEGER NOT NULL REFERENCES call_flows (id) ON DELETE CASCADE,
    version         INTEGER NOT NULL,
    flow_data       TEXT NOT NULL CHECK (json_valid(flow_data)),
    published_by    TEXT NOT NULL,
    published_at    TEXT NOT NULL,
    UNIQUE (flow_id, version)
);
CREATE TRIGGER flow_versions_immutable BEFORE UPDATE ON flow_versions
BEGIN
    SELECT RAISE(ABORT, 'flow_versions rows are immutable');
END;

CREATE TABLE inbound_numbers (
    id              INTEGER PRIMARY KEY,
    number          TEXT NOT NULL UNIQUE,
    name            TEXT,
    trunk_id        INTEGER REFERENCES trunks (id),
    flow_id         INTEGER REFERENCES call_flows (id),
    flow_entry_node TEXT,
    enabled         INTEGER NOT NULL DEFAULT 1,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE INDEX inbound_numbers_trunk ON inbound_numbers (trunk_id);
CREATE INDEX inbound_numbers_flow ON inbound_numbers (flow_id);

CREATE TABLE extensions (
    id                 INTEGER PRIMARY KEY,
    extension          TEXT NOT NULL UNIQUE,
    name               TEXT NOT NULL,
    email              TEXT,
    sip_username       TEXT NOT NULL UNIQUE,
    -- the SIP password, sealed: needed to recompute the HA1s when the realm changes
    sip_password_enc   BLOB NOT NULL,
    -- HA1 = H(username:realm:password) for MD5 and SHA-256 digest, sealed, and the realm they
    -- were computed over
    ha1_md5_enc        BLOB NOT NULL,
    ha1_sha256_enc     BLOB NOT NULL,
    ha1_realm          TEXT NOT NULL,
    ring_timeout       INTEGER NOT NULL DEFAULT 30,
    dnd                INTEGER NOT NULL DEFAULT 0,
    follow_me_enabled  INTEGER NOT NULL DEFAULT 0,
    follow_me_numbers  TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(follow_me_numbers)),
    recording_mode     TEXT NOT NULL DEFAULT 'off' CHECK (recording_mode IN ('off', 'always', 'on_demand')),
    max_registrations  INTEGER NOT NULL DEFAULT 5,
    created_at         TEXT NOT NULL,
    updated_at         TEXT NOT NULL
);

CREATE TABLE voicemail_boxes (
    id                   INTEGER PRIMARY KEY,
    name                 TEXT NOT NULL,
    mailbox_number       TEXT UNIQUE,
    pin_hash             TEXT,
    greeting_file        TEXT,
    greeting_type        TEXT NOT NULL DEFAULT 'default' CHECK (greeting_type IN ('default', 'custom', 'name_only')),
    email_notify         INTEGER NOT NULL DEFAULT 0,
    email_address        TEXT,
    email_attach_audio   INTEGER NOT NULL DEFAULT 1,
    max_message_duration INTEGER NOT NULL DEFAULT 120,
    max_messages         INTEGER NOT NULL DEFAULT 50,
    retention_days       INTEGER NOT NULL DEFAULT 90,
    notify_extension_id  INTEGER REFERENCES extensions (id),
    created_at           TEXT NOT NULL,
    updated_at           TEXT NOT NULL
);
CREATE INDEX voicemail_boxes_notify_extension ON voicemail_boxes (notify_extension_id);

CREATE TABLE voicemail_messages (
    id              INTEGER PRIMARY KEY,
    mailbox_id      INTEGER NOT NULL REFERENCES voicemail_boxes (id) ON DELETE CASCADE,
    caller_id_name  TEXT,
    caller_id_num   TEXT,
    timestamp       TEXT NOT NULL,
    duration        INTEGER,
    file_path       TEXT NOT NULL,
    read            INTEGER NOT NULL DEFAULT 0,
    read_at         TEXT,
    transcription   TEXT,
    created_at      TEXT NOT NULL
);
CREATE INDEX voicemail_messages_mailbox ON voicemail_messages (mailbox_id, timestamp);

CREATE TABLE ring_groups (
    id              INTEGER PRIMARY KEY,
    name            TEXT NOT NULL,
    strategy        TEXT NOT NULL DEFAULT 'ring_all' CHECK (strategy IN ('ring_all', 'sequential', 'round_robin', 'random', 'longest_idle')),
    ring_timeout    INTEGER NOT NULL DEFAULT 30,
    members         TEXT NOT NULL CHECK (json_valid(members)),
    caller_id_mode  TEXT NOT NULL DEFAULT 'pass' CHECK (caller_id_mode IN ('pass', 'fixed', 'prepend')),
    -- the fixed caller ID, or the prefix to prepend, per caller_id_mode
    caller_id_value TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);

CREATE TABLE ivr_menus (
    id              INTEGER PRIMARY KEY,
    name            TEXT NOT NULL,
    greeting_file   TEXT,
    greeting_tts    TEXT,
    timeout         INTEGER NOT NULL DEFAULT 10,
    max_retries     INTEGER NOT NULL DEFAULT 3,
    digit_timeout   INTEGER NOT NULL DEFAULT 3,
    options         TEXT NOT NULL CHECK (json_valid(options)),
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);

CREATE TABLE time_switches (
    id              INTEGER PRIMARY KEY,
    name            TEXT NOT NULL,
    timezone        TEXT NOT NULL DEFAULT 'Australia/Sydney',
    rules           TEXT NOT NULL CHECK (json_valid(rules)),
    -- date/holiday overrides, checked before the weekly rules
    overrides       TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(overrides)),
    default_dest    TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);

CREATE TABLE conference_bridges (
    id              INTEGER PRIMARY KEY,
    name            TEXT NOT NULL,
    extension       TEXT UNIQUE,
    pin_hash        TEXT,
    max_members     INTEGER NOT NULL DEFAULT 10,
    record          INTEGER NOT NULL DEFAULT 0,
    mute_on_join    INTEGER NOT NULL DEFAULT 0,
    announce_joins  INTEGER NOT NULL DEFAULT 0,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);

CREATE TABLE cdrs (
    id              INTEGER PRIMARY KEY,
    call_id         TEXT NOT NULL,
    start_time      TEXT NOT NULL,
    answer_time     TEXT,
    end_time        TEXT,
    duration        INTEGER,
    billable_dur    INTEGER,
    caller_id_name  TEXT,
    caller_id_num   TEXT,
    callee          TEXT,
    trunk_id        INTEGER,
    direction       TEXT NOT NULL CHECK (direction IN ('inbound', 'outbound', 'internal')),
    disposition     TEXT CHECK (disposition IN ('answered', 'no_answer', 'busy', 'failed', 'voicemail')),
    recording_file  TEXT,
    flow_id         INTEGER,
    flow_version    INTEGER,
    flow_path       TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(flow_path)),
    hangup_cause    TEXT
);
-- The call log is listed newest first, optionally filtered by direction or disposition.
CREATE INDEX cdrs_start_time ON cdrs (start_time);
CREATE INDEX cdrs_direction_start ON cdrs (direction, start_time);
CREATE INDEX cdrs_disposition_start ON cdrs (disposition, start_time);
CREATE INDEX cdrs_call_id ON cdrs (call_id);
CREATE INDEX cdrs_caller ON cdrs (caller_id_num, start_time);
CREATE INDEX cdrs_callee ON cdrs (callee, start_time);

CREATE TABLE recordings (
    id              INTEGER PRIMARY KEY,
    cdr_id          INTEGER REFERENCES cdrs (id) ON DELETE SET NULL,
    call_id         TEXT NOT NULL,
    file_path       TEXT NOT NULL,
    duration        INTEGER,
    size_bytes      INTEGER NOT NULL DEFAULT 0,
    created_at      TEXT NOT NULL
);
CREATE INDEX recordings_created ON recordings (created_at);
CREATE INDEX recordings_cdr ON recordings (cdr_id);

-- Runtime registrations (ephemeral: cleared at start and on expiry).
CREATE TABLE registrations (
    id              INTEGER PRIMARY KEY,
    extension_id    INTEGER NOT NULL REFERENCES extensions (id) ON DELETE CASCADE,
    contact_uri     TEXT NOT NULL,
    transport       TEXT,
    user_agent      TEXT,
    source_ip       TEXT,
    source_port     INTEGER,
    expires         TEXT NOT NULL,
    registered_at   TEXT NOT NULL,
    call_id         TEXT,
    cseq            INTEGER,
    push_token      TEXT,
    push_platform   TEXT CHECK (push_platform IN ('fcm', 'apns')),
    device_id       TEXT,
    UNIQUE (extension_id, contact_uri)
);
CREATE INDEX registrations_expires ON registrations (expires);

CREATE TABLE prompts (
    id              INTEGER PRIMARY KEY,
    name            TEXT NOT NULL UNIQUE,
    -- path relative to the data dir, e.g. prompts/custom/welcome.wav
    file_path       TEXT NOT NULL,
    original_name   TEXT,
    sample_rate     INTEGER NOT NULL,
    channels        INTEGER NOT NULL,
    bits_per_sample INTEGER NOT NULL,
    duration_ms     INTEGER NOT NULL,
    size_bytes      INTEGER NOT NULL,
    created_at      TEXT NOT NULL
);

-- Node plugins (Wasm components). Several versions of one plugin may be installed.
CREATE TABLE plugins (
    id                     INTEGER PRIMARY KEY,
    vendor                 TEXT NOT NULL,
    name                   TEXT NOT NULL,
    version                TEXT NOT NULL,
    sha256                 TEXT NOT NULL,
    -- path of the component relative to the data dir
    file_path              TEXT NOT NULL,
    requested_capabilities TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(requested_capabilities)),
    granted_capabilities   TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(granted_capabilities)),
    enabled                INTEGER NOT NULL DEFAULT 0,
    created_at             TEXT NOT NULL,
    updated_at             TEXT NOT NULL,
    UNIQUE (vendor, name, version)
);

-- Small per-plugin state that outlives a call (the flow engine's kv interface). Keyed by the
-- plugin's stable identity "vendor/name" so that state survives a version upgrade; built-in
-- nodes use it too.
CREATE TABLE plugin_kv (
    plugin          TEXT NOT NULL,
    key             TEXT NOT NULL,
    value           BLOB NOT NULL,
    updated_at      TEXT NOT NULL,
    PRIMARY KEY (plugin, key)
) WITHOUT ROWID;

CREATE TABLE admin_users (
    id              INTEGER PRIMARY KEY,
    username        TEXT NOT NULL UNIQUE,
    password_hash   TEXT NOT NULL,
    -- TOTP second factor (reserved: phase 2)
    totp_secret_enc BLOB,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    last_login_at   TEXT
);

-- Admin sessions. The id is the SHA-256 of the cookie's token, never the token itself.
CREATE TABLE sessions (
    id              TEXT PRIMARY KEY,
    admin_user_id   INTEGER NOT NULL REFERENCES admin_users (id) ON DELETE CASCADE,
    csrf_token      TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    last_seen_at    TEXT NOT NULL,
    expires_at      TEXT NOT NULL,
    ip              TEXT,
    user_agent      TEXT
) WITHOUT ROWID;
CREATE INDEX sessions_expires ON sessions (expires_at);

-- API tokens for integrations (bearer JWTs); jti identifies the token inside the JWT.
CREATE TABLE api_tokens (
    id              INTEGER PRIMARY KEY,
    name            TEXT NOT NULL,
    jti             TEXT NOT NULL UNIQUE,
    created_by      INTEGER REFERENCES admin_users (id) ON DELETE SET NULL,
    created_at      TEXT NOT NULL,
    expires_at      TEXT,
    revoked_at      TEXT,
    last_used_at    TEXT
);

CREATE TABLE audit_log (
    id              INTEGER PRIMARY KEY,
    at              TEXT NOT NULL,
    actor           TEXT NOT NULL,
    ip              TEXT,
    action          TEXT NOT NULL,
    entity_type     TEXT NOT NULL,
    entity_id       TEXT,
    before          TEXT CHECK (before IS NULL OR json_valid(before)),
    after           TEXT CHECK (after IS NULL OR json_valid(after))
);
CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX audit_log_entity ON audit_log (entity_type, entity_id);
