#!/usr/bin/env bash
# Throughput and peak memory of `lander run --mode once` vs `gzip -dc` of the same files, in the same run.
#
# Three inputs:
#   small      the five GH Archive fixtures in ../shared/data/gharchive (8.5 MB gzip, 53 MB NDJSON, 27,693 events)
#   large      $COPIES copies of those five files (default 40), each copy with rewritten ids so no event is a
#              duplicate: every `"id":"N"` becomes `"id":"N-<copy>"`, and the lines without a string id (2013
#              Timeline events, deduplicated on a content hash) get a leading `"bench_copy":<copy>` field.
#              Recompressed with `gzip -1` (417 MB gzip, 2.1 GB NDJSON, 1,107,720 events).
#   large-dup  control: $COPIES plain copies of the five files: the same NDJSON bytes as `large`, but every copy
#              after the first is all duplicates, so lander decodes as much and writes/commits only 27,693 rows.
#
# Each repetition copies the input into a fresh <tmp>/landing/gharchive/ with a fresh bronze and checkpoint, then
# times (wall clock) `gzip -dc <files> >/dev/null` and `lander -q run --mode once ... --settle-time 0s`, alternating
# which goes first. lander runs under /usr/bin/time -v for its peak RSS (else VmHWM is polled from /proc). lander runs
# with the scratch dir as working directory, so no ./lander.toml is picked up (built-in defaults: parallelism = CPUs).
# Input files are in the page cache for both tools (just copied), so neither pays disk reads.
#
# first_part_s: when the first Parquet part became visible in bronze (polled every 50 ms), about the end of
# decoding and encoding; the rest of lander_s is publishing the other parts, the checkpoint commit and exit.
#
# MB/s = 10^6 bytes per second, of the compressed input and of the decompressed NDJSON.
#
# Usage: scripts/bench_once.sh            (from anywhere; no arguments)
# Environment:
#   LANDER_BIN  binary to benchmark                     [${CARGO_TARGET_DIR:-target}/release/lander]
#   REPS        repetitions per input                   [5]
#   COPIES      copies of the fixtures in the large set [40]  (0 skips the large input)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
fixtures="$repo/../shared/data/gharchive"
lander="${LANDER_BIN:-${CARGO_TARGET_DIR:-$repo/target}/release/lander}"
reps="${REPS:-5}"
copies="${COPIES:-40}"

[[ -x "$lander" ]] || { echo "error: no lander binary at $lander (cargo build --release, or set LANDER_BIN)" >&2; exit 2; }
lander="$(cd "$(dirname "$lander")" && pwd)/$(basename "$lander")"
ls "$fixtures"/*.json.gz >/dev/null 2>&1 || { echo "error: no fixtures in $fixtures" >&2; exit 2; }

scratch="$(mktemp -d)"
cleanup() { rm -rf "$scratch"; }
trap cleanup EXIT

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
mbps() { awk -v b="$1" -v s="$2" 'BEGIN { printf "%.1f", b / s / 1e6 }'; }
# median min max of the numbers given as arguments
stats() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
    m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
    printf "%s %s %s\n", m, v[1], v[NR] }'; }

have_time=0
[[ -x /usr/bin/time ]] && /usr/bin/time -v true >/dev/null 2>&1 && have_time=1

# Runs lander once over $1/landing; prints "<seconds> <peak_rss_kib> <rows> <first_part_seconds>".
# first_part_seconds: when the first Parquet part appeared under bronze/gharchive/ (polled every 50 ms): about the end
# of decoding + encoding; what follows is publishing the other parts and the checkpoint commit.
run_lander() {
    local dir="$1" start end rss rows pub="" out="$1/lander.out" tv="$1/time.txt" hwm=0 v
    local glob="$dir/bronze/gharchive/year=*/month=*/day=*/*.parquet"
    start=$(now)
    # The subshell execs the timed command, so $pid is /usr/bin/time (or lander itself).
    if [[ $have_time -eq 1 ]]; then
        (cd "$dir" && exec /usr/bin/time -v -o "$tv" "$lander" -q run --mode once --landing landing --bronze bronze \
            --checkpoint checkpoint --settle-time 0s >"$out") &
    else
        (cd "$dir" && exec "$lander" -q run --mode once --landing landing --bronze bronze \
            --checkpoint checkpoint --settle-time 0s >"$out") &
    fi
    local pid=$!
    while kill -0 "$pid" 2>/dev/null; do
        if [[ -z "$pub" ]] && compgen -G "$glob" >/dev/null; then pub=$(now); fi
        if [[ $have_time -eq 0 ]]; then
            v=$(awk '/VmHWM/ { print $2 }' "/proc/$pid/status" 2>/dev/null || true)
            [[ -n "$v" && "$v" -gt "$hwm" ]] && hwm=$v
        fi
        sleep 0.05
    done
    wait "$pid"
    end=$(now)
    [[ -n "$pub" ]] || pub=$end
    if [[ $have_time -eq 1 ]]; then
        rss=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$tv")
    else
        rss=$hwm
    fi
    rows=$(sed -n 's/^gharchive: batch [0-9]* committed: [0-9]* file(s), \([0-9]*\) rows written.*/\1/p' "$out" |
        awk '{ s += $1 } END { print s + 0 }')
    echo "$(elapsed "$start" "$end") $rss $rows $(elapsed "$start" "$pub")"
}

