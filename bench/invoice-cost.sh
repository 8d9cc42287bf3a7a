#!/usr/bin/env bash
# What one created invoice costs the `shop up` monolith in CPU
# instructions, everything it causes included, beside what one bare axum
# JSON request costs: counted with `valgrind --tool=callgrind`, not timed
# (the machine is a shared 2-core VM whose wall-clock figures move by tens
# of percent; the instructions a program executes move far less).
#
# One invoice is billing's `POST /billing/invoices` (the invoice and its
# outbox event, written in one transaction), the relay carrying the event,
# fulfillment reserving the stock (its inbox transaction), notification
# recording the notice (its inbox transaction) and its sender writing the
# mail into the Maildir (`shop up`'s default channel) and recording the
# delivery, plus the HTTP, token check, logging and metrics around them.
# The baseline is `GET /json` of `baseline-axum` (the loadgen scenario
# `bare`): axum and hyper with nothing else.
#
# Method (that of bench/auth-cost.sh and bench/callgrind-plan.sh, for a
# server): the server runs under callgrind, from a fresh data directory,
# with `shop up`'s defaults (durability full, Maildir, metrics on, text
# logs), driven by `loadgen` (release build) closed loop with CONNECTIONS
# connections until it has started N operations (--max-ops), at two counts
# N1 < N2. After the load the script waits until everything the invoices
# caused is done: the Maildir holds N mails (read from the file system,
# which costs shop nothing), then one scrape of /metrics (operator token
# from `shop token`) shows N answers 201 to POST /billing/invoices and no
# other status, N events applied by fulfillment<-billing and by
# notification<-billing, no dead letter, and then shop's CPU is quiet for
# two seconds (the sender's last record, the relays' cursors). Then it
# stops loadgen, stops the server with SIGTERM by its PID and waits for it
# to exit, so callgrind writes its totals. Instructions per operation =
# (Ir(N2) - Ir(N1)) / (N2 - N1), which cancels start-up, setup (one
# customer registered and signed in, a product, stock) and shutdown.
#
# Why loadgen is stopped instead of awaited: it only exits when its
# --duration has passed (its CPU sampler sleeps to the window's end), so
# shop's counters say when its N operations are answered. For axum, which
# has no counters and no timers (idle, it executes nothing), loadgen runs
# out a fixed AXUM_DURATION and its summary must show N ok and no error.
#
# What the figure still contains: shop's timers (relays' idle polls and
# cursor saves, the gauges every 5 s, pruning every 60 s) run per
# wall-clock second, and callgrind slows shop ~50x, so the longer N2 run
# counts more of them. The script measures that idle rate first: one idle
# shop under callgrind, its counters dumped (callgrind_control --dump)
# IDLE_SETTLE s after it listens and after each of IDLE_WINDOWS windows of
# IDLE_SECS s, so each window holds the idle shop's instructions alone,
# with none of the start-up's (two idle runs of different lengths would
# difference away the start-up, but it varies by millions between runs).
# The table gives, per invoice, what timers at that rate add over the N2
# run's extra seconds: an upper estimate of the contamination (under load
# the relays poll less, not more). The whole measurement (both counts of
# both servers) runs REPEATS times; the per-invoice figures should agree
# within a few percent. Idle, baseline-axum executes nothing (1,335 Ir in
# 15 s, counted once), so it needs no such correction.
#
# Cautions: callgrind counts user-space instructions only, not the
# kernel's (syscalls, the TCP loopback, fsync), which is a larger share
# of a bare request than of an invoice. The figure depends on the
# concurrency through batching (SQLite group commits, relay batches): at
# 1 connection an invoice counted about 13% more. It is linear in N
# within about 1% (500->1500 against 1500->3000).
#
#   bench/invoice-cost.sh                              # about 7 minutes after the build
#   N1=100 N2=400 REPEATS=1 bench/invoice-cost.sh      # a quick smoke run
#
# Settings (environment): N1, N2 (invoices per run, 500 and 3000),
# CONNECTIONS (8, for both servers), REPEATS (2), AXUM_N1, AXUM_N2
# (requests, 5000 and 25000), AXUM_DURATION (s loadgen runs against axum,
# 15; 25,000 requests take about 3), IDLE_SETTLE, IDLE_SECS, IDLE_WINDOWS
# (5, 30, 2), WAIT_MAX (s, the bound on each wait of a run: start, load
# and effects, stop; 1800), SKIP_BUILD=1, OUT (default
# target/bench-results/invoice-cost-<time>), COMMIT. Results in OUT:
# table.md, totals.tsv, the callgrind files (for callgrind_annotate),
# every log, profile.txt (inclusive top entries of the last N2 run, and per
# invoice: its N2 run minus its N1 run, grouped by crate and by thread).
# Loopback only; stops only the processes it started, by PID; every loop
# is bounded in count and time.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET/release
N1=${N1:-500}
N2=${N2:-3000}
CONNECTIONS=${CONNECTIONS:-8}
REPEATS=${REPEATS:-2}
AXUM_N1=${AXUM_N1:-5000}
AXUM_N2=${AXUM_N2:-25000}
AXUM_DURATION=${AXUM_DURATION:-15}
IDLE_SETTLE=${IDLE_SETTLE:-5}
IDLE_SECS=${IDLE_SECS:-30}
IDLE_WINDOWS=${IDLE_WINDOWS:-2}
WAIT_MAX=${WAIT_MAX:-1800}
SKIP_BUILD=${SKIP_BUILD:-0}
OUT=${OUT:-$TARGET/bench-results/invoice-cost-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/seams-invoice-cost.XXXXXX")

[ "$N1" -lt "$N2" ] && [ "$AXUM_N1" -lt "$AXUM_N2" ] || { echo "N1 < N2 and AXUM_N1 < AXUM_N2, please" >&2; exit 1; }
command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 1; }
command -v jq >/dev/null || { echo "jq is not installed" >&2; exit 1; }

