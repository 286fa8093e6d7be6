-- A published flow version captures the configuration of every entity its nodes link that is
-- flow configuration (IVR menus, ring groups, time switches with their holidays, voicemail
-- boxes, conference bridges): a call on the version runs with these, whatever the entity's
-- row says now. The row is the entity's draft: editing it changes what the next publication
-- captures. Extensions and inbound numbers are not captured: people, phones and numbers stay
-- live. Like flow_versions, rows are written once and never updated (trigger below).
CREATE TABLE flow_version_entities (
    flow_id         INTEGER NOT NULL,
    version         INTEGER NOT NULL,
    -- the data model's kind (ivr_menu, ring_group, time_switch, voicemail_box, conference_bridge)
    entity_type     TEXT NOT NULL,
    entity_id       INTEGER NOT NULL,
    -- the entity's columns as the API showed them when the version was published, without
    -- id and timestamps; secrets are never in it (pin_set says whether a PIN was stored)
    data            TEXT NOT NULL CHECK (json_valid(data)),
    PRIMARY KEY (flow_id, version, entity_type, entity_id),
    FOREIGN KEY (flow_id, version) REFERENCES flow_versions (flow_id, version) ON DELETE CASCADE
) WITHOUT ROWID;
-- "which published versions captured this entity" (the delete check, the flows an edit affects)
CREATE INDEX flow_version_entities_entity ON flow_version_entities (entity_type, entity_id);
CREATE TRIGGER flow_version_entities_immutable BEFORE UPDATE ON flow_version_entities
BEGIN
    SELECT RAISE(ABORT, 'flow_version_entities rows are immutable');
END;
