-- Events whose delivery failed for now and is tried again later, aside
-- from the feed, so that one failing event holds up only its own key:
-- the relay moves on past it, and later events with the same key (per-key
-- ordering) wait here behind it, attempts 0, in feed order (id).
CREATE TABLE seams_retries (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    subscription       TEXT    NOT NULL,
    event_id           TEXT    NOT NULL,
    subject            TEXT    NOT NULL,
    envelope           TEXT    NOT NULL,
    attempts           INTEGER NOT NULL,
    next_attempt_at_ms INTEGER NOT NULL,
    error              TEXT    NOT NULL,
    created_at_ms      INTEGER NOT NULL,
    UNIQUE (subscription, event_id)
);
CREATE INDEX seams_retries_by_key ON seams_retries (subscription, subject, id);
