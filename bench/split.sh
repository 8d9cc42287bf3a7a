#!/usr/bin/env bash
# What splitting costs (issue 4): the whole journey (register, invoice, pay,
# then poll until the shipment is dispatched and three notifications are
# delivered) against the same `shop` binary in three configurations, in
# one run on one machine:
#
#   monolith     shop up                      one process, SQLite files, outboxes read in process
#   split-http   shop up --split              a process per capability, HTTP calls, HTTP feeds, SQLite
#   split-pg-nats shop up --split --nats … (SHOP_POSTGRES_ADMIN=…)
#                                             the same, each on its own PostgreSQL database, JetStream
#
# then, with shop stopped and on the same two servers, the raw baselines of
# the split-pg-nats configuration's two dependencies:
#
#   raw-postgres  baseline-postgres   create-invoice's transaction alone (6 statements,
#                                     synchronous_commit on) at 1, 16 and 64 connections
#   raw-jetstream baseline-jetstream  publish an event envelope, wait for JetStream's ack,
#                                     with 1, 64 and 256 acks in flight
#
# Each configuration runs two journeys: `journey`, whose every run
# registers a new customer and signs them in (two Argon2id hashes, which
# dominate its CPU), and `returning-journey`, the same purchase by a
# customer each connection registered once (what the split itself costs).
#
#   bench/split.sh                       # about 10 minutes after the build
#   DURATION=5 CONNECTIONS="1" RAW_DURATION=3 bench/split.sh   # a quick smoke run
#
# PostgreSQL and NATS are throwaway servers this script starts (initdb in a
# temporary folder, free ports, fsync on: durable like SQLite's FULL) and
# stops by PID; never the machine's own. Every shop runs with durable
# commits. Results land in $OUT (default target/bench-results/split-<time>):
# results.jsonl, logs, split.md with each configuration's ratio to the
# monolith at the same concurrency and a second table with the raw baselines.
#
# Settings (environment): DURATION (s per journey point, 20), WARMUP (s, 3),
# CONNECTIONS ("1 16"), SCENARIOS ("journey returning-journey"), RAW_DURATION (s per raw baseline point, 10), OUT,
# COMMIT (what to print as the commit measured).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DURATION=${DURATION:-20}
WARMUP=${WARMUP:-3}
CONNECTIONS=${CONNECTIONS:-"1 16"}
SCENARIOS=${SCENARIOS:-"journey returning-journey"}
RAW_DURATION=${RAW_DURATION:-10}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET/release
OUT=${OUT:-$TARGET/bench-results/split-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
RESULTS=$OUT/results.jsonl
: >"$RESULTS"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/seams-split.XXXXXX")
chmod 755 "$TMP"

source "$ROOT/bench/lib.sh"
trap stop_servers_and_clean EXIT
trap 'exit 130' INT TERM

echo "== machine"
{
    machine_lines
} | tee "$OUT/machine.txt"

echo "== building (release, once)"
cargo build --release -q -p shop -p seams-bench

echo "== PostgreSQL and NATS (throwaway)"
start_servers "$TMP" "$OUT"

run_mode() {
    local name=$1 c s
    shift
    start_shop "$name" "$@"
    sleep 2
    for s in $SCENARIOS; do
        for c in $CONNECTIONS; do
            echo "-- $s/$name/c$c"
            cpu_snapshot "$SHOP_PID" ${PG_PID:+"$PG_PID"} ${NATS_PID:+"$NATS_PID"} >"$TMP/cpu-before"
            local began=$EPOCHREALTIME
            "$BIN/loadgen" --url "$URL" --label "$s/$name/c$c" --scenario "$s" --data "$TMP/$name" \
                --connections "$c" --duration "$DURATION" --warmup "$WARMUP" | tee "$OUT/$s-$name-c$c.txt"
            cpu_snapshot "$SHOP_PID" ${PG_PID:+"$PG_PID"} ${NATS_PID:+"$NATS_PID"} >"$TMP/cpu-after"
            cpu_by_role "$TMP/cpu-before" "$TMP/cpu-after" \
                "$(awk -v a="$EPOCHREALTIME" -v b="$began" 'BEGIN { print a - b }')" >"$OUT/cpu-$s-$name-c$c.tsv"
            tail -n1 "$OUT/$s-$name-c$c.txt" | grep '^{' >>"$RESULTS" || echo "   FAILED"
        done
    done
    stop_pid "$SHOP_PID"
}

echo "== journeys"
run_mode monolith
run_mode split-http --split
# The admin URL holds a password: in the environment, never on a command line.
SHOP_POSTGRES_ADMIN=$ADMIN_URL run_mode split-pg-nats --split --nats "$NATS_URL"

# Shop is stopped; the servers it used stay up for their raw baselines. Each
# baseline works in its own database / streams and removes them after.
echo "== raw baselines (${RAW_DURATION} s per point)"
echo "-- raw-postgres"
BASELINE_PG_ADMIN_URL="$ADMIN_URL" "$BIN/baseline-postgres" --duration "$RAW_DURATION" \
    --server-pid "$PG_PID" | tee "$OUT/raw-postgres.txt" || echo "   FAILED"
grep '^{' "$OUT/raw-postgres.txt" >>"$RESULTS" || echo "   no results"
echo "-- raw-jetstream"
"$BIN/baseline-jetstream" --url "$NATS_URL" --duration "$RAW_DURATION" \
    --server-pid "$NATS_PID" | tee "$OUT/raw-jetstream.txt" || echo "   FAILED"
grep '^{' "$OUT/raw-jetstream.txt" >>"$RESULTS" || echo "   no results"

echo "== report"
{
    echo "Machine:"
    echo
    sed 's/^/    /' "$OUT/machine.txt"
    echo
    echo "| journey | configuration | connections | journeys/s | vs monolith | p50 ms | p99 ms | created → dispatched p50 / p99 ms | errors |"
    echo "|---|---|---|---|---|---|---|---|---|"
    jq -rs '
      (map(select(.label | test("^[a-z-]+/monolith/"))) | map({"\(.label | split("/")[0])/\(.connections)": .throughput}) | add) as $mono
      | .[] | select(.label | test("^[a-z-]*journey/")) | (.label | split("/")) as [$journey, $mode]
      | $mono["\($journey)/\(.connections)"] as $base
      | "| \($journey) | \($mode) | \(.connections) | \(.throughput * 10 | round / 10) | \(if $base then ((.throughput / $base) * 100 | round / 100 | tostring) + "x" else "n/a" end) | \(.latency.p50_ms) | \(.latency.p99_ms) | \(.phases["created-to-dispatched"].p50_ms) / \(.phases["created-to-dispatched"].p99_ms) | \(.error_count) |"
    ' "$RESULTS"
    echo
    echo "CPU by process during each point (warm-up, measurement and drain; PostgreSQL's postmaster and backends together), and per journey at the point's measured rate:"
    echo
    echo "| point | process | cores | CPU µs per journey |"
    echo "|---|---|---|---|"
    for f in "$OUT"/cpu-*.tsv; do
        label=$(basename "$f" .tsv | sed 's/^cpu-//; s/-c\([0-9]*\)$/\/c\1/; s/-\(monolith\|split-http\|split-pg-nats\)\//\/\1\//')
        rate=$(jq -r --arg l "$label" 'select(.label == $l) | .throughput' "$RESULTS")
        awk -F'\t' -v l="$label" -v rate="${rate:-0}" '$2 >= 0.005 {
            printf "| %s | %s | %.2f | %s |\n", l, $1, $2, (rate > 0 ? sprintf("%.0f", $2 / rate * 1e6) : "n/a")
        }' "$f"
    done
    echo
    echo "Raw baselines on the same PostgreSQL and nats-server, shop stopped, ${RAW_DURATION} s per point (CPU per operation: the tool plus the server):"
    echo
    echo "| baseline | clients / acks in flight | per second | p50 ms | p99 ms | max ms | CPU µs per op | other processes, cores | errors |"
    echo "|---|---|---|---|---|---|---|---|---|"
    jq -rs '
      def r(n): if . == null then "n/a" else (. * n | round / n) end;
      .[] | select(.kind == "raw-postgres" or .kind == "raw-jetstream")
      | (if .kind == "raw-postgres"
         then ["create-invoice transaction, PostgreSQL \(.server_version | split(" ")[0]), synchronous_commit=\(.synchronous_commit)", "\(.connections) connections", "tx/s"]
         else ["publish \(.payload_bytes) B envelope + ack, JetStream \(.server_version), \(.storage), R\(.replicas)", "\(.in_flight) in flight", "msgs/s"] end) as [$what, $clients, $unit]
      | "| \($what) | \($clients) | \(.throughput | r(10)) \($unit) | \(.latency.p50_ms) | \(.latency.p99_ms) | \(.latency.max_ms) | \(.cpu_us_per_op | r(1)) | \(.cpu.other_cores | r(100)) | \(.error_count) |"
    ' "$RESULTS"
} | tee "$OUT/split.md"
echo "results in $OUT"
