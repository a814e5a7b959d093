-- The gateway's own state. Every version has the same tables on PostgreSQL (migrations/postgres).

-- The authorization server's records (authorization codes, refresh families and tokens, launch
-- contexts, client-assertion ids, login transactions): opaque values with a version for
-- compare-and-swap, dropped once expired.
CREATE TABLE records (
    kind       TEXT    NOT NULL,
    key        TEXT    NOT NULL,
    value      BLOB    NOT NULL,
    version    BIGINT  NOT NULL,
    expires_at BIGINT  NOT NULL,
    PRIMARY KEY (kind, key)
);
CREATE INDEX records_expiry ON records (expires_at);

-- Changes every replica must hear of (revoked tokens, cache evictions), in order.
CREATE TABLE events (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    topic      TEXT    NOT NULL,
    payload    TEXT    NOT NULL,
    created_ms BIGINT  NOT NULL,
    expires_at BIGINT  NOT NULL
);
CREATE INDEX events_created ON events (created_ms);
CREATE INDEX events_topic ON events (topic, expires_at);

-- The vendors' OAuth tokens, sealed (AES-256-GCM under store.encryption_key_file).
CREATE TABLE vendor_tokens (
    account    TEXT    PRIMARY KEY,
    sealed     BLOB    NOT NULL,
    generation BIGINT  NOT NULL,
    updated_at BIGINT  NOT NULL
);

-- Leases: one holder at a time across replicas (a vendor token refresh), until released or expired.
CREATE TABLE leases (
    name     TEXT   PRIMARY KEY,
    holder   TEXT   NOT NULL,
    until_ms BIGINT NOT NULL
);
