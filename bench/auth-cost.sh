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

command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 1; }

echo "== machine"
{
    machine_lines
    echo "valgrind: $(valgrind --version)"
} | tee "$OUT/machine.txt"

echo "== building (release, once)"
cargo build --release -q -p seams-bench --bin auth-cost

# Instructions (Ir) callgrind counted for `auth-cost $1 $2`, every thread.
instructions() {
    local op=$1 n=$2 file="$OUT/$1-$2.callgrind"
    valgrind --tool=callgrind --callgrind-out-file="$file" \
        "$BIN" "$op" "$n" >"$OUT/$op-$n.log" 2>&1 ||
        { echo "auth-cost $op $n failed; see $OUT/$op-$n.log" >&2; exit 1; }
    awk '/^(summary|totals):/ {print $2; exit}' "$file"
}

TOTALS=$OUT/totals.tsv
printf 'op\tn1\tir_n1\tn2\tir_n2\tbaseline\n' >"$TOTALS"
for entry in "${PLAN[@]}"; do
    read -r op n1 n2 baseline <<<"$entry"
    case " $OPS " in *" $op "*) ;; *) continue ;; esac
    echo "== $op: $n1 and $n2"
    ir1=$(instructions "$op" "$n1")
    ir2=$(instructions "$op" "$n2")
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$op" "$n1" "$ir1" "$n2" "$ir2" "$baseline" | tee -a "$TOTALS"
done
grep -h -e '^cpu features' -e '^a token is' "$OUT"/*.log | sort -u | sed 's/^/under callgrind, /' | tee -a "$OUT/machine.txt"

echo "== instructions per operation"
awk -F'\t' '
    NR == 1 { next }
    {
        n++; op[n] = $1; n1[n] = $2; ir1[n] = $3; n2[n] = $4; ir2[n] = $5; base[n] = $6
        per[$1] = ($5 - $3) / ($4 - $2)
    }
    function commas(x,   s, out, neg) {
        s = sprintf("%.0f", x); out = ""
        neg = (s ~ /^-/); if (neg) s = substr(s, 2)
        while (length(s) > 3) { out = "," substr(s, length(s) - 2) out; s = substr(s, 1, length(s) - 3) }
        return (neg ? "-" : "") s out
    }
    END {
        print "| op | N1 | Ir at N1 | N2 | Ir at N2 | instructions/op | baseline | ratio to baseline |"
        print "|---|---:|---:|---:|---:|---:|---|---:|"
        for (i = 1; i <= n; i++) {
            ratio = "-"
            if (base[i] != "-" && (base[i] in per) && per[base[i]] > 0)
                ratio = sprintf("%.2fx", per[op[i]] / per[base[i]])
            printf "| %s | %s | %s | %s | %s | %s | %s | %s |\n", op[i], commas(n1[i]), commas(ir1[i]),
                commas(n2[i]), commas(ir2[i]), commas(per[op[i]]), base[i], ratio
        }
    }' "$TOTALS" | tee "$OUT/table.md"
echo "== results in $OUT"
