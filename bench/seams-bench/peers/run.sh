#!/usr/bin/env bash
# Peer benchmarks (issue 5): durable, idempotent create-invoice on Restate
# and on Moleculer (local, and over NATS), next to Seams' own `shop up`
# measured in the same run, all driven by the project's load generator
# (`loadgen --scenario create-invoice`) at 1 and 64 connections. What each
# peer does per request, and how it differs from Seams, is in README.md
# beside this file.
#
#   bench/seams-bench/peers/run.sh                  # ~5 min per round after the installs and the build
#   DURATION=10 bench/seams-bench/peers/run.sh
#   SYSTEMS="seams restate" CONNECTIONS="1 16 64" bench/seams-bench/peers/run.sh
#
# What it does:
#  1. builds release once (`cargo build --release -p shop -p seams-bench`);
#  2. installs the peers from the npm registry into $PEERS_DIR
#     (target/peers/{restate,moleculer}: package.json beside this script,
#     exact versions; skipped when the installed package.json is the same;
#     the first install takes ~4 min, most of it compiling better-sqlite3);
#  3. re-runs itself inside a new network namespace (`unshare -n`, loopback
#     only, `lo` brought up): Restate's server looks up its latest release on
#     the internet at every start and nothing turns that off; every system
#     and the load generator run in that namespace, so all of them share the
#     same loopback and no packet can leave the machine;
#  4. for each system in $SYSTEMS, in order: starts it on free loopback ports
#     with fresh data, then for each C in $CONNECTIONS waits until it is idle
#     (at most QUIESCE_MAX s) and runs
#       loadgen --scenario create-invoice --connections C --duration D --warmup W
#               --label peer/<system>/c<C> --server-pid <main process>
#     (its setup registers a customer, adds a product and receives 2,000,000
#     units of stock through the same HTTP paths, before measuring), samples
#     the CPU time of every process of the system over the measured window,
#     and stops the system (by PID);
#  5. prints the table (report.md).
#  Systems:
#     seams            target/release/shop up --addr 127.0.0.1:0 --data <tmp> --durability full
#     restate          restate-server + the SDK service endpoint (services.cjs) + an
#                      HTTP/1.1 front (front.cjs) mapping the shop's paths to the ingress
#                      (one extra loopback hop per request)
#     restate-store-only  the same with LOOKUPS=0: invoice.create skips its calls to
#                      customer and product (a fixed price); NOT equivalent, it shows
#                      what Restate's floor is: one durable keyed invocation storing state
#     moleculer-local  one broker: moleculer-web gateway + services, in process
#     moleculer-nats   a throwaway nats-server (/usr/sbin/nats-server, no JetStream) on
#                      a free port, a gateway broker and a services broker
# Every process it starts is stopped by PID, on exit too (trap); loadgen
# bounds each point in time. Output: $OUT/results.jsonl (loadgen's JSON lines
# and `peer-cpu` lines), each point's output, the systems' logs, machine.txt,
# versions.txt, report.md.
#
# Settings (environment): DURATION (s measured per point, 15), WARMUP (s, 2),
# CONNECTIONS ("1 64"), SYSTEMS ("seams restate restate-store-only
# moleculer-local moleculer-nats", run in that order), ROUNDS (1: how many
# times the whole set runs, every other round in reverse order; labels of
# round N > 1 end in /rN), QUIESCE_MAX (s, 60), OUT (default
# target/bench-results/peers-<UTC time>), PEERS_DIR (target/peers),
# SKIP_BUILD=1 (use the binaries in target/release as they are),
# NATS_SERVER (/usr/sbin/nats-server), COMMIT (what to print as the commit
# measured).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
source "$ROOT/bench/lib.sh"
cd "$ROOT"
DURATION=${DURATION:-15}
WARMUP=${WARMUP:-2}
CONNECTIONS=${CONNECTIONS:-1 64}
SYSTEMS=${SYSTEMS:-seams restate restate-store-only moleculer-local moleculer-nats}
QUIESCE_MAX=${QUIESCE_MAX:-60}
ROUNDS=${ROUNDS:-1}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET/release
PEERS_DIR=${PEERS_DIR:-$TARGET/peers}
NATS_SERVER=${NATS_SERVER:-/usr/sbin/nats-server}
export DURATION WARMUP CONNECTIONS SYSTEMS QUIESCE_MAX ROUNDS PEERS_DIR NATS_SERVER

