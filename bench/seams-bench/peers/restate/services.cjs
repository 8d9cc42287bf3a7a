// Peer benchmark: the shop's create-invoice as Restate virtual objects.
//
// A Restate service endpoint (HTTP/2, the Restate server calls it). Four
// virtual objects, each keyed by what identifies the thing:
//
//   customer/{id}        register (exclusive), get (shared)
//   product/{sku}        create (exclusive), quote (shared)
//   stock/{sku}          receive (exclusive): adds units; no reservation
//   invoice/{idem-key}   create (exclusive): the durable, idempotent create-invoice
//
// invoice.create does what billing's create_invoice does, the Restate way:
// validates the cart, asks customer/{id}.get and product/{sku}.quote (durable
// calls, journaled), takes the time (journaled) and a deterministic UUID, and
// stores the invoice (lines inside) and an invoice-created event envelope in
// the object's state. The front passes the client's Idempotency-Key both as
// the object key and as Restate's `idempotency-key` header, so a repeated
// key gets the first result (Restate's ingress deduplication), and a call
// that reaches the object again anyway returns the stored invoice.
//
// Usage: node services.cjs   (prints "listening on http://127.0.0.1:PORT";
// PORT from the environment, default 0: a free port)
"use strict";

// The SDK calls Promise.withResolvers, which Node 20 lacks.
if (typeof Promise.withResolvers !== "function") {
    Promise.withResolvers = function withResolvers() {
        let resolve;
        let reject;
        const promise = new Promise((res, rej) => {
            resolve = res;
            reject = rej;
        });
        return { promise, resolve, reject };
    };
}

const http2 = require("node:http2");
const restate = require("@restatedev/restate-sdk");

const { TerminalError } = restate;

/** A 4xx answer the front passes on; also the invocation's (stored) result. */
function invalid(field, reason) {
    return new TerminalError(`invalid-field: ${field}: ${reason}`, { errorCode: 422 });
}

const customer = restate.object({
    name: "customer",
    handlers: {
        register: async (ctx, input) => {
            const known = await ctx.get("customer");
            if (known) {
                return known;
            }
            if (!input || typeof input.email !== "string" || !input.email.includes("@")) {
                throw invalid("email", "not an email address");
            }
            if (typeof input.name !== "string" || input.name.length === 0) {
                throw invalid("name", "empty");
            }
            const registered = {
                id: ctx.key,
                email: input.email,
                name: input.name,
                registered_at: new Date(await ctx.date.now()).toISOString(),
            };
            ctx.set("customer", registered);
            return registered;
        },
        get: restate.handlers.object.shared(async (ctx) => {
            const known = await ctx.get("customer");
            if (!known) {
                throw new TerminalError(`no customer ${ctx.key}`, { errorCode: 404 });
            }
            return known;
        }),
    },
});

const CURRENCIES = new Set(["EUR", "USD", "GBP"]);

const product = restate.object({
    name: "product",
    handlers: {
        create: async (ctx, input) => {
            const price = input && input.price;
            if (!price || !Number.isInteger(price.amount) || price.amount < 0) {
                throw invalid("price.amount", "not a non-negative integer");
            }
            if (!CURRENCIES.has(price.currency)) {
                throw invalid("price.currency", "unknown currency");
            }
            const created = { sku: ctx.key, name: String(input.name || ""), price };
            ctx.set("product", created);
            return created;
        },
        quote: restate.handlers.object.shared(async (ctx) => {
            const known = await ctx.get("product");
            if (!known) {
                throw new TerminalError(`no product ${ctx.key}`, { errorCode: 404 });
            }
            return known.price;
        }),
    },
});

const stock = restate.object({
    name: "stock",
    handlers: {
        receive: async (ctx, input) => {
            const quantity = input && input.quantity;
            if (!Number.isInteger(quantity) || quantity < 1 || quantity > 1000000) {
                throw invalid("quantity", "must be 1 to 1000000");
            }
            const onHand = ((await ctx.get("on_hand")) || 0) + quantity;
            ctx.set("on_hand", onHand);
            return { sku: ctx.key, received: quantity, on_hand: onHand };
        },
    },
});

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

// LOOKUPS=0 (the `restate-store-only` system of run.sh): invoice.create
// skips the calls to customer and product and prices every line at the
// benchmark product's price. NOT equivalent to Seams' create-invoice: it
// shows what one durable keyed invocation that stores state costs here.
const LOOKUPS = process.env.LOOKUPS !== "0";
const STORE_ONLY_PRICE = { amount: 450, currency: "EUR" };

const invoice = restate.object({
    name: "invoice",
    handlers: {
        create: async (ctx, cmd) => {
            const stored = await ctx.get("invoice");
            if (stored) {
                return stored;
            }
            const lines = parseCart(cmd);
            if (!LOOKUPS) {
                return store(ctx, cmd, lines, lines.map(() => STORE_ONLY_PRICE));
            }
            try {
                await ctx.objectClient(customer, cmd.customer_id).get();
            } catch (e) {
                if (e instanceof TerminalError) {
                    throw invalid("customer_id", `no customer ${cmd.customer_id}`);
                }
                throw e;
            }
            let prices;
            try {
                prices = await restate.RestatePromise.all(
                    lines.map((l) => ctx.objectClient(product, l.sku).quote()),
                );
            } catch (e) {
                if (e instanceof TerminalError) {
                    throw invalid("lines.sku", e.message);
                }
                throw e;
            }
            return store(ctx, cmd, lines, prices);
        },
    },
});

/**
 * Prices the lines, then stores the invoice and its event in the object's
 * state; returns the invoice.
 */
async function store(ctx, cmd, lines, prices) {
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
    const now = new Date(await ctx.date.now()).toISOString();
    const created = {
        id: ctx.rand.uuidv4(),
        customer_id: cmd.customer_id,
        lines: priced,
        total: { amount: total, currency },
        status: "open",
        created_at: now,
    };
    // The event a consumer would be told about; nothing delivers it
    // here (see README: no relay, no consumers).
    const event = {
        specversion: "1.0",
        id: ctx.rand.uuidv4(),
        source: "/seams/billing",
        type: "billing.invoice-created",
        subject: created.id,
        time: now,
        datacontenttype: "application/json",
        dataversion: 1,
        data: {
            invoice_id: created.id,
            customer_id: created.customer_id,
            lines: priced,
            total: created.total,
        },
    };
    ctx.set("invoice", created);
    ctx.set("event", event);
    return created;
}

const handler = restate.createEndpointHandler({ services: [customer, product, stock, invoice] });
const server = http2.createServer(handler);
server.listen(Number(process.env.PORT || 0), "127.0.0.1", () => {
    console.log(`listening on http://127.0.0.1:${server.address().port}`);
});
for (const signal of ["SIGTERM", "SIGINT"]) {
    process.on(signal, () => {
        server.close();
        process.exit(0);
    });
}
