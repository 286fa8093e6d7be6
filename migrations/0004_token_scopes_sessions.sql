-- API tokens get a scope and always expire; sessions get a number the API names them by and an
-- absolute lifetime on top of the sliding one.

-- The scope of an API token: read (GET only), write (entity changes too), admin (settings,
-- tokens, plugins, the audit log too). Tokens made before scopes existed could do everything a
-- token can, so they keep that (admin); a new token always names its scope.
ALTER TABLE api_tokens ADD COLUMN scope TEXT NOT NULL DEFAULT 'admin' CHECK (scope IN ('read', 'write', 'admin'));
-- Every token expires: one made without an expiry gets the default 90 days from now, and none
-- lives longer than the maximum of 365 days from now.
UPDATE api_tokens SET expires_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '+90 days')
    WHERE expires_at IS NULL;
UPDATE api_tokens SET expires_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '+365 days')
    WHERE expires_at > strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '+365 days');
CREATE INDEX api_tokens_created_by ON api_tokens (created_by);

-- Sessions: `id` becomes a number the API shows (to end one session) and the token's hash
-- moves to `token_hash`; `absolute_expires_at` ends a session however active it is (the
-- sliding `expires_at` never passes it). Live sessions carry over with 7 days from their start.
CREATE TABLE sessions_v4 (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    -- SHA-256 (hex) of the cookie's token, never the token itself
    token_hash          TEXT NOT NULL UNIQUE,
    admin_user_id       INTEGER NOT NULL REFERENCES admin_users (id) ON DELETE CASCADE,
    csrf_token          TEXT NOT NULL,
    created_at          TEXT NOT NULL,
    last_seen_at        TEXT NOT NULL,
    expires_at          TEXT NOT NULL,
    absolute_expires_at TEXT NOT NULL,
    ip                  TEXT,
    user_agent          TEXT
);
INSERT INTO sessions_v4 (token_hash, admin_user_id, csrf_token, created_at, last_seen_at, expires_at, absolute_expires_at, ip, user_agent)
    SELECT id, admin_user_id, csrf_token, created_at, last_seen_at, expires_at,
           strftime('%Y-%m-%dT%H:%M:%fZ', created_at, '+7 days'), ip, user_agent
    FROM sessions;
DROP TABLE sessions;
ALTER TABLE sessions_v4 RENAME TO sessions;
CREATE INDEX sessions_expires ON sessions (expires_at);
CREATE INDEX sessions_absolute_expires ON sessions (absolute_expires_at);
CREATE INDEX sessions_user ON sessions (admin_user_id);
