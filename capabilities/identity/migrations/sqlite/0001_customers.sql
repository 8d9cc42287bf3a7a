-- Identity's own tables. Only identity reads or writes them.
--
-- `email` holds the normalized address (trimmed, lowercased by identity's
-- domain), so the UNIQUE constraint is what makes "one customer per address"
-- an immediate invariant, even under concurrent registrations. The CHECK is a
-- backstop against a caller storing a non-normalized address, which would
-- slip past the uniqueness (SQLite's lower() folds ASCII only, which is
-- enough to catch the common mistake).
CREATE TABLE customers (
    id          TEXT NOT NULL PRIMARY KEY,
    email       TEXT NOT NULL,
    name        TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    CONSTRAINT customers_email_unique UNIQUE (email),
    CONSTRAINT customers_email_normalized CHECK (email = lower(trim(email)))
) WITHOUT ROWID;
