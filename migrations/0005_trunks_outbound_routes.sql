-- Trunks reach carriers both ways: registration details, keep-alive, number normalisation;
-- extensions get their outbound caller ids and their toll-fraud limits; outbound routes say
-- which dialled numbers go to which trunks.

-- Where requests to the carrier go first (a SIP URI or host[:port]); none: the trunk's host.
ALTER TABLE trunks ADD COLUMN outbound_proxy TEXT;
-- Seconds between OPTIONS keep-alives (0: none); a trunk that stops answering is down.
ALTER TABLE trunks ADD COLUMN options_interval INTEGER NOT NULL DEFAULT 30 CHECK (options_interval >= 0);
-- How the carrier writes numbers, to make E.164 of what it sends: the country code ('61'), the
-- national trunk prefix ('0': 0290000000 is +61290000000) and the international prefix
-- ('0011': 00114420... is +4420...). Empty: numbers are taken as written.
ALTER TABLE trunks ADD COLUMN country_code TEXT NOT NULL DEFAULT '';
ALTER TABLE trunks ADD COLUMN national_prefix TEXT NOT NULL DEFAULT '';
ALTER TABLE trunks ADD COLUMN international_prefix TEXT NOT NULL DEFAULT '';

-- What an extension presents when it calls out (else the route's or the trunk's) and to
-- emergency services.
ALTER TABLE extensions ADD COLUMN outbound_caller_id_name TEXT;
ALTER TABLE extensions ADD COLUMN outbound_caller_id_num TEXT;
ALTER TABLE extensions ADD COLUMN emergency_caller_id_num TEXT;
-- The classes of outbound numbers the extension may call (a route names its class);
-- international and premium are off unless granted. Emergency numbers are always allowed.
ALTER TABLE extensions ADD COLUMN call_classes TEXT NOT NULL DEFAULT '["local","national"]' CHECK (json_valid(call_classes));
-- Outbound calls at once (0: none at all) and outbound minutes a day (0: no cap).
ALTER TABLE extensions ADD COLUMN max_outbound_calls INTEGER NOT NULL DEFAULT 2 CHECK (max_outbound_calls >= 0);
ALTER TABLE extensions ADD COLUMN daily_outbound_minutes INTEGER NOT NULL DEFAULT 0 CHECK (daily_outbound_minutes >= 0);

-- Ordered rules: the first enabled route whose pattern matches the dialled number (and that
-- the extension may use) takes the call, through its trunks in order.
CREATE TABLE outbound_routes (
    id              INTEGER PRIMARY KEY,
    name            TEXT NOT NULL,
    -- lower first
    position        INTEGER NOT NULL DEFAULT 10,
    enabled         INTEGER NOT NULL DEFAULT 1,
    -- dialled-digit patterns: a prefix ('9', '1800'), an Asterisk pattern ('_NXXNXXXXXX',
    -- '_00.'), or a regular expression ('^\+44[0-9]+$')
    patterns        TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(patterns)),
    call_class      TEXT NOT NULL DEFAULT 'national' CHECK (call_class IN ('local', 'national', 'international', 'premium')),
    -- digits taken off the front, then text put in front, before the trunk's own
    strip_digits    INTEGER NOT NULL DEFAULT 0 CHECK (strip_digits >= 0),
    prepend         TEXT NOT NULL DEFAULT '',
    -- whose caller id is presented: the extension's outbound one, the route's, the trunk's,
    -- or none (anonymous)
    caller_id_mode  TEXT NOT NULL DEFAULT 'extension' CHECK (caller_id_mode IN ('extension', 'route', 'trunk', 'anonymous')),
    caller_id_name  TEXT,
    caller_id_num   TEXT,
    -- the extensions (ids) that may use it besides their classes allowing it; empty: all
    extension_ids   TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(extension_ids)),
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE INDEX outbound_routes_position ON outbound_routes (position, id);

-- A route's trunks, tried in order (failover). A trunk in use by a route cannot be deleted.
CREATE TABLE outbound_route_trunks (
    route_id        INTEGER NOT NULL REFERENCES outbound_routes (id) ON DELETE CASCADE,
    trunk_id        INTEGER NOT NULL REFERENCES trunks (id) ON DELETE RESTRICT,
    position        INTEGER NOT NULL,
    PRIMARY KEY (route_id, trunk_id)
);
CREATE INDEX outbound_route_trunks_trunk ON outbound_route_trunks (trunk_id);

-- A CDR names the extension that placed the call (outbound minutes a day are counted by it)
-- and the outbound route it took.
ALTER TABLE cdrs ADD COLUMN extension_id INTEGER;
ALTER TABLE cdrs ADD COLUMN route_id INTEGER;
CREATE INDEX cdrs_extension_start ON cdrs (extension_id, start_time);
-- The transfers a call went through (blind or attended: when, by whom, to what; an attended
-- one names the call it replaced), linking the calls.
ALTER TABLE cdrs ADD COLUMN transfers TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(transfers));
