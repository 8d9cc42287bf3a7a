-- Framework tables on PostgreSQL: the same tables and meanings as
-- migrations/sqlite (read those for why each exists), in PostgreSQL's
-- dialect. BIGINT throughout because the store reads every integer as i64.
-- The SQLite history's version 10002 (a table rebuild to widen a CHECK) has
-- no counterpart: a new PostgreSQL database starts at the final shape.

CREATE TABLE seams_outbox (
    -- A sequence never hands out a value twice, so positions survive pruning.
    seq           BIGSERIAL PRIMARY KEY,
    event_id      TEXT   NOT NULL UNIQUE,
    event_type    TEXT   NOT NULL,
    subject       TEXT   NOT NULL,
    envelope      TEXT   NOT NULL,
    created_at_ms BIGINT NOT NULL
);

CREATE TABLE seams_feed_acks (
    subscriber    TEXT   PRIMARY KEY,
    acked_seq     BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);

CREATE TABLE seams_inbox (
    consumer      TEXT   NOT NULL,
    event_id      TEXT   NOT NULL,
    handled_at_ms BIGINT NOT NULL,
    PRIMARY KEY (consumer, event_id)
);
CREATE INDEX seams_inbox_age ON seams_inbox (handled_at_ms);

CREATE TABLE seams_cursors (
    subscription  TEXT   PRIMARY KEY,
    position      BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);

CREATE TABLE seams_dead_letters (
    id            BIGSERIAL PRIMARY KEY,
    subscription  TEXT   NOT NULL,
    event_id      TEXT   NOT NULL,
    event_type    TEXT   NOT NULL,
    subject       TEXT   NOT NULL,
    envelope      TEXT   NOT NULL,
    error         TEXT   NOT NULL,
    attempts      BIGINT NOT NULL,
    status        TEXT   NOT NULL DEFAULT 'parked' CHECK (status IN ('parked', 'replay', 'replayed')),
    created_at_ms BIGINT NOT NULL,
    UNIQUE (subscription, event_id)
);
CREATE INDEX seams_dead_letters_parked ON seams_dead_letters (subscription, subject, status);

CREATE TABLE seams_idempotency (
    scope         TEXT   NOT NULL,
    key           TEXT   NOT NULL,
    fingerprint   TEXT   NOT NULL,
    status        BIGINT NOT NULL,
    body          BYTEA  NOT NULL,
    created_at_ms BIGINT NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX seams_idempotency_age ON seams_idempotency (created_at_ms);
