#!/usr/bin/env bash
# A large committed dedup state (default 30M keys over 7 UTC days, "a busy week"): start-up time, the commit time
# of a ~100k-event batch against it, and peak RSS.
#
# 1. The `bench_dedup_state` example (examples/, built here) builds the state in a fresh checkpoint: one
#    committed batch per day 2014-12-25..2014-12-31, each with KEYS/7 random 128-bit keys, through the same index and commit calls as
#    `run` (not through the CLI's decode path, which would take most of an hour for 30M events).
# 2. Start-up: `lander run --mode once` on an empty landing against a copy of that checkpoint: the whole process
#    (open sled, recover, load the dedup index, find nothing, exit), wall time and peak RSS.
# 3. Batch: the same with 7 hour-files in landing (7 x 15,129 = 105,903 GH Archive events of 2015-01-01, ids
#    rewritten so none is a duplicate; see scripts/bench_scale.py): wall time, peak RSS, and from lander's debug
#    log the time of step 5+6 of the commit protocol (write the runs, sled commit, publish the runs:
#    `commit_ms`) and the index load time (`load_ms`).
# Each repetition starts from a fresh copy of the built state.
#
# Usage: scripts/bench_dedup_state.sh
# Environment: LANDER_BIN [${CARGO_TARGET_DIR:-target}/release/lander], KEYS [30000000], REPS [3],
#              HOURS_DIR (a directory of hour-files made by bench_scale.py; built here when unset)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
lander="${LANDER_BIN:-${CARGO_TARGET_DIR:-$repo/target}/release/lander}"
keys="${KEYS:-30000000}"
reps="${REPS:-3}"
[[ -x "$lander" ]] || { echo "error: no lander binary at $lander" >&2; exit 2; }
# The state builder is an example, not part of the lander binary: built here (release) unless BENCH_STATE_BIN is set.
state_bin="${BENCH_STATE_BIN:-${CARGO_TARGET_DIR:-$repo/target}/release/examples/bench_dedup_state}"
[[ -n "${BENCH_STATE_BIN:-}" ]] || (cd "$repo" && cargo build --release --quiet --example bench_dedup_state)
[[ -x "$state_bin" ]] || { echo "error: no bench_dedup_state binary at $state_bin" >&2; exit 2; }
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
fixtures="$repo/../shared/data/gharchive"

hours="${HOURS_DIR:-}"
if [[ -z "$hours" ]]; then
    hours="$scratch/hours"
    mkdir -p "$hours"
    for c in 1 2 3 4 5 6 7; do
        gzip -dc "$fixtures/2015-01-01-0.json.gz" "$fixtures/2015-01-01-1.json.gz" |
            sed -e "s/\"id\":\"\([0-9]*\)\"/\"id\":\"\1-$c\"/g" | gzip -6 >"$hours/h00$c.json.gz"
    done
fi

echo "machine: $(nproc) CPUs; lander: $lander; keys: $keys; reps: $reps; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
start=$(date +%s.%N)
/usr/bin/time -f "build: %e s, peak RSS %M KiB" "$state_bin" --checkpoint "$scratch/state" \
    --keys "$keys" --days 7 --last-day 2014-12-31
echo "state on disk: $(du -sh "$scratch/state/dedup" | cut -f1) of runs, $(du -sh "$scratch/state/sled" | cut -f1) of sled"

run() { # $1 = landing dir, $2 = label
    rm -rf "$scratch/c" "$scratch/b"
    cp -r "$scratch/state" "$scratch/c"
    /usr/bin/time -f "%e %M" -o "$scratch/time" "$lander" -v --log-format json run --mode once --landing "$1" \
        --bronze "$scratch/b" --checkpoint "$scratch/c" --settle-time 0s >"$scratch/out" 2>"$scratch/log"
    read -r wall rss <"$scratch/time"
    load=$(grep -o '"load_ms":[0-9.]*' "$scratch/log" | head -1 | cut -d: -f2 || true)
    commit=$(grep -o '"commit_ms":[0-9.]*' "$scratch/log" | head -1 | cut -d: -f2 || true)
    rows=$(grep -o '[0-9]* rows written' "$scratch/out" | head -1 | cut -d' ' -f1 || true)
    printf '%-8s wall %6.2f s  peak RSS %6.1f MiB  index load %8s ms  runs+commit+publish %8s ms  rows %s\n' \
        "$2" "$wall" "$(awk -v k="$rss" 'BEGIN { print k / 1024 }')" "${load:-?}" "${commit:--}" "${rows:-0}"
}

mkdir -p "$scratch/empty/gharchive" "$scratch/full/gharchive"
cp "$hours"/h00[1-7].json.gz "$scratch/full/gharchive/"
for r in $(seq "$reps"); do
    run "$scratch/empty" "startup"
    run "$scratch/full" "batch"
done
"$lander" checkpoint stats --checkpoint "$scratch/c" --dataset gharchive | grep -E "dedup|batches|rows"
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
