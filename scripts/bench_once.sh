#!/usr/bin/env bash
# Throughput and peak memory of `lander run --mode once` vs `gzip -dc` of the same files, in the same run.
#
# Two inputs:
#   small  the five GH Archive fixtures in ../shared/data/gharchive (8.5 MB gzip, 53 MB NDJSON, 27,693 events)
#   large  $COPIES copies of those five files (default 40), each copy with rewritten ids so no event is a duplicate:
#          every `"id":"N"` becomes `"id":"N-<copy>"`, and the lines without a string id (2013 Timeline events,
#          deduplicated on a content hash) get a leading `"bench_copy":<copy>` field. Recompressed with `gzip -1`.
#
# Each repetition copies the input into a fresh <tmp>/landing/gharchive/ with a fresh bronze and checkpoint, then
# times (wall clock) `gzip -dc <files> >/dev/null` and `lander -q run --mode once ... --settle-time 0s`, alternating
# which goes first. lander runs under /usr/bin/time -v for its peak RSS (else VmHWM is polled from /proc). lander runs
# with the scratch dir as working directory, so no ./lander.toml is picked up (built-in defaults: parallelism = CPUs).
# Input files are in the page cache for both tools (just copied), so neither pays disk reads.
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

# Runs lander once over $1/landing; prints "<seconds> <peak_rss_kib> <rows>".
run_lander() {
    local dir="$1" start end rss rows out="$1/lander.out" tv="$1/time.txt"
    start=$(now)
    if [[ $have_time -eq 1 ]]; then
        (cd "$dir" && /usr/bin/time -v -o "$tv" "$lander" -q run --mode once --landing landing --bronze bronze \
            --checkpoint checkpoint --settle-time 0s >"$out")
        end=$(now)
        rss=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$tv")
    else
        (cd "$dir" && exec "$lander" -q run --mode once --landing landing --bronze bronze \
            --checkpoint checkpoint --settle-time 0s >"$out") &
        local pid=$! hwm=0 v
        # The subshell execs lander, so $pid is lander itself.
        while kill -0 "$pid" 2>/dev/null; do
            v=$(awk '/VmHWM/ { print $2 }' "/proc/$pid/status" 2>/dev/null || true)
            [[ -n "$v" && "$v" -gt "$hwm" ]] && hwm=$v
            sleep 0.01
        done
        wait "$pid"
        end=$(now)
        rss=$hwm
    fi
    rows=$(sed -n 's/^gharchive: batch [0-9]* committed: [0-9]* file(s), \([0-9]*\) rows written.*/\1/p' "$out" |
        awk '{ s += $1 } END { print s + 0 }')
    echo "$(elapsed "$start" "$end") $rss $rows"
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
    printf '%-4s %10s %10s %10s %12s %12s\n' rep gzip_s lander_s ratio lander_MB/s peak_rss_MiB
    local g_all=() l_all=() r_all=() rss_all=()
    for rep in $(seq "$reps"); do
        local run="$scratch/run"
        rm -rf "$run"
        mkdir -p "$run/landing/gharchive"
        cp "$src"/*.json.gz "$run/landing/gharchive/"
        sync
        local g l rss rows
        if (( rep % 2 )); then
            g=$(run_gzip "$run/landing/gharchive")
            read -r l rss rows < <(run_lander "$run")
        else
            read -r l rss rows < <(run_lander "$run")
            g=$(run_gzip "$run/landing/gharchive")
        fi
        [[ "$rows" -eq "$expect" ]] || { echo "error: lander wrote $rows rows, expected $expect" >&2; exit 1; }
        local ratio
        ratio=$(awk -v l="$l" -v g="$g" 'BEGIN { printf "%.2f", l / g }')
        printf '%-4s %10s %10s %10s %12s %12s\n' "$rep" "$g" "$l" "$ratio" "$(mbps "$comp" "$l")" \
            "$(awk -v k="$rss" 'BEGIN { printf "%.0f", k / 1024 }')"
        g_all+=("$g"); l_all+=("$l"); r_all+=("$ratio"); rss_all+=("$(awk -v k="$rss" 'BEGIN { printf "%.0f", k / 1024 }')")
        rm -rf "$run"
    done
    local gm gmin gmax lm lmin lmax rmed rmin rmax sm smin smax
    read -r gm gmin gmax < <(stats "${g_all[@]}")
    read -r lm lmin lmax < <(stats "${l_all[@]}")
    read -r rmed rmin rmax < <(stats "${r_all[@]}")
    read -r sm smin smax < <(stats "${rss_all[@]}")
    echo "-- $name summary over $reps reps: median [min..max]"
    echo "gzip -dc   : ${gm} s [${gmin}..${gmax}]  compressed $(mbps "$comp" "$gm") MB/s [$(mbps "$comp" "$gmax")..$(mbps "$comp" "$gmin")]  decompressed $(mbps "$decomp" "$gm") MB/s [$(mbps "$decomp" "$gmax")..$(mbps "$decomp" "$gmin")]"
    echo "lander once: ${lm} s [${lmin}..${lmax}]  compressed $(mbps "$comp" "$lm") MB/s [$(mbps "$comp" "$lmax")..$(mbps "$comp" "$lmin")]  decompressed $(mbps "$decomp" "$lm") MB/s [$(mbps "$decomp" "$lmax")..$(mbps "$decomp" "$lmin")]"
    echo "ratio lander/gzip (time, per rep): ${rmed} [${rmin}..${rmax}]"
    echo "lander peak RSS: ${sm} MiB [${smin}..${smax}]"
}

echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(free -h | awk '/^Mem:/ { print $2 }') RAM"
echo "lander: $lander ($("$lander" --version))"
echo "gzip: $(gzip --version | head -1)"
echo "peak RSS via: $([[ $have_time -eq 1 ]] && echo '/usr/bin/time -v' || echo 'VmHWM polled every 10 ms')"
echo "reps: $reps"

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
fi
