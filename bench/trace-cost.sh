#!/usr/bin/env bash
# What tracing costs a request in CPU, in instructions (callgrind), not
# time: each operation of `trace-cost` (bench/seams-bench/src/bin/
# trace-cost.rs) runs under callgrind at two counts; instructions per
# request are (Ir(N2) - Ir(N1)) / (N2 - N1). Prints a markdown table with
# each setup's ratio to the one below it: logs without traces against no
# subscriber at all, traces exported against logs alone.
#
#   bench/trace-cost.sh                       # about 2 minutes after the build
#
# Settings (environment): OPS (space-separated operation names, default
# all), OUT (default target/bench-results/trace-cost-<time>). Starts
# nothing in the background; uses no network.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET/release/trace-cost
OUT=${OUT:-$TARGET/bench-results/trace-cost-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

source "$ROOT/bench/lib.sh"

PLAN=(
    "quiet 2000 12000 -"
    "logged 2000 12000 quiet"
    "traced 2000 12000 logged"
)
# The exporter sends a batch when 512 spans wait or when its timer fires:
# under callgrind's slowdown the timer would fire a varying number of
# times, so it is set beyond the run's length and the work done per span
# is the same in every run.
export OTEL_BSP_SCHEDULE_DELAY=600000

OPS=${OPS:-$(printf '%s\n' "${PLAN[@]}" | cut -d' ' -f1 | tr '\n' ' ')}

source "$ROOT/bench/callgrind-plan.sh"
