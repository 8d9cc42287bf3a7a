#!/usr/bin/env bash
# Growth (issue 5): what a long run of create-invoice leaves behind. One
# `shop up` (durable) with short retention, so the framework's tables are
# pruned during the run: idempotency records after RETAIN_IDEMPOTENCY s,
# delivered outbox rows after RETAIN_OUTBOX s, inbox ids after RETAIN_INBOX s,
# pruning every PRUNE_EVERY s. An open-loop load of RATE invoices/s runs
# until COMMANDS invoices were created (or MAX_TIME s passed); every
# SAMPLE_EVERY s the script records shop's RSS, the data folder's size and
# the row counts of every capability's outbox, inbox and idempotency table.
# After the load it waits for delivery to drain and one more pruning, then
# measures get-invoice and create-invoice latency with everything stored.
#
#   bench/growth.sh                               # 10^6 invoices at 600/s: about 30 min
#   COMMANDS=200000 bench/growth.sh               # about 7 min
#
# Settings (environment): COMMANDS (1000000), RATE (600), MAX_TIME (3600),
# SAMPLE_EVERY (30), RETAIN_IDEMPOTENCY (120), RETAIN_OUTBOX (60),
# RETAIN_INBOX (120), PRUNE_EVERY (10), OUT. Stops what it starts by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
COMMANDS=${COMMANDS:-1000000}
RATE=${RATE:-600}
MAX_TIME=${MAX_TIME:-3600}
SAMPLE_EVERY=${SAMPLE_EVERY:-30}
RETAIN_IDEMPOTENCY=${RETAIN_IDEMPOTENCY:-120}
RETAIN_OUTBOX=${RETAIN_OUTBOX:-60}
RETAIN_INBOX=${RETAIN_INBOX:-120}
PRUNE_EVERY=${PRUNE_EVERY:-10}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET/release
OUT=${OUT:-$TARGET/bench-results/growth-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
SAMPLES=$OUT/samples.jsonl
: >"$SAMPLES"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/seams-growth.XXXXXX")
DATA=$TMP/data

source "$ROOT/bench/lib.sh"
SHOP_PID="" SAMPLER_PID=""
cleanup() {
    [ -n "$SAMPLER_PID" ] && kill "$SAMPLER_PID" 2>/dev/null || true
    [ -n "$SHOP_PID" ] && stop_pid "$SHOP_PID"
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

# The load signs its customer in once, and a customer's token lives 900 s
# by default: a longer run would get 401 for the rest of it (the first
# 10^6 run with tokens did, from its 931st second). So tokens live for the
# whole run here (at most a day, shop's bound).
TOKEN_TTL=$((MAX_TIME + 3600 > 86400 ? 86400 : MAX_TIME + 3600))
"$BIN/shop" up --addr 127.0.0.1:0 --data "$DATA" --durability full --token-ttl-secs "$TOKEN_TTL" \
    --retain-idempotency-secs "$RETAIN_IDEMPOTENCY" --retain-outbox-secs "$RETAIN_OUTBOX" \
    --retain-inbox-secs "$RETAIN_INBOX" --prune-every-secs "$PRUNE_EVERY" >"$OUT/shop.log" 2>&1 &
SHOP_PID=$!
URL=""
for _ in $(seq 1 600); do
    URL=$(grep -o -m1 'shop listening on http://[0-9.:]*' "$OUT/shop.log" | sed 's/shop listening on //' || true)
    [ -n "$URL" ] && break
    kill -0 "$SHOP_PID" 2>/dev/null || { cat "$OUT/shop.log" >&2; exit 1; }
    sleep 0.1
done
[ -n "$URL" ] || { echo "shop did not start" >&2; exit 1; }
echo "shop (pid $SHOP_PID) on $URL"

# One JSON line: seconds since start, RSS, data size, framework rows per database.
START=$(date +%s)
sample() {
    local phase=$1
    python3 - "$DATA" "$SHOP_PID" "$(( $(date +%s) - START ))" "$phase" <<'PY' >>"$SAMPLES"
import json, os, sqlite3, sys
data, pid, t, phase = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
rss = hwm = None
with open(f"/proc/{pid}/status") as f:
    for line in f:
        if line.startswith("VmRSS:"): rss = int(line.split()[1])
        if line.startswith("VmHWM:"): hwm = int(line.split()[1])
size = 0
for root, _, files in os.walk(data):
    for name in files:
        try: size += os.path.getsize(os.path.join(root, name))
        except OSError: pass
dbs = {}
for name in sorted(os.listdir(data)):
    if not name.endswith(".db"): continue
    con = sqlite3.connect(f"file:{os.path.join(data, name)}?mode=ro", uri=True, timeout=30)
    row = {}
    for table in ("seams_outbox", "seams_inbox", "seams_idempotency"):
        row[table] = con.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
    if name == "billing.db":
        row["invoices"] = con.execute("SELECT COUNT(*) FROM invoices").fetchone()[0]
    con.close()
    dbs[name[:-3]] = row
print(json.dumps({"t_s": t, "phase": phase, "rss_kb": rss, "hwm_kb": hwm, "data_bytes": size, "tables": dbs}))
PY
    tail -n1 "$SAMPLES"
}
sample idle
( while sleep "$SAMPLE_EVERY"; do sample load || true; done ) &
SAMPLER_PID=$!

echo "== create-invoice, open loop at $RATE/s, until $COMMANDS invoices or $MAX_TIME s"
# The window ends when the last command is due (loadgen's CPU sample and
# its report wait for the window's end, not for the count).
LOAD_SECS=$(( (COMMANDS + RATE - 1) / RATE ))
[ "$LOAD_SECS" -gt "$MAX_TIME" ] && LOAD_SECS=$MAX_TIME
"$BIN/loadgen" --url "$URL" --server-pid "$SHOP_PID" --data "$DATA" --label growth/load --scenario create-invoice \
    --connections 64 --rate "$RATE" --duration "$LOAD_SECS" --warmup 0 --max-ops "$COMMANDS" \
    --stock "$((COMMANDS + 1000))" | tee "$OUT/load.txt" | grep -v '^{' | tail -n 12
LOAD_END=$(( $(date +%s) - START ))
kill "$SAMPLER_PID" 2>/dev/null || true
SAMPLER_PID=""

echo "== draining (delivery, then one pruning after retention passed)"
prev=-1
for _ in $(seq 1 180); do
    sleep 10
    line=$(sample drain)
    outbox=$(echo "$line" | jq '[.tables[].seams_outbox] | add')
    [ "$outbox" = "$prev" ] && [ "$(( $(date +%s) - START - LOAD_END ))" -gt "$((RETAIN_INBOX + PRUNE_EVERY))" ] && break
    prev=$outbox
done

echo "== latency with everything stored"
"$BIN/loadgen" --url "$URL" --server-pid "$SHOP_PID" --data "$DATA" --label growth/get-invoice --scenario get-invoice \
    --connections 16 --duration 10 --warmup 1 | tee "$OUT/get-invoice.txt" | grep -v '^{' | tail -n 6
"$BIN/loadgen" --url "$URL" --server-pid "$SHOP_PID" --data "$DATA" --label growth/create-invoice --scenario create-invoice \
    --connections 16 --duration 10 --warmup 1 | tee "$OUT/create-invoice.txt" | grep -v '^{' | tail -n 6
sample end
grep -h '^{' "$OUT/load.txt" "$OUT/get-invoice.txt" "$OUT/create-invoice.txt" >"$OUT/results.jsonl"
echo "results in $OUT (samples.jsonl: the time series; results.jsonl: the load points)"
