-- SIP over TLS to trunks: whether the carrier's certificate is verified (against the public
-- CAs and the system's store). On by default; a carrier with a private CA turns it off.
ALTER TABLE trunks ADD COLUMN tls_verify INTEGER NOT NULL DEFAULT 1
    CHECK (tls_verify IN (0, 1));