# ---------------------------------------------------------------- outside
if [ "${PEERS_INSIDE_NETNS:-}" != 1 ]; then
    OUT=${OUT:-$TARGET/bench-results/peers-$(date -u +%Y%m%dT%H%M%SZ)}
    mkdir -p "$OUT"
    OUT=$(cd "$OUT" && pwd)
    export OUT
    echo "== machine"
    {
        machine_lines
        echo "settings: DURATION=$DURATION WARMUP=$WARMUP CONNECTIONS='$CONNECTIONS' SYSTEMS='$SYSTEMS' ROUNDS=$ROUNDS QUIESCE_MAX=$QUIESCE_MAX"
    } | tee "$OUT/machine.txt"

    if [ "${SKIP_BUILD:-0}" != 1 ]; then
        echo "== building (release)"
        cargo build --release -q -p shop -p seams-bench
    fi

    # Installs peer $1 (package.json beside this script) into $PEERS_DIR/$1,
    # unless that exact package.json is installed already.
    install_peer() {
        local name=$1 dir=$PEERS_DIR/$1
        mkdir -p "$dir"
        if [ -d "$dir/node_modules" ] && cmp -s "$HERE/$name/package.json" "$dir/package.installed.json"; then
            echo "$name: installed in $dir"
            return 0
        fi
        echo "$name: npm install into $dir"
        cp "$HERE/$name/package.json" "$dir/package.json"
        # SCARF_ANALYTICS / DO_NOT_TRACK: restate-server's dependency
        # @scarf/scarf would report the install otherwise.
        (cd "$dir" && SCARF_ANALYTICS=false DO_NOT_TRACK=1 npm install --no-audit --no-fund \
            --no-package-lock --omit=dev --loglevel=error)
        cp "$HERE/$name/package.json" "$dir/package.installed.json"
    }
    case " $SYSTEMS " in *" restate"*) install_peer restate ;; esac
    case " $SYSTEMS " in *" moleculer-"*) install_peer moleculer ;; esac

    echo "== into a network namespace with loopback only"
    unshare_net=(unshare -n)
    [ "$(id -u)" = 0 ] || unshare_net=(unshare -r -n)
    PEERS_INSIDE_NETNS=1 exec "${unshare_net[@]}" -- bash -c 'ip link set lo up && exec bash "$0"' "$HERE/run.sh"
fi

# ---------------------------------------------------------------- inside
RESULTS=$OUT/results.jsonl
: >"$RESULTS"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/seams-peers.XXXXXX")
HZ=$(getconf CLK_TCK)

cleanup() {
    # Newest first: fronts before what they call.
    stop_all
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The processes of the system under test: names and PIDs, in start order.
SYS_NAMES=()
SYS_PIDS=()
MAIN_PID=""
URL=""

# Starts "$@" in the background as process $1 of the system (output in
# $OUT/<system>-r<round>-$1.log) and waits, at most 60 s, for a line matching $2 in
# it (no wait if $2 is empty). Sets LAST_PID and LAST_LINE (the first
# matching line).
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
    if [ -z "$ready" ]; then
        echo "   $name: pid $LAST_PID"
        return 0
    fi
    for _ in $(seq 1 600); do
        LAST_LINE=$(grep -m1 -E "$ready" "$log" || true)
        [ -n "$LAST_LINE" ] && break
        kill -0 "$LAST_PID" 2>/dev/null || { cat "$log" >&2; echo "$SYSTEM: $name exited" >&2; exit 1; }
        sleep 0.1
    done
    [ -n "$LAST_LINE" ] || { cat "$log" >&2; echo "$SYSTEM: $name not ready in 60 s" >&2; exit 1; }
    echo "   $name: pid $LAST_PID"
}

# The URL in a "listening on http://..." line.
url_of() {
    grep -o 'http://[0-9.:]*' <<<"$1" | head -n1
}

