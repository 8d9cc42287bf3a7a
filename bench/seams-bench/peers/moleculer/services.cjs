// Peer benchmark: the shop's capabilities as Moleculer services over SQLite.
//
// identity, catalog, fulfillment and billing, each with its own SQLite file
// in $DATA (WAL, synchronous=FULL, foreign keys on, as Seams' store opens
// them), through better-sqlite3 (synchronous: a commit blocks the event loop
// for its fsync; no group commit).
//
// billing.createInvoice is the durable, idempotent create-invoice: like
// Seams' billing it reads a stored response for (scope, Idempotency-Key)
// first and replays it (422 if the key came with another request), validates
// the cart, asks identity.get and catalog.quote (Moleculer calls: in process
// in both configurations, as the services share a broker), then writes in
// ONE transaction the idempotency record (status + exact response body +
// request fingerprint), the invoice row, its line rows and an outbox row
// holding the invoice-created event envelope, and answers 201 after COMMIT.
// Nothing reads the outbox: there is no relay, no consumer and no inbox.
"use strict";

const fs = require("node:fs");
const path = require("node:path");
const crypto = require("node:crypto");
const Database = require("better-sqlite3");
const { Errors } = require("moleculer");

const { MoleculerClientError } = Errors;

const DATA = process.env.DATA || path.join(process.cwd(), "peer-data");

function open(name, ddl) {
    fs.mkdirSync(DATA, { recursive: true });
    const db = new Database(path.join(DATA, `${name}.db`));
    db.pragma("journal_mode = WAL");
    db.pragma("synchronous = FULL");
    db.pragma("foreign_keys = ON");
    db.pragma("busy_timeout = 10000");
    db.exec(ddl);
    return db;
}

const IDEMPOTENCY_DDL = `
CREATE TABLE IF NOT EXISTS idempotency (
    scope         TEXT    NOT NULL,
    key           TEXT    NOT NULL,
    fingerprint   TEXT    NOT NULL,
    status        INTEGER NOT NULL,
    body          BLOB    NOT NULL,
    created_at_ms INTEGER NOT NULL,
    PRIMARY KEY (scope, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS idempotency_age ON idempotency (created_at_ms);
`;

const VALID_KEY = /^[\x21-\x7e]{1,255}$/;

function invalid(field, reason) {
    return new MoleculerClientError(`${field}: ${reason}`, 422, "invalid-field", { field, reason });
}

/** The request's Idempotency-Key (the gateway puts it in meta), checked. */
function keyOf(ctx) {
    const key = ctx.meta.idempotencyKey;
    if (key === undefined || key === null) {
        throw new MoleculerClientError("Idempotency-Key required", 428, "idempotency-key-required");
    }
    if (!VALID_KEY.test(key)) {
        throw new MoleculerClientError("Invalid Idempotency-Key", 400, "invalid-idempotency-key");
    }
    return key;
}

/** Hash of what identifies a request: method, path and body (as Seams' fingerprint). */
function fingerprint(method, route, body) {
    const h = crypto.createHash("sha256");
    for (const part of [method, route, body]) {
        const bytes = Buffer.from(part);
        const len = Buffer.alloc(8);
        len.writeBigUInt64BE(BigInt(bytes.length));
        h.update(len);
        h.update(bytes);
    }
    return h.digest("hex");
}

/** A 201 with its Location header (moleculer-web warns on every 201 without one). */
function created(ctx, location) {
    ctx.meta.$statusCode = 201;
    ctx.meta.$location = location;
}

/**
 * Answers with a stored first response, or 422 if the key came with another
 * request; `location` gives the Location header from the stored body.
 */
function replay(ctx, stored, fp, location) {
    if (stored.fingerprint !== fp) {
        throw new MoleculerClientError(
            "Idempotency-Key reused with a different request",
            422,
            "idempotency-key-reused",
        );
    }
    const body = JSON.parse(stored.body.toString("utf8"));
    ctx.meta.$statusCode = stored.status;
    if (stored.status === 201) {
        ctx.meta.$location = location(body);
    }
    ctx.meta.$responseHeaders = { "Idempotent-Replayed": "true" };
    return body;
}

function isPrimaryKeyClash(e) {
    return e && (e.code === "SQLITE_CONSTRAINT_PRIMARYKEY" || e.code === "SQLITE_CONSTRAINT_UNIQUE");
}