source "$ROOT/bench/lib.sh"
cleanup() {
    stop_all
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
SCRIPT_START=$SECONDS

echo "== machine"
{
    machine_lines
    echo "valgrind: $(valgrind --version)"
    echo "invoices: N1=$N1 N2=$N2, axum requests: N1=$AXUM_N1 N2=$AXUM_N2, connections: $CONNECTIONS, repeats: $REPEATS"
} | tee "$OUT/machine.txt"

if [ "$SKIP_BUILD" != 1 ]; then
    echo "== building (release, once)"
    cargo build --release -q -p shop -p seams-bench
fi

# Seconds since the epoch, with fractions.
now() { date +%s.%N; }

# Starts "$@" under callgrind (output $OUT/$1.callgrind, log $OUT/$1.log)
# and waits for its "listening on http://…" line; sets URL, SERVER_PID and
# LISTENING (when the line appeared).
start_callgrind() {
    local name=$1
    shift
    valgrind --tool=callgrind --callgrind-out-file="$OUT/$name.callgrind" "$@" >"$OUT/$name.log" 2>&1 &
    SERVER_PID=$!
    PIDS+=("$SERVER_PID")
    URL=""
    local deadline=$((SECONDS + WAIT_MAX))
    while [ "$SECONDS" -lt "$deadline" ]; do
        URL=$({ grep -o -m1 'listening on http://[0-9.:]*' "$OUT/$name.log" 2>/dev/null || true; } | sed 's/listening on //')
        [ -n "$URL" ] && break
        kill -0 "$SERVER_PID" 2>/dev/null || { tail -n 20 "$OUT/$name.log" >&2; echo "$name exited" >&2; exit 1; }
        sleep 0.2
    done
    [ -n "$URL" ] || { echo "$name did not start in $WAIT_MAX s" >&2; exit 1; }
    LISTENING=$(now)
}

# Stops SERVER_PID with SIGTERM, waits (at most WAIT_MAX s) for it to exit
# and sets IR to the instructions callgrind counted (every thread) and
# BUSY to the seconds from LISTENING to the signal.
finish_callgrind() {
    local name=$1 pid=$SERVER_PID rc=0
    BUSY=$(echo "$(now) - $LISTENING" | bc)
    kill -TERM "$pid"
    local deadline=$((SECONDS + WAIT_MAX))
    while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do
        sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "$name ignored SIGTERM for $WAIT_MAX s; killing it" >&2
        stop "$pid"
        exit 1
    fi
    wait "$pid" 2>/dev/null || rc=$?
    forget "$pid"
    [ "$rc" = 0 ] || echo "   ($name exited with status $rc)"
    IR=$(awk '/^(summary|totals):/ {print $2; exit}' "$OUT/$name.callgrind")
    [ -n "$IR" ] || { echo "no totals in $OUT/$name.callgrind" >&2; exit 1; }
}

# Waits until process $1 has used at most 5 ticks of CPU in each of 2
# seconds in a row (at most 30 s).
quiet() {
    local pid=$1 before after calm=0
    before=$(cpu_ticks "$pid")
    for _ in $(seq 1 30); do
        sleep 1
        after=$(cpu_ticks "$pid")
        if [ $((after - before)) -le 5 ]; then
            calm=$((calm + 1))
            [ "$calm" -ge 2 ] && return 0
        else
            calm=0
        fi
        before=$after
    done
    echo "   (still busy after 30 s; going on)"
}

# The value of the Prometheus series whose line starts with $2 in $1, 0 if absent.
series() {
    awk -v key="$2" 'index($0, key) == 1 { v = $NF } END { print v + 0 }' "$1"
}

# One `shop up` run of $2 invoices, named $1: appends "shop N Ir busy" to $TOTALS.
shop_run() {
    local name=$1 n=$2 data=$TMP/$1
    echo "-- $name: $n invoices, $CONNECTIONS connections"
    start_callgrind "$name" "$BIN/shop" up --addr "127.0.0.1:$(free_port)" --data "$data"
    local token
    token=$("$BIN/shop" token --role operator --subject invoice-cost --ttl 12h --data "$data")
    "$BIN/loadgen" --url "$URL" --label "$name" --scenario create-invoice --connections "$CONNECTIONS" \
        --max-ops "$n" --warmup 0 --duration 3600 --timeout 300 --data "$data" \
        >"$OUT/$name-loadgen.txt" 2>"$OUT/$name-loadgen.log" &
    local load_pid=$!
    PIDS+=("$load_pid")
    # The mails first, from the file system: watching them costs shop nothing.
    local deadline=$((SECONDS + WAIT_MAX)) mails=0 errors
    while [ "$SECONDS" -lt "$deadline" ]; do
        mails=$({ find "$data/mail/new" -type f 2>/dev/null || true; } | wc -l)
        [ "$mails" -ge "$n" ] && break
        kill -0 "$load_pid" 2>/dev/null || { cat "$OUT/$name-loadgen.log" >&2; echo "loadgen ended early" >&2; exit 1; }
        errors=$({ grep -o 'errors [0-9]*, missed' "$OUT/$name-loadgen.log" || true; } | tail -n1 | tr -dc '0-9')
        [ "${errors:-0}" = 0 ] || { tail -n 3 "$OUT/$name-loadgen.log" >&2; echo "loadgen counted errors" >&2; exit 1; }
        sleep 0.5
    done
    [ "$mails" -ge "$n" ] || { echo "$name: $mails of $n mails after $WAIT_MAX s" >&2; exit 1; }
    # Then shop's own counters, scraped once (again each second until they hold).
    local metrics=$OUT/$name-metrics.txt created other reserved noticed dead
    while :; do
        curl -sf -H "Authorization: Bearer $token" "$URL/metrics" >"$metrics" || { echo "scraping /metrics failed" >&2; exit 1; }
        created=$(series "$metrics" 'seams_http_requests_total{method="POST",route="/billing/invoices",status="201"}')
        other=$(grep '^seams_http_requests_total{method="POST",route="/billing/invoices"' "$metrics" | grep -vc 'status="201"' || true)
        reserved=$(series "$metrics" 'seams_events_applied_total{subscription="fulfillment<-billing"}')
        noticed=$(series "$metrics" 'seams_events_applied_total{subscription="notification<-billing"}')
        dead=$(grep '^seams_dead_letters' "$metrics" | awk '{s += $NF} END {print s + 0}')
        [ "$created" = "$n" ] && [ "$reserved" -ge "$n" ] && [ "$noticed" -ge "$n" ] && break
        [ "$SECONDS" -lt "$deadline" ] || { echo "$name: created $created, reserved $reserved, noticed $noticed of $n after $WAIT_MAX s" >&2; exit 1; }
        sleep 1
    done
    [ "$other" = 0 ] && [ "$dead" = 0 ] && [ "$created" = "$n" ] && [ "$reserved" = "$n" ] && [ "$noticed" = "$n" ] && [ "$mails" = "$n" ] ||
        { echo "$name: created $created (other statuses: $other), reserved $reserved, noticed $noticed, mails $mails, dead letters $dead; expected $n each and none" >&2; exit 1; }
    quiet "$SERVER_PID"
    stop "$load_pid"
    finish_callgrind "$name"
    printf 'shop\t%s\t%s\t%s\t%s\n' "$REPEAT" "$n" "$IR" "$BUSY" | tee -a "$TOTALS"
}

# One `baseline-axum` run of $2 requests of /json, named $1.
axum_run() {
    local name=$1 n=$2 ok errors
    echo "-- $name: $n requests, $CONNECTIONS connections"
    start_callgrind "$name" "$BIN/baseline-axum" --addr "127.0.0.1:$(free_port)"
    "$BIN/loadgen" --url "$URL" --label "$name" --scenario bare --connections "$CONNECTIONS" \
        --max-ops "$n" --warmup 0 --duration "$AXUM_DURATION" --timeout 60 \
        >"$OUT/$name-loadgen.txt" 2>"$OUT/$name-loadgen.log" ||
        { cat "$OUT/$name-loadgen.log" >&2; exit 1; }
    ok=$(tail -n1 "$OUT/$name-loadgen.txt" | jq -r .ok)
    errors=$(tail -n1 "$OUT/$name-loadgen.txt" | jq -r .error_count)
    [ "$ok" = "$n" ] && [ "$errors" = 0 ] ||
        { echo "$name: $ok ok, $errors errors of $n in $AXUM_DURATION s (raise AXUM_DURATION?)" >&2; exit 1; }
    finish_callgrind "$name"
    printf 'axum\t%s\t%s\t%s\t%s\n' "$REPEAT" "$n" "$IR" "$BUSY" | tee -a "$TOTALS"
}

# The idle rate: one `shop up` under callgrind, left alone. Callgrind dumps
# its counters (and zeroes them) IDLE_SETTLE s after shop listens, then
# after each of IDLE_WINDOWS windows of IDLE_SECS s (callgrind_control
# --dump): each window's instructions are the idle shop's alone, with no
# start-up in them. Appends "idle WINDOW SECONDS IR" lines to $TOTALS.
idle_run() {
    local name=idle w start end ir
    echo "-- $name: $IDLE_WINDOWS windows of $IDLE_SECS s, $IDLE_SETTLE s after it listens"
    start_callgrind "$name" "$BIN/shop" up --addr "127.0.0.1:$(free_port)" --data "$TMP/$name"
    sleep "$IDLE_SETTLE"
    callgrind_control --dump "$SERVER_PID" >>"$OUT/$name-control.log" 2>&1
    start=$(now)
    for w in $(seq 1 "$IDLE_WINDOWS"); do
        sleep "$IDLE_SECS"
        callgrind_control --dump "$SERVER_PID" >>"$OUT/$name-control.log" 2>&1
        end=$(now)
        ir=$(awk '/^(summary|totals):/ {print $2; exit}' "$OUT/$name.callgrind.$((w + 1))")
        printf 'idle\t%s\t%s\t%s\t%s\n' "$w" "$(echo "$end - $start" | bc)" "$ir" "-" | tee -a "$TOTALS"
        start=$end
    done
    finish_callgrind "$name"
}

TOTALS=$OUT/totals.tsv
printf 'what\trepeat\tn\tir\tbusy_s\n' >"$TOTALS"
echo "== idle shop under callgrind"
idle_run
for REPEAT in $(seq 1 "$REPEATS"); do
    echo "== repeat $REPEAT"
    shop_run "shop-r$REPEAT-n$N1" "$N1"
    shop_run "shop-r$REPEAT-n$N2" "$N2"
    axum_run "axum-r$REPEAT-n$AXUM_N1" "$AXUM_N1"
    axum_run "axum-r$REPEAT-n$AXUM_N2" "$AXUM_N2"
done

echo "== instructions per invoice and per bare axum request"
python3 - "$TOTALS" <<'PY' | tee "$OUT/table.md"
import sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])][1:]
def c(x):
    return f"{x:,.0f}"
