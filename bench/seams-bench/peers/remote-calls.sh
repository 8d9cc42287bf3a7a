#!/usr/bin/env bash
# Remote calls (issue 5: "Against Moleculer over NATS: split-mode remote
# calls at a higher rate and lower p99"), both measured in the same run:
#
#   moleculer-nats  Moleculer 0.14 request-reply over its NATS transporter
#                   between two Node processes: a callee broker with
#                   `catalog.quotePrices` (moleculer/remote-calls.cjs,
#                   MODE=callee; one indexed SQLite read, as Seams) and a caller
#                   broker (MODE=caller) with N calls in flight, through a
#                   throwaway nats-server (/usr/sbin/nats-server, core NATS).
#   seams-http      Seams' split-mode remote call: `target/release/remote-calls`
#                   calls the contract operation catalog.quote-prices through the
#                   governed HTTP transport (POST /_seams/ops/catalog.quote-prices)
#                   with N calls in flight, against `shop serve catalog` alone.
#                   Each process runs tokio's default runtime: a worker thread
#                   per core, so caller and callee run four on two cores.
#   seams-http-1w   The same, each Seams process sized to one core
#                   (TOKIO_WORKER_THREADS=1, what tokio chooses under a
#                   one-CPU limit): one worker thread each, as each Node
#                   process of Moleculer runs one event loop.
#
#   bench/seams-bench/peers/remote-calls.sh                    # ~50 s per round after install and build
#   DURATION=20 ROUNDS=2 bench/seams-bench/peers/remote-calls.sh
#   IN_FLIGHT="1 16 64" SKIP_BUILD=1 bench/seams-bench/peers/remote-calls.sh
#
# What it does:
#  1. builds `shop` (release) and tries to build `remote-calls` (a failure of
#     the latter is reported, not fatal: whatever binary exists is used);
#  2. installs Moleculer into $PEERS_DIR/moleculer as run.sh does (npm, exact
#     versions of moleculer/package.json; skipped when already installed);
#  3. re-runs itself inside a new network namespace (`unshare -n`, `lo` up):
#     every process below shares one loopback and nothing leaves the machine;
#  4. per round, per system (even rounds in reverse order): starts the callee
#     side on free loopback ports with fresh data, and for each N in
#     $IN_FLIGHT runs the caller (closed loop, N calls in flight, $WARMUP s
#     then $DURATION s measured; calls that start in the measured window are
#     recorded), samples the CPU of every process of the point (callee side
#     and caller) over the measured window, then stops the callee side;
#     seams-http is skipped, with a message, if target/release/remote-calls
#     does not exist;
#  5. prints the table (report.md): calls/s, p50, p99, errors, cores, and
#     Seams / Moleculer at each N.
# Every process it starts is stopped by PID, on exit too (trap); each caller
# is bounded in time (`timeout`). Output: $OUT/results.jsonl (each caller's
# JSON line, with `system` and `round` added, and one `remote-call-cpu` line
# per point), each point's output, the processes' logs, machine.txt,
# versions.txt, report.md.
#
# Settings (environment): DURATION (s measured per point, 10), WARMUP (s, 2),
# IN_FLIGHT ("1 64"), SYSTEMS ("moleculer-nats seams-http"), ROUNDS (1),
# OUT (default target/bench-results/remote-calls-<UTC time>), PEERS_DIR
# (target/peers), NATS_SERVER (/usr/sbin/nats-server), SKIP_BUILD=1 (use
# target/release as it is), COMMIT (what to print as the commit measured).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
source "$ROOT/bench/lib.sh"
cd "$ROOT"
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
IN_FLIGHT=${IN_FLIGHT:-1 64}
SYSTEMS=${SYSTEMS:-moleculer-nats seams-http seams-http-1w}
ROUNDS=${ROUNDS:-1}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET/release
PEERS_DIR=${PEERS_DIR:-$TARGET/peers}
NATS_SERVER=${NATS_SERVER:-/usr/sbin/nats-server}
export DURATION WARMUP IN_FLIGHT SYSTEMS ROUNDS PEERS_DIR NATS_SERVER