const identity = {
    name: "identity",
    created() {
        this.db = open(
            "identity",
            `CREATE TABLE IF NOT EXISTS customers (
                id            TEXT PRIMARY KEY,
                email         TEXT NOT NULL UNIQUE,
                name          TEXT NOT NULL,
                registered_at TEXT NOT NULL
            ) WITHOUT ROWID;`,
        );
        this.insert = this.db.prepare(
            "INSERT INTO customers (id, email, name, registered_at) VALUES (?, ?, ?, ?)",
        );
        this.byId = this.db.prepare("SELECT id, email, name, registered_at FROM customers WHERE id = ?");
    },
    stopped() {
        this.db.close();
    },
    actions: {
        register(ctx) {
            const { email, name } = ctx.params;
            if (typeof email !== "string" || !email.includes("@")) {
                throw invalid("email", "not an email address");
            }
            if (typeof name !== "string" || name.length === 0) {
                throw invalid("name", "empty");
            }
            const customer = {
                id: crypto.randomUUID(),
                email,
                name,
                registered_at: new Date().toISOString(),
            };
            try {
                this.insert.run(customer.id, email, name, customer.registered_at);
            } catch (e) {
                if (isPrimaryKeyClash(e)) {
                    throw new MoleculerClientError("email already registered", 409, "email-taken");
                }
                throw e;
            }
            created(ctx, `/identity/customers/${customer.id}`);
            return customer;
        },
        get(ctx) {
            const row = this.byId.get(ctx.params.id);
            if (!row) {
                throw new MoleculerClientError(`no customer ${ctx.params.id}`, 404, "customer-not-found");
            }
            return row;
        },
    },
};

const CURRENCIES = new Set(["EUR", "USD", "GBP"]);

const catalog = {
    name: "catalog",
    created() {
        this.db = open(
            "catalog",
            `CREATE TABLE IF NOT EXISTS products (
                sku         TEXT    PRIMARY KEY,
                name        TEXT    NOT NULL,
                price_minor INTEGER NOT NULL CHECK (price_minor >= 0),
                currency    TEXT    NOT NULL CHECK (length(currency) = 3)
            ) WITHOUT ROWID;`,
        );
        this.insert = this.db.prepare(
            "INSERT INTO products (sku, name, price_minor, currency) VALUES (?, ?, ?, ?)",
        );
        this.price = this.db.prepare("SELECT price_minor, currency FROM products WHERE sku = ?");
    },
    stopped() {
        this.db.close();
    },
    actions: {
        create(ctx) {
            const { sku, name, price } = ctx.params;
            if (typeof sku !== "string" || sku.length === 0) {
                throw invalid("sku", "missing");
            }
            if (!price || !Number.isInteger(price.amount) || price.amount < 0) {
                throw invalid("price.amount", "not a non-negative integer");
            }
            if (!CURRENCIES.has(price.currency)) {
                throw invalid("price.currency", "unknown currency");
            }
            try {
                this.insert.run(sku, String(name || ""), price.amount, price.currency);
            } catch (e) {
                if (isPrimaryKeyClash(e)) {
                    throw new MoleculerClientError(`product ${sku} exists`, 409, "product-exists");
                }
                throw e;
            }
            created(ctx, `/catalog/products/${encodeURIComponent(sku)}`);
            return { sku, name, price };
        },
        /** Prices of `skus`, in order; 404 naming the unknown ones. */
        quote(ctx) {
            const prices = [];
            const unknown = [];
            for (const sku of ctx.params.skus) {
                const row = this.price.get(sku);
                if (row) {
                    prices.push({ amount: row.price_minor, currency: row.currency });
                } else {
                    unknown.push(sku);
                }
            }
            if (unknown.length > 0) {
                throw new MoleculerClientError("unknown skus", 404, "unknown-skus", { skus: unknown });
            }
            return { prices };
        },
    },
};

