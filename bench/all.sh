#!/usr/bin/env bash
# Every figure in BENCHMARKS.md, one suite after another (issue 5's "one
# script reproduces them"): the monolith suite with the criterion
# microbenchmarks, what each split costs, what a rolling restart costs,
# what an invoice costs in instructions, Seams against Restate and Moleculer,
# split-mode remote calls against Moleculer, and growth over a long run.
# Each suite builds release itself (cargo finds nothing to do after the
# first) and writes its own report under target/bench-results/ or
# bench/seams-bench/peers/results/ (each suite prints where); this script
# says which suites failed, and goes on with the next either way.
#
#   bench/all.sh                      # about 45 minutes after the builds and npm installs
#   SKIP="peers remote-calls growth" bench/all.sh   # no npm packages needed; about 25 minutes
#
# Settings (environment): SKIP (suite names to leave out: run split
# rollout invoice-cost peers remote-calls growth), GROWTH_COMMANDS (invoices in the
# growth run, 200000: about 7 minutes; 1000000 reproduces the 10^6 table in
# about 30), PROFILE (1: the monolith suite also records where shop's CPU
# goes under create-invoice and at 1,000 invoices/s, with perf; 0 leaves
# perf out). The peers need Node.js and npm (their scripts install the
# packages from the npm registry). Every suite stops what it starts by PID.
set -uo pipefail
cd "$(dirname "$0")/.."
SKIP=${SKIP:-}
GROWTH_COMMANDS=${GROWTH_COMMANDS:-200000}
export PROFILE=${PROFILE:-1}

declare -a RAN=()
suite() {
    local name=$1
    shift
    if [[ " $SKIP " == *" $name "* ]]; then
        RAN+=("$name: skipped (SKIP)")
        return
    fi
    echo "=== $name: $*"
    local started=$SECONDS
    if "$@"; then
        RAN+=("$name: done in $((SECONDS - started)) s")
    else
        RAN+=("$name: FAILED (exit $?) after $((SECONDS - started)) s")
    fi
}

suite run bench/run.sh
suite split bench/split.sh
suite rollout bench/rollout.sh
suite invoice-cost bench/invoice-cost.sh
suite peers bench/seams-bench/peers/run.sh
suite remote-calls bench/seams-bench/peers/remote-calls.sh
suite growth env COMMANDS="$GROWTH_COMMANDS" bench/growth.sh

echo "=== summary"
printf '  %s\n' "${RAN[@]}"
[[ "${RAN[*]}" != *FAILED* ]]
