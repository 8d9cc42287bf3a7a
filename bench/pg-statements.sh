#!/usr/bin/env bash
# Where PostgreSQL's work goes in the distributed mode: `shop up --split`
# on a throwaway PostgreSQL (with pg_stat_statements loaded) and
# nats-server, driven by `loadgen` with the returning customer's journey,
# then every statement the services sent, by database, with its calls and
# execution time. What `bench/split.sh` counts as the postgres process's
# CPU per journey is mostly these statements' round trips.
#
#   bench/pg-statements.sh          # about 1 minute after the build
#
# Settings (environment): CONNECTIONS (16), DURATION (s, 20), WARMUP (s, 3),
# TOP (statements listed, 40), OUT (default
# target/bench-results/pg-statements-<time>), SKIP_BUILD=1. Results in
# OUT: loadgen.txt, by-db.txt (calls and execution ms per database),
# top-calls.txt (the TOP statements by calls). Loopback only; stops only
# what it started, by PID; the load is bounded in time.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CONNECTIONS=${CONNECTIONS:-16}
DURATION=${DURATION:-20}
WARMUP=${WARMUP:-3}
TOP=${TOP:-40}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET/release
OUT=${OUT:-$TARGET/bench-results/pg-statements-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/seams-pgstat.XXXXXX")
chmod 755 "$TMP"

source "$ROOT/bench/lib.sh"
trap stop_servers_and_clean EXIT
trap 'exit 130' INT TERM

machine_lines | tee "$OUT/machine.txt"
[ -n "${SKIP_BUILD:-}" ] || cargo build --release -q -p shop -p seams-bench
PG_OPTS="-c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all" \
    start_servers "$TMP" "$OUT"
# The admin URL holds a password: in the environment, never on a command line.
SHOP_POSTGRES_ADMIN=$ADMIN_URL start_shop split-pg-nats --split --nats "$NATS_URL"
PSQL=("$PG_BIN/psql" "$ADMIN_URL" -X -q -v ON_ERROR_STOP=1 -P pager=off)
"${PSQL[@]}" -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" \
    -c "SELECT pg_stat_statements_reset()" >/dev/null
"$BIN/loadgen" --url "$URL" --label "returning-journey/split-pg-nats/c$CONNECTIONS" \
    --scenario returning-journey --data "$TMP/split-pg-nats" --connections "$CONNECTIONS" \
    --duration "$DURATION" --warmup "$WARMUP" >"$OUT/loadgen.txt" 2>&1
tail -n1 "$OUT/loadgen.txt"
"${PSQL[@]}" -c "SELECT d.datname, sum(s.calls) AS calls,
        round(sum(s.total_exec_time)::numeric, 1) AS exec_ms
    FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
    GROUP BY 1 ORDER BY 2 DESC" | tee "$OUT/by-db.txt"
"${PSQL[@]}" -c "SELECT d.datname, s.calls, round(s.total_exec_time::numeric, 1) AS exec_ms,
        round((s.total_exec_time / s.calls)::numeric, 3) AS ms_per_call,
        left(regexp_replace(s.query, '\s+', ' ', 'g'), 110) AS query
    FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
    ORDER BY s.calls DESC LIMIT $TOP" >"$OUT/top-calls.txt"
echo "results in $OUT"
