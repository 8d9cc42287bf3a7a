-- Framework tables, present in every capability's database. Versions of
-- framework migrations start at 10001 so they never collide with a
-- capability's own (which start at 1); both migrators ignore each other's.

-- Transactional outbox: events are rows written in the same transaction as
-- the state change. AUTOINCREMENT so a sequence number is never reused after
-- pruning: consumers' cursors are positions in this table.
CREATE TABLE seams_outbox (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id      TEXT    NOT NULL UNIQUE,
    event_type    TEXT    NOT NULL,
    subject       TEXT    NOT NULL,
    envelope      TEXT    NOT NULL,
    created_at_ms INTEGER NOT NULL
);

-- How far each known subscriber has read this capability's outbox. Rows at or
-- below the minimum are delivered everywhere and may be pruned.
CREATE TABLE seams_feed_acks (
    subscriber    TEXT    PRIMARY KEY,
    acked_seq     INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL
);

-- Inbox: event ids this capability's consumers have applied, written in the
-- consumer's own transaction, so redelivery has no second effect.
CREATE TABLE seams_inbox (
    consumer      TEXT    NOT NULL,
    event_id      TEXT    NOT NULL,
    handled_at_ms INTEGER NOT NULL,
    PRIMARY KEY (consumer, event_id)
) WITHOUT ROWID;
CREATE INDEX seams_inbox_age ON seams_inbox (handled_at_ms);

-- This capability's position in each feed it consumes.
CREATE TABLE seams_cursors (
    subscription  TEXT    PRIMARY KEY,
    position      INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL
);

-- Events a consumer gave up on after bounded retries (or could not decode):
-- kept with the error and the attempts, never dropped.
CREATE TABLE seams_dead_letters (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    subscription  TEXT    NOT NULL,
    event_id      TEXT    NOT NULL,
    event_type    TEXT    NOT NULL,
    subject       TEXT    NOT NULL,
    envelope      TEXT    NOT NULL,
    error         TEXT    NOT NULL,
    attempts      INTEGER NOT NULL,
    status        TEXT    NOT NULL DEFAULT 'parked' CHECK (status IN ('parked', 'replayed')),
    created_at_ms INTEGER NOT NULL,
    UNIQUE (subscription, event_id)
);
CREATE INDEX seams_dead_letters_parked ON seams_dead_letters (subscription, subject, status);

-- Idempotency records: the first successful response to a keyed command,
-- written in the same transaction as the command's effect.
CREATE TABLE seams_idempotency (
    scope         TEXT    NOT NULL,
    key           TEXT    NOT NULL,
    fingerprint   TEXT    NOT NULL,
    status        INTEGER NOT NULL,
    body          BLOB    NOT NULL,
    created_at_ms INTEGER NOT NULL,
    PRIMARY KEY (scope, key)
) WITHOUT ROWID;
CREATE INDEX seams_idempotency_age ON seams_idempotency (created_at_ms);
