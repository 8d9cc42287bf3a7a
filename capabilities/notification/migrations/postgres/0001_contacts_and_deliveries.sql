-- Notification's tables on PostgreSQL: the same tables and meanings as
-- migrations/sqlite (read those for why each exists), in PostgreSQL's
-- dialect. BIGINT throughout because the code reads every integer as i64.

CREATE TABLE contacts (
    customer_id     TEXT PRIMARY KEY,
    email           TEXT NOT NULL,
    name            TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    source_event_id TEXT NOT NULL
);

CREATE TABLE deliveries (
    -- "Oldest first"; the capability's single writer makes it commit order.
    seq                BIGSERIAL PRIMARY KEY,
    id                 TEXT   NOT NULL UNIQUE,
    customer_id        TEXT   NOT NULL,
    -- UNIQUE: one event never yields two messages, even after the inbox
    -- row is pruned.
    event_id           TEXT   NOT NULL UNIQUE,
    event_type         TEXT   NOT NULL,
    channel            TEXT   NOT NULL,
    recipient          TEXT   NOT NULL,
    recipient_name     TEXT   NOT NULL,
    subject            TEXT   NOT NULL,
    body               TEXT   NOT NULL,
    status             TEXT   NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts           BIGINT NOT NULL CHECK (attempts >= 0),
    next_attempt_at_ms BIGINT NOT NULL,
    last_error         TEXT,
    created_at         TEXT   NOT NULL,
    delivered_at       TEXT
);
CREATE INDEX deliveries_due ON deliveries (status, next_attempt_at_ms, seq);
CREATE INDEX deliveries_by_customer ON deliveries (customer_id, seq);
