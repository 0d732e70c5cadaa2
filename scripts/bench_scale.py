#!/usr/bin/env python3
"""Scale curve of `lander run --mode once` against `gzip -dc` and DuckDB doing the same job, in the same run.

Input: N "hour-files". Each is the two 2015 GH Archive sample hours (../shared/data/gharchive/2015-01-01-{0,1})
concatenated, with every `"id":"N"` rewritten to `"id":"N-<copy>"` so no event repeats across copies, compressed
with `gzip -6`: 15,129 events and 35.2 MB of NDJSON per file, about a real 2015 hour. 70 files hold 1,059,030
events (2.46 GB NDJSON).

For each N in SCALES, REPS repetitions. Each repetition copies the first N files into a fresh landing directory
(so all tools read from the page cache), then runs, in an order that rotates between repetitions:
  gzip    gzip -dc <files> > /dev/null
  lander  lander -q run --mode once --landing L --bronze B --checkpoint C --settle-time 0s  (fresh B and C)
  duckdb  python3 ../shared/peers/duckdb_bronze.py gharchive L/gharchive B2   (same columns, dedup by key, zstd,
          PARTITION_BY (year, month, day))
each under /usr/bin/time -v: wall seconds and peak RSS. Row counts are checked: lander's and DuckDB's must equal
15,129 x N. Bronze sizes (bytes of *.parquet) are reported for both.

Then the five real (not copied) sample hours once each, to compare bronze sizes on real data.

Usage: scripts/bench_scale.py        (no arguments; from anywhere)
Environment:
  LANDER_BIN  binary to benchmark   [${CARGO_TARGET_DIR:-target}/release/lander]
  SCALES      file counts           ["1 4 16 70"]
  REPS        repetitions per scale [3]
  KEEP_INPUT  a directory to keep (and reuse) the generated hour-files in, instead of a temp dir
"""
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.normpath(os.path.join(REPO, "..", "shared"))
FIXTURES = os.path.join(SHARED, "data", "gharchive")
PEER = os.path.join(SHARED, "peers", "duckdb_bronze.py")
EVENTS_PER_FILE = 15129


def lander_bin():
    b = os.environ.get("LANDER_BIN") or os.path.join(
        os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO, "target")), "release", "lander")
    if not os.access(b, os.X_OK):
        sys.exit(f"error: no lander binary at {b} (cargo build --release, or set LANDER_BIN)")
    return os.path.abspath(b)


def timed(cmd, cwd=None, stdout=subprocess.DEVNULL):
    """Runs cmd under /usr/bin/time -v; returns (seconds, peak_rss_mib, stdout_text)."""
    tv = tempfile.NamedTemporaryFile(delete=False)
    tv.close()
    p = subprocess.run(["/usr/bin/time", "-v", "-o", tv.name] + cmd, cwd=cwd,
                       stdout=subprocess.PIPE if stdout is None else stdout, stderr=subprocess.PIPE)
    text = open(tv.name).read()
    os.unlink(tv.name)
    if p.returncode != 0:
        sys.exit(f"error: {' '.join(cmd)} exited {p.returncode}: {p.stderr.decode()[-2000:]}")
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (.*)", text).group(1)
    parts = [float(x) for x in wall.split(":")]
    secs = sum(v * 60 ** i for i, v in enumerate(reversed(parts)))
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1)) / 1024
    out = p.stdout.decode() if p.stdout else ""
    return secs, rss, out


def parquet_bytes(d):
    n = 0
    for root, _, files in os.walk(d):
        n += sum(os.path.getsize(os.path.join(root, f)) for f in files if f.endswith(".parquet"))
    return n


def build_input(dest, count):
    os.makedirs(dest, exist_ok=True)
    srcs = [os.path.join(FIXTURES, "2015-01-01-0.json.gz"), os.path.join(FIXTURES, "2015-01-01-1.json.gz")]
    procs = []
    for c in range(1, count + 1):
        out = os.path.join(dest, f"h{c:03d}.json.gz")
        if os.path.exists(out):
            continue
        sh = (f"gzip -dc {' '.join(srcs)} | sed -e 's/\"id\":\"\\([0-9]*\\)\"/\"id\":\"\\1-{c}\"/g' "
              f"| gzip -6 > {out}.tmp && mv {out}.tmp {out}")
        procs.append(subprocess.Popen(["sh", "-c", sh]))
        if len(procs) == 2:
            for p in procs:
                assert p.wait() == 0
            procs = []
    for p in procs:
        assert p.wait() == 0


def rows_written(out):
    return sum(int(m) for m in re.findall(r"committed: \d+ file\(s\), (\d+) rows written", out))


def med(xs):
    return statistics.median(xs)


