#!/usr/bin/env python3
"""The 16-file once-run in both table formats, against gzip -dc, DuckDB and Polars, in the same repetitions.

Input: FILES (default 16) scaled GH Archive hour files built by bench_scale.py's `build_input` (the two real 2015
hours concatenated with rewritten ids, 15,129 events each, gzip -6). Each repetition copies them into a fresh
landing and times, in a rotating order: `gzip -dc`, lander `--table-format parquet`, lander `--table-format delta`,
../shared/peers/duckdb_bronze.py and ../shared/peers/polars_bronze.py (the same bronze job). Prints medians and
the ratios to gzip and to each peer, plus peak RSS (/usr/bin/time -v).

Usage: scripts/bench_formats.py   (LANDER_BIN, FILES, REPS, KEEP_INPUT as in bench_scale.py)
"""
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_scale import SHARED, build_input, lander_bin, parquet_bytes, rows_written, timed  # noqa: E402

PEERS = {
    "duckdb": os.path.join(SHARED, "peers", "duckdb_bronze.py"),
    "polars": os.path.join(SHARED, "peers", "polars_bronze.py"),
}
TOOLS = ["gzip", "parquet", "delta", "duckdb", "polars"]


def run_tool(tool, lander, work, landing):
    if tool == "gzip":
        s, m, _ = timed(["sh", "-c", f"gzip -dc {landing}/*.json.gz > /dev/null"])
        return s, m, None
    if tool in ("parquet", "delta"):
        s, m, out = timed([lander, "-q", "run", "--mode", "once", "--landing", "landing", "--bronze", f"b-{tool}",
                           "--checkpoint", f"c-{tool}", "--settle-time", "0s", "--table-format", tool],
                          cwd=work, stdout=None)
        return s, m, rows_written(out)
    s, m, _ = timed(["python3", PEERS[tool], "gharchive", landing, os.path.join(work, tool)], stdout=None)
    return s, m, None


def main():
    lander = lander_bin()
    files_n = int(os.environ.get("FILES", "16"))
    reps = int(os.environ.get("REPS", "3"))
    keep = os.environ.get("KEEP_INPUT")
    tmp = tempfile.mkdtemp(prefix="lander-bench-formats-")
    src = keep or os.path.join(tmp, "src")
    build_input(src, files_n)
    files = sorted(os.path.join(src, f) for f in os.listdir(src))[:files_n]
    print(f"load average at start: {os.getloadavg()}")
    results = {t: [] for t in TOOLS}
    for rep in range(reps):
        work = os.path.join(tmp, "work")
        shutil.rmtree(work, ignore_errors=True)
        landing = os.path.join(work, "landing", "gharchive")
        os.makedirs(landing)
        for f in files:
            shutil.copy(f, landing)
        subprocess.run(["sync"])
        order = TOOLS[rep % len(TOOLS):] + TOOLS[:rep % len(TOOLS)]
        for tool in order:
            results[tool].append(run_tool(tool, lander, work, landing))
        rows = {t: results[t][-1][2] for t in ("parquet", "delta")}
        if rows["parquet"] != rows["delta"]:
            sys.exit(f"error: the formats wrote different row counts: {rows}")
        sizes = {t: parquet_bytes(os.path.join(work, f"b-{t}", "gharchive")) for t in ("parquet", "delta")}
        print(f"rep {rep + 1}: " + ", ".join(f"{t} {results[t][-1][0]:.2f}s" for t in TOOLS)
              + f"; rows {rows['delta']}; parquet bytes {sizes}")
    med = {t: statistics.median(r[0] for r in results[t]) for t in TOOLS}
    rss = {t: statistics.median(r[1] for r in results[t]) for t in TOOLS}
    print(f"load average at end: {os.getloadavg()}")
    print(f"\nmedians of {reps} ({files_n} files):")
    print("| tool | seconds | peak RSS MiB | / gzip |")
    print("|---|---|---|---|")
    for t in TOOLS:
        print(f"| {t} | {med[t]:.2f} | {rss[t]:.0f} | {med[t] / med['gzip']:.2f} |")
    for t in ("parquet", "delta"):
        print(f"lander {t}: {med[t] / med['duckdb']:.2f}x DuckDB, {med[t] / med['polars']:.2f}x Polars")
    print(f"delta / parquet: {med['delta'] / med['parquet']:.3f}")
    if not keep:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
