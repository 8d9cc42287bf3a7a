// Peer benchmark: Moleculer 0.14 request-reply over NATS between two
// processes, set against Seams' split-mode remote call (`remote-calls`,
// catalog.quote-prices over HTTP) by remote-calls.sh beside the folder.
//
//   MODE=callee  a broker with the `catalog` service: its `create` (the same
//                action as services.cjs, one SQLite write) and `quotePrices`,
//                which does what Seams' catalog.quote-prices does: takes
//                {skus: [..]}, drops repeated SKUs, reads the known ones with
//                ONE indexed query (the same SQL as Seams' catalog store:
//                `... WHERE sku IN (SELECT value FROM json_each(?))`, through
//                better-sqlite3 on the catalog's own SQLite file in $DATA) and
//                answers {prices: [{sku, name, unit_price: {amount, currency}}]},
//                or a 404 `unknown-skus` naming the unknown ones. Prints
//                "callee ready".
//   MODE=caller  a second broker without services: adds one product through
//                `catalog.create`, makes one call (a broken setup fails here),
//                announces the load on stderr ("loadgen: ..."), then IN_FLIGHT
//                loops each call `broker.call("catalog.quotePrices", {skus:
//                [sku]})` and start the next call when the last one answered,
//                for WARMUP + DURATION seconds. Calls that START in the
//                measured window are recorded (as loadgen does); throughput is
//                their successes / DURATION. Prints a summary, then one JSON
//                line in loadgen's shape (`"kind":"peer-remote-call"`).
//
// Both brokers: NATS transporter ($NATS_URL, npm `nats` 2.x), Moleculer's
// default JSON serializer and balancer, no retries, metrics and tracing off,
// logger at warn, request timeout 2 s (Seams' declared timeout of
// quote-prices). Environment: MODE, NATS_URL, DATA (callee), IN_FLIGHT (1),
// DURATION (s, 10), WARMUP (s, 2), LABEL (moleculer-nats/in<N>).
"use strict";

const crypto = require("node:crypto");
const { ServiceBroker, Errors } = require("moleculer");

const MODE = process.env.MODE;
if (!["callee", "caller"].includes(MODE)) {
    console.error(`MODE must be callee or caller, not ${MODE}`);
    process.exit(2);
}
if (!process.env.NATS_URL) {
    console.error("NATS_URL is required");
    process.exit(2);
}

const broker = new ServiceBroker({
    nodeID: `${MODE}-${process.pid}`,
    transporter: process.env.NATS_URL,
    logger: { type: "Console", options: { level: "warn" } },
    requestTimeout: 2 * 1000,
    retryPolicy: { enabled: false },
    metrics: false,
    tracing: false,
});

// Seams' Sku::parse: 1-64 characters of A-Z a-z 0-9 - _ .
const SKU = /^[A-Za-z0-9._-]{1,64}$/;

if (MODE === "callee") {
    // services.cjs opens $DATA/catalog.db (WAL, synchronous=FULL) with the
    // products table and gives `create`; this mixin adds `quotePrices`.
    const { catalog } = require("./services.cjs");
    broker.createService({
        name: "catalog",
        mixins: [catalog],
        created() {
            this.priceMany = this.db.prepare(
                "SELECT sku, name, price_minor, currency FROM products WHERE sku IN (SELECT value FROM json_each(?))",
            );
        },
        actions: {
            quotePrices(ctx) {
                const skus = ctx.params && ctx.params.skus;
                if (!Array.isArray(skus)) {
                    throw new Errors.MoleculerClientError("skus: not an array", 422, "invalid-field");
                }
                const asked = [...new Set(skus.map(String))].sort();
                const unknown = [];
                const valid = [];
                for (const s of asked) {
                    (SKU.test(s) ? valid : unknown).push(s);
                }
                const rows = valid.length === 0 ? [] : this.priceMany.all(JSON.stringify(valid));
                const found = new Set(rows.map((r) => r.sku));
                for (const s of valid) {
                    if (!found.has(s)) {
                        unknown.push(s);
                    }
                }
                if (unknown.length > 0) {
                    unknown.sort();
                    throw new Errors.MoleculerClientError("unknown skus", 404, "unknown-skus", { skus: unknown });
                }
                return {
                    prices: rows.map((r) => ({
                        sku: r.sku,
                        name: r.name,
                        unit_price: { amount: r.price_minor, currency: r.currency },
                    })),
                };
            },
        },
    });
}

/** Value at quantile q of an ascending array (nearest rank, as HdrHistogram). */
function quantile(sorted, q) {
    if (sorted.length === 0) {
        return 0;
    }
    const rank = Math.max(1, Math.ceil(q * sorted.length));
    return sorted[Math.min(rank, sorted.length) - 1];
}