idle = [(float(r[2]), int(r[3])) for r in rows if r[0] == "idle"]
rate = sum(ir for _, ir in idle) / sum(s for s, _ in idle)
runs = {}
for what, rep, n, ir, busy in (r for r in rows if r[0] != "idle"):
    runs.setdefault((what, int(rep)), []).append((int(n), int(ir), float(busy)))
repeats = sorted({rep for _, rep in runs})
name = {"shop": "shop up: POST /billing/invoices, everything it causes", "axum": "baseline-axum: GET /json"}
print("| run | server: one operation | N1 | Ir at N1 | N2 | Ir at N2 | instructions per operation | s from listening to SIGTERM, N1 / N2 |")
print("|---|---|---:|---:|---:|---:|---:|---:|")
per = {}
for rep in repeats:
    for what in ("shop", "axum"):
        (n1, ir1, b1), (n2, ir2, b2) = runs[(what, rep)]
        per[(what, rep)] = ((ir2 - ir1) / (n2 - n1), (b2 - b1) / (n2 - n1))
        print(f"| {rep} | {name[what]} | {c(n1)} | {c(ir1)} | {c(n2)} | {c(ir2)} | {c(per[(what, rep)][0])} | {b1:.0f} / {b2:.0f} |")
print()
print("| run | instructions per invoice | per bare axum request | ratio | idle timers' share per invoice (upper estimate) |")
print("|---|---:|---:|---:|---:|")
for rep in repeats:
    (shop, secs), (axum, _) = per[("shop", rep)], per[("axum", rep)]
    print(f"| {rep} | {c(shop)} | {c(axum)} | {shop / axum:.1f}x | {c(rate * secs)} ({100 * rate * secs / shop:.1f}%) |")
