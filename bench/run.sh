#!/usr/bin/env bash
# Seams' benchmark suite, one run: every figure next to a baseline measured
# in the same run on the same machine (issue 5; documented in BENCHMARKS.md).
#
#   bench/run.sh                       # about 11 minutes after the build
#   DURATION=5 SKIP_MICRO=1 bench/run.sh   # a quick smoke run
#   PROFILE=1 bench/run.sh             # also perf-profile shop under create-invoice and at 1,000/s
#
# It builds release once, starts `baseline-axum` and `shop up` (each on a
# free port, shop on a fresh data folder with --durability full), drives them
# with `loadgen`, samples shop's memory from /proc, stops both by PID, runs
# the raw SQLite baseline and the criterion microbenchmarks, and prints the
# table with ratios (`report`). Everything lands in $OUT (default
# target/bench-results/<UTC time>): results.jsonl, logs, report.md.
#
# Most of the time goes to waiting, between points, for shop to finish the
# event deliveries and mails the previous point left behind (QUIESCE_MAX).
#
# Settings (environment): DURATION (s per point, 15), WARMUP (s, 2),
# SQLITE_DURATION (s per raw SQLite point, 10), LOW_RATE (the unsaturated
# open-loop rate, 250/s), QUIESCE_MAX (s, 60), SKIP_MICRO=1, PROFILE=1, OUT,
# COMMIT (what to print as the commit measured, when not run from a checkout).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DURATION=${DURATION:-15}
WARMUP=${WARMUP:-2}
SQLITE_DURATION=${SQLITE_DURATION:-10}
LOW_RATE=${LOW_RATE:-250}
QUIESCE_MAX=${QUIESCE_MAX:-60}
SKIP_MICRO=${SKIP_MICRO:-0}
PROFILE=${PROFILE:-0}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET/release
OUT=${OUT:-$TARGET/bench-results/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
RESULTS=$OUT/results.jsonl
: >"$RESULTS"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/seams-bench.XXXXXX")

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
    echo "rustc: $(rustc --version)"
} | tee "$OUT/machine.txt"

echo "== building (release, once)"
cargo build --release -q -p shop -p seams-bench
if [ "$SKIP_MICRO" != 1 ]; then
    cargo bench -q -p seams-bench --bench micro --no-run
fi

# Starts "$@" in the background with output in $OUT/$1.log, waits (at most
# 60 s) for its "listening on http://..." line, and sets URL and SERVER_PID.
start_server() {
    local name=$1
    shift
    "$@" >"$OUT/$name.log" 2>&1 &
    SERVER_PID=$!
    PIDS+=("$SERVER_PID")
    URL=""
    for _ in $(seq 1 600); do
        URL=$(grep -o -m1 'listening on http://[0-9.:]*' "$OUT/$name.log" | sed 's/listening on //' || true)
        [ -n "$URL" ] && break
        kill -0 "$SERVER_PID" 2>/dev/null || { cat "$OUT/$name.log" >&2; echo "$name exited" >&2; exit 1; }
        sleep 0.1
    done
    [ -n "$URL" ] || { echo "$name did not start in 60 s" >&2; exit 1; }
    echo "$name (pid $SERVER_PID) on $URL"
}

# Appends a JSON line with the memory of process $2 under label rss/$1.
rss() {
    local label=$1 pid=$2
    local rss_kb hwm_kb
    rss_kb=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status")
    hwm_kb=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status")
    echo "{\"kind\":\"rss\",\"label\":\"rss/$label\",\"pid\":$pid,\"vmrss_kb\":$rss_kb,\"vmhwm_kb\":$hwm_kb}" | tee -a "$RESULTS"
}


# Waits until process $1 is idle (under 5% of a core for 2 seconds in a row)
# so background work of one point (event delivery, mail) does not run into
# the next; at most $QUIESCE_MAX s.
quiesce() {
    local pid=$1 before after calm=0
    before=$(cpu_ticks "$pid")
    for waited in $(seq 1 "$QUIESCE_MAX"); do
        sleep 1
        after=$(cpu_ticks "$pid")
        if [ $((after - before)) -le 5 ]; then
            calm=$((calm + 1))
            if [ "$calm" -ge 2 ]; then
                echo "   (shop idle after ${waited} s)"
                return 0
            fi
        else
            calm=0
        fi
        before=$after
    done
    echo "   (shop still busy after $QUIESCE_MAX s; going on)"
}

