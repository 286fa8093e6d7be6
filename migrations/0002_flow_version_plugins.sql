-- The plugin versions a published flow version runs: {"vendor/name": "<sha256 of the component>"}.
-- Loading the version again (start-up, rollback) pins these, so a newer plugin version reaches
-- a flow only when the flow is republished.
ALTER TABLE flow_versions ADD COLUMN plugins TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(plugins));
