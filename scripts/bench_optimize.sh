#!/usr/bin/env bash
# `lander table optimize` of one ~300 MB partition of small parts vs reading that partition (target:
# optimize <= 1.5x the read). See BENCHMARKS.md for the figures.
#
# 1. Builds the partition with real lander commits: PARTS gzip NDJSON files of EVENTS GH Archive events each (the
#    2015-01-01-0 sample cycled, ids rewritten unique, created_at kept on 2015-01-01), ingested by
#    `run --mode available-now --max-files-per-batch 1`: one commit, one part per file, all in one day.
# 2. Per round (ROUNDS, median reported) on a fresh copy of that table:
#    - read:     pyarrow.parquet.read_table of every part of the partition, all columns decoded to Arrow (what
#                any rewrite must at least do; arrow-rs in lander does the same decode);
#    - duckdb:   DuckDB COPY (SELECT * FROM read_parquet(parts)) TO one zstd Parquet file: a peer's rewrite;
#    - optimize: lander table optimize (all parts are below target_file_bytes: rewritten into parts near it).
# Usage: scripts/bench_optimize.sh   (env: LANDER_BIN, PARTS [300], EVENTS [3400], ROUNDS [3], WORK [/tmp/lander-bench-opt])
set -euo pipefail
LANDER_BIN="${LANDER_BIN:-${CARGO_TARGET_DIR:-target}/release/lander}"
PARTS="${PARTS:-300}"; EVENTS="${EVENTS:-3400}"; ROUNDS="${ROUNDS:-3}"; WORK="${WORK:-/tmp/lander-bench-opt}"
SAMPLE="$(cd "$(dirname "$0")/.." && pwd)/../shared/data/gharchive/2015-01-01-0.json.gz"
rm -rf "$WORK"; mkdir -p "$WORK/landing/gharchive"
echo "machine: $(nproc) CPUs, load avg $(cut -d' ' -f1-3 /proc/loadavg) at start"
python3 - "$SAMPLE" "$WORK/landing/gharchive" "$PARTS" "$EVENTS" <<'PY'
import gzip, json, sys
sample, out, parts, per = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
events = [json.loads(l) for l in gzip.open(sample, "rt", encoding="utf-8")]
n = 0
for i in range(parts):
    lines = []
    for j in range(per):
        e = dict(events[n % len(events)]); e["id"] = str(80_000_000_000 + n); n += 1
        lines.append(json.dumps(e, separators=(",", ":")))
    with gzip.open(f"{out}/.p{i:05d}.tmp", "wt", compresslevel=1) as f:
        f.write("\n".join(lines) + "\n")
import os
for i in range(parts):
    os.rename(f"{out}/.p{i:05d}.tmp", f"{out}/p{i:05d}.json.gz")
print(f"landed {parts} files x {per} events = {n} events")
PY
t0=$(date +%s.%N)
"$LANDER_BIN" run --mode available-now --max-files-per-batch 1 --settle-time 0s --landing "$WORK/landing" \
  --bronze "$WORK/bronze" --checkpoint "$WORK/ckpt" > /dev/null 2> "$WORK/ingest.log"
echo "ingest: $(echo "$(date +%s.%N) - $t0" | bc) s"
DAY="$WORK/bronze/gharchive/year=2015/month=01/day=01"
echo "partition: $(ls "$DAY" | wc -l) parts, $(du -sm "$DAY" | cut -f1) MiB"
rm -rf "$WORK/landing"
for r in $(seq 1 "$ROUNDS"); do
  rm -rf "$WORK/b"; cp -r "$WORK/bronze" "$WORK/b"; sync
  python3 - "$WORK/b/gharchive/year=2015/month=01/day=01" <<'PY'
import glob, sys, time, pyarrow.parquet as pq
files = sorted(glob.glob(sys.argv[1] + "/*.parquet"))
t = time.perf_counter(); tbl = pq.read_table(files); d = time.perf_counter() - t
print(f"read (pyarrow, all columns): {d:.2f} s, {tbl.num_rows} rows, {tbl.nbytes / 2**20:.0f} MiB in Arrow")
PY
  python3 - "$WORK/b/gharchive/year=2015/month=01/day=01" "$WORK/duck.parquet" <<'PY'
import glob, sys, time, duckdb
files = sorted(glob.glob(sys.argv[1] + "/*.parquet"))
c = duckdb.connect()
t = time.perf_counter()
c.execute(f"COPY (SELECT * FROM read_parquet({files!r}, hive_partitioning=false)) TO '{sys.argv[2]}' (FORMAT parquet, COMPRESSION zstd)")
print(f"duckdb rewrite: {time.perf_counter() - t:.2f} s")
PY
  rm -f "$WORK/duck.parquet"
  t0=$(date +%s.%N)
  "$LANDER_BIN" table optimize --bronze "$WORK/b" --landing "$WORK/none" --checkpoint "$WORK/ckpt" | tail -1
  echo "optimize: $(echo "$(date +%s.%N) - $t0" | bc) s"
done
echo "load avg at end: $(cut -d' ' -f1-3 /proc/loadavg)"
rm -rf "$WORK"