run_gzip() { # $1 = landing dir; prints seconds
    local start
    start=$(now)
    gzip -dc "$1"/*.json.gz >/dev/null
    elapsed "$start" "$(now)"
}

# bench <name> <source dir with *.json.gz> <expected rows>
bench() {
    local name="$1" src="$2" expect="$3"
    local comp decomp nfiles
    comp=$(cat "$src"/*.json.gz | wc -c)
    decomp=$(gzip -dc "$src"/*.json.gz | wc -c)
    nfiles=$(ls "$src"/*.json.gz | wc -l)
    echo
    echo "== $name: $nfiles files, $comp bytes gzip ($(mbps "$comp" 1) MB), $decomp bytes NDJSON ($(mbps "$decomp" 1) MB), $expect events"
    printf '%-4s %10s %10s %10s %12s %12s %14s\n' rep gzip_s lander_s ratio lander_MB/s peak_rss_MiB first_part_s
    local g_all=() l_all=() r_all=() rss_all=() p_all=()
    for rep in $(seq "$reps"); do
        local run="$scratch/run"
        rm -rf "$run"
        mkdir -p "$run/landing/gharchive"
        cp "$src"/*.json.gz "$run/landing/gharchive/"
        sync
        local g l rss rows pub
        if (( rep % 2 )); then
            g=$(run_gzip "$run/landing/gharchive")
            read -r l rss rows pub < <(run_lander "$run")
        else
            read -r l rss rows pub < <(run_lander "$run")
            g=$(run_gzip "$run/landing/gharchive")
        fi
        [[ "$rows" -eq "$expect" ]] || { echo "error: lander wrote $rows rows, expected $expect" >&2; exit 1; }
        local ratio
        ratio=$(awk -v l="$l" -v g="$g" 'BEGIN { printf "%.2f", l / g }')
        printf '%-4s %10s %10s %10s %12s %12s %14s\n' "$rep" "$g" "$l" "$ratio" "$(mbps "$comp" "$l")" \
            "$(awk -v k="$rss" 'BEGIN { printf "%.0f", k / 1024 }')" "$pub"
        g_all+=("$g"); l_all+=("$l"); r_all+=("$ratio"); p_all+=("$pub")
        rss_all+=("$(awk -v k="$rss" 'BEGIN { printf "%.0f", k / 1024 }')")
        rm -rf "$run"
    done
    local gm gmin gmax lm lmin lmax rmed rmin rmax sm smin smax pm pmin pmax
    read -r gm gmin gmax < <(stats "${g_all[@]}")
    read -r lm lmin lmax < <(stats "${l_all[@]}")
    read -r rmed rmin rmax < <(stats "${r_all[@]}")
    read -r sm smin smax < <(stats "${rss_all[@]}")
    read -r pm pmin pmax < <(stats "${p_all[@]}")
    echo "-- $name summary over $reps reps: median [min..max]"
    echo "gzip -dc   : ${gm} s [${gmin}..${gmax}]  compressed $(mbps "$comp" "$gm") MB/s [$(mbps "$comp" "$gmax")..$(mbps "$comp" "$gmin")]  decompressed $(mbps "$decomp" "$gm") MB/s [$(mbps "$decomp" "$gmax")..$(mbps "$decomp" "$gmin")]"
    echo "lander once: ${lm} s [${lmin}..${lmax}]  compressed $(mbps "$comp" "$lm") MB/s [$(mbps "$comp" "$lmax")..$(mbps "$comp" "$lmin")]  decompressed $(mbps "$decomp" "$lm") MB/s [$(mbps "$decomp" "$lmax")..$(mbps "$decomp" "$lmin")]"
    echo "ratio lander/gzip (time, per rep): ${rmed} [${rmin}..${rmax}]"
    echo "lander peak RSS: ${sm} MiB [${smin}..${smax}]"
    echo "lander first Parquet part visible after: ${pm} s [${pmin}..${pmax}] (rest of the run: publishing, checkpoint commit, exit)"
}

echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(free -h | awk '/^Mem:/ { print $2 }') RAM"
echo "lander: $lander ($("$lander" --version))"
echo "gzip: $(gzip --version | head -1)"
echo "peak RSS via: $([[ $have_time -eq 1 ]] && echo '/usr/bin/time -v' || echo 'VmHWM polled every 10 ms')"
echo "reps: $reps"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"

# Small input: the five fixtures as they are.
small_rows=0
for f in "$fixtures"/*.json.gz; do small_rows=$((small_rows + $(gzip -dc "$f" | wc -l))); done
bench "small (5 GH Archive fixtures)" "$fixtures" "$small_rows"

# Large input: $copies copies with unique ids.
if [[ "$copies" -gt 0 ]]; then
    big="$scratch/big"
    mkdir -p "$big"
    start=$(now)
    for c in $(seq "$copies"); do
        for f in "$fixtures"/*.json.gz; do
            base="$(basename "$f" .json.gz)"
            gzip -dc "$f" | sed -e "s/\"id\":\"\([0-9]*\)\"/\"id\":\"\1-$c\"/g" \
                -e "/\"id\":\"[0-9]/!s/^{/{\"bench_copy\":$c,/" | gzip -1 >"$big/$base-c$(printf %03d "$c").json.gz"
        done &
        # Two builders at a time.
        (( c % 2 )) || wait
    done
    wait
    echo
    echo "(built the large input in $(elapsed "$start" "$(now)") s)"
    bench "large ($copies copies, unique ids, gzip -1)" "$big" $((small_rows * copies))

    # Control: the same number of NDJSON bytes, but plain copies of the fixtures, so every copy after the first is
    # all duplicates: as much decoding as the large input, but only the first copy's rows are encoded and committed.
    dup="$scratch/dup"
    mkdir -p "$dup"
    for c in $(seq "$copies"); do
        for f in "$fixtures"/*.json.gz; do cp "$f" "$dup/$(basename "$f" .json.gz)-c$(printf %03d "$c").json.gz"; done
    done
    rm -rf "$big"
    bench "large-dup control ($copies plain copies: same bytes, all but $small_rows events duplicates)" "$dup" "$small_rows"
fi
echo
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