# Runs loadgen against $URL (server $SERVER, a PID) under label $1 and
# appends its JSON line; a failed point is reported and left out of the
# table (shown there as n/a).
load() {
    local label=$1
    shift
    local file="$OUT/${label//\//_}.txt" last
    echo "-- $label"
    if ! "$BIN/loadgen" --url "$URL" --server-pid "$SERVER" --label "$label" --data "$DATA" \
        --duration "$DURATION" --warmup "$WARMUP" "$@" | tee "$file"; then
        echo "   $label FAILED; see above"
    fi
    last=$(tail -n1 "$file")
    case $last in
        "{"*) echo "$last" >>"$RESULTS" ;;
    esac
}

# CPU ticks of every thread of process $1, as "tid name ticks" lines.
thread_ticks() {
    local t
    for t in /proc/"$1"/task/*; do
        echo "${t##*/} $(tr ' ' _ <"$t/comm") $(sed 's/^.*) //' "$t/stat" | awk '{print $12 + $13}')"
    done 2>/dev/null | sort
}

# Profiles shop ($SHOP_PID) for 4 s while loadgen runs "$@" (from $3 on,
# label $3) for 12 s, starting $2 s into it: CPU by thread, `perf stat`
# and a flat `perf report` by symbol, as $OUT/{cpu-by-thread,perf-stat,
# perf-report}-$1.txt. The point's own figures are measured while perf
# samples, so they are not the suite's.
profile() {
    local name=$1 after=$2
    shift 2
    DURATION=12 WARMUP=1 load "$@" &
    local load_pid=$!
    PIDS+=("$load_pid")
    sleep "$after"
    thread_ticks "$SHOP_PID" >"$TMP/ticks-before"
    perf stat -e task-clock,context-switches,cpu-migrations,page-faults -p "$SHOP_PID" \
        -o "$OUT/perf-stat-$name.txt" -- sleep 4 || true
    perf record -e cpu-clock -F 499 -g -p "$SHOP_PID" -o "$OUT/perf-$name.data" -- sleep 4 2>/dev/null || true
    thread_ticks "$SHOP_PID" >"$TMP/ticks-after"
    wait "$load_pid" || true
    forget "$load_pid"
    join "$TMP/ticks-before" "$TMP/ticks-after" \
        | awk '{ by[$2] += $5 - $3; all += $5 - $3 }
               END { for (n in by) printf "%-20s %6d ticks  %5.1f%%\n", n, by[n], 100 * by[n] / all }' \
        | sort -k2 -nr >"$OUT/cpu-by-thread-$name.txt"
    perf report -i "$OUT/perf-$name.data" --no-children --sort dso,symbol --stdio -g none \
        --percent-limit 0.4 2>/dev/null | grep -E '^ +[0-9]' | sed 's/ *$//; s/ *-  *-$//' \
        >"$OUT/perf-report-$name.txt" || true
    echo "   profile in $OUT/{cpu-by-thread,perf-stat,perf-report}-$name.txt"
}

# Starts a shop on a fresh data folder $1; sets URL, SERVER, SHOP_PID and
# DATA (where loadgen finds the keys it mints its tokens with).
start_shop() {
    DATA=$TMP/$1
    start_server "shop-$1" "$BIN/shop" up --addr 127.0.0.1:0 --data "$DATA" --durability full
    SHOP_PID=$SERVER_PID
    SERVER=$SERVER_PID
}

echo "== servers"
start_server baseline-axum "$BIN/baseline-axum" --addr 127.0.0.1:0
AXUM_PID=$SERVER_PID
AXUM_URL=$URL
start_shop main
SHOP_URL=$URL
sleep 3
rss shop-idle "$SHOP_PID"
rss baseline-axum-idle "$AXUM_PID"

