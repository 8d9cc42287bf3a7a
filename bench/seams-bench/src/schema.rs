//! The tables the raw SQLite baseline writes: the ones create-invoice writes
//! in billing's database, as billing's and the framework's migrations leave
//! them. A baseline on other tables would measure something else; the test
//! beside this module compares the two structures column by column and
//! index by index.

/// DDL of the invoice, invoice line, outbox and idempotency tables.
pub const CREATE_INVOICE_TABLES: &[&str] = &[
    "CREATE TABLE invoices (
        id           TEXT    PRIMARY KEY,
        customer_id  TEXT    NOT NULL,
        currency     TEXT    NOT NULL CHECK (length(currency) = 3),
        total_minor  INTEGER NOT NULL CHECK (total_minor >= 0),
        status       TEXT    NOT NULL CHECK (status IN ('open', 'paid', 'voided', 'refunded')),
        created_at   TEXT    NOT NULL
    ) WITHOUT ROWID",
    "CREATE INDEX invoices_customer ON invoices (customer_id)",
    "CREATE TABLE invoice_lines (
        invoice_id       TEXT    NOT NULL REFERENCES invoices (id),
        line_no          INTEGER NOT NULL,
        sku              TEXT    NOT NULL,
        quantity         INTEGER NOT NULL CHECK (quantity > 0),
        unit_minor       INTEGER NOT NULL CHECK (unit_minor >= 0),
        line_total_minor INTEGER NOT NULL CHECK (line_total_minor = unit_minor * quantity),
        PRIMARY KEY (invoice_id, line_no)
    ) WITHOUT ROWID",
    "CREATE TABLE seams_outbox (
        seq           INTEGER PRIMARY KEY AUTOINCREMENT,
        event_id      TEXT    NOT NULL UNIQUE,
        event_type    TEXT    NOT NULL,
        subject       TEXT    NOT NULL,
        envelope      TEXT    NOT NULL,
        created_at_ms INTEGER NOT NULL
    )",
    "CREATE TABLE seams_idempotency (
        id            INTEGER PRIMARY KEY,
        scope         TEXT    NOT NULL,
        key           TEXT    NOT NULL,
        fingerprint   TEXT    NOT NULL,
        status        INTEGER NOT NULL,
        body          BLOB    NOT NULL,
        created_at_ms INTEGER NOT NULL,
        UNIQUE (scope, key)
    )",
    "CREATE INDEX seams_idempotency_age ON seams_idempotency (created_at_ms)",
];

/// The tables [`CREATE_INVOICE_TABLES`] creates.
pub const TABLES: [&str; 4] = [
    "invoices",
    "invoice_lines",
    "seams_outbox",
    "seams_idempotency",
];

#[cfg(test)]
mod tests;