# ---------------------------------------------------------------- outside
if [ "${REMOTE_CALLS_INSIDE_NETNS:-}" != 1 ]; then
    OUT=${OUT:-$TARGET/bench-results/remote-calls-$(date -u +%Y%m%dT%H%M%SZ)}
    mkdir -p "$OUT"
    OUT=$(cd "$OUT" && pwd)
    export OUT
    echo "== machine"
    {
        machine_lines
        echo "settings: DURATION=$DURATION WARMUP=$WARMUP IN_FLIGHT='$IN_FLIGHT' SYSTEMS='$SYSTEMS' ROUNDS=$ROUNDS"
    } | tee "$OUT/machine.txt"

    if [ "${SKIP_BUILD:-0}" != 1 ]; then
        echo "== building (release)"
        cargo build --release -q -p shop
        case " $SYSTEMS " in
            *" seams-http"*)
                cargo build --release -q -p seams-bench --bin remote-calls ||
                    echo "   could not build remote-calls (see above); using $BIN/remote-calls as it is, if any"
                ;;
        esac
    fi

    # The install step of run.sh, for Moleculer only: package.json beside
    # this script, exact versions, skipped when that exact file is installed.
    case " $SYSTEMS " in
        *" moleculer-nats "*)
            dir=$PEERS_DIR/moleculer
            mkdir -p "$dir"
            if [ -d "$dir/node_modules" ] && cmp -s "$HERE/moleculer/package.json" "$dir/package.installed.json"; then
                echo "moleculer: installed in $dir"
            else
                echo "moleculer: npm install into $dir"
                cp "$HERE/moleculer/package.json" "$dir/package.json"
                (cd "$dir" && npm install --no-audit --no-fund --no-package-lock --omit=dev --loglevel=error)
                cp "$HERE/moleculer/package.json" "$dir/package.installed.json"
            fi
            ;;
    esac

    echo "== into a network namespace with loopback only"
    unshare_net=(unshare -n)
    [ "$(id -u)" = 0 ] || unshare_net=(unshare -r -n)
    REMOTE_CALLS_INSIDE_NETNS=1 exec "${unshare_net[@]}" -- bash -c 'ip link set lo up && exec bash "$0"' "$HERE/remote-calls.sh"
fi

# ---------------------------------------------------------------- inside
RESULTS=$OUT/results.jsonl
: >"$RESULTS"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/seams-remote-calls.XXXXXX")
HZ=$(getconf CLK_TCK)
NCPU=$(nproc)