# Stops the system's processes, newest first.
stop_system() {
    local i
    for ((i = ${#SYS_PIDS[@]} - 1; i >= 0; i--)); do
        stop_pid "${SYS_PIDS[$i]}"
        forget "${SYS_PIDS[$i]}"
    done
    SYS_NAMES=()
    SYS_PIDS=()
}

# Sum of the CPU ticks of the system's processes.
system_ticks() {
    local sum=0 pid
    for pid in "${SYS_PIDS[@]}"; do
        sum=$((sum + $(cpu_ticks "$pid")))
    done
    echo "$sum"
}

# Waits until the system is idle (under 5% of a core, all processes
# together, for 2 seconds in a row); at most $QUIESCE_MAX s.
quiesce() {
    local before after calm=0 waited
    before=$(system_ticks)
    for waited in $(seq 1 "$QUIESCE_MAX"); do
        sleep 1
        after=$(system_ticks)
        if [ $((after - before)) -le $((HZ / 20)) ]; then
            calm=$((calm + 1))
            if [ "$calm" -ge 2 ]; then
                echo "   ($SYSTEM idle after ${waited} s)"
                return 0
            fi
        else
            calm=0
        fi
        before=$after
    done
    echo "   ($SYSTEM still busy after $QUIESCE_MAX s; going on)"
}

# One point: create-invoice at $1 connections against $URL. Appends
# loadgen's JSON line and a `peer-cpu` line (cores used by each process of
# the system over the measured window) to $RESULTS.
point() {
    local c=$1
    local label="peer/$SYSTEM/c$c$ROUND_SUFFIX"
    local file="$OUT/peer_${SYSTEM}_c$c${ROUND_SUFFIX//\//_}.txt"
    quiesce
    echo "-- $label"
    "$BIN/loadgen" --url "$URL" --scenario create-invoice --connections "$c" \
        --duration "$DURATION" --warmup "$WARMUP" --label "$label" --server-pid "$MAIN_PID" \
        >"$file" 2>"$file.progress" &
    local lg=$!
    PIDS+=("$lg")
    # Setup (customer, product, stock) ends when loadgen announces the load.
    for _ in $(seq 1 1200); do
        grep -q '^loadgen:' "$file.progress" && break
        kill -0 "$lg" 2>/dev/null || break
        sleep 0.05
    done
    local before=() after=() i
    sleep "$WARMUP"
    for i in "${!SYS_PIDS[@]}"; do before[i]=$(cpu_ticks "${SYS_PIDS[$i]}"); done
    sleep "$DURATION"
    for i in "${!SYS_PIDS[@]}"; do after[i]=$(cpu_ticks "${SYS_PIDS[$i]}"); done
    local ok=1
    wait "$lg" || ok=0
    forget "$lg"
    grep -v '^{' "$file" | sed 's/^/   /'
    [ "$ok" = 1 ] || { echo "   $label FAILED:"; tail -n 5 "$file.progress" | sed 's/^/   /'; }
    local last
    last=$(tail -n1 "$file")
    case $last in
        "{"*) echo "$last" >>"$RESULTS" ;;
    esac
    local cores="{}" total=0
    for i in "${!SYS_PIDS[@]}"; do
        local d=$((after[i] - before[i]))
        total=$((total + d))
        cores=$(jq -c --arg n "${SYS_NAMES[$i]}" --argjson v "$(awk -v d="$d" -v hz="$HZ" -v s="$DURATION" 'BEGIN {printf "%.3f", d / hz / s}')" '. + {($n): $v}' <<<"$cores")
    done
    jq -cn --arg lbl "$label" --argjson cores "$cores" \
        --argjson total "$(awk -v d="$total" -v hz="$HZ" -v s="$DURATION" 'BEGIN {printf "%.3f", d / hz / s}')" \
        --argjson window "$DURATION" \
        '{"kind": "peer-cpu", "label": $lbl, "window_s": $window, "cores": $cores, "total_cores": $total}' | tee -a "$RESULTS"
}

versions() {
    {
        echo "node $(node --version)"
        echo "nats-server $("$NATS_SERVER" --version 2>&1 | head -n1)"
        if [ -d "$PEERS_DIR/restate/node_modules" ]; then
            echo "restate-server $("$RESTATE_BIN" --version 2>&1 | head -n1)"
            echo "@restatedev/restate-sdk $(jq -r .version "$PEERS_DIR/restate/node_modules/@restatedev/restate-sdk/package.json")"
        fi
        if [ -d "$PEERS_DIR/moleculer/node_modules" ]; then
            local p
            for p in moleculer moleculer-web nats better-sqlite3; do
                echo "$p $(jq -r .version "$PEERS_DIR/moleculer/node_modules/$p/package.json")"
            done
            echo "sqlite (in better-sqlite3) $(NODE_PATH=$PEERS_DIR/moleculer/node_modules node -e 'const D=require("better-sqlite3");const d=new D(":memory:");console.log(d.prepare("select sqlite_version() v").get().v)')"
        fi
        echo "shop and loadgen: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown), release build"
    } | tee "$OUT/versions.txt"
}

RESTATE_BIN=$PEERS_DIR/restate/node_modules/@restatedev/restate-server-linux-x64/bin/restate-server
echo "== versions"
versions

# Round r runs every system once; even rounds in reverse order, so that a
# neighbour's burst of load does not always land on the same system.
REVERSED=$(tr ' ' '\n' <<<"$SYSTEMS" | grep -v '^$' | tac | tr '\n' ' ')
for ROUND in $(seq 1 "$ROUNDS"); do
ROUND_SUFFIX=""
[ "$ROUND" = 1 ] || ROUND_SUFFIX="/r$ROUND"
ORDER=$SYSTEMS
[ $((ROUND % 2)) = 1 ] || ORDER=$REVERSED
for SYSTEM in $ORDER; do
    echo "== $SYSTEM (round $ROUND of $ROUNDS)"
    # Names this system's logs and fresh data folder in this round.
    TAG="$SYSTEM-r$ROUND"
    case $SYSTEM in
        seams)
            start_proc shop 'listening on http://' "$BIN/shop" up --addr 127.0.0.1:0 \
                --data "$TMP/$TAG" --durability full
            MAIN_PID=$LAST_PID
            URL=$(url_of "$LAST_LINE")
            ;;
        restate | restate-store-only)
            [ -x "$RESTATE_BIN" ] || { echo "no restate-server at $RESTATE_BIN (linux-x64 only)" >&2; exit 1; }
            ingress=$(free_port)
            admin=$(free_port)
            fabric=$(free_port)
            pgsql=$(free_port)
            cat >"$TMP/$TAG.toml" <<EOF