shops = [per[("shop", r)][0] for r in repeats]
axums = [per[("axum", r)][0] for r in repeats]
mean_s, mean_a = sum(shops) / len(shops), sum(axums) / len(axums)
if len(repeats) > 1:
    print(f"| mean | {c(mean_s)} | {c(mean_a)} | {mean_s / mean_a:.1f}x | |")
print()
print("Idle shop under callgrind (fresh data directory, counters dumped after start-up): "
      + ", ".join(f"{c(ir)} Ir in {s:.1f} s" for s, ir in idle)
      + f": {c(rate)} instructions per second. The last column is that rate times the extra"
      + " seconds per invoice of the N2 run over the N1 run.")
if len(repeats) > 1:
    print(f"Spread between runs: {100 * (max(shops) - min(shops)) / min(shops):.1f}% per invoice, "
          f"{100 * (max(axums) - min(axums)) / min(axums):.1f}% per axum request.")
PY

echo "== profile: the last $N2-invoice run, and per invoice (its $N2 run minus its $N1 run)"
python3 - "$OUT/shop-r$REPEATS-n$N1.callgrind" "$OUT/shop-r$REPEATS-n$N2.callgrind" "$N1" "$N2" <<'PY' | tee "$OUT/profile.txt"
import re, subprocess, sys
f1, f2, n1, n2 = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
line = re.compile(r"^\s*([0-9,]+) \(\s*[0-9.]+%\)\s+(\*?\s*>?\s*)(.*)$")
def annotate(path, *opts):
    """(function, Ir) in callgrind_annotate's order; tree lines keep their marker."""
    out = subprocess.run(["callgrind_annotate", "--threshold=100", *opts, path],
                         capture_output=True, text=True, check=True).stdout
    rows = []
    for l in out.splitlines():
        m = line.match(l)
        if m and "PROGRAM TOTALS" not in l:
            rows.append((m.group(2).strip(), m.group(3), int(m.group(1).replace(",", ""))))
    return rows
