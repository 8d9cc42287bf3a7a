-- Billing's own tables. Only billing reads or writes them.
CREATE TABLE invoices (
    id           TEXT    PRIMARY KEY,
    customer_id  TEXT    NOT NULL,
    currency     TEXT    NOT NULL CHECK (length(currency) = 3),
    total_minor  INTEGER NOT NULL CHECK (total_minor >= 0),
    status       TEXT    NOT NULL CHECK (status IN ('open', 'paid')),
    created_at   TEXT    NOT NULL
) WITHOUT ROWID;
CREATE INDEX invoices_customer ON invoices (customer_id);

CREATE TABLE invoice_lines (
    invoice_id       TEXT    NOT NULL REFERENCES invoices (id),
    line_no          INTEGER NOT NULL,
    sku              TEXT    NOT NULL,
    quantity         INTEGER NOT NULL CHECK (quantity > 0),
    unit_minor       INTEGER NOT NULL CHECK (unit_minor >= 0),
    line_total_minor INTEGER NOT NULL CHECK (line_total_minor = unit_minor * quantity),
    PRIMARY KEY (invoice_id, line_no)
) WITHOUT ROWID;

-- "An invoice is paid at most once" is enforced here: one payment row per
-- invoice, whatever the application code does.
CREATE TABLE payments (
    id            TEXT    PRIMARY KEY,
    invoice_id    TEXT    NOT NULL UNIQUE REFERENCES invoices (id),
    amount_minor  INTEGER NOT NULL,
    currency      TEXT    NOT NULL,
    paid_at       TEXT    NOT NULL
) WITHOUT ROWID;
