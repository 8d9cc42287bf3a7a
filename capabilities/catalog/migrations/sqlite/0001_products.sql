-- Catalog's own tables. Only catalog reads or writes them.
CREATE TABLE products (
    sku            TEXT    PRIMARY KEY,
    name           TEXT    NOT NULL,
    price_minor    INTEGER NOT NULL CHECK (price_minor >= 0),
    currency       TEXT    NOT NULL CHECK (length(currency) = 3),
    created_at     TEXT    NOT NULL
) WITHOUT ROWID;