# Written by bench/seams-bench/peers/run.sh; everything else is the default
# (durable: the log-server's RocksDB WAL is fsynced, default-replication 1).
cluster-name = "seams-peer-bench"
node-name = "peer-bench"
base-dir = "$TMP/$TAG"
auto-provision = true
disable-telemetry = true
log-filter = "warn"
shutdown-timeout = "10s"
bind-address = "127.0.0.1:$fabric"
advertised-address = "http://127.0.0.1:$fabric/"

[ingress]
bind-address = "127.0.0.1:$ingress"

[admin]
bind-address = "127.0.0.1:$admin"

[admin.query-engine]
pgsql-bind-address = "127.0.0.1:$pgsql"
EOF
            cp "$TMP/$TAG.toml" "$OUT/$TAG.toml"
            start_proc restate-server '' "$RESTATE_BIN" --config-file "$TMP/$TAG.toml" --no-logo
            MAIN_PID=$LAST_PID
            up=0
            for _ in $(seq 1 600); do
                curl -sf "http://127.0.0.1:$admin/health" >/dev/null && { up=1; break; }
                kill -0 "$MAIN_PID" 2>/dev/null || break
                sleep 0.1
            done
            [ "$up" = 1 ] || { cat "$OUT/$TAG-restate-server.log" >&2; echo "restate-server not up in 60 s" >&2; exit 1; }
            # RESTATE_LOGGING=WARN: the SDK logs every invocation at INFO otherwise.
            start_proc services 'listening on http://' env NODE_PATH="$PEERS_DIR/restate/node_modules" \
                RESTATE_LOGGING=WARN LOOKUPS="$([ "$SYSTEM" = restate ] && echo 1 || echo 0)" \
                node "$HERE/restate/services.cjs"
            endpoint=$(url_of "$LAST_LINE")
            registered=""
            for _ in $(seq 1 100); do
                if registered=$(curl -sf -X POST "http://127.0.0.1:$admin/deployments" \
                    -H 'content-type: application/json' -d "{\"uri\":\"$endpoint\"}"); then
                    break
                fi
                sleep 0.2
            done
            [ -n "$registered" ] || { echo "could not register $endpoint with Restate" >&2; exit 1; }
            echo "   registered $endpoint: $(jq -r '[.services[].name] | join(", ")' <<<"$registered")"
            # Ready when a call reaches the handler through the ingress.
            up=0
            for _ in $(seq 1 300); do
                curl -s -X POST "http://127.0.0.1:$ingress/product/ready-probe/quote" \
                    -H 'content-type: application/json' | grep -q 'no product ready-probe' && { up=1; break; }
                sleep 0.1
            done
            [ "$up" = 1 ] || { echo "Restate's ingress does not reach the services in 30 s" >&2; exit 1; }
            start_proc front 'listening on http://' env RESTATE_INGRESS="http://127.0.0.1:$ingress" \
                node "$HERE/restate/front.cjs"
            URL=$(url_of "$LAST_LINE")
            ;;
        moleculer-local)
            start_proc broker 'listening on http://' env NODE_PATH="$PEERS_DIR/moleculer/node_modules" \
                MODE=local DATA="$TMP/$TAG" node "$HERE/moleculer/node.cjs"
            MAIN_PID=$LAST_PID
            URL=$(url_of "$LAST_LINE")
            ;;
        moleculer-nats)
            nats_port=$(free_port)
            start_proc nats-server 'Server is ready' "$NATS_SERVER" -a 127.0.0.1 -p "$nats_port"
            start_proc services 'services ready' env NODE_PATH="$PEERS_DIR/moleculer/node_modules" \
                MODE=services NATS_URL="nats://127.0.0.1:$nats_port" DATA="$TMP/$TAG" \
                node "$HERE/moleculer/node.cjs"
            MAIN_PID=$LAST_PID
            start_proc gateway 'listening on http://' env NODE_PATH="$PEERS_DIR/moleculer/node_modules" \
                MODE=gateway NATS_URL="nats://127.0.0.1:$nats_port" node "$HERE/moleculer/node.cjs"
            URL=$(url_of "$LAST_LINE")
            ;;
        *)
            echo "unknown system $SYSTEM (seams, restate, restate-store-only, moleculer-local, moleculer-nats)" >&2
            exit 1
            ;;
    esac
    echo "   $SYSTEM on $URL (main process $MAIN_PID)"
    for c in $CONNECTIONS; do
        point "$c"
    done
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
    echo "create-invoice, closed loop, ${DURATION} s measured after ${WARMUP} s warm-up per point;"
    echo "\"x Seams\" is the throughput ratio to Seams at the same connections in the same round;"
    echo "\"cores\" is the CPU of all the system's processes over the measured window"
    echo "(restate: server + service endpoint + front; moleculer-nats: nats-server + both brokers),"
    echo "\"others\" what the rest of the machine used, the load generator excluded."
    echo "Seams' cores include the event consumers its invoices set off (stock reservation,"
    echo "mail), which no peer does; restate's requests take one extra loopback hop"
    echo "(front.cjs); restate-store-only is not equivalent (no customer or price lookup)."
    echo "What each system does per request: bench/seams-bench/peers/README.md."
    echo
    echo "| system | connections | round | invoices/s | x Seams | p50 ms | p99 ms | errors | cores | CPU µs per invoice | others (cores) |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|"
    jq -rs --arg systems "$SYSTEMS" --arg conns "$CONNECTIONS" --argjson rounds "$ROUNDS" '
        (map(select(.kind == "loadgen")) | map({key: .label, value: .}) | from_entries) as $lg
        | (map(select(.kind == "peer-cpu")) | map({key: .label, value: .}) | from_entries) as $cpu
        | def f(d): if . == null then "n/a" else (. * pow(10; d) | round / pow(10; d) | tostring) end;
          ($conns | split(" ") | map(select(. != ""))) as $cs
        | ($systems | split(" ") | map(select(. != ""))) as $ss
        | $cs[] as $c | $ss[] as $s | range(1; $rounds + 1) as $n
        | (if $n == 1 then "" else "/r\($n)" end) as $suffix
        | ("peer/\($s)/c\($c)\($suffix)") as $l
        | $lg[$l] as $r | $cpu[$l] as $u
        | ($lg["peer/seams/c\($c)\($suffix)"].throughput) as $base
        | if $r == null then "| \($s) | \($c) | \($n) | failed | | | | | | | |"
          else
            "| \($s) | \($c) | \($n) | \($r.throughput | f(0)) | "
            + (if $base == null or $base == 0 then "n/a" else ($r.throughput / $base | f(2)) + "x" end)
            + " | \($r.latency.p50_ms | f(2)) | \($r.latency.p99_ms | f(2)) | \($r.error_count)"
            + (if $r.error_count > 0 then " \($r.errors | tojson)" else "" end)
            + " | \($u.total_cores | f(2)) | "
            + (if $r.throughput > 0 and $u != null then ($u.total_cores * 1e6 / $r.throughput | f(0)) else "n/a" end)
            + " | "
            + (if $r.cpu != null and $u != null then ([$r.cpu.machine_cores - $r.cpu.own_cores - $u.total_cores, 0] | max | f(2)) else "n/a" end)
            + " |"
          end' "$RESULTS"
    echo
    echo "CPU by process (cores over the measured window):"
    echo
    jq -r 'select(.kind == "peer-cpu") | "    \(.label): \(.cores | to_entries | map("\(.key) \(.value)") | join(", "))"' "$RESULTS"
} | tee "$OUT/report.md"
echo "results in $OUT"