/** Stock receipts only: nothing reserves stock here (Seams' fulfillment does, from events). */
const fulfillment = {
    name: "fulfillment",
    created() {
        this.db = open(
            "fulfillment",
            `CREATE TABLE IF NOT EXISTS stock (
                sku     TEXT    PRIMARY KEY,
                on_hand INTEGER NOT NULL CHECK (on_hand >= 0)
            ) WITHOUT ROWID;
            ${IDEMPOTENCY_DDL}`,
        );
        this.stored = this.db.prepare(
            "SELECT fingerprint, status, body FROM idempotency WHERE scope = ? AND key = ?",
        );
        const save = this.db.prepare(
            "INSERT INTO idempotency (scope, key, fingerprint, status, body, created_at_ms) VALUES (?, ?, ?, ?, ?, ?)",
        );
        const add = this.db.prepare(
            "INSERT INTO stock (sku, on_hand) VALUES (?, ?) ON CONFLICT (sku) DO UPDATE SET on_hand = on_hand + excluded.on_hand RETURNING on_hand",
        );
        this.receive = this.db.transaction((key, fp, sku, quantity) => {
            const onHand = add.get(sku, quantity).on_hand;
            const body = { sku, received: quantity, on_hand: onHand };
            save.run(SCOPE_STOCK, key, fp, 201, Buffer.from(JSON.stringify(body)), Date.now());
            return body;
        });
    },
    stopped() {
        this.db.close();
    },
    actions: {
        receive(ctx) {
            const key = keyOf(ctx);
            const fp = fingerprint("POST", "/fulfillment/stock", JSON.stringify(ctx.params));
            const stored = this.stored.get(SCOPE_STOCK, key);
            if (stored) {
                return replay(ctx, stored, fp, stockLocation);
            }
            const { sku, quantity } = ctx.params;
            if (typeof sku !== "string" || sku.length === 0) {
                throw invalid("sku", "missing");
            }
            if (!Number.isInteger(quantity) || quantity < 1 || quantity > 1000000) {
                throw invalid("quantity", "must be 1 to 1000000");
            }
            try {
                const body = this.receive(key, fp, sku, quantity);
                created(ctx, stockLocation(body));
                return body;
            } catch (e) {
                if (isPrimaryKeyClash(e)) {
                    return replay(ctx, this.stored.get(SCOPE_STOCK, key), fp, stockLocation);
                }
                throw e;
            }
        },
    },
};

const SCOPE_STOCK = "POST /fulfillment/stock";
const SCOPE_INVOICE = "POST /billing/invoices";
const stockLocation = (body) => `/fulfillment/stock/${encodeURIComponent(body.sku)}`;
const invoiceLocation = (body) => `/billing/invoices/${body.id}`;

function parseCart(cmd) {
    if (!cmd || typeof cmd.customer_id !== "string" || cmd.customer_id.length === 0) {
        throw invalid("customer_id", "missing");
    }
    if (!Array.isArray(cmd.lines) || cmd.lines.length === 0 || cmd.lines.length > 100) {
        throw invalid("lines", "1 to 100 lines");
    }
    const seen = new Set();
    return cmd.lines.map((line, i) => {
        if (!line || typeof line.sku !== "string" || line.sku.length === 0) {
            throw invalid(`lines[${i}].sku`, "missing");
        }
        if (seen.has(line.sku)) {
            throw invalid(`lines[${i}].sku`, "repeated");
        }
        seen.add(line.sku);
        if (!Number.isInteger(line.quantity) || line.quantity < 1 || line.quantity > 10000) {
            throw invalid(`lines[${i}].quantity`, "must be 1 to 10000");
        }
        return { sku: line.sku, quantity: line.quantity };
    });
}

