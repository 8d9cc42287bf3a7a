-- Identity's own tables on PostgreSQL: the same table and meaning as
-- migrations/sqlite (read it for why the UNIQUE and the CHECK exist), in
-- PostgreSQL's dialect.
--
-- The UNIQUE constraint's name contains `email`, which is how identity tells
-- a taken address from any other uniqueness violation (PostgreSQL reports
-- the constraint's name, SQLite `customers.email`).
--
-- The CHECK folds under the "C" collation, ASCII only, like SQLite's
-- lower(): the backstop then means the same on both backends, whatever
-- locale the database was created with.
CREATE TABLE customers (
    id          TEXT NOT NULL PRIMARY KEY,
    email       TEXT NOT NULL,
    name        TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    CONSTRAINT customers_email_unique UNIQUE (email),
    CONSTRAINT customers_email_normalized CHECK (email = lower(trim(email) COLLATE "C"))
);