cleanup() {
    # Newest first: fronts before what they call.
    stop_all
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The callee side of the system under test: names and PIDs, in start order.
SYS_NAMES=()
SYS_PIDS=()

# Starts "$@" in the background as process $1 of the system (output in
# $OUT/$TAG-$1.log) and waits, at most 60 s, for a line matching $2 in it.
# Sets LAST_PID and LAST_LINE (the first matching line).
start_proc() {
    local name=$1 ready=$2
    shift 2
    local log="$OUT/$TAG-$name.log"
    "$@" >"$log" 2>&1 &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
    SYS_NAMES+=("$name")
    SYS_PIDS+=("$LAST_PID")
    LAST_LINE=""
    for _ in $(seq 1 600); do
        LAST_LINE=$(grep -m1 -E "$ready" "$log" || true)
        [ -n "$LAST_LINE" ] && break
        kill -0 "$LAST_PID" 2>/dev/null || { cat "$log" >&2; echo "$SYSTEM: $name exited" >&2; exit 1; }
        sleep 0.1
    done
    [ -n "$LAST_LINE" ] || { cat "$log" >&2; echo "$SYSTEM: $name not ready in 60 s" >&2; exit 1; }
    echo "   $name: pid $LAST_PID"
}

stop_system() {
    local i
    for ((i = ${#SYS_PIDS[@]} - 1; i >= 0; i--)); do
        stop_pid "${SYS_PIDS[$i]}"
        forget "${SYS_PIDS[$i]}"
    done
    SYS_NAMES=()
    SYS_PIDS=()
}

# Busy ticks of the whole machine so far (every CPU).
machine_ticks() {
    awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9; exit}' /proc/stat
}

# One point: runs the caller "$@" (N = $1 calls in flight) and waits for
# it. $ANNOUNCE is a pattern its stderr prints when the load starts (empty:
# it starts at once, setup being a few ms). Samples the CPU of the callee
# side and the caller over the measured window (from 0.25 s after it starts
# to 0.25 s before it ends), appends the caller's JSON line (with `system`
# and `round`) and a `remote-call-cpu` line to $RESULTS.
point() {
    local n=$1
    shift
    local file="$OUT/${SYSTEM}_in${n}_r$ROUND.txt"
    echo "-- $SYSTEM, $n in flight, round $ROUND"
    timeout --signal=TERM --kill-after=10 "$(awk -v w="$WARMUP" -v d="$DURATION" 'BEGIN {printf "%d", w + d + 120}')" \
        "$@" >"$file" 2>"$file.progress" &
    local caller=$!
    PIDS+=("$caller")
    if [ -n "$ANNOUNCE" ]; then
        for _ in $(seq 1 1200); do
            grep -qE "$ANNOUNCE" "$file.progress" 2>/dev/null && break
            kill -0 "$caller" 2>/dev/null || break
            sleep 0.05
        done
    fi
    # The process doing the calls: timeout's child.
    local worker=""
    for _ in $(seq 1 100); do
        worker=$(pgrep -P "$caller" | head -n1 || true)
        [ -n "$worker" ] && break
        kill -0 "$caller" 2>/dev/null || break
        sleep 0.01
    done
    local names=("${SYS_NAMES[@]}" caller) pids=("${SYS_PIDS[@]}" "${worker:-$caller}")
    local window before=() after=() m0 m1 i
    window=$(awk -v d="$DURATION" 'BEGIN {w = d - 0.5; if (w < 0.2) w = 0.2; printf "%.2f", w}')
    sleep "$(awk -v w="$WARMUP" 'BEGIN {printf "%.2f", w + 0.25}')"
    for i in "${!pids[@]}"; do before[i]=$(cpu_ticks "${pids[$i]}"); done
    m0=$(machine_ticks)
    sleep "$window"
    for i in "${!pids[@]}"; do after[i]=$(cpu_ticks "${pids[$i]}"); done
    m1=$(machine_ticks)
    local ok=1
    wait "$caller" || ok=0
    forget "$caller"
    grep -v '^{' "$file" | sed 's/^/   /'
    [ "$ok" = 1 ] || { echo "   $SYSTEM in$n FAILED:"; tail -n 5 "$file.progress" | sed 's/^/   /'; }
    local last
    last=$(grep '^{' "$file" | tail -n1 || true)
    if [ -n "$last" ]; then
        jq -c --arg s "$SYSTEM" --argjson r "$ROUND" --argjson n "$n" \
            '. + {system: $s, in_flight: $n, round: $r}' <<<"$last" >>"$RESULTS"
    fi
    local cores="{}" total=0 d
    for i in "${!pids[@]}"; do
        d=$((after[i] - before[i]))
        total=$((total + d))
        cores=$(jq -c --arg k "${names[$i]}" --argjson v "$(awk -v d="$d" -v hz="$HZ" -v s="$window" 'BEGIN {printf "%.3f", d / hz / s}')" '. + {($k): $v}' <<<"$cores")
    done
    jq -cn --arg s "$SYSTEM" --argjson r "$ROUND" --argjson n "$n" --argjson cores "$cores" --argjson window "$window" \
        --argjson total "$(awk -v d="$total" -v hz="$HZ" -v s="$window" 'BEGIN {printf "%.3f", d / hz / s}')" \
        --argjson machine "$(awk -v d="$((m1 - m0))" -v hz="$HZ" -v s="$window" 'BEGIN {printf "%.3f", d / hz / s}')" \
        '{kind: "remote-call-cpu", system: $s, in_flight: $n, round: $r, window_s: $window, cores: $cores,
          total_cores: $total, machine_cores: $machine, other_cores: ([$machine - $total, 0] | max)}' | tee -a "$RESULTS"
}

echo "== versions"
{
    echo "node $(node --version)"
    echo "nats-server $("$NATS_SERVER" --version 2>&1 | head -n1)"
    if [ -d "$PEERS_DIR/moleculer/node_modules" ]; then
        for p in moleculer nats better-sqlite3; do
            echo "$p $(jq -r .version "$PEERS_DIR/moleculer/node_modules/$p/package.json")"
        done
    fi
    echo "shop: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown), release build of $(date -u -r "$BIN/shop" +%Y-%m-%dT%H:%M:%SZ 2>/dev/null || echo '(none)')"
    if [ -x "$BIN/remote-calls" ]; then
        echo "remote-calls: release build of $(date -u -r "$BIN/remote-calls" +%Y-%m-%dT%H:%M:%SZ)"
    else
        echo "remote-calls: not built"
    fi
} | tee "$OUT/versions.txt"

SKIPPED=""
REVERSED=$(tr ' ' '\n' <<<"$SYSTEMS" | grep -v '^$' | tac | tr '\n' ' ')
for ROUND in $(seq 1 "$ROUNDS"); do
ORDER=$SYSTEMS
[ $((ROUND % 2)) = 1 ] || ORDER=$REVERSED
for SYSTEM in $ORDER; do
    echo "== $SYSTEM (round $ROUND of $ROUNDS)"
    TAG="$SYSTEM-r$ROUND"
    case $SYSTEM in
        moleculer-nats)
            nats_port=$(free_port)
            nats_url="nats://127.0.0.1:$nats_port"
            start_proc nats-server 'Server is ready' "$NATS_SERVER" -a 127.0.0.1 -p "$nats_port"
            start_proc callee '^callee ready' env NODE_PATH="$PEERS_DIR/moleculer/node_modules" \
                MODE=callee NATS_URL="$nats_url" DATA="$TMP/$TAG" node "$HERE/moleculer/remote-calls.cjs"
            ANNOUNCE='^loadgen:'
            for n in $IN_FLIGHT; do
                point "$n" env NODE_PATH="$PEERS_DIR/moleculer/node_modules" MODE=caller NATS_URL="$nats_url" \
                    IN_FLIGHT="$n" DURATION="$DURATION" WARMUP="$WARMUP" LABEL="moleculer-nats/in$n" \
                    node "$HERE/moleculer/remote-calls.cjs"
            done
            ;;
        seams-http | seams-http-1w)
            # Set for every Seams process of the point, the caller included.
            workers=()
            [ "$SYSTEM" = seams-http ] || workers=(TOKIO_WORKER_THREADS=1)
            if [ ! -x "$BIN/remote-calls" ]; then
                echo "   SKIPPED: $BIN/remote-calls does not exist (it is being written; build it with"
                echo "   cargo build --release -p seams-bench --bin remote-calls, then run this again)"
                SKIPPED="$SKIPPED $SYSTEM"
                continue
            fi
            mkdir -p "$TMP/$TAG"
            unused=http://127.0.0.1:9 # catalog's quote-prices never calls another capability
            # Identity publishes the deployment's public keys, which catalog
            # fetches once to verify the callers' tokens (guarded
            # boundaries); it mints them from the same data directory's
            # signing keys as remote-calls does. Idle during the calls.
            start_proc identity 'listening on http://' env "${workers[@]}" "$BIN/shop" serve identity --addr 127.0.0.1:0 \
                --data "$TMP/$TAG" --durability full \
                --peer catalog=$unused --peer billing=$unused --peer fulfillment=$unused --peer notification=$unused
            identity_url=$(grep -o 'http://[0-9.:]*' <<<"$LAST_LINE" | head -n1)
            start_proc shop 'listening on http://' env "${workers[@]}" "$BIN/shop" serve catalog --addr 127.0.0.1:0 \
                --data "$TMP/$TAG" --durability full \
                --peer identity=$identity_url --peer billing=$unused --peer fulfillment=$unused --peer notification=$unused
            url=$(grep -o 'http://[0-9.:]*' <<<"$LAST_LINE" | head -n1)
            ANNOUNCE=''
            for n in $IN_FLIGHT; do
                point "$n" env "${workers[@]}" "$BIN/remote-calls" --url "$url" --in-flight "$n" --duration "$DURATION" \
                    --warmup "$WARMUP" --label "$SYSTEM" --data "$TMP/$TAG"
            done
            ;;
        *)
            echo "unknown system $SYSTEM (moleculer-nats, seams-http, seams-http-1w)" >&2
            exit 1
            ;;
    esac
    stop_system
