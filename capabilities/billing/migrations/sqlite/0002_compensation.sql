-- Compensation: when fulfillment cannot fulfil an invoice, billing voids it
-- (open) or refunds it in full (paid). The database enforces both statuses
-- and "compensated exactly once".
--
-- SQLite cannot alter a CHECK, so `invoices` is rebuilt. This runs inside
-- the migration's transaction, on a connection with foreign keys ON, where
-- `PRAGMA foreign_keys` cannot be changed. SQLite's documented 12-step
-- procedure (create `invoices_new`, copy, drop `invoices`, rename) assumes
-- foreign keys OFF and fails here: the DROP is refused, because
-- `invoice_lines` and `payments` reference `invoices`, and even with checks
-- deferred, the child rows stay counted as orphans at commit, since a rename
-- re-parents nothing. So instead:
--
--   1. checks are deferred to the commit (`defer_foreign_keys` resets itself
--      at the commit, so nothing lasting changes on the connection);
--   2. the rows are copied aside and `invoices` is dropped (its index too);
--   3. `invoices` is created again under its own name, so the children's
--      `REFERENCES invoices (id)` resolve to it, and the rows are copied back:
--      every insert re-parents its child rows, and the count of orphans is
--      zero again at the commit. A row lost on the way would leave an orphan
--      and fail the commit, and with it the whole migration.
PRAGMA defer_foreign_keys = ON;

CREATE TABLE invoices_0001 AS
    SELECT id, customer_id, currency, total_minor, status, created_at FROM invoices;

DROP TABLE invoices;

-- `voided`: cancelled before payment; `refunded`: paid, then refunded in full.
CREATE TABLE invoices (
    id           TEXT    PRIMARY KEY,
    customer_id  TEXT    NOT NULL,
    currency     TEXT    NOT NULL CHECK (length(currency) = 3),
    total_minor  INTEGER NOT NULL CHECK (total_minor >= 0),
    status       TEXT    NOT NULL CHECK (status IN ('open', 'paid', 'voided', 'refunded')),
    created_at   TEXT    NOT NULL
) WITHOUT ROWID;

INSERT INTO invoices (id, customer_id, currency, total_minor, status, created_at)
    SELECT id, customer_id, currency, total_minor, status, created_at FROM invoices_0001;

DROP TABLE invoices_0001;

CREATE INDEX invoices_customer ON invoices (customer_id);

-- "A failed invoice is refunded at most once" is enforced here: one refund
-- per invoice and per payment, whatever the application code does.
CREATE TABLE refunds (
    id            TEXT    PRIMARY KEY,
    invoice_id    TEXT    NOT NULL UNIQUE REFERENCES invoices (id),
    payment_id    TEXT    NOT NULL UNIQUE REFERENCES payments (id),
    amount_minor  INTEGER NOT NULL CHECK (amount_minor >= 0),
    currency      TEXT    NOT NULL CHECK (length(currency) = 3),
    reason        TEXT    NOT NULL,
    created_at    TEXT    NOT NULL
) WITHOUT ROWID;
