# Runs a callgrind plan: sourced by bench/auth-cost.sh and
# bench/trace-cost.sh after they set ROOT, BIN (the release binary, whose
# first argument is an operation and second a count), OUT, PLAN (lines of
# "operation N1 N2 baseline") and OPS. For each operation: Ir at N1 and N2,
# instructions per operation = (Ir(N2) - Ir(N1)) / (N2 - N1), and the
# ratio to its baseline, as a markdown table in $OUT/table.md.
command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 1; }

echo "== machine"
{
    machine_lines
    echo "valgrind: $(valgrind --version)"
} | tee "$OUT/machine.txt"

echo "== building (release, once)"
cargo build --release -q -p seams-bench --bin "$(basename "$BIN")"

# Instructions (Ir) callgrind counted for `$BIN $1 $2`, every thread.
instructions() {
    local op=$1 n=$2 file="$OUT/$1-$2.callgrind"
    valgrind --tool=callgrind --callgrind-out-file="$file" \
        "$BIN" "$op" "$n" >"$OUT/$op-$n.log" 2>&1 ||
        { echo "$(basename "$BIN") $op $n failed; see $OUT/$op-$n.log" >&2; exit 1; }
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
{ grep -h -e '^cpu features' -e '^a token is' "$OUT"/*.log || true; } | sort -u | sed 's/^/under callgrind, /' | tee -a "$OUT/machine.txt"

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