done
done

echo "== report"
{
    echo "Machine:"
    echo
    sed 's/^/    /' "$OUT/machine.txt"
    echo
    echo "Versions:"
    echo
    sed 's/^/    /' "$OUT/versions.txt"
    echo
    echo "catalog quote-prices of one SKU as a remote call, closed loop, ${DURATION} s measured after"
    echo "${WARMUP} s warm-up per point. moleculer-nats: Moleculer caller broker -> NATS -> callee broker"
    echo "(two Node processes + nats-server); seams-http: remote-calls (governed HTTP transport) ->"
    echo "shop serve catalog; seams-http-1w: the same with one tokio worker thread per Seams process"
    echo "(TOKIO_WORKER_THREADS=1). \"cores\": CPU of every process of the point, the caller included,"
    echo "over the measured window; \"others\": the rest of the machine ($NCPU cores)."
    echo "Seams / Moleculer: ratio at the same N in the same round (calls/s: higher is better"
    echo "for Seams; p99: lower is better for Seams)."
    [ -z "$SKIPPED" ] || echo "Skipped:$SKIPPED (no target/release/remote-calls)."
    echo
    echo "| system | in flight | round | calls/s | p50 ms | p99 ms | errors | cores (caller + callee side) | others | Seams / Moleculer calls/s | Seams / Moleculer p99 |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|"
    jq -rs --arg systems "$SYSTEMS" --arg ns "$IN_FLIGHT" --argjson rounds "$ROUNDS" '
        def f(d): if . == null then "n/a" else (. * pow(10; d) | round / pow(10; d) | tostring) end;
        def key: "\(.system)/\(.in_flight)/\(.round)";
          (map(select(.kind == "remote-call-cpu")) | map({key: key, value: .}) | from_entries) as $cpu
        | (map(select(.kind != "remote-call-cpu" and .system != null)) | map({key: key, value: .}) | from_entries) as $res
        | ($ns | split(" ") | map(select(. != ""))) as $nl
        | ($systems | split(" ") | map(select(. != ""))) as $sl
        | $nl[] as $n | range(1; $rounds + 1) as $r | $sl[] as $s
        | $res["\($s)/\($n)/\($r)"] as $x | $cpu["\($s)/\($n)/\($r)"] as $u
        | $res["moleculer-nats/\($n)/\($r)"] as $m | $x as $z
        | if $x == null then "| \($s) | \($n) | \($r) | \(if $u == null then "skipped" else "failed" end) | | | | | | | |"
          else
            "| \($s) | \($n) | \($r) | \($x.throughput | f(0)) | \($x.latency.p50_ms | f(3)) | \($x.latency.p99_ms | f(3)) | \($x.error_count)"
            + (if ($x.error_count // 0) > 0 and $x.errors != null then " \($x.errors | tojson)" else "" end)
            + " | \($u.total_cores | f(2)) (\($u.cores | to_entries | map("\(.key) \(.value)") | join(", "))) | \($u.other_cores | f(2)) | "
            + (if ($s | startswith("seams-")) and $m != null and $z != null and $m.throughput > 0 then ($z.throughput / $m.throughput | f(2)) + "x" else "" end)
            + " | "
            + (if ($s | startswith("seams-")) and $m != null and $z != null and $m.latency.p99_ms > 0 then ($z.latency.p99_ms / $m.latency.p99_ms | f(2)) + "x" else "" end)
            + " |"
          end' "$RESULTS"
} | tee "$OUT/report.md"
echo "results in $OUT"
