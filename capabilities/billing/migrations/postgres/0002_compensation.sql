-- Compensation: when fulfillment cannot fulfil an invoice, billing voids it
-- (open) or refunds it in full (paid). The database enforces both statuses
-- and "compensated exactly once".
--
-- PostgreSQL alters a CHECK in place, so where the SQLite history rebuilds
-- `invoices`, this only replaces the constraint (under the same name, which
-- names the column a violation is recognised by).

-- `voided`: cancelled before payment; `refunded`: paid, then refunded in full.
ALTER TABLE invoices
    DROP CONSTRAINT invoices_status_check,
    ADD CONSTRAINT invoices_status_check CHECK (status IN ('open', 'paid', 'voided', 'refunded'));

-- "A failed invoice is refunded at most once" is enforced here: one refund
-- per invoice and per payment, whatever the application code does.
CREATE TABLE refunds (
    id            TEXT   PRIMARY KEY,
    invoice_id    TEXT   NOT NULL CONSTRAINT refunds_invoice_id_key UNIQUE REFERENCES invoices (id),
    payment_id    TEXT   NOT NULL CONSTRAINT refunds_payment_id_key UNIQUE REFERENCES payments (id),
    amount_minor  BIGINT NOT NULL CHECK (amount_minor >= 0),
    currency      TEXT   NOT NULL CHECK (length(currency) = 3),
    reason        TEXT   NOT NULL,
    created_at    TEXT   NOT NULL
);
