#!/usr/bin/env bash
# What authentication costs in CPU, in instructions (callgrind), not time:
# the machine is a shared 2-core VM whose wall-clock figures move by tens
# of percent, while the instructions a deterministic program executes do
# not. Each operation of `auth-cost` (bench/seams-bench/src/bin/auth-cost.rs)
# runs under callgrind at two counts; instructions per operation are
# (Ir(N2) - Ir(N1)) / (N2 - N1), which leaves out the process's start, the
# setup and the teardown. Prints a markdown table with each operation's
# ratio to its baseline (the floor it is built on, or the thing it adds to).
#
#   bench/auth-cost.sh                              # about 4 minutes after the build
#   OPS="verify-cached json-claims" bench/auth-cost.sh
#
# Settings (environment): OPS (space-separated operation names, default
# all), OUT (default target/bench-results/auth-cost-<time>). The callgrind
# files stay in OUT for callgrind_annotate. Starts nothing in the
# background; uses no network.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET/release/auth-cost
OUT=${OUT:-$TARGET/bench-results/auth-cost-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

source "$ROOT/bench/lib.sh"

# operation, N1, N2, baseline ("-" for none). The operations that need
# tokens nobody has verified take at most 3,999 (the binary's token pool);
# Argon2id costs hundreds of millions of instructions per check.
PLAN=(
    "mint 2000 12000 ed25519-sign"
    "ed25519-sign 2000 12000 -"
    "verify-new 500 3500 ed25519-verify"
    "ed25519-verify 500 3500 -"
    "verify-cached 2000 12000 json-claims"
    "json-claims 2000 12000 -"
    "sha256-token 2000 12000 -"
    "request-bare 2000 12000 -"
    "request-open 2000 12000 request-bare"
    "request-cached 2000 12000 request-open"
    "request-new 500 3500 request-open"
    "argon2-verify 5 15 verify-new"
)
OPS=${OPS:-$(printf '%s\n' "${PLAN[@]}" | cut -d' ' -f1 | tr '\n' ' ')}

source "$ROOT/bench/callgrind-plan.sh"