def one_rep(lander, files, work, order):
    landing = os.path.join(work, "landing", "gharchive")
    if os.path.exists(work):
        shutil.rmtree(work)
    os.makedirs(landing)
    for f in files:
        shutil.copy(f, landing)
    subprocess.run(["sync"])
    r = {}
    for tool in order:
        if tool == "gzip":
            s, m, _ = timed(["sh", "-c", f"gzip -dc {landing}/*.json.gz > /dev/null"])
            r["gzip"] = (s, m, None, None)
        elif tool == "lander":
            s, m, out = timed([lander, "-q", "run", "--mode", "once", "--landing", "landing", "--bronze", "bronze",
                               "--checkpoint", "checkpoint", "--settle-time", "0s"], cwd=work, stdout=None)
            r["lander"] = (s, m, rows_written(out), parquet_bytes(os.path.join(work, "bronze", "gharchive")))
        else:
            bronze = os.path.join(work, "duck")
            s, m, out = timed(["python3", PEER, "gharchive", landing, bronze], stdout=None)
            rows = int(re.search(r"rows=(\d+)", out).group(1))
            r["duckdb"] = (s, m, rows, parquet_bytes(bronze))
    return r


def main():
    lander = lander_bin()
    scales = [int(x) for x in os.environ.get("SCALES", "1 4 16 70").split()]
    reps = int(os.environ.get("REPS", "3"))
    import duckdb  # noqa: F401  (fail early if the peer cannot run)
    scratch = tempfile.mkdtemp(prefix="lander-bench-")
    keep = os.environ.get("KEEP_INPUT")
    src = keep or os.path.join(scratch, "src")
    try:
        ver = subprocess.run([lander, "--version"], capture_output=True, text=True).stdout.strip()
        print(f"machine: {os.cpu_count()} CPUs; lander: {lander} ({ver}); duckdb {duckdb.__version__}; "
              f"reps {reps}; load average at start: {open('/proc/loadavg').read().split()[:3]}")
        build_input(src, max(scales))
        allfiles = sorted(os.path.join(src, f) for f in os.listdir(src) if f.endswith(".json.gz"))
        summary = []
        for n in scales:
            files = allfiles[:n]
            gz = sum(os.path.getsize(f) for f in files)
            print(f"\n== {n} file(s): {gz / 1e6:.1f} MB gzip, {EVENTS_PER_FILE * n} events")
            print(f"{'rep':>3} {'gzip_s':>7} {'lander_s':>8} {'duckdb_s':>8} {'l/gzip':>6} {'l/duck':>6} "
                  f"{'lander_MiB':>10} {'duckdb_MiB':>10} {'lander_MB':>9} {'duckdb_MB':>9}")
            rows = []
            orders = [["gzip", "lander", "duckdb"], ["lander", "duckdb", "gzip"], ["duckdb", "gzip", "lander"]]
            for rep in range(reps):
                r = one_rep(lander, files, os.path.join(scratch, "run"), orders[rep % 3])
                for t in ("lander", "duckdb"):
                    if r[t][2] != EVENTS_PER_FILE * n:
                        sys.exit(f"error: {t} wrote {r[t][2]} rows, expected {EVENTS_PER_FILE * n}")
                g, l, d = r["gzip"][0], r["lander"][0], r["duckdb"][0]
                rows.append((g, l, d, l / g, l / d, r["lander"][1], r["duckdb"][1], r["lander"][3], r["duckdb"][3]))
                print(f"{rep + 1:>3} {g:>7.2f} {l:>8.2f} {d:>8.2f} {l / g:>6.2f} {l / d:>6.2f} {r['lander'][1]:>10.0f} "
                      f"{r['duckdb'][1]:>10.0f} {r['lander'][3] / 1e6:>9.1f} {r['duckdb'][3] / 1e6:>9.1f}")
            col = list(zip(*rows))
            m = [med(c) for c in col]
            print(f"med {m[0]:>7.2f} {m[1]:>8.2f} {m[2]:>8.2f} {m[3]:>6.2f} {m[4]:>6.2f} {m[5]:>10.0f} {m[6]:>10.0f} "
                  f"{m[7] / 1e6:>9.1f} {m[8] / 1e6:>9.1f}")
            summary.append((n, m))
        print("\n== summary (medians): files, gzip s, lander s, duckdb s, lander/gzip, lander/duckdb, "
              "lander peak MiB, duckdb peak MiB, lander bronze MB, duckdb bronze MB")
        for n, m in summary:
            print(f"{n:>4} {m[0]:>7.2f} {m[1]:>8.2f} {m[2]:>8.2f} {m[3]:>6.2f} {m[4]:>6.2f} {m[5]:>10.0f} "
                  f"{m[6]:>10.0f} {m[7] / 1e6:>9.1f} {m[8] / 1e6:>9.1f}")

        real = [os.path.join(FIXTURES, f) for f in sorted(os.listdir(FIXTURES)) if f.endswith(".json.gz")]
        r = one_rep(lander, real, os.path.join(scratch, "run"), ["gzip", "lander", "duckdb"])
        print(f"\n== the 5 real sample hours (not copied): lander {r['lander'][2]} rows, "
              f"{r['lander'][3]} bytes of Parquet; duckdb {r['duckdb'][2]} rows, {r['duckdb'][3]} bytes; "
              f"lander/duckdb size {r['lander'][3] / r['duckdb'][3]:.2f}")
        print(f"load average at end: {open('/proc/loadavg').read().split()[:3]}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
