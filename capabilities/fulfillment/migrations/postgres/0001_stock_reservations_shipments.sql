-- Fulfillment's tables on PostgreSQL: the same tables, constraint names and
-- meanings as migrations/sqlite (read those for why each exists), in
-- PostgreSQL's dialect. BIGINT throughout because the code reads every
-- integer as i64.

-- The constraint names are the ones SQLite's history uses: tests and
-- operators recognise a refused statement by them.
CREATE TABLE stock (
    sku       TEXT   PRIMARY KEY,
    on_hand   BIGINT NOT NULL CONSTRAINT stock_on_hand_non_negative CHECK (on_hand >= 0),
    reserved  BIGINT NOT NULL CONSTRAINT stock_reserved_non_negative CHECK (reserved >= 0),
    CONSTRAINT stock_reserved_within_on_hand CHECK (reserved <= on_hand)
);

CREATE TABLE reservations (
    invoice_id   TEXT   NOT NULL,
    sku          TEXT   NOT NULL REFERENCES stock (sku),
    quantity     BIGINT NOT NULL CHECK (quantity > 0),
    status       TEXT   NOT NULL CHECK (status IN ('reserved', 'shipped', 'released')),
    reserved_at  TEXT   NOT NULL,
    PRIMARY KEY (invoice_id, sku)
);

CREATE TABLE failed_invoices (
    invoice_id  TEXT PRIMARY KEY,
    event_id    TEXT NOT NULL,
    failed_at   TEXT NOT NULL
);

CREATE TABLE shipments (
    -- PostgreSQL has no implicit rowid: `seq` is the insertion order SQLite's
    -- rowid gives ("oldest first" without trusting clocks or id formats).
    -- Not the primary key, so `id` stays what shipment_lines references.
    seq              BIGSERIAL NOT NULL UNIQUE,
    id               TEXT      PRIMARY KEY,
    invoice_id       TEXT      NOT NULL UNIQUE,
    customer_id      TEXT      NOT NULL,
    status           TEXT      NOT NULL CHECK (status IN ('created', 'dispatched')),
    created_at       TEXT      NOT NULL,
    dispatched_at    TEXT,
    paid_event_time  TEXT      NOT NULL,
    cause_event_id   TEXT      NOT NULL,
    correlation_id   TEXT      NOT NULL,
    traceparent      TEXT,
    CHECK ((status = 'dispatched') = (dispatched_at IS NOT NULL))
);
-- The dispatcher's question: which shipments are waiting, oldest first.
CREATE INDEX shipments_by_status ON shipments (status, seq);

CREATE TABLE shipment_lines (
    shipment_id  TEXT   NOT NULL REFERENCES shipments (id),
    line_no      BIGINT NOT NULL,
    sku          TEXT   NOT NULL,
    quantity     BIGINT NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (shipment_id, line_no)
);