echo "== HTTP stack: bare axum vs Seams, 64 connections"
URL=$AXUM_URL SERVER=$AXUM_PID load bare/c64 --scenario bare --connections 64
URL=$SHOP_URL load trivial/c64 --scenario trivial --connections 64
URL=$SHOP_URL load get-invoice/c64 --scenario get-invoice --connections 64
rss baseline-axum-end "$AXUM_PID"
stop "$AXUM_PID"

echo "== journey"
URL=$SHOP_URL
for c in 1 16; do
    quiesce "$SHOP_PID"
    load "journey/c$c" --scenario journey --connections "$c"
done

# Each point right after its raw SQLite baseline (shop idle), so the pair
# sees the same disk and neighbours and the ratio drifts less than either.
echo "== create-invoice, durable, closed loop: concurrency sweep, each after its raw SQLite point"
for c in 1 16 64 256; do
    quiesce "$SHOP_PID"
    echo "-- raw-sqlite/full/single/c$c"
    "$BIN/baseline-sqlite" --dir "$TMP/sqlite" --duration "$SQLITE_DURATION" \
        --concurrency "$c" --pools single | tee -a "$OUT/raw-sqlite-full.txt"
    load "create-invoice/c$c" --scenario create-invoice --connections "$c"
done

if [ "$PROFILE" = 1 ]; then
    echo "== profile: where shop's CPU goes under create-invoice, 64 connections"
    quiesce "$SHOP_PID"
    profile create-invoice 2 profile/create-invoice/c64 --scenario create-invoice --connections 64
fi

quiesce "$SHOP_PID"
rss shop-end "$SHOP_PID"
stop "$SHOP_PID"

# Lags are read from the system's own window of recent deliveries, so each
# rate gets a fresh shop: no backlog or samples of earlier points mix in.
echo "== event propagation: open-loop create-invoice at 1,000/s and at $LOW_RATE/s, fresh shop each"
for point in open1000:1000 "open$LOW_RATE:$LOW_RATE"; do
    name=${point%%:*}
    rate=${point#*:}
    start_shop "$name"
    sleep 2
    load "create-invoice/$name" --scenario create-invoice --connections 64 --rate "$rate" --consistency
    rss "shop-$name-end" "$SHOP_PID"
    stop "$SHOP_PID"
done

if [ "$PROFILE" = 1 ]; then
    # What the consumers spend at 1,000/s: a point of its own, so perf does
    # not touch the figures above.
    echo "== profile: where shop's CPU goes at 1,000 invoices/s open loop (fresh shop)"
    start_shop profile-open1000
    sleep 2
    profile open1000 4 profile/create-invoice/open1000 --scenario create-invoice \
        --connections 64 --rate 1000 --consistency
    stop "$SHOP_PID"
fi

echo "== raw SQLite: many connections, and synchronous=NORMAL (shop stopped)"
"$BIN/baseline-sqlite" --dir "$TMP/sqlite" --duration "$SQLITE_DURATION" \
    --concurrency 16,64,256 --pools multi | tee -a "$OUT/raw-sqlite-full.txt"
"$BIN/baseline-sqlite" --dir "$TMP/sqlite" --duration "$SQLITE_DURATION" \
    --concurrency 16 --pools single --normal | tee "$OUT/raw-sqlite-normal.txt"
grep -h '^{' "$OUT/raw-sqlite-full.txt" "$OUT/raw-sqlite-normal.txt" >>"$RESULTS"

CRITERION_ARG=()
if [ "$SKIP_MICRO" != 1 ]; then
    echo "== microbenchmarks (criterion)"
    CRITERION_HOME=$OUT/criterion cargo bench -q -p seams-bench --bench micro -- \
        --warm-up-time 1 --measurement-time 3 2>&1 | tee "$OUT/micro.txt"
    CRITERION_ARG=(--criterion "$OUT/criterion")
fi

echo "== report"
{
    echo "Machine:"
    echo
    sed 's/^/    /' "$OUT/machine.txt"
    echo
    "$BIN/report" "$RESULTS" "${CRITERION_ARG[@]+"${CRITERION_ARG[@]}"}"
} | tee "$OUT/report.md"
echo "results in $OUT"
