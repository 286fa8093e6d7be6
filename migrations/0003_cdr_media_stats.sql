-- Per-leg media statistics of a call, written when its media session closes:
-- {"a": {...}, "b": {...}} with packets and bytes each way, loss and jitter (leg A is the
-- caller, leg B the callee).
ALTER TABLE cdrs ADD COLUMN media_stats TEXT CHECK (media_stats IS NULL OR json_valid(media_stats));
