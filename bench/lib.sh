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
