#!/usr/bin/env bash
# What one write transaction of the store's shape costs in CPU through
# each SQLite driver, in instructions (callgrind), not time: sqlx's
# `AnyConnection` (what seams-store uses), sqlx's `SqliteConnection`, and
# rusqlite called inline on the tokio worker, each with the four inserts
# sent one by one (`INSERT ... RETURNING id`) and as one batch (`-batch`).
# The program is `driver-cost` (bench/seams-bench/src/bin/driver-cost.rs,
# whose doc says what a transaction is and how each mode runs it).
#
# Method (bench/callgrind-plan.sh, which this script runs): each mode
# runs under `valgrind --tool=callgrind` twice, for N1 and for N2
# transactions on a fresh database; instructions per transaction =
# (Ir(N2) - Ir(N1)) / (N2 - N1), counted over every thread (sqlx's SQLite
# worker threads included), which cancels start-up, setup and shutdown.
# Per statement is that over eight (BEGIN IMMEDIATE, SAVEPOINT, four
# inserts, RELEASE, COMMIT), batch or not. Callgrind counts user-space
# instructions only: the kernel's part (the futex wake-ups of sqlx's
# hand-offs, the WAL's writes and fsyncs) is not in the figures.
#
#   bench/driver-cost.sh                        # about a minute after the build
#   N1=100 N2=400 OPS="any rusqlite" bench/driver-cost.sh
#
# Settings (environment): N1, N2 (transactions per run, 200 and 1200),
# OPS (space-separated modes, default all six; every ratio is to `any`),
# OUT (default target/bench-results/driver-cost-<time>). Results in OUT:
# table.md, totals.tsv, machine.txt, each run's output and callgrind
# file. Starts nothing in the background; uses no network.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET/release/driver-cost
N1=${N1:-200}
N2=${N2:-1200}
OUT=${OUT:-$TARGET/bench-results/driver-cost-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
[ "$N1" -lt "$N2" ] || { echo "N1 < N2, please" >&2; exit 1; }

source "$ROOT/bench/lib.sh"

PLAN=(
    "any $N1 $N2 -"
    "any-batch $N1 $N2 any"
    "sqlite $N1 $N2 any"
    "sqlite-batch $N1 $N2 any"
    "rusqlite $N1 $N2 any"
    "rusqlite-batch $N1 $N2 any"
)
OPS=${OPS:-$(printf '%s\n' "${PLAN[@]}" | cut -d' ' -f1 | tr '\n' ' ')}

source "$ROOT/bench/callgrind-plan.sh"
