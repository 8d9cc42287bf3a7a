-- Catalog's own tables on PostgreSQL: the same table and meaning as
-- migrations/sqlite, in PostgreSQL's dialect. BIGINT because catalog reads
-- every integer as i64.
CREATE TABLE products (
    sku            TEXT   PRIMARY KEY,
    name           TEXT   NOT NULL,
    price_minor    BIGINT NOT NULL CHECK (price_minor >= 0),
    currency       TEXT   NOT NULL CHECK (length(currency) = 3),
    created_at     TEXT   NOT NULL
);