def short(fn):
    fn = re.sub(r" \[[^\]]*\]$", "", fn)          # the object
    fn = re.sub(r"^\?\?\?:", "", fn)               # no file (no debug info)
    return fn if len(fn) <= 110 else fn[:107] + "..."
def total(path):
    for l in open(path):
        if l.startswith(("summary:", "totals:")):
            return int(l.split()[1])
t1, t2 = total(f1), total(f2)
per = (t2 - t1) / (n2 - n1)
inc1 = {f: ir for _, f, ir in annotate(f1, "--inclusive=yes")}
inc2 = annotate(f2, "--inclusive=yes")
# Left out: entries callgrind marks as recursive (name'2: their inclusive
# cost counts nested calls twice) and the plumbing every thread or task
# runs through (thread start, tokio's scheduler and task harness).
plumbing = re.compile(r"'[0-9]+( |$)|start_thread|thread_start|__rust_begin_short_backtrace|call_once\{\{vtable|"
                      r"tokio::runtime::(task|scheduler|context|park|blocking|runtime)|Instrumented<T>|PollFn<F>|"
                      r"futures_util::future::future::map::Map<|\(below main\)|0x[0-9a-f]+ |^[^ ]*:main ")
print(f"Whole {n2}-invoice run ({t2:,} Ir, start-up, setup and shutdown included), inclusive, top 25")
print("(here and below, recursive entries and thread/task plumbing left out):")
print()
for _, f, ir in [r for r in inc2 if not plumbing.search(r[1])][:25]:
    print(f"  {ir:>14,} {100 * ir / t2:5.1f}%  {short(f)}")
