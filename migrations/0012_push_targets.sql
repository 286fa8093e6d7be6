-- Push notifications per extension (missed calls, voicemail) through a self-hosted ntfy or
-- Gotify server: where, and the access token (sealed).
CREATE TABLE push_targets (
    extension_id INTEGER PRIMARY KEY REFERENCES extensions (id) ON DELETE CASCADE,
    kind         TEXT NOT NULL CHECK (kind IN ('ntfy', 'gotify')),
    url          TEXT NOT NULL,
    token        BLOB,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);
