#!/usr/bin/env bash
# Issue 21: a 100k-event batch touching 3 cold days of a 30-day, GH Archive-volume dataset (default 150M keys),
# with a 256 MB dedup cache budget: wall time, peak RSS, and each day load (keys, ms) from lander's log.
#
# 1. `lander bench-dedup-state --bronze B --bronze-days DAYS` builds the state: DAYS committed batches, one per
#    UTC day 2014-12-02..2014-12-31, each with KEYS/DAYS GH Archive-like ids written as the `event_key` column of
#    24 Parquet parts in that day's partition of a plain-Parquet bronze (the batch records list them as outputs)
#    and NO dedup runs: the local index holds no day, as after a cache budget evicted them all, so every day a
#    batch touches is cold and is read back from bronze (footer and key column chunks, decoded, hashed, sorted,
#    written as the day's base run).
# 2. Batch: 7 hour-files (7 x 15,129 = 105,903 GH Archive events with rewritten ids, none a duplicate), moved to
#    2014-12-29 (2 files), 2014-12-30 (2) and 2014-12-31 (3): `lander run --mode once --table-format parquet
#    --dedup-cache-bytes 268435456` from a fresh copy of the state (same paths), under /usr/bin/time -v.
#
# Usage: scripts/bench_cold_days.sh
# Environment: LANDER_BIN [${CARGO_TARGET_DIR:-target}/release/lander], KEYS [150000000], DAYS [30], REPS [3],
#              SCRATCH [mktemp -d] (needs ~KEYS x 6 bytes of bronze twice, plus 16 bytes a loaded key)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
lander="${LANDER_BIN:-${CARGO_TARGET_DIR:-$repo/target}/release/lander}"
keys="${KEYS:-150000000}"
days="${DAYS:-30}"
reps="${REPS:-3}"
[[ -x "$lander" ]] || { echo "error: no lander binary at $lander" >&2; exit 2; }
scratch="${SCRATCH:-$(mktemp -d)}"
mkdir -p "$scratch"
trap 'rm -rf "$scratch"' EXIT
fixtures="$repo/../shared/data/gharchive"

mkdir -p "$scratch/hours"
day_of_file=(x 29 29 30 30 31 31 31)
for c in 1 2 3 4 5 6 7; do
    # The event's own created_at is the line's last one (payloads hold others before it): the greedy `.*` finds it.
    gzip -dc "$fixtures/2015-01-01-0.json.gz" "$fixtures/2015-01-01-1.json.gz" |
        sed -e "s/^\(.*\)\"created_at\":\"2015-01-01T/\1\"created_at\":\"2014-12-${day_of_file[$c]}T/" \
            -e "s/\"id\":\"\([0-9]*\)\"/\"id\":\"\1-$c\"/g" | gzip -6 >"$scratch/hours/h00$c.json.gz"
done

echo "machine: $(nproc) CPUs; lander: $lander; keys: $keys over $days days; reps: $reps; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
/usr/bin/time -f "build: %e s, peak RSS %M KiB" "$lander" bench-dedup-state --checkpoint "$scratch/state/c" \
    --bronze "$scratch/state/b" --bronze-days "$days" --keys "$keys" --days "$days" --last-day 2014-12-31
echo "state on disk: $(du -sh "$scratch/state/b" | cut -f1) of bronze, $(du -sh "$scratch/state/c" | cut -f1) of checkpoint"

for r in $(seq "$reps"); do
    rm -rf "$scratch/w"
    cp -r "$scratch/state" "$scratch/w"
    mkdir -p "$scratch/w/l/gharchive"
    cp "$scratch/hours"/h00[1-7].json.gz "$scratch/w/l/gharchive/"
    sync
    /usr/bin/time -v -o "$scratch/time" "$lander" -v --log-format json run --mode once --landing "$scratch/w/l" \
        --bronze "$scratch/w/b" --checkpoint "$scratch/w/c" --settle-time 0s --table-format parquet \
        --dedup-cache-bytes 268435456 >"$scratch/out" 2>"$scratch/log"
    wall=$(grep -o 'Elapsed (wall clock) time (h:mm:ss or m:ss): .*' "$scratch/time" | awk '{print $NF}')
    rss=$(grep -o 'Maximum resident set size (kbytes): [0-9]*' "$scratch/time" | awk '{print $NF}')
    rows=$(grep -o '[0-9,]* rows written' "$scratch/out" | head -1 | cut -d' ' -f1 || true)
    loads=$(grep 'loaded the keys of a day from bronze' "$scratch/log" |
        sed -e 's/.*"keys":\([0-9]*\).*"ms":\([0-9.]*\).*/\1 keys in \2 ms/' | paste -sd';' || true)
    printf 'rep %s: wall %s  peak RSS %.1f MiB  rows %s  day loads: %s\n' "$r" "$wall" \
        "$(awk -v k="$rss" 'BEGIN { print k / 1024 }')" "${rows:-0}" "${loads:-none}"
done
"$lander" checkpoint stats --checkpoint "$scratch/w/c" --dataset gharchive | grep -E "dedup|batches|rows" || true
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