print()
print(f"Per invoice: ({n2}-run minus {n1}-run) / {n2 - n1} = {per:,.0f} instructions; inclusive, top 25:")
print()
diff = sorted(((ir - inc1.get(f, 0)) / (n2 - n1), f) for _, f, ir in inc2 if not plumbing.search(f))[::-1]
for ir, f in diff[:25]:
    print(f"  {ir:>10,.0f} {100 * ir / per:5.1f}%  {short(f)}")
print()
groups = [
    # With mimalloc's `override` feature its malloc, free, realloc... are
    # shop's own C symbols under libc's names; they are the allocator.
    ("allocator (mimalloc, linked into shop)", lambda f, o: o.endswith("/shop]") and (re.match(r"_?mi_|mimalloc", f) or f in ("malloc", "free", "realloc", "calloc", "posix_memalign", "aligned_alloc", "malloc_usable_size", "cfree", "memalign", "valloc", "pvalloc"))),
    ("libsqlite3 (bundled SQLite: C functions in shop)", lambda f, o: o.endswith("/shop]") and "::" not in f and not f.startswith(("__rust", "0x", "<")) and "ring_core" not in f),
    ("sqlx (sqlx_core, sqlx_sqlite, flume)", lambda f, o: re.search(r"sqlx_|flume::", f)),
    ("tokio", lambda f, o: "tokio::" in f),
    ("hyper, httparse, http", lambda f, o: re.search(r"hyper::|hyper_util::|httparse::|\bhttp::", f)),
    ("serde_json", lambda f, o: "serde_json::" in f),
    ("tracing, tracing_subscriber (logs: sharded_slab, nu_ansi_term)", lambda f, o: re.search(r"tracing|sharded_slab|nu_ansi_term", f)),
    ("mail (lettre, nom, email_address)", lambda f, o: re.search(r"lettre::|nom::|email_address::", f)),
    ("axum, tower, matchit", lambda f, o: re.search(r"axum::|tower::|tower_http::|matchit::", f)),
    ("metrics, prometheus exporter", lambda f, o: re.search(r"metrics::|metrics_util::|metrics_exporter|quanta::", f)),
    ("crypto (Ed25519, SHA-2, jsonwebtoken, argon2)", lambda f, o: re.search(r"curve25519|ed25519|jsonwebtoken|sha2::|argon2|blake2|ring::|ring_core", f)),
    ("Seams framework and the capabilities", lambda f, o: re.search(r"seams_|billing|fulfillment|notification|identity::|catalog|shop::", f)),
    ("libc: malloc, free, memcpy ...", lambda f, o: "libc.so" in o or "ld-linux" in o or f.startswith("__rust")),
    ("Rust core, alloc, std (generic code, inlined callers unknown)", lambda f, o: re.search(r"core::|alloc::|std::|hashbrown::", f)),
]
def grouped(rows):
    by = {}
    for _, fn, ir in rows:
        m = re.match(r"^([^:]*):(.*?)(?: (\[[^\]]*\]))?$", fn)
        src, f, o = m.group(1), m.group(2), m.group(3) or ""
        if src.startswith("./"):       # glibc's sources: libc or the dynamic loader
            o = o or "[libc.so]"
        g = next((name for name, test in groups if test(f, o)), "other")
        by[g] = by.get(g, 0) + ir
    return by
