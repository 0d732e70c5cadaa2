#!/usr/bin/env bash
# Download throughput of `lander fetch gharchive` vs curl, against the same local HTTP server in the same run.
#
# Serves GH Archive-named files from a scratch dir with python3's http.server on 127.0.0.1, then downloads the same
# hours with lander (stream to a temp name, gzip verification, fsync, rename) and with curl (plain write to disk),
# once with one connection and once with --concurrency parallel connections, and prints MB/s (10^6 bytes/s) for each.
#
# The fixtures in ../shared/data/gharchive are small (0.3-2.6 MB), so each served hour is the concatenation of all
# fixtures repeated $REPEAT times: a valid multi-member gzip file, as GH Archive files sometimes are. The hours are
# symlinks to one file, so the scratch dir holds it once.
#
# Usage: scripts/bench_fetch.sh
# Environment:
#   LANDER_BIN   binary to benchmark        [${CARGO_TARGET_DIR:-target}/release/lander]
#   HOURS        files per run              [8]
#   REPEAT       fixture copies per file    [6]   (about 50 MB per file)
#   CONCURRENCY  parallel downloads         [4]
#   PORT         server port                [18080]
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
fixtures="$repo/../shared/data/gharchive"
lander="${LANDER_BIN:-${CARGO_TARGET_DIR:-$repo/target}/release/lander}"
hours="${HOURS:-8}"
repeat="${REPEAT:-6}"
concurrency="${CONCURRENCY:-4}"
port="${PORT:-18080}"

[[ -x "$lander" ]] || { echo "error: no lander binary at $lander (cargo build --release, or set LANDER_BIN)" >&2; exit 2; }
command -v curl >/dev/null || { echo "error: curl is not installed" >&2; exit 2; }
command -v python3 >/dev/null || { echo "error: python3 is not installed" >&2; exit 2; }

scratch="$(mktemp -d)"
server_pid=""
cleanup() {
    if [[ -n "$server_pid" ]]; then kill "$server_pid" 2>/dev/null || true; fi
    rm -rf "$scratch"
}
trap cleanup EXIT

# One big multi-member gzip file, served under $hours archive names.
mkdir -p "$scratch/serve"
for _ in $(seq "$repeat"); do cat "$fixtures"/*.json.gz; done >"$scratch/serve/hour.json.gz"
for h in $(seq 0 $((hours - 1))); do ln -s hour.json.gz "$scratch/serve/2015-01-01-$h.json.gz"; done
file_bytes=$(stat -c %s "$scratch/serve/hour.json.gz")
total_bytes=$((file_bytes * hours))

python3 -m http.server "$port" --bind 127.0.0.1 --directory "$scratch/serve" >/dev/null 2>&1 &
server_pid=$!
for _ in $(seq 50); do
    curl -sf -o /dev/null "http://127.0.0.1:$port/hour.json.gz" && break
    sleep 0.1
done

now() { date +%s.%N; }
mbps() { awk -v b="$1" -v s="$2" 'BEGIN { printf "%.1f", b / s / 1e6 }'; }

run_lander() { # $1 = concurrency
    local dir="$scratch/lander-$1"
    rm -rf "$dir"
    "$lander" --quiet fetch gharchive --from 2015-01-01T00 --to "2015-01-01T$((hours - 1))" \
        --base-url "http://127.0.0.1:$port" --landing "$dir" --concurrency "$1" >/dev/null
    [[ $(find "$dir/gharchive" -name '*.json.gz' | wc -l) -eq "$hours" ]] || { echo "error: lander fetched too few files" >&2; exit 1; }
}

run_curl() { # $1 = concurrency
    local dir="$scratch/curl-$1"
    rm -rf "$dir" && mkdir -p "$dir"
    local args=()
    for h in $(seq 0 $((hours - 1))); do
        args+=(-o "$dir/2015-01-01-$h.json.gz" "http://127.0.0.1:$port/2015-01-01-$h.json.gz")
    done
    if [[ "$1" -gt 1 ]]; then
        curl -sSf --parallel --parallel-max "$1" "${args[@]}"
    else
        curl -sSf "${args[@]}"
    fi
}

echo "files: $hours x $file_bytes bytes ($(mbps "$total_bytes" 1) MB total), server: python3 http.server on 127.0.0.1:$port"
echo "lander: $lander"
printf '%-8s %-12s %10s %10s\n' tool connections seconds MB/s
for c in 1 "$concurrency"; do
    for tool in curl lander; do
        start=$(now)
        "run_$tool" "$c"
        secs=$(awk -v a="$start" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }')
        printf '%-8s %-12s %10s %10s\n' "$tool" "$c" "$secs" "$(mbps "$total_bytes" "$secs")"
    done
done
