#!/usr/bin/env bash
# Coverage-guided fuzzing of the fuzz crate's targets (fuzz/src/lib.rs) with cargo-bolero + libFuzzer.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# SECONDS: run time per target (default 60). TARGET: names from fuzz/src/lib.rs `tests` (json_body,
# yaml_body, protobuf_body, patch, label_selector, field_selector, quantity, compose, layer, wal); all
# when none is given. Targets run one after another (two cores: one libFuzzer process at a time).
#
# Each run starts from the committed seed corpus (fuzz/src/__fuzz__/tests__<target>/corpus), copied
# to target/fuzz-corpus/<target> so grown corpora do not churn the repo; a crash is written under
# fuzz/src/__fuzz__/tests__<target>/crashes, which plain `cargo test -p fuzz` then replays: fix the
# code, keep the file (or a regression test beside the fix). One summary line per target
# (executions, time, corpus size) goes to stdout and to $FUZZ_SUMMARY (target/fuzz-summary.tsv).
#
# Needs cargo-bolero (installed here if missing, from crates.io) and a C++ compiler for libFuzzer.
# Stable Rust is enough: no sanitizer is used (the code under test is safe Rust; panics and
# invariant failures are what the targets detect).
set -euo pipefail
cd "$(dirname "$0")/.."

secs="${1:-60}"
shift || true
targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
    targets=(json_body yaml_body protobuf_body patch label_selector field_selector quantity compose layer wal)
fi

command -v cargo-bolero >/dev/null || cargo install cargo-bolero --version 0.13.5 --locked

summary="${FUZZ_SUMMARY:-target/fuzz-summary.tsv}"
mkdir -p target/fuzz-corpus
printf 'target\tengine\texecutions\tseconds\tcorpus\tresult\n' >"$summary"
status=0
for t in "${targets[@]}"; do
    seeds="fuzz/src/__fuzz__/tests__$t/corpus"
    corpus="target/fuzz-corpus/$t"
    mkdir -p "$corpus"
    cp -n "$seeds"/* "$corpus"/ 2>/dev/null || true
    log="target/fuzz-$t.log"
    start=$(date +%s)
    if cargo bolero test "tests::$t" -p fuzz --engine libfuzzer --sanitizer NONE \
        --corpus-dir "$corpus" -T "${secs}s" >"$log" 2>&1; then
        result=ok
    else
        result="FAILED (see $log)"
        status=1
    fi
    elapsed=$(($(date +%s) - start))
    # libFuzzer's last status line: `#<execs> DONE ...` or the last `#<execs> pulse/NEW/REDUCE ...`.
    execs=$(grep -oE '^#[0-9]+' "$log" | tail -1 | tr -d '#')
    size=$(find "$corpus" -type f | wc -l)
    printf '%s\tlibfuzzer\t%s\t%s\t%s\t%s\n' "$t" "${execs:-0}" "$elapsed" "$size" "$result" | tee -a "$summary"
done
exit "$status"
