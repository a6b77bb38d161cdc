#!/usr/bin/env bash
# Fuzzes each of certbind's parsers of untrusted input with libFuzzer (cargo fuzz) for a
# fixed budget, grows the committed corpora under fuzz/corpus/, then minimises them.
# Crashes land in fuzz/artifacts/<target>/; the test command runs every corpus file
# through the same targets without libFuzzer (crates/fuzzing/tests/corpora.rs).
#
#   bench/fuzz.sh [seconds per target, default 120] [target ...]
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`). The sanitizer flags cargo fuzz passes
# need a nightly compiler; on a stable toolchain RUSTC_BOOTSTRAP=1 unlocks them.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

BUDGET=${1:-120}
shift || true
TARGETS=("$@")
if [ ${#TARGETS[@]} -eq 0 ]; then
    TARGETS=(pem_intake dialect_request sni_names policy)
fi
export RUSTC_BOOTSTRAP=1

cargo fuzz build -O
for target in "${TARGETS[@]}"; do
    log=$(mktemp)
    echo "== $target: ${BUDGET}s"
    cargo fuzz run -O "$target" "corpus/$target" -- -max_total_time="$BUDGET" -print_final_stats=1 \
        -max_len=65536 -timeout=10 2>"$log" || { tail -40 "$log"; echo "$target: CRASH (see fuzz/artifacts/$target)"; }
    execs=$(grep -m1 'stat::number_of_executed_units' "$log" | awk '{print $2}')
    rate=$(grep -m1 'stat::average_exec_per_sec' "$log" | awk '{print $2}')
    cov=$(grep -E '^#[0-9]+' "$log" | tail -1 | grep -oE 'cov: [0-9]+' || true)
    echo "$target: ${execs:-?} executions (${rate:-?}/s), $cov"
    rm -f "$log"
    # Keep the corpus to what adds coverage.
    mkdir -p "corpus/$target.min"
    cargo fuzz cmin -O "$target" "corpus/$target" >/dev/null 2>&1 && echo "$target: corpus $(ls "corpus/$target" | wc -l) files"
    rmdir "corpus/$target.min" 2>/dev/null || true
done
