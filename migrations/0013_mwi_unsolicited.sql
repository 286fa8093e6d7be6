-- Unsolicited MWI: when set, every registered contact of the extension that holds no
-- message-summary subscription is sent an out-of-dialog NOTIFY (Event: message-summary)
-- when it registers and whenever the extension's voicemail counts change.
ALTER TABLE extensions ADD COLUMN mwi_unsolicited INTEGER NOT NULL DEFAULT 0
    CHECK (mwi_unsolicited IN (0, 1));
