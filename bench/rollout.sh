#!/usr/bin/env bash
# What a rolling restart costs (issue 16): `shop rollout` restarts every
# service of a split system, one at a time, while the load generator runs
# the whole journey (register, invoice, pay, then poll until the shipment is
# dispatched and three notifications are delivered) at a fixed rate. A
# request that fails counts as an error, and so does a journey whose
# shipment or mails never come (`journey-timeout`): 0 errors is 0 failed
# requests and 0 lost events. Two configurations, same binary, one run:
#
#   split-http     shop up --split                                    SQLite files, HTTP feeds
#   split-pg-nats  shop up --split --nats … (SHOP_POSTGRES_ADMIN=…)        PostgreSQL per service, JetStream
#
#   bench/rollout.sh                     # about 3 minutes after the build
#   DURATION=20 ROUNDS=1 bench/rollout.sh   # a quick run
#
# PostgreSQL and NATS are throwaway servers started here and stopped by PID.
# Results land in $OUT (default target/bench-results/rollout-<time>):
# results.jsonl, logs, rollout-*.txt (what each rollout printed) and
# rollout.md.
#
# Settings (environment): RATE (journeys due per second, 20), CONNECTIONS
# (most journeys in flight, 32), DURATION (s of load, 60; the rollouts start
# after ROLL_AFTER s, 5), ROUNDS (full rollouts, one after the other, 2),
# OUT, COMMIT.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
RATE=${RATE:-20}
CONNECTIONS=${CONNECTIONS:-32}
DURATION=${DURATION:-60}
ROLL_AFTER=${ROLL_AFTER:-5}
ROUNDS=${ROUNDS:-2}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET/release
OUT=${OUT:-$TARGET/bench-results/rollout-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
RESULTS=$OUT/results.jsonl
: >"$RESULTS"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/seams-rollout.XXXXXX")
chmod 755 "$TMP"

source "$ROOT/bench/lib.sh"
trap stop_servers_and_clean EXIT
trap 'exit 130' INT TERM

echo "== machine"
machine_lines | tee "$OUT/machine.txt"

echo "== building (release, once)"
cargo build --release -q -p shop -p seams-bench

echo "== PostgreSQL and NATS (throwaway)"
start_servers "$TMP" "$OUT"

# Runs the load on configuration $1 (shop up "$@" after it) and, meanwhile,
# ROUNDS full rollouts; appends loadgen's result with the rollouts' count.
run_mode() {
    local name=$1 round load
    shift
    start_shop "$name" "$@"
    "$BIN/loadgen" --url "$URL" --label "rollout/$name" --scenario journey --data "$TMP/$name" \
        --rate "$RATE" --connections "$CONNECTIONS" --duration "$DURATION" --warmup 0 \
        >"$OUT/journey-$name.txt" 2>&1 &
    load=$!
    PIDS+=("$load")
    sleep "$ROLL_AFTER"
    : >"$OUT/rollout-$name.txt"
    for round in $(seq 1 "$ROUNDS"); do
        echo "-- $name: rollout $round"
        SHOP_URL=$URL "$BIN/shop" rollout --data "$TMP/$name" | tee -a "$OUT/rollout-$name.txt"
    done
    wait "$load" || echo "   loadgen FAILED"
    forget "$load"
    tail -n 12 "$OUT/journey-$name.txt"
    local restarts
    restarts=$(grep -c '^rolled ' "$OUT/rollout-$name.txt" || true)
    tail -n1 "$OUT/journey-$name.txt" | grep '^{' | jq -c --argjson r "$restarts" '. + {restarts: $r}' >>"$RESULTS" \
        || echo "   no result"
    stop "$SHOP_PID"
}

echo "== journeys at $RATE/s for $DURATION s, $ROUNDS rollouts from ${ROLL_AFTER} s"
run_mode split-http --split
# The admin URL holds a password: in the environment, never on a command line.
SHOP_POSTGRES_ADMIN=$ADMIN_URL run_mode split-pg-nats --split --nats "$NATS_URL"

echo "== report"
{
    echo "Machine:"
    echo
    sed 's/^/    /' "$OUT/machine.txt"
    echo
    echo "| configuration | services restarted | journeys due / completed | failed requests and lost events | missed (queue full) | journey p50 / p99 / max ms |"
    echo "|---|---|---|---|---|---|"
    jq -rs '
      .[] | (.label | split("/")[1]) as $mode
      | "| \($mode) | \(.restarts) | \(.ok + .error_count + .missed) / \(.ok) | \(.error_count) \(if .error_count > 0 then (.errors | tostring) else "" end) | \(.missed) | \(.latency.p50_ms) / \(.latency.p99_ms) / \(.latency.max_ms) |"
    ' "$RESULTS"
    echo
    echo "Each rollout (successor ready, predecessor stopped):"
    echo
    for f in "$OUT"/rollout-*.txt; do
        echo "    $(basename "$f" .txt | sed 's/^rollout-//'):"
        sed 's/^/      /' "$f"
    done
} | tee "$OUT/rollout.md"
echo "results in $OUT"