const billing = {
    name: "billing",
    created() {
        this.db = open(
            "billing",
            `CREATE TABLE IF NOT EXISTS invoices (
                id           TEXT    PRIMARY KEY,
                customer_id  TEXT    NOT NULL,
                currency     TEXT    NOT NULL CHECK (length(currency) = 3),
                total_minor  INTEGER NOT NULL CHECK (total_minor >= 0),
                status       TEXT    NOT NULL CHECK (status IN ('open', 'paid', 'voided', 'refunded')),
                created_at   TEXT    NOT NULL
            ) WITHOUT ROWID;
            CREATE INDEX IF NOT EXISTS invoices_customer ON invoices (customer_id);
            CREATE TABLE IF NOT EXISTS invoice_lines (
                invoice_id       TEXT    NOT NULL REFERENCES invoices (id),
                line_no          INTEGER NOT NULL,
                sku              TEXT    NOT NULL,
                quantity         INTEGER NOT NULL CHECK (quantity > 0),
                unit_minor       INTEGER NOT NULL CHECK (unit_minor >= 0),
                line_total_minor INTEGER NOT NULL CHECK (line_total_minor = unit_minor * quantity),
                PRIMARY KEY (invoice_id, line_no)
            ) WITHOUT ROWID;
            CREATE TABLE IF NOT EXISTS outbox (
                seq           INTEGER PRIMARY KEY AUTOINCREMENT,
                event_id      TEXT    NOT NULL UNIQUE,
                event_type    TEXT    NOT NULL,
                subject       TEXT    NOT NULL,
                envelope      TEXT    NOT NULL,
                created_at_ms INTEGER NOT NULL
            );
            ${IDEMPOTENCY_DDL}`,
        );
        this.stored = this.db.prepare(
            "SELECT fingerprint, status, body FROM idempotency WHERE scope = ? AND key = ?",
        );
        const save = this.db.prepare(
            "INSERT INTO idempotency (scope, key, fingerprint, status, body, created_at_ms) VALUES (?, ?, ?, ?, ?, ?)",
        );
        const insertInvoice = this.db.prepare(
            "INSERT INTO invoices (id, customer_id, currency, total_minor, status, created_at) VALUES (?, ?, ?, ?, ?, ?)",
        );
        const insertLine = this.db.prepare(
            "INSERT INTO invoice_lines (invoice_id, line_no, sku, quantity, unit_minor, line_total_minor) VALUES (?, ?, ?, ?, ?, ?)",
        );
        const publish = this.db.prepare(
            "INSERT INTO outbox (event_id, event_type, subject, envelope, created_at_ms) VALUES (?, ?, ?, ?, ?)",
        );
        // One transaction per command: response, invoice, lines, event.
        this.insertInvoice = this.db.transaction((key, fp, inv, body, env, nowMs) => {
            save.run(SCOPE_INVOICE, key, fp, 201, body, nowMs);
            insertInvoice.run(inv.id, inv.customer_id, inv.total.currency, inv.total.amount, inv.status, inv.created_at);
            inv.lines.forEach((l, i) => {
                insertLine.run(inv.id, i, l.sku, l.quantity, l.unit_price.amount, l.line_total.amount);
            });
            publish.run(env.id, env.type, env.subject, JSON.stringify(env), nowMs);
        });
    },
    stopped() {
        this.db.close();
    },
    actions: {
        async createInvoice(ctx) {
            const key = keyOf(ctx);
            const fp = fingerprint("POST", "/billing/invoices", JSON.stringify(ctx.params));
            const stored = this.stored.get(SCOPE_INVOICE, key);
            if (stored) {
                return replay(ctx, stored, fp, invoiceLocation);
            }
            const lines = parseCart(ctx.params);
            const customerId = ctx.params.customer_id;
            try {
                await ctx.call("identity.get", { id: customerId });
            } catch (e) {
                if (e && e.code === 404) {
                    throw invalid("customer_id", `no customer ${customerId}`);
                }
                throw e;
            }
            let prices;
            try {
                ({ prices } = await ctx.call("catalog.quote", { skus: lines.map((l) => l.sku) }));
            } catch (e) {
                if (e && e.code === 404) {
                    throw invalid("lines.sku", `no product ${e.data && e.data.skus}`);
                }
                throw e;
            }
            const currency = prices[0].currency;
            let total = 0;
            const priced = lines.map((l, i) => {
                if (prices[i].currency !== currency) {
                    throw invalid(`lines[${i}].sku`, "mixed currencies");
                }
                const lineTotal = prices[i].amount * l.quantity;
                total += lineTotal;
                return {
                    sku: l.sku,
                    quantity: l.quantity,
                    unit_price: { amount: prices[i].amount, currency },
                    line_total: { amount: lineTotal, currency },
                };
            });
            const nowMs = Date.now();
            const now = new Date(nowMs).toISOString();
            const invoice = {
                id: crypto.randomUUID(),
                customer_id: customerId,
                lines: priced,
                total: { amount: total, currency },
                status: "open",
                created_at: now,
            };
            const env = {
                specversion: "1.0",
                id: crypto.randomUUID(),
                source: "/seams/billing",
                type: "billing.invoice-created",
                subject: invoice.id,
                time: now,
                datacontenttype: "application/json",
                dataversion: 1,
                correlationid: ctx.requestID,
                data: { invoice_id: invoice.id, customer_id: customerId, lines: priced, total: invoice.total },
            };
            const body = Buffer.from(JSON.stringify(invoice));
            try {
                this.insertInvoice(key, fp, invoice, body, env, nowMs);
            } catch (e) {
                if (isPrimaryKeyClash(e)) {
                    // Another request with this key committed first: its answer.
                    return replay(ctx, this.stored.get(SCOPE_INVOICE, key), fp, invoiceLocation);
                }
                throw e;
            }
            created(ctx, invoiceLocation(invoice));
            return invoice;
        },
    },
};

module.exports = { identity, catalog, fulfillment, billing };
