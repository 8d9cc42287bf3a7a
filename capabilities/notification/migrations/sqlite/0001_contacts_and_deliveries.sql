-- Notification's own tables. Only notification reads or writes them.

-- Contact read model: a copy of what identity announced about each customer,
-- so that sending never asks identity (identity being down must not stop
-- mail, and an invoice must not wait on a synchronous call). `updated_at`
-- and `source_event_id` say how fresh each row is and which event wrote it.
CREATE TABLE contacts (
    customer_id     TEXT    PRIMARY KEY,
    email           TEXT    NOT NULL,
    name            TEXT    NOT NULL,
    updated_at      TEXT    NOT NULL,
    source_event_id TEXT    NOT NULL
) WITHOUT ROWID;

-- Delivery log: one row per message, written in the same transaction as the
-- inbox row of the event that caused it, then updated by the sender. Rows are
-- never deleted, so a failed message stays visible.
--
-- `seq` gives "oldest first" without trusting clocks or id formats; the
-- single SQLite writer makes it commit order.
CREATE TABLE deliveries (
    seq                INTEGER PRIMARY KEY AUTOINCREMENT,
    id                 TEXT    NOT NULL UNIQUE,
    customer_id        TEXT    NOT NULL,
    -- UNIQUE: a second guard behind the inbox, which is pruned after its
    -- retention; one event never yields two messages.
    event_id           TEXT    NOT NULL UNIQUE,
    event_type         TEXT    NOT NULL,
    channel            TEXT    NOT NULL,
    recipient          TEXT    NOT NULL,
    recipient_name     TEXT    NOT NULL,
    subject            TEXT    NOT NULL,
    body               TEXT    NOT NULL,
    status             TEXT    NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts           INTEGER NOT NULL CHECK (attempts >= 0),
    next_attempt_at_ms INTEGER NOT NULL,
    last_error         TEXT,
    created_at         TEXT    NOT NULL,
    delivered_at       TEXT
);
-- The sender's question: which pending messages are due, oldest first.
CREATE INDEX deliveries_due ON deliveries (status, next_attempt_at_ms, seq);
-- The public question: one customer's messages.
CREATE INDEX deliveries_by_customer ON deliveries (customer_id, seq);
