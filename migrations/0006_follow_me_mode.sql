-- Follow-me: how an extension's devices and its numbers outside ring, and whether a number
-- outside must confirm ("press 1 to accept") before the call is put through, so a carrier's
-- voicemail never takes it.
ALTER TABLE extensions ADD COLUMN follow_me_mode TEXT NOT NULL DEFAULT 'sequential'
    CHECK (follow_me_mode IN ('sequential', 'simultaneous'));
ALTER TABLE extensions ADD COLUMN follow_me_confirm INTEGER NOT NULL DEFAULT 1
    CHECK (follow_me_confirm IN (0, 1));
