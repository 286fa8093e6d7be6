-- SRTP with SDES (RFC 4568): whether an extension's or a trunk's media is encrypted.
-- `off`: plain RTP only (an RTP/SAVP offer is refused with 488); `optional`: FlowPBX offers
-- RTP/AVP with a=crypto lines and answers crypto when offered; `required`: FlowPBX offers
-- RTP/SAVP and refuses an offer without usable crypto with 488.
ALTER TABLE extensions ADD COLUMN srtp TEXT NOT NULL DEFAULT 'optional'
    CHECK (srtp IN ('off', 'optional', 'required'));
ALTER TABLE trunks ADD COLUMN srtp TEXT NOT NULL DEFAULT 'off'
    CHECK (srtp IN ('off', 'optional', 'required'));
-- Whether each leg's media was encrypted: the SRTP suite (AES_CM_128_HMAC_SHA1_80, ...),
-- NULL for plain RTP (or no media); written when the call's media session closes.
ALTER TABLE cdrs ADD COLUMN caller_srtp TEXT;
ALTER TABLE cdrs ADD COLUMN callee_srtp TEXT;
