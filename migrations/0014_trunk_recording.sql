-- Recording per trunk: calls that arrive through the trunk (record_inbound) or leave
-- through it (record_outbound) are recorded from answer to end. Off by default.
ALTER TABLE trunks ADD COLUMN record_inbound INTEGER NOT NULL DEFAULT 0
    CHECK (record_inbound IN (0, 1));
ALTER TABLE trunks ADD COLUMN record_outbound INTEGER NOT NULL DEFAULT 0
    CHECK (record_outbound IN (0, 1));
