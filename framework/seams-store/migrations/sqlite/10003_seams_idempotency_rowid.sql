-- Idempotency records move from a WITHOUT ROWID table keyed by (scope, key)
-- to a rowid table with a unique index on (scope, key). Keys arrive in no
-- useful order (clients pick them), and in the old table every record, body
-- included, went into the B-tree at its key's place: about eight rows a
-- page, so a group commit dirtied and split a page per command. Now records
-- are appended and only the small index cells land at random: about half
-- the bytes written and the CPU per record (BENCHMARKS.md, idempotency
-- records). PostgreSQL's table is a heap with a primary-key index already.
CREATE TABLE seams_idempotency_v2 (
    id            INTEGER PRIMARY KEY,
    scope         TEXT    NOT NULL,
    key           TEXT    NOT NULL,
    fingerprint   TEXT    NOT NULL,
    status        INTEGER NOT NULL,
    body          BLOB    NOT NULL,
    created_at_ms INTEGER NOT NULL,
    UNIQUE (scope, key)
);
INSERT INTO seams_idempotency_v2 (scope, key, fingerprint, status, body, created_at_ms)
    SELECT scope, key, fingerprint, status, body, created_at_ms FROM seams_idempotency
    ORDER BY created_at_ms;
DROP TABLE seams_idempotency;
ALTER TABLE seams_idempotency_v2 RENAME TO seams_idempotency;
CREATE INDEX seams_idempotency_age ON seams_idempotency (created_at_ms);
