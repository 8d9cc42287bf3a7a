# Shell helpers every benchmark script sources: the processes a script
# starts (stopped by PID, never by name), CPU time from /proc, free
# loopback ports, and the machine lines each report opens with.
#
#   source "$ROOT/bench/lib.sh"
#
# Not a script of its own: it defines functions and the PIDS array, and
# runs nothing.

# Every process the script starts in the background, by PID, oldest first.
PIDS=()

# The load generator signs up and signs in thousands of customers a minute
# from one address; the defaults (30 and 5 a minute) exist to stop exactly
# that, so the benchmarks' shops allow it.
export SHOP_SIGN_IN_PER_ADDRESS=1000000000 SHOP_SIGN_IN_PER_EMAIL=1000000000

# Stops process $1 with signal $2 (TERM): waits up to 30 s for it to exit,
# then kills it, and reaps it if it is the script's child. A process that
# is gone already is nothing to do.
stop_pid() {
    local pid=$1 sig=${2:-TERM}
    kill "-$sig" "$pid" 2>/dev/null || return 0
    for _ in $(seq 1 300); do
        kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
        sleep 0.1
    done
    echo "pid $pid ignored SIG$sig for 30 s; killing it" >&2
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# Takes $1 out of PIDS (it was stopped, or ended, already).
forget() {
    local keep=() pid
    for pid in "${PIDS[@]+"${PIDS[@]}"}"; do
        [ "$pid" = "$1" ] || keep+=("$pid")
    done
    PIDS=("${keep[@]+"${keep[@]}"}")
}

# Stops process $1 and forgets it.
stop() {
    stop_pid "$1"
    forget "$1"
}

# Stops every process in PIDS, newest first (a front before what it calls).
stop_all() {
    local i
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        stop_pid "${PIDS[$i]}"
    done
    PIDS=()
}

# CPU ticks (user + system) process $1 has used so far; 0 once it is gone.
cpu_ticks() {
    # Fields after the command name, which is in parentheses.
    { sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null || true; } | awk '{s = $12 + $13} END {print s + 0}'
}

# A TCP port free on 127.0.0.1 now (in the script's network namespace).
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# The lines every report's "Machine" block starts with: date, CPU, memory,
# kernel, load before the run, and the commit measured ($COMMIT if set;
# "(working tree has changes)" when tracked files differ from it).
machine_lines() {
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores online"
    echo "memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
    echo "kernel: $(uname -sr)"
    echo "load average before the run: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "commit: ${COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- 2>/dev/null || echo ' (working tree has changes)')}"
}

# The EXIT trap of a script that calls start_servers: stops what the
# script started (PostgreSQL with SIGINT, its fast shutdown, not the smart
# one that waits for clients) and removes its temporary folder $TMP.
stop_servers_and_clean() {
    stop_all
    [ -z "${PG_PID:-}" ] || stop_pid "$PG_PID" INT
    rm -rf "$TMP"
}

# Starts a throwaway PostgreSQL (initdb in $1/pg, fsync on, SCRAM; more
# server settings in PG_OPTS, `-c name=value` each) and
# `nats-server -js` (store in $1/nats) on free ports, logs in $2; sets
# PG_PID, ADMIN_URL, NATS_PID and NATS_URL, and puts NATS in PIDS
# (PostgreSQL is stopped by the caller, with SIGINT: its fast shutdown).
start_servers() {
    local TMP=$1 OUT=$2
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
    # Word splitting wanted: PG_OPTS may hold several `-c name=value`.
    # shellcheck disable=SC2086
    "${AS[@]}" "$PG_BIN/postgres" -D "$TMP/pg/data" -h 127.0.0.1 -p "$PG_PORT" -k "$TMP/pg" \
        -c max_connections=200 ${PG_OPTS:-} >"$OUT/postgres.log" 2>&1 &
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
}

# Starts `shop up` with "$@" on a fresh data folder $TMP/$1 (durable
# commits), its log in $OUT; sets URL and SHOP_PID.
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

# Process $1 and all its descendants, one PID per line.
tree_pids() {
    local pid=$1 child
    echo "$pid"
    for child in $(cat /proc/"$pid"/task/*/children 2>/dev/null); do
        tree_pids "$child"
    done
}

# One line per process in the trees under PIDs $@: "pid ticks role". The
# role names what the process is for the report: `postgres` (the
# postmaster and every backend), `nats-server`, `shop serve <capability>`
# for a service, `shop up` for the supervisor, `other` else. Never the
# arguments: they are not the report's, and a URL there may hold a secret.
cpu_snapshot() {
    local root pid cmd role
    for root in "$@"; do
        for pid in $(tree_pids "$root"); do
            # A process may end between the listing and here.
            cmd=$({ tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null || true)
            case "$cmd" in
                # `shop serve <capability> …` (a service) or `shop up …`
                # (the supervisor, and the gateway of a split system),
                # whatever their arguments name.
                */shop\ serve\ *) role="shop serve $(echo "${cmd#*/shop serve }" | cut -d' ' -f1)" ;;
                */shop\ *) role="shop $(echo "${cmd#*/shop }" | cut -d' ' -f1)" ;;
                *postgres*) role=postgres ;;
                *nats-server*) role=nats-server ;;
                *) role=other ;;
            esac
            echo "$pid $(cpu_ticks "$pid") $role"
        done
    done
}

# The CPU each role used between snapshots $1 and $2 (files of
# cpu_snapshot lines) over $3 wall seconds: "role<TAB>cores", most first.
# A process in the first snapshot only (it ended) is left out; one in the
# second only (it started) counts from zero.
cpu_by_role() {
    local hz
    hz=$(getconf CLK_TCK)
    awk -v hz="$hz" -v secs="$3" '
        NR == FNR { before[$1] = $2; next }
        {
            pid = $1; ticks = $2; $1 = ""; $2 = ""; role = substr($0, 3)
            used[role] += ticks - (pid in before ? before[pid] : 0)
        }
        END { for (r in used) printf "%s\t%.3f\n", r, used[r] / hz / secs }
    ' "$1" "$2" | sort -t$'\t' -k2 -rn
}
