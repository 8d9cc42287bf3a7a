#!/usr/bin/env bash
# What each piece of reliability machinery costs (issue 5): durable
# create-invoice, closed loop, against `shop up` with everything on, then
# with one piece switched off at a time (`shop up --bench-off X`, a hidden
# flag that exists for this), then with all of them off, then everything on
# again (the two "on" points show the drift within the run). Each point gets
# a fresh shop on fresh data.
#
#   idempotency  no idempotency record looked up or written (a retried command runs twice)
#   inbox        consumers record no applied event ids (a redelivery applies twice)
#   relays       no event delivery at all (the outbox still fills)
#   tracing      no log subscriber
#   metrics      no Prometheus recorder
#
#   bench/switches.sh                          # about 3 minutes after the build
#   DURATION=5 CONNECTIONS=16 bench/switches.sh
#
# Settings (environment): DURATION (s per point, 12), WARMUP (s, 2),
# CONNECTIONS (64), OUT (default target/bench-results/switches-<time>).
# Everything it starts it stops by PID; only loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DURATION=${DURATION:-12}
WARMUP=${WARMUP:-2}
CONNECTIONS=${CONNECTIONS:-64}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET/release
OUT=${OUT:-$TARGET/bench-results/switches-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
RESULTS=$OUT/results.jsonl
: >"$RESULTS"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/seams-switches.XXXXXX")

source "$ROOT/bench/lib.sh"
cleanup() {
    stop_all
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== machine"
{
    machine_lines
} | tee "$OUT/machine.txt"

echo "== building (release, once)"
cargo build --release -q -p shop -p seams-bench

point() {
    local name=$1 off=$2
    local args=(up --addr 127.0.0.1:0 --data "$TMP/$name" --durability full)
    [ -n "$off" ] && args+=(--bench-off "$off")
    "$BIN/shop" "${args[@]}" >"$OUT/shop-$name.log" 2>&1 &
    SHOP_PID=$!
    PIDS+=("$SHOP_PID")
    local url=""
    for _ in $(seq 1 600); do
        url=$(grep -o -m1 'shop listening on http://[0-9.:]*' "$OUT/shop-$name.log" | sed 's/shop listening on //' || true)
        [ -n "$url" ] && break
        kill -0 "$SHOP_PID" 2>/dev/null || { cat "$OUT/shop-$name.log" >&2; exit 1; }
        sleep 0.1
    done
    [ -n "$url" ] || { echo "shop $name did not start" >&2; exit 1; }
    sleep 1
    echo "-- $name (off: ${off:-nothing})"
    "$BIN/loadgen" --url "$url" --server-pid "$SHOP_PID" --label "switches/$name" --data "$TMP/$name" \
        --scenario create-invoice --connections "$CONNECTIONS" \
        --duration "$DURATION" --warmup "$WARMUP" | tee "$OUT/$name.txt"
    tail -n1 "$OUT/$name.txt" | grep '^{' >>"$RESULTS" || echo "   FAILED"
    stop "$SHOP_PID"
}

echo "== create-invoice, $CONNECTIONS connections, one switch at a time"
point all-on ""
point no-idempotency idempotency
point no-inbox inbox
point no-relays relays
point no-tracing tracing
point no-metrics metrics
point all-off idempotency,inbox,relays,tracing,metrics
point all-on-again ""

echo "== report"
{
    echo "Machine:"
    echo
    sed 's/^/    /' "$OUT/machine.txt"
    echo
    echo "| configuration | invoices/s | vs all on (first) | p50 ms | p99 ms | server CPU µs per invoice | others (cores) | errors |"
    echo "|---|---|---|---|---|---|---|---|"
    jq -rs '
      (map(select(.label == "switches/all-on")) | .[0].throughput) as $on
      | .[] | "| \(.label | split("/")[1]) | \(.throughput | round) | \((.throughput / $on) * 100 | round / 100)x | \(.latency.p50_ms) | \(.latency.p99_ms) | \(.server_cpu_us_per_op // "n/a" | if type == "number" then round else . end) | \(.cpu.other_cores // "n/a" | if type == "number" then (. * 100 | round / 100) else . end) | \(.error_count) |"
    ' "$RESULTS"
} | tee "$OUT/switches.md"
echo "results in $OUT"
