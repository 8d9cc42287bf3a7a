// Peer benchmark: an HTTP/1.1 front that gives Restate the shop's paths, so
// the project's load generator drives it unchanged. One extra loopback hop
// per request (loadgen -> front -> Restate ingress), stated in the results.
//
//   POST /identity/customers  -> ingress POST /customer/{new uuid}/register        201 {id, ...}
//   POST /catalog/products    -> ingress POST /product/{sku}/create                 201
//   POST /fulfillment/stock   -> ingress POST /stock/{sku}/receive (+ idempotency-key) 201
//   POST /billing/invoices    -> ingress POST /invoice/{Idempotency-Key}/create
//                                with Restate's `idempotency-key` header             201 invoice
//   GET  /healthz             -> 200 {"status":"ok"} (the front alone)
//
// The invoice body is passed through as bytes (the front parses nothing on
// the hot path); Restate's 200 becomes 201, any other status goes through.
// A keyed command without Idempotency-Key is refused with 428, as ours is.
//
// Usage: RESTATE_INGRESS=http://127.0.0.1:PORT node front.cjs
// (prints "listening on http://127.0.0.1:PORT"; PORT from the environment, default 0)
"use strict";

const http = require("node:http");
const { randomUUID } = require("node:crypto");

const ingress = new URL(process.env.RESTATE_INGRESS || "http://127.0.0.1:8080");
// Keep-alive connections to the ingress, as many as loadgen may have in flight.
const agent = new http.Agent({ keepAlive: true, maxSockets: 1024, maxFreeSockets: 1024 });

function forward(path, body, idempotencyKey) {
    return new Promise((resolve, reject) => {
        const headers = {
            "content-type": "application/json",
            "content-length": body.length,
        };
        if (idempotencyKey) {
            headers["idempotency-key"] = idempotencyKey;
        }
        const req = http.request(
            {
                agent,
                host: ingress.hostname,
                port: ingress.port,
                method: "POST",
                path,
                headers,
            },
            (res) => {
                const chunks = [];
                res.on("data", (c) => chunks.push(c));
                res.on("end", () => resolve({ status: res.statusCode, body: Buffer.concat(chunks) }));
                res.on("error", reject);
            },
        );
        req.on("error", reject);
        req.end(body);
    });
}

function send(res, status, body) {
    const bytes = Buffer.isBuffer(body) ? body : Buffer.from(JSON.stringify(body));
    res.writeHead(status, { "content-type": "application/json", "content-length": bytes.length });
    res.end(bytes);
}

function problem(res, status, type, title) {
    send(res, status, { type, title, status });
}

/** Restate's answer, with 200 turned into `created`. */
function relay(res, answer, created) {
    send(res, answer.status === 200 ? created : answer.status, answer.body);
}

function json(body) {
    try {
        const v = JSON.parse(body.toString("utf8"));
        return v && typeof v === "object" ? v : null;
    } catch {
        return null;
    }
}

const VALID_KEY = /^[\x21-\x7e]{1,255}$/;

async function route(req, body, res) {
    const path = req.url.split("?")[0];
    if (req.method === "GET" && path === "/healthz") {
        return send(res, 200, { status: "ok" });
    }
    if (req.method !== "POST") {
        return problem(res, 404, "not-found", "No such route");
    }
    const key = req.headers["idempotency-key"];
    switch (path) {
        case "/billing/invoices": {
            if (key === undefined) {
                return problem(res, 428, "idempotency-key-required", "Idempotency-Key required");
            }
            if (!VALID_KEY.test(key)) {
                return problem(res, 400, "invalid-idempotency-key", "Invalid Idempotency-Key");
            }
            const answer = await forward(`/invoice/${encodeURIComponent(key)}/create`, body, key);
            return relay(res, answer, 201);
        }
        case "/identity/customers": {
            const id = randomUUID();
            const answer = await forward(`/customer/${id}/register`, body);
            return relay(res, answer, 201);
        }
        case "/catalog/products": {
            const product = json(body);
            if (!product || typeof product.sku !== "string" || product.sku.length === 0) {
                return problem(res, 422, "invalid-field", "sku missing");
            }
            const answer = await forward(`/product/${encodeURIComponent(product.sku)}/create`, body);
            return relay(res, answer, 201);
        }
        case "/fulfillment/stock": {
            const receipt = json(body);
            if (!receipt || typeof receipt.sku !== "string" || receipt.sku.length === 0) {
                return problem(res, 422, "invalid-field", "sku missing");
            }
            if (key === undefined) {
                return problem(res, 428, "idempotency-key-required", "Idempotency-Key required");
            }
            const answer = await forward(`/stock/${encodeURIComponent(receipt.sku)}/receive`, body, key);
            return relay(res, answer, 201);
        }
        default:
            return problem(res, 404, "not-found", "No such route");
    }
}

const server = http.createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
        route(req, Buffer.concat(chunks), res).catch((e) => {
            console.error(`front: ${e && e.message}`);
            if (!res.headersSent) {
                problem(res, 502, "ingress-unreachable", "Restate ingress did not answer");
            } else {
                res.destroy();
            }
        });
    });
});
server.keepAliveTimeout = 75000;
server.headersTimeout = 80000;
server.listen(Number(process.env.PORT || 0), "127.0.0.1", () => {
    console.log(`listening on http://127.0.0.1:${server.address().port}`);
});
for (const signal of ["SIGTERM", "SIGINT"]) {
    process.on(signal, () => {
        server.close();
        agent.destroy();
        process.exit(0);
    });
}
