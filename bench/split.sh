#!/usr/bin/env bash
# What splitting costs (issue 4): the whole journey (register, invoice, pay,
# then poll until the shipment is dispatched and three notifications are
# delivered) against the same `shop` binary in three configurations, in
# one run on one machine:
#
#   monolith     shop up                      one process, SQLite files, outboxes read in process
#   split-http   shop up --split              a process per capability, HTTP calls, HTTP feeds, SQLite
#   split-pg-nats shop up --split --nats … --postgres-admin …
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
#   bench/split.sh                       # about 5 minutes after the build
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
# CONNECTIONS ("1 16"), RAW_DURATION (s per raw baseline point, 10), OUT,
# COMMIT (what to print as the commit measured).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DURATION=${DURATION:-20}
WARMUP=${WARMUP:-3}
CONNECTIONS=${CONNECTIONS:-"1 16"}
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
cleanup() {
    stop_all
    # PostgreSQL's fast shutdown, not the smart one that waits for clients.
    [ -n "${PG_PID:-}" ] && stop_pid "$PG_PID" INT
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

echo "== PostgreSQL and NATS (throwaway)"
PG_BIN=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)}
[ -x "$PG_BIN/initdb" ] || { echo "no PostgreSQL binaries (apt-get install -y postgresql)" >&2; exit 1; }
NATS_BIN=$(command -v nats-server || echo /usr/sbin/nats-server)
[ -x "$NATS_BIN" ] || { echo "no nats-server (apt-get install -y nats-server)" >&2; exit 1; }
# PostgreSQL refuses to run as root: then it runs as the postgres user.
# setpriv execs in place, so $! below is the postmaster itself (runuser
# would stay in between and not pass SIGINT on).
AS=()
if [ "$(id -u)" = 0 ]; then
    AS=(setpriv --reuid=postgres --regid=postgres --init-groups)
    mkdir -p "$TMP/pg" && chown postgres "$TMP/pg"
else
    mkdir -p "$TMP/pg"
fi
PG_PASSWORD=$(head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')
echo "$PG_PASSWORD" >"$TMP/pg/pw" && chmod 644 "$TMP/pg/pw"
"${AS[@]}" "$PG_BIN/initdb" -D "$TMP/pg/data" -U postgres --auth=scram-sha-256 \
    --pwfile="$TMP/pg/pw" -E UTF8 --locale=C >"$OUT/initdb.log" 2>&1
PG_PORT=$(free_port)
"${AS[@]}" "$PG_BIN/postgres" -D "$TMP/pg/data" -h 127.0.0.1 -p "$PG_PORT" -k "$TMP/pg" \
    -c max_connections=200 >"$OUT/postgres.log" 2>&1 &
PG_PID=$!
for _ in $(seq 1 300); do
    grep -q "ready to accept connections" "$OUT/postgres.log" && break
    sleep 0.1
done
grep -q "ready to accept connections" "$OUT/postgres.log" || { cat "$OUT/postgres.log" >&2; exit 1; }
ADMIN_URL="postgres://postgres:$PG_PASSWORD@127.0.0.1:$PG_PORT/postgres"
NATS_PORT=$(free_port)
"$NATS_BIN" -js -a 127.0.0.1 -p "$NATS_PORT" -sd "$TMP/nats" >"$OUT/nats.log" 2>&1 &
NATS_PID=$!
PIDS+=("$NATS_PID")
NATS_URL="nats://127.0.0.1:$NATS_PORT"
echo "postgres (pid $PG_PID) on 127.0.0.1:$PG_PORT, nats-server on $NATS_URL"

# Starts shop with "$@" on a fresh data folder; sets URL and SHOP_PID.
start_shop() {
    local name=$1
    shift
    "$BIN/shop" up --addr 127.0.0.1:0 --data "$TMP/$name" --durability full "$@" >"$OUT/shop-$name.log" 2>&1 &
    SHOP_PID=$!
    PIDS+=("$SHOP_PID")
    URL=""
    for _ in $(seq 1 900); do
        URL=$(grep -o -m1 'shop listening on http://[0-9.:]*' "$OUT/shop-$name.log" | sed 's/shop listening on //' || true)
        [ -n "$URL" ] && break
        kill -0 "$SHOP_PID" 2>/dev/null || { cat "$OUT/shop-$name.log" >&2; exit 1; }
        sleep 0.1
    done
    [ -n "$URL" ] || { echo "shop $name did not start in 90 s" >&2; exit 1; }
    echo "shop $name (pid $SHOP_PID) on $URL"
}

run_mode() {
    local name=$1 c
    shift
    start_shop "$name" "$@"
    sleep 2
    for c in $CONNECTIONS; do
        echo "-- journey/$name/c$c"
        "$BIN/loadgen" --url "$URL" --label "journey/$name/c$c" --scenario journey --data "$TMP/$name" \
            --connections "$c" --duration "$DURATION" --warmup "$WARMUP" | tee "$OUT/journey-$name-c$c.txt"
        tail -n1 "$OUT/journey-$name-c$c.txt" | grep '^{' >>"$RESULTS" || echo "   FAILED"
    done
    stop_pid "$SHOP_PID"
}

echo "== journeys"
run_mode monolith
run_mode split-http --split
run_mode split-pg-nats --split --nats "$NATS_URL" --postgres-admin "$ADMIN_URL"

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
    echo "| configuration | connections | journeys/s | vs monolith | p50 ms | p99 ms | created → dispatched p50 / p99 ms | errors |"
    echo "|---|---|---|---|---|---|---|---|"
    jq -rs '
      (map(select(.label | startswith("journey/monolith/"))) | map({(.connections | tostring): .throughput}) | add) as $mono
      | .[] | select(.label | startswith("journey/")) | (.label | split("/")[1]) as $mode
      | "| \($mode) | \(.connections) | \(.throughput * 10 | round / 10) | \(if $mono[.connections | tostring] then ((.throughput / $mono[.connections | tostring]) * 100 | round / 100 | tostring) + "x" else "n/a" end) | \(.latency.p50_ms) | \(.latency.p99_ms) | \(.phases["created-to-dispatched"].p50_ms) / \(.phases["created-to-dispatched"].p99_ms) | \(.error_count) |"
    ' "$RESULTS"
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