async function caller() {
    const inFlight = Math.max(1, Number(process.env.IN_FLIGHT || 1));
    const duration = Number(process.env.DURATION || 10);
    const warmup = Number(process.env.WARMUP || 2);
    const label = process.env.LABEL || `moleculer-nats/in${inFlight}`;
    await broker.waitForServices(["catalog"], 60 * 1000);

    const sku = `RC-${crypto.randomUUID().replace(/-/g, "").slice(0, 10)}`;
    await broker.call("catalog.create", {
        sku,
        name: "Remote-call tea",
        price: { amount: 450, currency: "EUR" },
    });
    const first = await broker.call("catalog.quotePrices", { skus: [sku] });
    if (!first.prices || first.prices.length !== 1 || first.prices[0].unit_price.amount !== 450) {
        throw new Error(`first call answered ${JSON.stringify(first)}`);
    }

    console.error(
        `loadgen: closed loop, ${inFlight} in flight, ${warmup.toFixed(1)} s warm-up + ${duration.toFixed(1)} s, ` +
            `catalog.quotePrices over ${process.env.NATS_URL}`,
    );
    const start = process.hrtime.bigint();
    const measure = start + BigInt(Math.round(warmup * 1e9));
    const end = measure + BigInt(Math.round(duration * 1e9));
    const latenciesNs = []; // of the recorded successful calls
    const errors = {};
    let errorCount = 0;

    async function loop() {
        const params = { skus: [sku] };
        for (;;) {
            const t = process.hrtime.bigint();
            if (t >= end) {
                return;
            }
            let failure = null;
            try {
                await broker.call("catalog.quotePrices", params);
            } catch (e) {
                failure = (e && (e.type || e.name || e.code)) || "error";
            }
            if (t < measure) {
                continue;
            }
            if (failure === null) {
                latenciesNs.push(Number(process.hrtime.bigint() - t));
            } else {
                errors[failure] = (errors[failure] || 0) + 1;
                errorCount += 1;
            }
        }
    }

    // Progress once a second on stderr, as loadgen.
    let lastCount = 0;
    const ticker = setInterval(() => {
        const now = process.hrtime.bigint();
        const phase = now < measure ? " (warm-up)" : now >= end ? " (draining)" : "";
        console.error(
            `[${Math.round(Number(now - start) / 1e9)}s] ${latenciesNs.length - lastCount} ok/s recorded, errors ${errorCount}${phase}`,
        );
        lastCount = latenciesNs.length;
    }, 1000);
    await Promise.all(Array.from({ length: inFlight }, loop));
    clearInterval(ticker);

    const sorted = Float64Array.from(latenciesNs).sort();
    const ms = (ns) => Math.round(ns / 1000) / 1000; // µs resolution, as loadgen
    const sum = latenciesNs.reduce((a, b) => a + b, 0);
    const latency = {
        p50_ms: ms(quantile(sorted, 0.5)),
        p90_ms: ms(quantile(sorted, 0.9)),
        p99_ms: ms(quantile(sorted, 0.99)),
        max_ms: ms(sorted.length ? sorted[sorted.length - 1] : 0),
        mean_ms: sorted.length ? Math.round(sum / sorted.length / 1000) / 1000 : 0,
    };
    const throughput = latenciesNs.length / duration;
    console.log(
        `remote call catalog.quotePrices (Moleculer over NATS), ${inFlight} in flight, ` +
            `${duration.toFixed(1)} s measured after ${warmup.toFixed(1)} s warm-up`,
    );
    console.log(`  throughput  ${throughput.toFixed(1)} calls/s (${latenciesNs.length} ok)`);
    console.log(
        `  latency     p50 ${latency.p50_ms.toFixed(3)} ms  p90 ${latency.p90_ms.toFixed(3)} ms  ` +
            `p99 ${latency.p99_ms.toFixed(3)} ms  max ${latency.max_ms.toFixed(3)} ms  mean ${latency.mean_ms.toFixed(3)} ms`,
    );
    console.log(`  errors      ${errorCount} ${JSON.stringify(errors)}`);
    console.log(
        JSON.stringify({
            kind: "peer-remote-call",
            label,
            scenario: "remote-call",
            mode: "closed",
            connections: inFlight,
            duration_s: duration,
            warmup_s: warmup,
            ok: latenciesNs.length,
            throughput,
            latency,
            errors,
            error_count: errorCount,
        }),
    );
}

async function main() {
    await broker.start();
    if (MODE === "callee") {
        console.log("callee ready");
        return;
    }
    try {
        await caller();
    } finally {
        await broker.stop();
    }
}

main().catch((e) => {
    console.error(e);
    process.exit(1);
});
for (const signal of ["SIGTERM", "SIGINT"]) {
    process.on(signal, () => {
        broker.stop().finally(() => process.exit(0));
    });
}
