-- Dead letters can be asked to be replayed: status 'replay' until the
-- consumer's relay has delivered them again. SQLite cannot alter a CHECK,
-- so the table is rebuilt; nothing references it.
CREATE TABLE seams_dead_letters_v2 (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    subscription  TEXT    NOT NULL,
    event_id      TEXT    NOT NULL,
    event_type    TEXT    NOT NULL,
    subject       TEXT    NOT NULL,
    envelope      TEXT    NOT NULL,
    error         TEXT    NOT NULL,
    attempts      INTEGER NOT NULL,
    status        TEXT    NOT NULL DEFAULT 'parked' CHECK (status IN ('parked', 'replay', 'replayed')),
    created_at_ms INTEGER NOT NULL,
    UNIQUE (subscription, event_id)
);
INSERT INTO seams_dead_letters_v2 SELECT * FROM seams_dead_letters;
DROP TABLE seams_dead_letters;
ALTER TABLE seams_dead_letters_v2 RENAME TO seams_dead_letters;
CREATE INDEX seams_dead_letters_parked ON seams_dead_letters (subscription, subject, status);
