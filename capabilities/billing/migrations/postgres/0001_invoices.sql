-- Billing's own tables on PostgreSQL: the same tables and meanings as
-- migrations/sqlite (read those for why each exists), in PostgreSQL's
-- dialect. BIGINT throughout because billing reads every integer as i64.
-- Constraint names keep the column they guard in them: callers recognise a
-- violation by that column (`payments_invoice_id_key`, `invoices_status_check`).
CREATE TABLE invoices (
    id           TEXT   PRIMARY KEY,
    customer_id  TEXT   NOT NULL,
    currency     TEXT   NOT NULL CONSTRAINT invoices_currency_check CHECK (length(currency) = 3),
    total_minor  BIGINT NOT NULL CONSTRAINT invoices_total_minor_check CHECK (total_minor >= 0),
    status       TEXT   NOT NULL CONSTRAINT invoices_status_check CHECK (status IN ('open', 'paid')),
    created_at   TEXT   NOT NULL
);
CREATE INDEX invoices_customer ON invoices (customer_id);

CREATE TABLE invoice_lines (
    invoice_id       TEXT   NOT NULL REFERENCES invoices (id),
    line_no          BIGINT NOT NULL,
    sku              TEXT   NOT NULL,
    quantity         BIGINT NOT NULL CHECK (quantity > 0),
    unit_minor       BIGINT NOT NULL CHECK (unit_minor >= 0),
    line_total_minor BIGINT NOT NULL CHECK (line_total_minor = unit_minor * quantity),
    PRIMARY KEY (invoice_id, line_no)
);

-- "An invoice is paid at most once" is enforced here: one payment row per
-- invoice, whatever the application code does.
CREATE TABLE payments (
    id            TEXT   PRIMARY KEY,
    invoice_id    TEXT   NOT NULL CONSTRAINT payments_invoice_id_key UNIQUE REFERENCES invoices (id),
    amount_minor  BIGINT NOT NULL,
    currency      TEXT   NOT NULL,
    paid_at       TEXT   NOT NULL
);
