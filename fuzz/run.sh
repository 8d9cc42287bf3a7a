#!/usr/bin/env bash
# Builds the fuzz targets and runs each one for a bounded time, starting
# from the seeds checked in under fuzz/corpus/; fails if any target crashes
# (a panic, a broken property, a hang or running out of memory).
#
#   fuzz/run.sh [SECONDS] [TARGET...]
#
# SECONDS per target (default: $FUZZ_SECONDS, else 20); all targets unless
# some are named. Nothing here reaches the network once cargo-fuzz and the
# crates are installed: the targets verify with keys held in memory and
# start no server.
#
# CI builds with the project's own toolchain, unoptimized and without a
# sanitizer: the code under test is safe Rust, an optimized build takes
# twice as long (more than the bounded runs it would speed up), and
# `--sanitizer none` needs no nightly compiler. Longer runs (docs/fuzzing.md) use
# FUZZ_BUILD="--release", or FUZZ_TOOLCHAIN=nightly with FUZZ_SANITIZER=address.
set -euo pipefail

fuzz_dir="$(cd "$(dirname "$0")" && pwd)"
cd "$fuzz_dir/.."

seconds="${1:-${FUZZ_SECONDS:-20}}"
shift $(($# > 0 ? 1 : 0))
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(envelope token config)
fi
toolchain=()
if [ -n "${FUZZ_TOOLCHAIN:-}" ]; then
    toolchain=("+$FUZZ_TOOLCHAIN")
fi
# Word splitting wanted: FUZZ_BUILD may hold several cargo-fuzz flags.
read -r -a build <<<"${FUZZ_BUILD:---dev} --sanitizer ${FUZZ_SANITIZER:-none}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

echo "== cargo fuzz build ${build[*]}"
start=$SECONDS
cargo "${toolchain[@]}" fuzz build "${build[@]}"
echo "built in $((SECONDS - start)) s"

# New inputs go to a scratch corpus, so the checked-in seeds stay as they are.
work="${CARGO_TARGET_DIR:-$fuzz_dir/target}/fuzz-corpus"
failed=()
for target in "${targets[@]}"; do
    mkdir -p "$work/$target" "$fuzz_dir/artifacts/$target"
    log="$work/$target.log"
    echo "== $target: ${seconds} s"
    if cargo "${toolchain[@]}" fuzz run "${build[@]}" "$target" \
        "$work/$target" "$fuzz_dir/corpus/$target" -- \
        -max_total_time="$seconds" -timeout=10 -print_final_stats=1 >"$log" 2>&1; then
        grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss_mb)|DONE' "$log" || true
    else
        tail -n 60 "$log"
        failed+=("$target")
    fi
done

passed=$((${#targets[@]} - ${#failed[@]}))
if [ ${#failed[@]} -gt 0 ]; then
    echo "crashed: ${failed[*]}; the inputs are in fuzz/artifacts/<target>/," \
        "replay one with: cargo fuzz run ${build[*]} <target> <file>"
fi
echo "fuzz: $passed passed, ${#failed[@]} failed"
[ ${#failed[@]} -eq 0 ]
