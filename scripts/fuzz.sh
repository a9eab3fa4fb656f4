#!/usr/bin/env bash
# Fuzzes every decoder of outside data (the targets of fuzz/, casesync-fuzz).
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default: 60 s, all)
#
# With a nightly toolchain: cargo-fuzz (libFuzzer, ASan) from fuzz/libfuzzer,
# on a scratch corpus under target/fuzz/corpus/<t> seeded from the committed
# fuzz/corpus/<t> and fuzz/regressions/<t> (which libFuzzer never writes).
# Without one: the stable driver (casesync-fuzz-stable, mutation only).
# Any crash is copied to fuzz/regressions/<t>/, where the regression tests
# (cargo nextest run -p casesync-fuzz) replay it: fix the bug, keep the file.
# Prints a table and writes target/fuzz/summary.json; exits 1 on any crash.
#
# CARGO_FUZZ_FLAGS: flags for `cargo fuzz build|run`; empty by default
# (release with debug assertions and overflow checks, cargo-fuzz's default);
# `-O` drops the assertions and builds faster.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
SECS=${1:-60}
shift || true
if ! [[ $SECS =~ ^[0-9]+$ ]]; then
    echo "error: SECONDS_PER_TARGET must be a number, not '$SECS'" >&2
    exit 2
fi

ALL=()
for f in fuzz/libfuzzer/fuzz_targets/*.rs; do
    ALL+=("$(basename "$f" .rs)")
done
TARGETS=("$@")
if [ ${#TARGETS[@]} -eq 0 ]; then
    TARGETS=("${ALL[@]}")
fi
for t in "${TARGETS[@]}"; do
    if [ ! -f "fuzz/libfuzzer/fuzz_targets/$t.rs" ]; then
        echo "error: unknown target '$t' (targets: ${ALL[*]})" >&2
        exit 2
    fi
done

OUT=$ROOT/target/fuzz
mkdir -p "$OUT/logs"

FLAGS=${CARGO_FUZZ_FLAGS:-}
ENGINE=stable
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    if ! cargo fuzz --version >/dev/null 2>&1; then
        echo "installing cargo-fuzz..." >&2
        cargo install --locked cargo-fuzz
    fi
    ENGINE=libfuzzer
fi

declare -A EXECS CRASHES
FOUND=()

# keep_crashes TARGET ARTIFACT_DIR BEFORE RC WHAT LOG: copies the artifacts the
# run added (those not in BEFORE, the list taken before it) to
# fuzz/regressions/TARGET and sets CRASHES[TARGET]; a failed run without an
# artifact counts as one crash.
keep_crashes() {
    local t=$1 dir=$2 before=$3 rc=$4 what=$5 log=$6 crashes=0 f
    while IFS= read -r f; do
        [ -n "$f" ] || continue
        grep -qxF -- "$f" <<<"$before" && continue
        mkdir -p "fuzz/regressions/$t"
        cp "$f" "fuzz/regressions/$t/"
        FOUND+=("fuzz/regressions/$t/$(basename "$f")")
        crashes=$((crashes + 1))
    done < <(find "$dir" -type f | sort)
    if [ "$rc" -ne 0 ] && [ "$crashes" -eq 0 ]; then
        echo "warning: $what exited $rc without an artifact; see $log" >&2
        crashes=1
    fi
    CRASHES[$t]=$crashes
}

if [ "$ENGINE" = libfuzzer ]; then
    echo "building fuzz targets (nightly, cargo fuzz)..." >&2
    # shellcheck disable=SC2086
    cargo +nightly fuzz build $FLAGS --fuzz-dir fuzz/libfuzzer >"$OUT/logs/build.log" 2>&1 || {
        tail -30 "$OUT/logs/build.log" >&2
        exit 1
    }
    for t in "${TARGETS[@]}"; do
        corpus=$OUT/corpus/$t
        artifacts=$OUT/artifacts/$t
        log=$OUT/logs/$t.log
        mkdir -p "$corpus" "$artifacts"
        for d in fuzz/corpus/$t fuzz/regressions/$t; do
            if [ -d "$d" ] && [ -n "$(ls -A "$d")" ]; then
                cp -n "$d"/* "$corpus"/ 2>/dev/null || true
            fi
        done
        before=$(find "$artifacts" -type f | sort)
        echo "fuzzing $t for ${SECS}s (libFuzzer)..." >&2
        rc=0
        # shellcheck disable=SC2086
        cargo +nightly fuzz run $FLAGS --fuzz-dir fuzz/libfuzzer "$t" "$corpus" -- \
            -max_total_time="$SECS" -rss_limit_mb=2048 -malloc_limit_mb=512 \
            -timeout=10 -max_len=16384 -print_final_stats=1 \
            -artifact_prefix="$artifacts/" >"$log" 2>&1 || rc=$?
        execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1 || true)
        if [ -z "$execs" ]; then
            execs=$(grep -o '^#[0-9]*' "$log" | tr -d '#' | tail -1 || true)
        fi
        EXECS[$t]=${execs:-0}
        keep_crashes "$t" "$artifacts" "$before" "$rc" "cargo fuzz run $t" "$log"
    done
else
    echo "no nightly toolchain: using the stable driver (mutation only)" >&2
    cargo build --release -p casesync-fuzz --bin casesync-fuzz-stable >"$OUT/logs/build.log" 2>&1 || {
        tail -30 "$OUT/logs/build.log" >&2
        exit 1
    }
    for t in "${TARGETS[@]}"; do
        log=$OUT/logs/$t.log
        artifacts=fuzz/artifacts/$t
        mkdir -p "$artifacts"
        before=$(find "$artifacts" -type f | sort)
        echo "fuzzing $t for ${SECS}s (stable driver)..." >&2
        rc=0
        target/release/casesync-fuzz-stable --target "$t" --seconds "$SECS" >"$log" 2>&1 || rc=$?
        line=$(grep "^target $t:" "$log" | tail -1 || true)
        EXECS[$t]=$(sed -n 's/^target [^:]*: \([0-9]*\) execs.*/\1/p' <<<"$line")
        EXECS[$t]=${EXECS[$t]:-0}
        keep_crashes "$t" "$artifacts" "$before" "$rc" "the stable driver on $t" "$log"
    done
fi

printf '\n%-16s | %12s | %7s | %s\n' target execs crashes engine
printf '%s\n' "-----------------+--------------+---------+----------"
total=0
json="["
sep=""
for t in "${TARGETS[@]}"; do
    printf '%-16s | %12s | %7s | %s\n' "$t" "${EXECS[$t]}" "${CRASHES[$t]}" "$ENGINE"
    total=$((total + CRASHES[$t]))
    json+="$sep{\"target\":\"$t\",\"execs\":${EXECS[$t]},\"crashes\":${CRASHES[$t]},\"engine\":\"$ENGINE\",\"seconds\":$SECS}"
    sep=","
done
json+="]"
echo "$json" >"$OUT/summary.json"
echo "summary: $OUT/summary.json; logs: $OUT/logs/" >&2

if [ "$total" -gt 0 ]; then
    echo >&2
    echo "$total crash(es) found, copied to fuzz/regressions/ (the regression tests replay them):" >&2
    for f in "${FOUND[@]}"; do
        echo "  $f" >&2
    done
    echo "Fix each in the production code and keep the file; reproduce with" >&2
    echo "  cargo nextest run -p casesync-fuzz regressions" >&2
    echo "  or: cargo +nightly fuzz run --fuzz-dir fuzz/libfuzzer <target> <file>" >&2
    exit 1
fi
