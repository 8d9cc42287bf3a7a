#!/usr/bin/env bash
# What one write transaction of the store's shape costs in CPU through
# each SQLite driver, in instructions (callgrind), not time: sqlx's
# `AnyConnection` (what seams-store uses), sqlx's `SqliteConnection`, and
# rusqlite called inline on the tokio worker, each with the four inserts
# sent one by one (`INSERT ... RETURNING id`) and as one batch (`-batch`).
# The program is `driver-cost` (bench/seams-bench/src/bin/driver-cost.rs,
# whose doc says what a transaction is and how each mode runs it).
#
# Method (that of bench/callgrind-plan.sh): each mode runs under
# `valgrind --tool=callgrind` twice, for N1 and for N2 transactions on a
# fresh database; instructions per transaction = (Ir(N2) - Ir(N1)) /
# (N2 - N1), counted over every thread (sqlx's SQLite worker threads
# included), which cancels start-up, setup and shutdown. Per statement is
# that divided by the eight statements of a transaction (BEGIN IMMEDIATE,
# SAVEPOINT, four inserts, RELEASE, COMMIT), batch or not. Callgrind
# counts user-space instructions only: the kernel's part (the futex
# wake-ups of sqlx's hand-offs, the WAL's writes and fsyncs) is not in
# the figures.
#
#   bench/driver-cost.sh                        # about a minute after the build
#   N1=100 N2=400 MODES="any rusqlite" bench/driver-cost.sh
#
# Settings (environment): N1, N2 (transactions per run, 200 and 1200),
# MODES (space-separated, default all six; the ratio column needs `any`),
# SKIP_BUILD=1 (use the release binary as it is), OUT (default
# target/bench-results/driver-cost-<time>). Results in OUT: table.md,
# totals.tsv, machine.txt, each run's output; the callgrind files go to a
# temporary folder removed on exit. Starts nothing in the background;
# uses no network.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET/release/driver-cost
N1=${N1:-200}
N2=${N2:-1200}
MODES=${MODES:-any any-batch sqlite sqlite-batch rusqlite rusqlite-batch}
SKIP_BUILD=${SKIP_BUILD:-0}
OUT=${OUT:-$TARGET/bench-results/driver-cost-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/seams-driver-cost.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
trap 'exit 130' INT TERM

[ "$N1" -lt "$N2" ] || { echo "N1 < N2, please" >&2; exit 1; }
command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 1; }

source "$ROOT/bench/lib.sh"

echo "== machine"
{
    machine_lines
    echo "valgrind: $(valgrind --version)"
    echo "transactions: N1=$N1 N2=$N2"
} | tee "$OUT/machine.txt"

if [ "$SKIP_BUILD" != 1 ]; then
    echo "== building (release)"
    cargo build --release -q -p seams-bench --bin driver-cost
fi
[ -x "$BIN" ] || { echo "no $BIN (build it, or drop SKIP_BUILD)" >&2; exit 1; }

# Instructions (Ir) callgrind counted for `driver-cost $1 $2`, every thread.
instructions() {
    local mode=$1 n=$2 file="$TMP/$1-$2.callgrind"
    valgrind --tool=callgrind --callgrind-out-file="$file" \
        "$BIN" "$mode" "$n" >"$OUT/$mode-$n.log" 2>&1 ||
        { echo "driver-cost $mode $n failed; see $OUT/$mode-$n.log" >&2; exit 1; }
    awk '/^(summary|totals):/ {print $2; exit}' "$file"
}

TOTALS=$OUT/totals.tsv
printf 'mode\tn1\tir_n1\tn2\tir_n2\n' >"$TOTALS"
for mode in $MODES; do
    echo "== $mode: $N1 and $N2 transactions"
    ir1=$(instructions "$mode" "$N1")
    ir2=$(instructions "$mode" "$N2")
    printf '%s\t%s\t%s\t%s\t%s\n' "$mode" "$N1" "$ir1" "$N2" "$ir2" | tee -a "$TOTALS"
done

echo "== instructions per transaction"
awk -F'\t' '
    NR == 1 { next }
    {
        n++; mode[n] = $1; ir1[n] = $3; ir2[n] = $5; n1 = $2; n2 = $4
        per[$1] = ($5 - $3) / ($4 - $2)
    }
    function commas(x,   s, out, neg) {
        s = sprintf("%.0f", x); out = ""
        neg = (s ~ /^-/); if (neg) s = substr(s, 2)
        while (length(s) > 3) { out = "," substr(s, length(s) - 2) out; s = substr(s, 1, length(s) - 3) }
        return (neg ? "-" : "") s out
    }
    END {
        printf "| mode | Ir(%s) | Ir(%s) | instructions/transaction | per statement (8) | ratio to any |\n", commas(n1), commas(n2)
        print "|---|---:|---:|---:|---:|---:|"
        for (i = 1; i <= n; i++) {
            ratio = ("any" in per && per["any"] > 0) ? sprintf("%.2fx", per[mode[i]] / per["any"]) : "-"
            printf "| %s | %s | %s | %s | %s | %s |\n", mode[i], commas(ir1[i]), commas(ir2[i]),
                commas(per[mode[i]]), commas(per[mode[i]] / 8), ratio
        }
    }' "$TOTALS" | tee "$OUT/table.md"
echo "== results in $OUT"
