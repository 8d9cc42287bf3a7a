-- Fulfillment's own tables. Only fulfillment reads or writes them.

-- Stock per SKU. "Stock never goes negative" is enforced here, whatever the
-- application code does: the named constraints turn a wrong decision into a
-- refused statement (and a rolled-back transaction), never a bad row.
-- `reserved` counts units promised to invoices and not yet shipped, so
-- `on_hand - reserved` is what can still be promised.
CREATE TABLE stock (
    sku       TEXT    PRIMARY KEY,
    on_hand   INTEGER NOT NULL CONSTRAINT stock_on_hand_non_negative CHECK (on_hand >= 0),
    reserved  INTEGER NOT NULL CONSTRAINT stock_reserved_non_negative CHECK (reserved >= 0),
    CONSTRAINT stock_reserved_within_on_hand CHECK (reserved <= on_hand)
) WITHOUT ROWID;

-- Units of one SKU set aside for one invoice: one row per (invoice, SKU),
-- the quantities of several lines with the same SKU summed. A row leaves
-- 'reserved' exactly once: to 'shipped' when the invoice is paid, or to
-- 'released' when it is voided. Rows are kept, so what happened to an
-- invoice's stock stays visible.
CREATE TABLE reservations (
    invoice_id   TEXT    NOT NULL,
    sku          TEXT    NOT NULL REFERENCES stock (sku),
    quantity     INTEGER NOT NULL CHECK (quantity > 0),
    status       TEXT    NOT NULL CHECK (status IN ('reserved', 'shipped', 'released')),
    reserved_at  TEXT    NOT NULL,
    PRIMARY KEY (invoice_id, sku)
) WITHOUT ROWID;

-- Invoices nothing could be reserved for (fulfillment-failed was published).
-- A second guard behind the inbox, which is pruned after its retention: an
-- invoice-created that comes again never publishes a second failure.
CREATE TABLE failed_invoices (
    invoice_id  TEXT PRIMARY KEY,
    event_id    TEXT NOT NULL,
    failed_at   TEXT NOT NULL
) WITHOUT ROWID;

-- One shipment per paid invoice (UNIQUE: a redelivered invoice-paid can
-- never ship twice). Not WITHOUT ROWID: the implicit rowid is insertion
-- order, which gives "oldest first" without trusting clocks or id formats
-- (rows are never deleted, so rowids only grow).
--
-- `paid_event_time` is the invoice-paid envelope's time (billing's commit),
-- the start of the paid-invoice-dispatched lag. `cause_event_id`,
-- `correlation_id` and `traceparent` are those of the shipment-created
-- event, so shipment-dispatched continues the same causal chain.
CREATE TABLE shipments (
    id               TEXT    PRIMARY KEY,
    invoice_id       TEXT    NOT NULL UNIQUE,
    customer_id      TEXT    NOT NULL,
    status           TEXT    NOT NULL CHECK (status IN ('created', 'dispatched')),
    created_at       TEXT    NOT NULL,
    dispatched_at    TEXT,
    paid_event_time  TEXT    NOT NULL,
    cause_event_id   TEXT    NOT NULL,
    correlation_id   TEXT    NOT NULL,
    traceparent      TEXT,
    CHECK ((status = 'dispatched') = (dispatched_at IS NOT NULL))
);
-- The dispatcher's question: which shipments are waiting, oldest first.
CREATE INDEX shipments_by_status ON shipments (status);

CREATE TABLE shipment_lines (
    shipment_id  TEXT    NOT NULL REFERENCES shipments (id),
    line_no      INTEGER NOT NULL,
    sku          TEXT    NOT NULL,
    quantity     INTEGER NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (shipment_id, line_no)
) WITHOUT ROWID;