s1, s2 = grouped(annotate(f1)), grouped(annotate(f2))
print("Where the instructions execute: each function's own (exclusive) cost, grouped by its symbol")
print("(inlined code counts in the function it was inlined into):")
print()
print(f"  {'per invoice':>12} {'share':>6}  {'whole N2 run':>12}  group")
for name in sorted(s2, key=lambda g: -(s2[g] - s1.get(g, 0))):
    d = (s2[name] - s1.get(name, 0)) / (n2 - n1)
    print(f"  {d:>12,.0f} {100 * d / per:5.1f}%  {100 * s2[name] / t2:11.1f}%  {name}")
print()
def threads(path):
    """Inclusive cost of each thread kind: the callees of std's thread entry."""
    rows, out, inside = annotate(path, "--inclusive=yes", "--tree=calling"), {}, False
    for mark, fn, ir in rows:
        if mark.startswith("*"):
            inside = "__rust_begin_short_backtrace" in fn
            continue
        if inside and mark.startswith(">"):
            if "shop::main" in fn:
                kind = "main thread (shop::main)"
            elif "tokio::runtime::blocking::pool::Inner::run" in fn:
                kind = "tokio's threads (runtime workers, spawn_blocking pool)"
            else:
                kind = "sqlx-sqlite worker threads (the rest of std's thread entry)"
            out[kind] = out.get(kind, 0) + ir
    return out
h1, h2 = threads(f1), threads(f2)
print("By thread (inclusive, from the callees of std::sys::backtrace::__rust_begin_short_backtrace):")
print()
for name in sorted(h2, key=lambda g: -(h2[g] - h1.get(g, 0))):
    d = (h2[name] - h1.get(name, 0)) / (n2 - n1)
    print(f"  {d:>12,.0f} {100 * d / per:5.1f}%  {100 * h2[name] / t2:11.1f}%  {name}")
PY

echo "== took $(((SECONDS - SCRIPT_START) / 60)) min $(((SECONDS - SCRIPT_START) % 60)) s; results in $OUT"
