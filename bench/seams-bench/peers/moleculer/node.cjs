// Peer benchmark: one Moleculer 0.14 broker process, in one of three roles.
//
//   MODE=local     the HTTP gateway (moleculer-web) and every service in one
//                  broker, no transporter: gateway -> billing is an in-process call
//   MODE=gateway   the HTTP gateway alone, NATS transporter ($NATS_URL): every
//                  request crosses NATS to the services process and back
//   MODE=services  identity, catalog, fulfillment and billing, NATS transporter;
//                  billing's calls to identity and catalog stay in this process
//                  (Moleculer prefers local services)
//
// The gateway maps the shop's paths to actions and copies the
// Idempotency-Key header into the call's meta:
//
//   POST /identity/customers -> identity.register      POST /billing/invoices -> billing.createInvoice
//   POST /catalog/products   -> catalog.create         GET  /healthz          -> api.healthz
//   POST /fulfillment/stock  -> fulfillment.receive
//
// Environment: MODE, NATS_URL, PORT (gateway, default 0: a free port),
// DATA (SQLite folder of the services). Prints "listening on
// http://127.0.0.1:PORT" (gateway roles) or "services ready".
"use strict";

const { ServiceBroker } = require("moleculer");
const ApiGateway = require("moleculer-web");
const services = require("./services.cjs");

const MODE = process.env.MODE || "local";
if (!["local", "gateway", "services"].includes(MODE)) {
    console.error(`MODE must be local, gateway or services, not ${MODE}`);
    process.exit(2);
}

const gateway = {
    name: "api",
    mixins: [ApiGateway],
    settings: {
        port: Number(process.env.PORT || 0),
        ip: "127.0.0.1",
        logRequest: null,
        logRequestParams: null,
        logResponse: null,
        logResponseData: null,
        routes: [
            {
                path: "/",
                mappingPolicy: "restrict",
                aliases: {
                    "POST /identity/customers": "identity.register",
                    "POST /catalog/products": "catalog.create",
                    "POST /fulfillment/stock": "fulfillment.receive",
                    "POST /billing/invoices": "billing.createInvoice",
                    "GET /healthz": "api.healthz",
                },
                bodyParsers: { json: { strict: true, limit: "1MB" } },
                onBeforeCall(ctx, route, req) {
                    const key = req.headers["idempotency-key"];
                    if (key !== undefined) {
                        ctx.meta.idempotencyKey = key;
                    }
                },
            },
        ],
    },
    actions: {
        healthz() {
            return { status: "ok" };
        },
    },
};

const broker = new ServiceBroker({
    nodeID: `${MODE}-${process.pid}`,
    transporter: MODE === "local" ? null : process.env.NATS_URL,
    logger: { type: "Console", options: { level: "warn" } },
    requestTimeout: 10 * 1000,
    metrics: false,
    tracing: false,
});

const CAPABILITIES = ["identity", "catalog", "fulfillment", "billing"];
if (MODE !== "gateway") {
    for (const name of CAPABILITIES) {
        broker.createService(services[name]);
    }
}
if (MODE !== "services") {
    broker.createService(gateway);
}

async function main() {
    await broker.start();
    if (MODE === "services") {
        console.log("services ready");
        return;
    }
    await broker.waitForServices(CAPABILITIES, 60 * 1000);
    const api = broker.getLocalService("api");
    console.log(`listening on http://127.0.0.1:${api.server.address().port}`);
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
